//! The schema checker against a fixture workspace (`tests/fixtures/compat-schemas`): built in a
//! temporary directory, blessed, committed to a fresh git repository, then mutated one way at a
//! time; each mutation must be reported as exactly its rule, with exit code 100.
//!
//! The fixture's build directory is kept in cargo's per-target temporary directory, so its
//! dependencies (persist-core, rkyv, …) are built once; each source mutation recompiles only
//! the fixture crate. Snapshot-only mutations reuse the last build.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// The tests share one build directory, so one fixture binary (`debug/compat-fixture`, which
/// knows its snapshots directory from its build): they run one at a time.
static FIXTURE_BINARY: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    FIXTURE_BINARY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    lib: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=fixture",
            "-c",
            "user.email=fixture@invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ws");
        let src = workspace().join("tests/fixtures/compat-schemas");
        std::fs::create_dir_all(dir.join("src")).expect("mkdir");
        let manifest = std::fs::read_to_string(src.join("Cargo.toml.in"))
            .expect("manifest")
            .replace(
                "@PERSIST_CORE@",
                &workspace().join("persist-core").display().to_string(),
            )
            .replace(
                "@PERSIST_COMPAT@",
                &workspace().join("compat").display().to_string(),
            );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("write manifest");
        std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock");
        std::fs::copy(src.join("src/main.rs"), dir.join("src/main.rs")).expect("main.rs");
        let lib = std::fs::read_to_string(src.join("src/lib.rs")).expect("lib.rs");
        std::fs::write(dir.join("src/lib.rs"), &lib).expect("write lib.rs");
        std::fs::write(dir.join(".gitignore"), "/target\n").expect("gitignore");
        Fixture {
            _tmp: tmp,
            dir,
            lib,
        }
    }

    /// Builds the fixture (a no-op when its sources did not change).
    fn build(&self) {
        let started = Instant::now();
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "fixture build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("fixture build: {:.1} s", started.elapsed().as_secs_f64());
    }

    /// Runs `schema <cmd>`: exit code, and the rule IDs reported.
    fn run(&self, cmd: &str) -> (i32, BTreeSet<String>, String) {
        self.run_args(&[cmd])
    }

    /// Runs `schema <args…>`: exit code, the rule IDs reported, and stdout + stderr.
    fn run_args(&self, args: &[&str]) -> (i32, BTreeSet<String>, String) {
        let out = Command::new(target_dir().join("debug/compat-fixture"))
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run the fixture");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let rules = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("error[")?.split(']').next())
            .map(str::to_string)
            .collect();
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code().expect("exit code"), rules, text)
    }

    /// Sets src/lib.rs to the original with every `from` replaced by `to` (which must occur).
    fn mutate_lib(&self, from: &str, to: &str) {
        assert!(self.lib.contains(from), "fixture lacks {from:?}");
        std::fs::write(self.dir.join("src/lib.rs"), self.lib.replace(from, to)).expect("write");
    }

    /// Sets src/lib.rs back to the original.
    fn restore_lib(&self) {
        std::fs::write(self.dir.join("src/lib.rs"), &self.lib).expect("write");
    }

    fn snapshot(&self, name: &str) -> PathBuf {
        self.dir.join("snapshots").join(name)
    }

    fn snapshots_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for state in std::fs::read_dir(self.dir.join("snapshots")).expect("snapshots") {
            for file in std::fs::read_dir(state.expect("entry").path()).expect("state dir") {
                let path = file.expect("entry").path();
                let bytes = std::fs::read(&path).expect("read");
                out.push((path, bytes));
            }
        }
        out.sort();
        out
    }
}

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compat-fixture-target")
}

fn expect_only(fixture: &Fixture, cmd: &str, rule: &str) -> String {
    let (code, rules, text) = fixture.run(cmd);
    assert_eq!(code, 100, "{rule}: expected exit 100\n{text}");
    assert_eq!(rules, BTreeSet::from([rule.to_string()]), "{text}");
    assert!(text.contains("action: "), "{text}");
    text
}

/// The rewritten tick v1 is reported as modified, its new layout as changed.
fn expect_modified(fixture: &Fixture) {
    let (code, rules, text) = fixture.run("check");
    assert_eq!(code, 100, "{text}");
    assert_eq!(
        rules,
        BTreeSet::from([
            "SNAPSHOT_MODIFIED".to_string(),
            "LAYOUT_CHANGED_WITHOUT_VERSION_BUMP".to_string()
        ]),
        "{text}"
    );
    assert!(text.contains("tick/v1.schema no longer matches"), "{text}");
}

#[test]
fn checker_reports_each_mutation_as_its_rule() {
    let _one = one_at_a_time();
    let started = Instant::now();
    let f = Fixture::new();
    git(&f.dir, &["init", "-q"]);
    f.build();

    // Nothing blessed yet: every version is new.
    let (code, rules, text) = f.run("check");
    assert_eq!(
        (code, rules),
        (100, BTreeSet::from(["NEW_VERSION_NOT_BLESSED".into()])),
        "{text}"
    );

    // Bless, commit: clean.
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        f.snapshots_bytes().len(),
        9,
        "agent v1, v2 and tick v1: .schema, .pst and .expected.txt"
    );
    git(&f.dir, &["add", "."]);
    git(&f.dir, &["commit", "-q", "-m", "bless"]);
    let (code, rules, text) = f.run("check");
    assert_eq!((code, rules.len()), (0, 0), "{text}");
    let committed = f.snapshots_bytes();

    // SNAPSHOT_MODIFIED: a committed snapshot edited, a golden file flipped, one deleted.
    let snap = f.snapshot("agent/v1.schema");
    let original = std::fs::read_to_string(&snap).expect("read");
    std::fs::write(&snap, original.replace("fingerprint: ", "fingerprint: 00")).expect("write");
    let text = expect_only(&f, "check", "SNAPSHOT_MODIFIED");
    assert!(text.contains("- fingerprint: "), "{text}");
    std::fs::write(&snap, &original).expect("restore");
    let golden = f.snapshot("tick/v1.pst");
    let mut bytes = std::fs::read(&golden).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&golden, &bytes).expect("write");
    expect_only(&f, "check", "SNAPSHOT_MODIFIED");
    std::fs::remove_file(&golden).expect("delete");
    expect_only(&f, "check", "SNAPSHOT_MODIFIED");
    git(&f.dir, &["checkout", "--", "."]);
    // Modified *and committed*: still caught (compared with the first commit).
    std::fs::write(&snap, original.replace("fingerprint: ", "fingerprint: 00")).expect("write");
    git(&f.dir, &["commit", "-q", "-am", "tamper"]);
    expect_only(&f, "check", "SNAPSHOT_MODIFIED");
    git(&f.dir, &["revert", "--no-edit", "HEAD"]);
    assert_eq!(f.run("check").0, 0);

    // LAYOUT_CHANGED_WITHOUT_VERSION_BUMP, with the field-path diff.
    let layout_mutations = [
        (
            "swapped same-typed fields",
            "pub alpha: f64,\n    pub gamma: f64,",
            "pub gamma: f64,\n    pub alpha: f64,",
            "~ alpha: @8 f64:8/8 -> @16 f64:8/8",
        ),
        (
            "renamed field",
            "gamma",
            "discount",
            "+ discount: @16 f64:8/8",
        ),
        (
            "retyped field",
            "pub bars: u32,",
            "pub bars: u64,",
            "~ bars: ",
        ),
        (
            "changed nested type",
            "pub q: f64,",
            "pub q: f32,",
            "~ table[].q: @8 f64:8/8 -> @8 f32:4/4",
        ),
        (
            "reordered enum variants",
            "Long,\n    Short,",
            "Short,\n    Long,",
            "~ side::Long: variant #0 -> variant #1",
        ),
        (
            "reordered fields of an enum variant",
            "Open { qty: f64, price: f64 }",
            "Open { price: f64, qty: f64 }",
            "~ action::Open.price: moved from field 1 to 0",
        ),
    ];
    for (what, from, to, diff_line) in layout_mutations {
        f.mutate_lib(from, to);
        f.build();
        let text = expect_only(&f, "check", "LAYOUT_CHANGED_WITHOUT_VERSION_BUMP");
        assert!(
            text.contains(diff_line),
            "{what}: no {diff_line:?} in\n{text}"
        );
    }

    // bless refuses to overwrite history: the layout is still changed, the files untouched.
    let (code, rules, text) = f.run("bless");
    assert_eq!(code, 100, "{text}");
    assert_eq!(
        rules,
        BTreeSet::from(["LAYOUT_CHANGED_WITHOUT_VERSION_BUMP".into()]),
        "{text}"
    );
    assert_eq!(
        f.snapshots_bytes(),
        committed,
        "bless changed committed files"
    );

    // VERSION_GAP_OR_DUPLICATE: the current version renumbered 2 -> 3.
    f.mutate_lib("version = 2, try_from", "version = 3, try_from");
    f.build();
    let text = expect_only(&f, "check", "VERSION_GAP_OR_DUPLICATE");
    assert!(text.contains("v2"), "{text}");

    // VERSION_GAP_OR_DUPLICATE: a state dropped from the registry while its snapshots remain.
    f.mutate_lib("SchemaEntry::of::<Tick, Tick>(),", "");
    f.build();
    let text = expect_only(&f, "check", "VERSION_GAP_OR_DUPLICATE");
    assert!(text.contains("tick v1"), "{text}");

    // MISSING_MIGRATION: the link from v1 removed.
    f.mutate_lib(r#"version = 2, try_from = AgentV1"#, r#"version = 2"#);
    f.build();
    expect_only(&f, "check", "MISSING_MIGRATION");

    // GOLDEN_DOES_NOT_LOAD: the migration now refuses the committed v1 golden file.
    f.mutate_lib("let max_epsilon = 1.0;", "let max_epsilon = 0.1;");
    f.build();
    let text = expect_only(&f, "check", "GOLDEN_DOES_NOT_LOAD");
    assert!(text.contains("epsilon 0.25 above 0.1"), "{text}");

    // GOLDEN_VALUE_CHANGED: the migration swaps two fields. The v1 golden file still loads, as
    // another value than its committed expected value; bless does not re-record it.
    f.mutate_lib(
        "alpha: f64::from(old.epsilon), gamma: 0.99,",
        "alpha: 0.99, gamma: f64::from(old.epsilon),",
    );
    f.build();
    let text = expect_only(&f, "check", "GOLDEN_VALUE_CHANGED");
    assert!(
        text.contains("agent v1: the golden file v1.pst loads into v2"),
        "{text}"
    );
    for line in [
        "- 8:     alpha: 0.25,",
        "- 9:     gamma: 0.99,",
        "+ 8:     alpha: 0.99,",
        "+ 9:     gamma: 0.25,",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    let (code, rules, text) = f.run("bless");
    assert_eq!(code, 100, "{text}");
    assert_eq!(
        rules,
        BTreeSet::from(["GOLDEN_VALUE_CHANGED".into()]),
        "{text}"
    );
    assert_eq!(f.snapshots_bytes(), committed, "bless re-recorded a value");

    // An expected value missing, or recorded for another current version: bless (re-)records
    // it, as committed.
    f.restore_lib();
    f.build();
    let expected = f.snapshot("agent/v1.expected.txt");
    let recorded = std::fs::read_to_string(&expected).expect("read");
    std::fs::remove_file(&expected).expect("delete");
    expect_only(&f, "check", "NEW_VERSION_NOT_BLESSED");
    std::fs::write(
        &expected,
        recorded.replace("current_version: 2", "current_version: 1"),
    )
    .expect("write");
    let text = expect_only(&f, "check", "NEW_VERSION_NOT_BLESSED");
    assert!(text.contains("loaded into v1 -> v2"), "{text}");
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("blessed ") && text.contains("agent/v1.expected.txt"),
        "{text}"
    );
    assert_eq!(f.snapshots_bytes(), committed);

    // NEW_VERSION_NOT_BLESSED: a new state, then blessed: clean again, history untouched.
    let new_state = "#[persist(name = \"fill\", version = 1)]\n#[derive(Clone, Debug, PartialEq)]\n\
                     pub struct Fill { pub qty: f64 }\n\
                     impl Sample for Fill { fn sample() -> Self { Fill { qty: 2.0 } } }\n";
    let lib = f.lib.replacen("// @NEW_STATE@", new_state, 1).replacen(
        "// @REGISTRY@",
        "SchemaEntry::of::<Fill, Fill>(),",
        1,
    );
    std::fs::write(f.dir.join("src/lib.rs"), lib).expect("write");
    f.build();
    expect_only(&f, "check", "NEW_VERSION_NOT_BLESSED");
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("fill/v1.schema")
            && text.contains("fill/v1.pst")
            && text.contains("fill/v1.expected.txt"),
        "{text}"
    );
    assert_eq!(f.run("check").0, 0);
    let after: Vec<_> = f
        .snapshots_bytes()
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("/fill/"))
        .collect();
    assert_eq!(after, committed);

    // Tool failure: a bad command line, an unreadable snapshot.
    assert_eq!(f.run("frobnicate").0, 101);
    std::fs::write(f.snapshot("fill/v1.schema"), "not a snapshot").expect("write");
    let (code, _, text) = f.run("check");
    assert_eq!(code, 101, "{text}");

    eprintln!(
        "schema checker fixture test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A committed rewrite of a released snapshot (layout changed, snapshot and golden file
/// regenerated) is caught with the full history, but a shallow clone cannot see it: there the
/// check must fail and say how to fetch the history, unless `--self-consistency-only` accepts
/// the weaker check, loudly. The same for a copy without `.git` and a never-committed directory.
#[test]
fn incomplete_history_fails_unless_self_consistency_is_accepted() {
    let _one = one_at_a_time();
    let f = Fixture::new();
    git(&f.dir, &["init", "-q"]);
    f.build();
    assert_eq!(f.run("bless").0, 0);
    git(&f.dir, &["add", "."]);
    git(&f.dir, &["commit", "-q", "-m", "bless"]);

    // Rewrite tick v1 as if it had always been `bars: u64`: bless it on an unborn orphan
    // branch (bless refuses to re-create a file `HEAD` knows), then commit the result on main.
    f.mutate_lib("pub bars: u32,", "pub bars: u64,");
    f.build();
    git(&f.dir, &["checkout", "-q", "--orphan", "rewrite"]);
    let tick = f.snapshot("tick");
    std::fs::remove_dir_all(&tick).expect("remove tick");
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 0, "{text}");
    let rewritten: Vec<(PathBuf, Vec<u8>)> = f
        .snapshots_bytes()
        .into_iter()
        .filter(|(p, _)| p.starts_with(&tick))
        .collect();
    let lib = std::fs::read(f.dir.join("src/lib.rs")).expect("lib.rs");
    git(&f.dir, &["checkout", "-q", "-f", "main"]);
    for (path, bytes) in &rewritten {
        std::fs::write(path, bytes).expect("write");
    }
    std::fs::write(f.dir.join("src/lib.rs"), lib).expect("lib.rs");
    git(&f.dir, &["add", "."]);
    git(&f.dir, &["commit", "-q", "-m", "rewrite tick v1"]);
    // With the whole history: caught (and the layout compared with the committed snapshot).
    expect_modified(&f);

    // A shallow clone at the fixture's path (the binary knows its snapshots directory from its
    // build): the rewrite looks like the first commit.
    let origin = f.dir.with_file_name("origin");
    std::fs::rename(&f.dir, &origin).expect("move the repository aside");
    let url = format!("file://{}", origin.display());
    let clone = |depth: &[&str]| {
        if f.dir.exists() {
            std::fs::remove_dir_all(&f.dir).expect("remove the clone");
        }
        let mut args = vec!["clone", "-q"];
        args.extend_from_slice(depth);
        args.extend([url.as_str(), f.dir.to_str().expect("utf-8 path")]);
        git(origin.parent().expect("tmp"), &args);
    };
    clone(&["--depth", "1"]);
    let (code, rules, text) = f.run("check");
    assert_eq!(code, 101, "a shallow clone must not pass:\n{text}");
    assert!(rules.is_empty(), "{text}");
    assert!(text.contains("shallow clone"), "{text}");
    assert!(text.contains("git fetch --unshallow"), "{text}");
    assert!(text.contains("fetch-depth: 0"), "{text}");
    assert!(text.contains("--self-consistency-only"), "{text}");
    // Accepted explicitly: passes (the rewrite is self-consistent), and says loudly what it
    // did not check.
    let (code, _, text) = f.run_args(&["check", "--self-consistency-only"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("GIT HISTORY NOT CHECKED"), "{text}");
    assert!(text.contains("clean (self-consistency only"), "{text}");
    // bless needs the history too (it must not re-create a file committed before the clone).
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 101, "{text}");
    assert!(text.contains("git fetch --unshallow"), "{text}");
    // Doing what the message says finds the rewrite.
    git(&f.dir, &["fetch", "-q", "--unshallow"]);
    expect_modified(&f);

    // A normal clone (what CI does) of the repository without the rewrite: clean.
    git(&origin, &["revert", "--no-edit", "HEAD"]);
    clone(&[]);
    f.build();
    let (code, rules, text) = f.run("check");
    assert_eq!((code, rules.len()), (0, 0), "{text}");
    assert!(text.contains("versions: clean\n"), "{text}");
    assert!(!text.contains("NOT CHECKED"), "{text}");

    // A copy without `.git`: no history at all.
    std::fs::rename(f.dir.join(".git"), origin.join("clone-git")).expect("hide .git");
    let (code, _, text) = f.run("check");
    assert_eq!(code, 101, "{text}");
    assert!(text.contains("not in a git checkout"), "{text}");
    let (code, _, text) = f.run_args(&["check", "--self-consistency-only"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("GIT HISTORY NOT CHECKED"), "{text}");

    // A repository in which the snapshots were never committed.
    git(&f.dir, &["init", "-q"]);
    let (code, _, text) = f.run("check");
    assert_eq!(code, 101, "{text}");
    assert!(
        text.contains("no commit touches the snapshots directory"),
        "{text}"
    );
    // bless may run there (every file is new), and writes nothing: all exist.
    let (code, _, text) = f.run("bless");
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("blessed "), "{text}");
}
