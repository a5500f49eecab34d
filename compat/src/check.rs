//! The rules of `check`, and `bless`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use persist_core::Keyring;

use super::expected;
use super::history::History;
use super::snapshot::{self, Snapshot};
use super::{
    CompatError, HistoryMode, MissingHistory, Report, Rule, SchemaEntry, Violation, descriptor,
};

const DIFF_LIMIT: usize = 40;

/// Groups entries by state name, in registry order.
fn states(entries: &[SchemaEntry]) -> Vec<(&'static str, Vec<&SchemaEntry>)> {
    let mut out: Vec<(&'static str, Vec<&SchemaEntry>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(n, _)| *n == e.name) {
            Some((_, v)) => v.push(e),
            None => out.push((e.name, vec![e])),
        }
    }
    out
}

fn snapshot_path(dir: &Path, name: &str, version: u32) -> PathBuf {
    dir.join(name).join(format!("v{version}.schema"))
}

fn golden_path(dir: &Path, name: &str, version: u32) -> PathBuf {
    dir.join(name).join(format!("v{version}.pst"))
}

fn expected_path(dir: &Path, name: &str, version: u32) -> PathBuf {
    dir.join(name).join(format!("v{version}.expected.txt"))
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, CompatError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CompatError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Versions with a snapshot or golden file on disk for `name`.
fn versions_on_disk(dir: &Path, name: &str) -> Result<BTreeSet<u32>, CompatError> {
    let state_dir = dir.join(name);
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(&state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(CompatError::Io {
                path: state_dir,
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|e| CompatError::Io {
            path: state_dir.clone(),
            source: e,
        })?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let stem = file
            .strip_suffix(".schema")
            .or_else(|| file.strip_suffix(".pst"))
            .or_else(|| file.strip_suffix(".expected.txt"));
        if let Some(v) = stem
            .and_then(|s| s.strip_prefix('v'))
            .and_then(|v| v.parse().ok())
        {
            out.insert(v);
        }
    }
    Ok(out)
}

/// `VERSION_GAP_OR_DUPLICATE`: the registered versions of a state must be exactly 1..=current,
/// each once, all with the same current version, and no snapshot may exist for a version the
/// registry no longer has.
fn numbering(
    dir: &Path,
    name: &str,
    list: &[&SchemaEntry],
) -> Result<Option<Violation>, CompatError> {
    let versions: Vec<u32> = list.iter().map(|e| e.version).collect();
    let current = list.iter().map(|e| e.current_version).max().unwrap_or(0);
    let mut problems = Vec::new();
    let unique: BTreeSet<u32> = versions.iter().copied().collect();
    if unique.len() != versions.len() {
        problems.push(format!(
            "registered versions {versions:?} contain a duplicate"
        ));
    }
    let expected: BTreeSet<u32> = (1..=current).collect();
    for missing in expected.difference(&unique) {
        problems.push(format!(
            "- v{missing}: no type registered (the versions must be 1..={current})"
        ));
    }
    for extra in unique.difference(&expected) {
        problems.push(format!("+ v{extra}: above the current version {current}"));
    }
    if list.iter().any(|e| e.current_version != current) {
        problems.push("the registered types disagree on the current version".to_string());
    }
    for orphan in versions_on_disk(dir, name)?.difference(&unique) {
        problems.push(format!(
            "- v{orphan}: has committed snapshot files but no registered type"
        ));
    }
    Ok((!problems.is_empty()).then(|| Violation {
        rule: Rule::VersionGapOrDuplicate,
        state: name.to_string(),
        version: current,
        summary: "the versions of this state are not exactly 1..=current, each once".to_string(),
        diff: problems,
        action: "register every version from 1 to the current one exactly once (older ones as \
                 frozen types), and never renumber or remove a released version"
            .to_string(),
    }))
}

/// The reference (committed) bytes of a file, and whether the working copy departs from them.
struct Tracked {
    reference: Option<Vec<u8>>,
    modified: Option<String>,
}

fn tracked(path: &Path, history: &History) -> Result<Tracked, CompatError> {
    let disk = read(path)?;
    let committed = history.first_committed(path)?;
    Ok(match (disk, committed) {
        (None, None) => Tracked {
            reference: None,
            modified: None,
        },
        (Some(d), None) => Tracked {
            reference: Some(d),
            modified: None,
        },
        (None, Some(c)) => Tracked {
            reference: Some(c),
            modified: Some("- the committed file was deleted".to_string()),
        },
        (Some(d), Some(c)) if d == c => Tracked {
            reference: Some(d),
            modified: None,
        },
        (Some(d), Some(c)) => {
            let how = match (std::str::from_utf8(&c), std::str::from_utf8(&d)) {
                (Ok(a), Ok(b)) => {
                    let a_lines: BTreeSet<&str> = a.lines().collect();
                    let b_lines: BTreeSet<&str> = b.lines().collect();
                    let mut lines: Vec<String> = a_lines
                        .difference(&b_lines)
                        .map(|l| format!("- {l}"))
                        .collect();
                    lines.extend(b_lines.difference(&a_lines).map(|l| format!("+ {l}")));
                    lines.truncate(DIFF_LIMIT);
                    lines.join("\n")
                }
                _ => format!("~ {} committed bytes -> {} bytes on disk", c.len(), d.len()),
            };
            Tracked {
                reference: Some(c),
                modified: Some(how),
            }
        }
    })
}

fn violation(
    rule: Rule,
    e: &SchemaEntry,
    summary: String,
    diff: Vec<String>,
    action: &str,
) -> Violation {
    Violation {
        rule,
        state: e.name.to_string(),
        version: e.version,
        summary,
        diff,
        action: action.to_string(),
    }
}

/// The history of `dir` as `mode` allows it: an error when it is incomplete and required
/// (`bless` accepts a directory never committed: every file in it is new).
fn history(dir: &Path, mode: HistoryMode, blessing: bool) -> Result<History, CompatError> {
    let history = History::of(dir)?;
    match (history.missing(), mode) {
        (None, _) => Ok(history),
        (Some(MissingHistory::NeverCommitted), _) if blessing => Ok(history.accept_missing()),
        (Some(_), HistoryMode::AcceptSelfConsistency) => Ok(history.accept_missing()),
        (Some(reason), HistoryMode::Require) => Err(CompatError::HistoryMissing {
            dir: dir.to_path_buf(),
            reason: reason.clone(),
        }),
    }
}

/// Runs every rule.
pub fn check(
    entries: &[SchemaEntry],
    dir: &Path,
    ring: &Keyring,
    mode: HistoryMode,
) -> Result<Report, CompatError> {
    check_against(entries, dir, ring, &history(dir, mode, false)?)
}

/// Runs every rule against `history`.
fn check_against(
    entries: &[SchemaEntry],
    dir: &Path,
    ring: &Keyring,
    history: &History,
) -> Result<Report, CompatError> {
    let mut report = Report {
        violations: Vec::new(),
        history_missing: history.missing().cloned(),
    };
    for (name, list) in states(entries) {
        if let Some(v) = numbering(dir, name, &list)? {
            report.violations.push(v);
            continue;
        }
        let mut found = Vec::new();
        for e in &list {
            check_version(e, dir, ring, history, &mut found)?;
        }
        // Root cause: when the current version's layout changed, every older version's golden
        // file loads as another value too; only the layout change is reported.
        if found.iter().any(|v| {
            v.rule == Rule::LayoutChangedWithoutVersionBump
                && list.iter().any(|e| e.current_version == v.version)
        }) {
            found.retain(|v| v.rule != Rule::GoldenValueChanged);
        }
        report.violations.extend(found);
    }
    report.violations.extend(removed_states(entries, dir)?);
    Ok(report)
}

/// States with snapshot files but no registered version: a state removed from the program,
/// whose generations can no longer be loaded (`VERSION_GAP_OR_DUPLICATE` of its newest version).
fn removed_states(entries: &[SchemaEntry], dir: &Path) -> Result<Vec<Violation>, CompatError> {
    let registered: BTreeSet<&str> = entries.iter().map(|e| e.name).collect();
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CompatError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names = BTreeSet::new();
    for entry in listing {
        let entry = entry.map_err(|source| CompatError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.path().is_dir() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let mut out = Vec::new();
    for name in names.iter().filter(|n| !registered.contains(n.as_str())) {
        let versions = versions_on_disk(dir, name)?;
        if let Some(&newest) = versions.last() {
            out.push(Violation {
                rule: Rule::VersionGapOrDuplicate,
                state: name.clone(),
                version: newest,
                summary: "this state has snapshot files but no registered version".to_string(),
                diff: versions
                    .iter()
                    .map(|v| format!("- v{v}: no registered type"))
                    .collect(),
                action: "register the state again, or delete its snapshot directory on purpose \
                         (its generations can then no longer be loaded)"
                    .to_string(),
            });
        }
    }
    Ok(out)
}

fn check_version(
    e: &SchemaEntry,
    dir: &Path,
    ring: &Keyring,
    history: &History,
    out: &mut Vec<Violation>,
) -> Result<(), CompatError> {
    let spath = snapshot_path(dir, e.name, e.version);
    let gpath = golden_path(dir, e.name, e.version);
    let snap = tracked(&spath, history)?;
    let gold = tracked(&gpath, history)?;
    if snap.reference.is_none() || gold.reference.is_none() {
        let missing: Vec<String> = [(&snap, &spath), (&gold, &gpath)]
            .iter()
            .filter(|(t, _)| t.reference.is_none())
            .map(|(_, p)| format!("+ {} (missing)", p.display()))
            .collect();
        out.push(violation(
            Rule::NewVersionNotBlessed,
            e,
            "this version has no snapshot or golden file yet".to_string(),
            missing,
            "run `cargo xtask schema bless` and commit the new files",
        ));
        if snap.reference.is_none() {
            return Ok(());
        }
    }
    let snap_bytes = snap.reference.unwrap_or_default();
    let text = String::from_utf8_lossy(&snap_bytes).into_owned();
    let mut trusted = true;
    if let Some(how) = snap.modified {
        out.push(modified(e, &spath, how));
    } else if !history.available() && !snapshot::self_consistent(&text) {
        trusted = false;
        out.push(modified(
            e,
            &spath,
            "~ its fingerprint or field list does not match its own descriptor".to_string(),
        ));
    }
    if let Some(how) = gold.modified {
        out.push(modified(e, &gpath, how));
    }
    let snapshot: Snapshot = snapshot::parse(&text).map_err(|reason| CompatError::BadSnapshot {
        path: spath.clone(),
        reason,
    })?;
    let mut layout_ok = true;
    if trusted && snapshot.fingerprint != e.fingerprint.to_string() {
        layout_ok = false;
        let new = e.descriptor.clone().unwrap_or_default();
        out.push(violation(
            Rule::LayoutChangedWithoutVersionBump,
            e,
            format!(
                "the layout differs from the committed snapshot {}",
                spath.display()
            ),
            descriptor::diff(&snapshot.descriptor, &new, DIFF_LIMIT),
            "restore the old layout, or freeze the old type and add a new version with a \
             migration (`from = ...`), then bless the new version",
        ));
    }
    let chain_ok = match e.chain_fingerprint {
        None => {
            out.push(violation(
                Rule::MissingMigration,
                e,
                format!(
                    "the current type (v{}) cannot load v{}",
                    e.current_version, e.version
                ),
                vec![format!(
                    "- v{}: no migration path (the chain starts at v{})",
                    e.version, e.oldest_version
                )],
                "link the next version to this one with `from = ...` or `try_from = ...`",
            ));
            false
        }
        Some(f) if f != e.fingerprint => {
            out.push(violation(
                Rule::MissingMigration,
                e,
                format!(
                    "the current type's chain reaches v{} through another type",
                    e.version
                ),
                vec![
                    format!("- registered v{}: {}", e.version, e.fingerprint),
                    format!("+ chain's v{}: {f}", e.version),
                ],
                "make the `from = ...` of the next version name the registered frozen type",
            ));
            false
        }
        Some(_) => true,
    };
    if layout_ok
        && chain_ok
        && let Some(bytes) = gold.reference
    {
        match snapshot::load_golden(e, ring, &bytes) {
            Err(diff) => out.push(violation(
                Rule::GoldenDoesNotLoad,
                e,
                format!(
                    "{} does not load into the current version v{}",
                    gpath.display(),
                    e.current_version
                ),
                diff,
                "fix the migration chain so that every released version still loads",
            )),
            Ok(actual) => out.extend(check_expected(e, dir, &actual)?),
        }
    }
    Ok(())
}

/// `GOLDEN_VALUE_CHANGED`: the golden file's value, once loaded, must equal its recorded
/// expected value (`NEW_VERSION_NOT_BLESSED` when none is recorded for the current version).
fn check_expected(
    e: &SchemaEntry,
    dir: &Path,
    actual: &str,
) -> Result<Option<Violation>, CompatError> {
    let path = expected_path(dir, e.name, e.version);
    let Some(bytes) = read(&path)? else {
        return Ok(Some(violation(
            Rule::NewVersionNotBlessed,
            e,
            "the golden file's expected value is not recorded yet".to_string(),
            vec![format!("+ {} (missing)", path.display())],
            "run `cargo xtask schema bless` and commit the new files",
        )));
    };
    let recorded = expected::parse(&String::from_utf8_lossy(&bytes)).map_err(|reason| {
        CompatError::BadSnapshot {
            path: path.clone(),
            reason,
        }
    })?;
    if recorded.current_version != e.current_version {
        return Ok(Some(violation(
            Rule::NewVersionNotBlessed,
            e,
            format!(
                "the golden file's expected value was recorded for another current version \
                 (v{})",
                recorded.current_version
            ),
            vec![format!(
                "~ {}: loaded into v{} -> v{}",
                path.display(),
                recorded.current_version,
                e.current_version
            )],
            "run `cargo xtask schema bless` to record the value in the new current version, \
             review its diff, and commit it",
        )));
    }
    if recorded.value.trim_end_matches('\n') == actual.trim_end_matches('\n') {
        return Ok(None);
    }
    Ok(Some(violation(
        Rule::GoldenValueChanged,
        e,
        format!(
            "the golden file v{}.pst loads into v{} as another value than {} records \
             (- expected line, + actual line)",
            e.version,
            e.current_version,
            path.display()
        ),
        expected::line_diff(&recorded.value, actual, DIFF_LIMIT),
        "fix the migration (or decoder) so that old generations load as before; if the change \
         is a deliberate fix of a released migration, delete the .expected.txt file, run \
         `cargo xtask schema bless`, and say why in the commit",
    )))
}

fn modified(e: &SchemaEntry, path: &Path, how: String) -> Violation {
    violation(
        Rule::SnapshotModified,
        e,
        format!("{} no longer matches its committed history", path.display()),
        how.lines().map(str::to_string).collect(),
        "restore the committed file (`git checkout <first commit> -- <file>`): snapshots and \
         golden files of released versions are immutable",
    )
}

/// Whether the current version of a state differs from its (committed) snapshot.
fn current_layout_changed(
    dir: &Path,
    list: &[&SchemaEntry],
    history: &History,
) -> Result<bool, CompatError> {
    let Some(current) = list.iter().find(|e| e.version == e.current_version) else {
        return Ok(true);
    };
    let path = snapshot_path(dir, current.name, current.version);
    let reference = match history.first_committed(&path)? {
        Some(committed) => Some(committed),
        None => read(&path)?,
    };
    Ok(reference.is_some_and(|text| {
        snapshot::parse(&String::from_utf8_lossy(&text)).map(|s| s.fingerprint)
            != Ok(current.fingerprint.to_string())
    }))
}

fn write(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CompatError> {
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|source| CompatError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    std::fs::write(path, bytes).map_err(|source| CompatError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes every missing snapshot and golden file (never one that exists or was ever committed)
/// and every missing expected value (re-recording one recorded for another current version),
/// then checks.
pub fn bless(
    entries: &[SchemaEntry],
    dir: &Path,
    ring: &Keyring,
    mode: HistoryMode,
) -> Result<(Vec<PathBuf>, Report), CompatError> {
    // Read once, before writing: the files written are new, whatever git says of them after.
    let history = history(dir, mode, true)?;
    let mut written = Vec::new();
    for (name, list) in states(entries) {
        if numbering(dir, name, &list)?.is_some() {
            continue;
        }
        for &e in &list {
            let spath = snapshot_path(dir, e.name, e.version);
            let gpath = golden_path(dir, e.name, e.version);
            let Some(desc) = &e.descriptor else {
                return Err(CompatError::NoDescriptor {
                    name: e.name,
                    version: e.version,
                });
            };
            if let Some(old) = read(&spath)? {
                let old = String::from_utf8_lossy(&old).into_owned();
                if snapshot::parse(&old).map(|s| s.fingerprint) != Ok(e.fingerprint.to_string()) {
                    // A changed layout: refuse to touch this version (check reports it).
                    continue;
                }
            }
            let files = [
                (
                    spath,
                    snapshot::render(e.name, e.version, desc).into_bytes(),
                ),
                (gpath, snapshot::golden(e, ring)?),
            ];
            for (path, bytes) in files {
                if read(&path)?.is_some() || history.first_committed(&path)?.is_some() {
                    continue;
                }
                write(dir, &path, &bytes)?;
                written.push(path);
            }
        }
        // Expected values, once the state's golden files exist: in the current version, so not
        // while its layout differs from its snapshot.
        if current_layout_changed(dir, &list, &history)? {
            continue;
        }
        for e in list {
            let path = expected_path(dir, e.name, e.version);
            let stale = match read(&path)? {
                None => true,
                Some(old) => expected::parse(&String::from_utf8_lossy(&old))
                    .is_ok_and(|x| x.current_version != e.current_version),
            };
            let gpath = golden_path(dir, e.name, e.version);
            let golden = match history.first_committed(&gpath)? {
                Some(committed) => Some(committed),
                None => read(&gpath)?,
            };
            if let (true, Some(golden)) = (stale, golden)
                && let Ok(value) = snapshot::load_golden(e, ring, &golden)
            {
                let text = expected::render(e.name, e.version, e.current_version, &value);
                write(dir, &path, text.as_bytes())?;
                written.push(path);
            }
        }
    }
    Ok((written, check_against(entries, dir, ring, &history)?))
}
