//! Schema compatibility checking for persist: snapshots of every state's layout, golden
//! generations of every version, and the rules that stop a release from breaking old
//! generations. A development tool (run by `cargo xtask schema check|bless`), kept out of
//! `persist-core`, which a running program links; it uses only `persist-core`'s public API
//! (layout descriptors, fingerprints, the envelope and the `Persist` trait).
//!
//! A crate that defines states lists them in a registry (a `Vec<SchemaEntry>`, one
//! [`SchemaEntry::of`] per state *and* version), and its `xtask` hands it to [`main`]:
//!
//! ```no_run
//! // xtask/src/main.rs of a downstream workspace
//! fn main() -> std::process::ExitCode {
//!     let snapshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/snapshots");
//!     # let my_schemas_all = Vec::new;
//!     persist_compat::main(&my_schemas_all(), &snapshots, std::env::args().skip(1))
//! }
//! ```
//!
//! # Files
//!
//! Under the snapshots directory, for each state `<name>` and version `N`:
//!
//! - `<name>/vN.schema`: the canonical layout descriptor, its field paths and its fingerprint,
//!   as text (reviewable in a diff);
//! - `<name>/vN.pst`: a golden generation of the version's [`Sample`] value, sealed with
//!   [`golden_keyring`], a fixed **test** key kept in the source (it proves nothing about
//!   authenticity; it only lets the files be opened);
//! - `<name>/vN.expected.txt`: the value the golden file loads as (decoded and migrated into the
//!   current version), as its `{:#?}` `Debug` rendering, so a migration that produces another
//!   value is caught, not only one that fails.
//!
//! [`bless`] writes the missing ones and never changes or re-creates an existing or committed
//! snapshot or golden file: they are immutable history, and a changed layout needs a new
//! version. An expected value depends on the current version too: `bless` re-records it only
//! when it was recorded for another current version.
//!
//! # Rules of [`check`]
//!
//! See [`Rule`]. A file "matches its history" when it equals the version first committed to git
//! (the oldest commit of `HEAD` touching it), so a modification is caught even once committed.
//! When a committed file was modified, the other rules use the committed version.
//!
//! That needs the whole history. Outside a git checkout, in a shallow clone (the default of
//! most CI checkouts), or when nothing under the snapshots directory was ever committed, a
//! rewrite of a released snapshot cannot be told from the original, so [`check`] fails with
//! [`CompatError::HistoryMissing`] (saying how to fetch the history) unless
//! [`HistoryMode::AcceptSelfConsistency`] is given (`--self-consistency-only` on the command
//! line). Then each snapshot is only verified against its own descriptor, golden files are
//! checked by loading them, and [`Report::history_missing`] says what was not checked.
//!
//! Only the root cause is reported: a golden file of a version whose layout changed, or whose
//! migration path is missing, is not also reported as not loading; a state whose version
//! numbering is wrong gets only `VERSION_GAP_OR_DUPLICATE`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod descriptor;
mod expected;
mod history;
mod snapshot;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use persist_core::rkyv::util::AlignedVec;

use persist_core::EnvelopeError;
use persist_core::{CodecError, Fingerprint, Key, Keyring, MigrationStep, Persist};

pub use descriptor::{FieldLine, diff as descriptor_diff, flatten as descriptor_fields};

/// A deterministic, realistic sample value of a state version, for its golden file.
pub trait Sample {
    /// The sample. Must return the same value on every call and platform.
    fn sample() -> Self;
}

/// One version of one state, as the checker sees it.
#[derive(Clone, Debug)]
pub struct SchemaEntry {
    /// The state's name.
    pub name: &'static str,
    /// This version.
    pub version: u32,
    /// The current (newest) version of the state.
    pub current_version: u32,
    /// The oldest version the current type loads.
    pub oldest_version: u32,
    /// This version's canonical descriptor.
    pub descriptor: Option<String>,
    /// This version's fingerprint.
    pub fingerprint: Fingerprint,
    /// The fingerprint the current type's migration chain has for this version (`None`: the
    /// chain does not reach it).
    pub chain_fingerprint: Option<Fingerprint>,
    /// Encodes this version's [`Sample`].
    pub encode_sample: fn() -> Result<AlignedVec, CodecError>,
    /// Decodes a payload of a version into the current type, through the chain.
    pub load: fn(u32, &[u8]) -> Result<Vec<MigrationStep>, CodecError>,
    /// Decodes a payload of a version into the current type, through the chain, and renders
    /// the value with `{:#?}` (the golden file's expected value).
    pub load_debug: fn(u32, &[u8]) -> Result<String, CodecError>,
}

impl SchemaEntry {
    /// The entry of version type `T` of a state whose current type is `C` (`T` = `C` for the
    /// current version). `C`'s `Debug` rendering is the golden files' expected value: it must be
    /// deterministic (derived `Debug` is, except over a `HashMap` or `HashSet`).
    pub fn of<T: Persist + Sample, C: Persist + fmt::Debug>() -> Self {
        SchemaEntry {
            name: T::NAME,
            version: T::VERSION,
            current_version: C::VERSION,
            oldest_version: C::OLDEST_VERSION,
            descriptor: T::descriptor_of(T::VERSION),
            fingerprint: T::fingerprint(),
            chain_fingerprint: if T::NAME == C::NAME {
                C::fingerprint_of(T::VERSION)
            } else {
                None
            },
            encode_sample: || T::sample().encode(),
            load: |version, payload| C::decode(version, payload).map(|d| d.migrations),
            load_debug: |version, payload| {
                C::decode(version, payload).map(|d| format!("{:#?}", d.value))
            },
        }
    }
}

/// A rule of [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A committed snapshot's layout differs from its type's (fields renamed, swapped,
    /// retyped, nested types changed, enum variants reordered, rkyv format changed, …).
    LayoutChangedWithoutVersionBump,
    /// A committed snapshot or golden file was changed or deleted.
    SnapshotModified,
    /// The registered versions of a state are not exactly 1..=current, each once.
    VersionGapOrDuplicate,
    /// An older version has no migration path to the current type.
    MissingMigration,
    /// A golden file does not load through the chain into the current type.
    GoldenDoesNotLoad,
    /// A golden file loads as another value than its recorded expected value (`vN.expected.txt`):
    /// a migration or decoder changed what old generations become.
    GoldenValueChanged,
    /// A version has no snapshot, golden file or expected value yet (or its expected value was
    /// recorded for another current version).
    NewVersionNotBlessed,
}

impl Rule {
    /// The rule's ID, e.g. `LAYOUT_CHANGED_WITHOUT_VERSION_BUMP`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::LayoutChangedWithoutVersionBump => "LAYOUT_CHANGED_WITHOUT_VERSION_BUMP",
            Rule::SnapshotModified => "SNAPSHOT_MODIFIED",
            Rule::VersionGapOrDuplicate => "VERSION_GAP_OR_DUPLICATE",
            Rule::MissingMigration => "MISSING_MIGRATION",
            Rule::GoldenDoesNotLoad => "GOLDEN_DOES_NOT_LOAD",
            Rule::GoldenValueChanged => "GOLDEN_VALUE_CHANGED",
            Rule::NewVersionNotBlessed => "NEW_VERSION_NOT_BLESSED",
        }
    }
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The state's name.
    pub state: String,
    /// The version concerned.
    pub version: u32,
    /// What is wrong, in one line.
    pub summary: String,
    /// Field-path diff, old → new (`-` old, `+` new, `~` changed).
    pub diff: Vec<String>,
    /// What to do about it.
    pub action: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "error[{}]: {} v{}: {}",
            self.rule.id(),
            self.state,
            self.version,
            self.summary
        )?;
        if !self.diff.is_empty() {
            writeln!(f, "  diff (old -> new):")?;
            for line in &self.diff {
                writeln!(f, "    {line}")?;
            }
        }
        write!(f, "  action: {}", self.action)
    }
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every violation, in registry order.
    pub violations: Vec<Violation>,
    /// Why the snapshots were *not* compared with their git history (only with their own
    /// descriptors), when [`HistoryMode::AcceptSelfConsistency`] allowed that; `None` when the
    /// whole history was checked.
    pub history_missing: Option<MissingHistory>,
}

impl Report {
    /// No violation.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether the snapshots were compared with their whole git history.
    pub fn git_history(&self) -> bool {
        self.history_missing.is_none()
    }
}

/// Why the git history of the snapshots directory cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissingHistory {
    /// The directory is not inside a git work tree, or git cannot be run (e.g. a source
    /// tarball, or a CI step that copied the sources without `.git`). The text is git's error.
    NotAGitCheckout(String),
    /// The repository is a shallow clone (`git clone --depth N`, the default of most CI
    /// checkouts): its oldest commit is not the one that first added the snapshots.
    ShallowClone,
    /// Snapshot files exist, but no commit of `HEAD` touches the snapshots directory (not
    /// committed yet, ignored, or a copy inside an unrelated repository).
    NeverCommitted,
}

impl MissingHistory {
    /// What to do to get the history.
    pub fn remedy(&self) -> &'static str {
        match self {
            MissingHistory::NotAGitCheckout(_) => {
                "run the check in a git clone with its full history (`git clone`, not an \
                 archive or a copy without `.git`)"
            }
            MissingHistory::ShallowClone => {
                "fetch the full history: `git fetch --unshallow` (GitHub Actions: \
                 `actions/checkout` with `fetch-depth: 0`; GitLab CI: `GIT_DEPTH: 0`)"
            }
            MissingHistory::NeverCommitted => {
                "commit the snapshots directory (after `cargo xtask schema bless`), or, in a \
                 shallow or partial checkout, fetch the full history (`git fetch --unshallow`; \
                 GitHub Actions: `actions/checkout` with `fetch-depth: 0`)"
            }
        }
    }
}

impl fmt::Display for MissingHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissingHistory::NotAGitCheckout(why) => write!(f, "not in a git checkout ({why})"),
            MissingHistory::ShallowClone => write!(f, "the repository is a shallow clone"),
            MissingHistory::NeverCommitted => {
                write!(f, "no commit touches the snapshots directory")
            }
        }
    }
}

/// What [`check_with`] and [`bless_with`] do when the git history is incomplete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistoryMode {
    /// Fail with [`CompatError::HistoryMissing`] (the default): a committed rewrite of a
    /// released snapshot would otherwise pass.
    #[default]
    Require,
    /// Check each snapshot against its own descriptor only, and say so in
    /// [`Report::history_missing`] (`--self-consistency-only`).
    AcceptSelfConsistency,
}

/// Why the checker itself failed (exit code 101).
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// git failed.
    #[error("git: {0}")]
    Git(String),
    /// The history of the snapshots directory is incomplete, and [`HistoryMode::Require`].
    #[error(
        "cannot check {dir} against its git history: {reason}; a committed rewrite of a \
         released snapshot would pass unnoticed. To fix: {}. To accept a weaker check (each \
         snapshot against its own descriptor only), pass --self-consistency-only",
        reason.remedy()
    )]
    HistoryMissing {
        /// The snapshots directory.
        dir: PathBuf,
        /// Why.
        reason: MissingHistory,
    },
    /// A snapshot file does not parse.
    #[error("{path}: not a snapshot file: {reason}")]
    BadSnapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A state type has no textual descriptor (a hand-written `Persist` impl).
    #[error("state {name} v{version} has no layout descriptor (descriptor_of returns None)")]
    NoDescriptor {
        /// The state.
        name: &'static str,
        /// The version.
        version: u32,
    },
    /// A sample value could not be encoded.
    #[error("cannot encode the sample: {0}")]
    Sample(CodecError),
    /// A golden file could not be sealed.
    #[error("cannot seal the golden file: {0}")]
    Envelope(EnvelopeError),
    /// Unknown command line.
    #[error("usage: schema (check | bless) [--self-consistency-only], got {0:?}")]
    Usage(Vec<String>),
}

/// The fixed **test** key golden files are signed with. It is public (it is in this source
/// file): it authenticates nothing and must never sign real state.
pub fn golden_keyring() -> Keyring {
    let key = Key::from_bytes(b"persist test key: 32+ bytes, never for production".to_vec())
        .expect("the constant test key is long enough");
    Keyring::new(key)
}

/// Checks every rule against the snapshots directory and its whole git history
/// ([`HistoryMode::Require`]).
pub fn check(entries: &[SchemaEntry], snapshots: &Path) -> Result<Report, CompatError> {
    check_with(entries, snapshots, HistoryMode::Require)
}

/// [`check`], with a choice of what to do when the git history is incomplete.
pub fn check_with(
    entries: &[SchemaEntry],
    snapshots: &Path,
    mode: HistoryMode,
) -> Result<Report, CompatError> {
    check::check(entries, snapshots, &golden_keyring(), mode)
}

/// Writes the missing snapshot, golden and expected-value files (and re-records expected values
/// recorded for another current version), then checks ([`HistoryMode::Require`], except
/// that a snapshots directory never committed is fine: its files are all new). Returns the
/// files written.
pub fn bless(
    entries: &[SchemaEntry],
    snapshots: &Path,
) -> Result<(Vec<PathBuf>, Report), CompatError> {
    bless_with(entries, snapshots, HistoryMode::Require)
}

/// [`bless`], with a choice of what to do when the git history is incomplete.
pub fn bless_with(
    entries: &[SchemaEntry],
    snapshots: &Path,
    mode: HistoryMode,
) -> Result<(Vec<PathBuf>, Report), CompatError> {
    check::bless(entries, snapshots, &golden_keyring(), mode)
}

/// Exit code: no violation.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: at least one rule is violated.
pub const EXIT_VIOLATIONS: u8 = 100;
/// Exit code: the tool itself failed.
pub const EXIT_TOOL_FAILURE: u8 = 101;

/// The whole command line of a downstream `xtask schema`: `args` is `check` or `bless`,
/// optionally followed by `--self-consistency-only` ([`HistoryMode::AcceptSelfConsistency`]);
/// prints the report and returns exit code 0 (clean), 100 (violations) or 101 (tool failure,
/// including an incomplete git history without `--self-consistency-only`).
pub fn main(
    entries: &[SchemaEntry],
    snapshots: &Path,
    args: impl IntoIterator<Item = String>,
) -> ExitCode {
    ExitCode::from(run(entries, snapshots, args))
}

/// [`main`], returning the exit code as a number.
pub fn run(
    entries: &[SchemaEntry],
    snapshots: &Path,
    args: impl IntoIterator<Item = String>,
) -> u8 {
    let args: Vec<String> = args.into_iter().collect();
    let (words, mode) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [cmd] => (Some(cmd), HistoryMode::Require),
        [cmd, "--self-consistency-only"] => (Some(cmd), HistoryMode::AcceptSelfConsistency),
        _ => (None, HistoryMode::Require),
    };
    let result = match words {
        Some("check") => check_with(entries, snapshots, mode),
        Some("bless") => bless_with(entries, snapshots, mode).map(|(written, report)| {
            for path in &written {
                println!("blessed {}", path.display());
            }
            report
        }),
        _ => Err(CompatError::Usage(args.clone())),
    };
    match result {
        Err(e) => {
            eprintln!("schema check failed: {e}");
            EXIT_TOOL_FAILURE
        }
        Ok(report) => {
            if let Some(missing) = &report.history_missing {
                let banner = "!".repeat(78);
                eprintln!(
                    "{banner}\nwarning: GIT HISTORY NOT CHECKED for {}: {missing}.\nOnly each \
                     snapshot's consistency with its own descriptor was verified: a committed \
                     rewrite of a released snapshot would pass.\nTo check it: {}.\n{banner}",
                    snapshots.display(),
                    missing.remedy()
                );
            }
            for v in &report.violations {
                println!("{v}\n");
            }
            let states = entries
                .iter()
                .map(|e| e.name)
                .collect::<std::collections::BTreeSet<_>>();
            if report.is_clean() {
                let unchecked = if report.history_missing.is_some() {
                    " (self-consistency only: git history NOT checked)"
                } else {
                    ""
                };
                println!(
                    "schema check: {} states, {} versions: clean{unchecked}",
                    states.len(),
                    entries.len()
                );
                EXIT_CLEAN
            } else {
                println!("schema check: {} violation(s)", report.violations.len());
                EXIT_VIOLATIONS
            }
        }
    }
}
