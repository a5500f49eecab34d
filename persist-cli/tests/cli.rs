//! The `persist` binary end to end: keygen, demo (fresh, resumed, after corruption), list,
//! inspect and verify, their exit codes and JSON output, and bad input that must not panic.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod common;

use common::{Run, persist, run, s};

fn persist_run(args: &[&str]) -> Run {
    run(persist().args(args))
}

/// Runs the demo in `dir` for `steps` steps, saving every `every`.
fn demo(dir: &Path, steps: u64, every: u64) -> Run {
    let run = persist_run(&[
        "demo",
        "--dir",
        s(dir),
        "--steps",
        &steps.to_string(),
        "--save-every",
        &every.to_string(),
    ]);
    run.assert_code(0);
    run
}

/// The demo's store and key file.
fn store_and_key(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("state"), dir.join("persist.key"))
}

/// The generation files of the demo, oldest first.
fn generation_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("state/demo_agent"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pst"))
        .collect();
    files.sort();
    files
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// The text after `label` up to the next space or comma.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    let start = text
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not in:\n{text}"))
        + label.len();
    let rest = &text[start..];
    let end = rest.find([' ', ',', '\n']).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn keygen_creates_a_0600_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let first = persist_run(&["keygen", "--out", s(&key)]);
    first.assert_code(0);
    assert!(first.stdout.contains("key id"), "{}", first.stdout);
    let meta = fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let original = fs::read(&key).unwrap();

    let again = persist_run(&["keygen", "--out", s(&key)]);
    again.assert_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(fs::read(&key).unwrap(), original, "the key was not touched");

    let forced = persist_run(&["keygen", "--out", s(&key), "--force", "--json"]);
    forced.assert_code(0);
    let json = forced.json();
    assert_eq!(json["bytes"], 32);
    assert_eq!(json["key_id"].as_str().unwrap().len(), 16);
    assert_ne!(
        fs::read(&key).unwrap(),
        original,
        "--force replaced the key"
    );
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No temp files left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn keygen_into_a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("no/such/dir/k.key");
    let r = persist_run(&["keygen", "--out", s(&key)]);
    r.assert_code(2);
    assert!(r.stderr.starts_with("error: cannot create"), "{}", r.stderr);
}

#[test]
fn demo_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path(), 3000, 1000);
    assert!(
        first.stdout.contains("created key file"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("no generation yet, starting fresh"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("saved generation 3: "),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains(" µs "), "{}", first.stdout);
    assert_eq!(field(&first.stdout, "done: step "), "3000");
    let key = dir.path().join("persist.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let second = demo(dir.path(), 2000, 1000);
    assert!(
        !second.stdout.contains("created key file"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("recovered demo_agent from generation 3 (schema v1)"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("data-loss window"),
        "{}",
        second.stdout
    );
    assert_eq!(field(&second.stdout, "resuming at step "), "3000");
    assert!(
        second.stdout.contains("saved generation 5: "),
        "{}",
        second.stdout
    );
    assert_eq!(field(&second.stdout, "done: step "), "5000");
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let split = tempfile::tempdir().unwrap();
    demo(split.path(), 2500, 1000);
    let resumed = demo(split.path(), 1500, 700);
    let straight = tempfile::tempdir().unwrap();
    let whole = demo(straight.path(), 4000, 4000);
    assert_eq!(field(&resumed.stdout, "done: step "), "4000");
    assert_eq!(
        field(&resumed.stdout, "checksum "),
        field(&whole.stdout, "checksum "),
        "Q-tables differ:\n{}\n{}",
        resumed.stdout,
        whole.stdout
    );
    let done = |out: &str| {
        let line = out.lines().find(|l| l.starts_with("done: ")).unwrap();
        field(line, "cumulative reward ").to_string()
    };
    assert_eq!(done(&resumed.stdout), done(&whole.stdout));
}

#[test]
fn demo_never_starts_fresh_because_every_generation_failed() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 2000, 1000);
    let files = generation_files(dir.path());
    assert_eq!(files.len(), 2);
    for f in &files {
        flip_byte(f, 200);
    }
    // Months of learning must not silently restart: the demo refuses and says why.
    let args = [
        "demo",
        "--dir",
        s(dir.path()),
        "--steps",
        "1000",
        "--save-every",
        "1000",
    ];
    let r = persist_run(&args);
    r.assert_code(2);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("all 2 generations of demo_agent"), "{all}");
    assert!(all.contains("HMAC tag does not verify"), "{all}");
    assert!(!r.stdout.contains("starting fresh"), "{}", r.stdout);
    assert_eq!(generation_files(dir.path()).len(), 2, "nothing written");
    // An explicit flag forces it.
    let mut forced = args.to_vec();
    forced.push("--fresh");
    let r = persist_run(&forced);
    r.assert_code(0);
    assert!(r.stdout.contains("--fresh: starting fresh"), "{}", r.stdout);
    assert!(r.stdout.contains("saved generation 3: "), "{}", r.stdout);
    assert_eq!(field(&r.stdout, "done: step "), "1000");
}

#[test]
fn demo_with_another_key_refuses_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 3000, 1000);
    let before = generation_files(dir.path());
    let other = dir.path().join("other.key");
    persist_run(&["keygen", "--out", s(&other)]).assert_code(0);
    let r = persist_run(&[
        "--key",
        s(&other),
        "demo",
        "--dir",
        s(dir.path()),
        "--steps",
        "1000",
        "--save-every",
        "1000",
    ]);
    r.assert_code(2);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("foreign"), "{all}");
    assert!(all.contains("verify-only"), "{all}");
    assert_eq!(
        generation_files(dir.path()),
        before,
        "nothing written or deleted"
    );
}

#[test]
fn list_exits_1_when_a_state_has_no_valid_generation() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 2000, 1000);
    let (store, key) = store_and_key(dir.path());
    persist_run(&["list", s(&store), "--key", s(&key)]).assert_code(0);
    for f in generation_files(dir.path()) {
        flip_byte(&f, 200);
    }
    let r = persist_run(&["list", s(&store), "--key", s(&key)]);
    r.assert_code(1);
    assert!(r.stdout.contains("NO VALID GENERATION"), "{}", r.stdout);
    assert!(r.stdout.contains("FAILED (corrupt)"), "{}", r.stdout);
    let j = persist_run(&["list", s(&store), "--key", s(&key), "--json"]);
    j.assert_code(1);
    assert_eq!(j.json()["states"][0]["generations"][0]["kind"], "corrupt");
}

#[test]
fn demo_names_the_space_reserve_when_the_disk_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let huge = (u64::MAX / 4).to_string();
    let r = persist_run(&[
        "demo",
        "--dir",
        s(dir.path()),
        "--steps",
        "100",
        "--space-reserve",
        &huge,
    ]);
    r.assert_code(2);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("StoreConfig::space_reserve"), "{all}");
    // The demo can lower it.
    persist_run(&[
        "demo",
        "--dir",
        s(dir.path()),
        "--steps",
        "100",
        "--space-reserve",
        "0",
    ])
    .assert_code(0);
}

#[test]
fn demo_refuses_an_insecure_key_file() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 100, 100);
    let key = dir.path().join("persist.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let r = persist_run(&["demo", "--dir", s(dir.path()), "--steps", "10"]);
    r.assert_code(2);
    assert!(r.stderr.contains("mode 0644"), "{}", r.stderr);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
}

#[test]
fn list_shows_every_generation_verified() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 3000, 1000);
    let (store, key) = store_and_key(dir.path());
    let r = persist_run(&["list", s(&store), "--key", s(&key)]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("demo_agent (3 generations)"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("  ok").count(), 3, "{}", r.stdout);
    assert!(r.stdout.contains(" v1 "), "{}", r.stdout);

    let j = persist_run(&["list", s(&store), "--key", s(&key), "--json"]);
    j.assert_code(0);
    let json = j.json();
    let state = &json["states"][0];
    assert_eq!(state["name"], "demo_agent");
    let gens = state["generations"].as_array().unwrap();
    let seqs: Vec<u64> = gens
        .iter()
        .map(|g| g["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    for g in gens {
        assert_eq!(g["verified"], true);
        assert_eq!(g["schema_version"], 1);
        assert!(g["size"].as_u64().unwrap() > 1000);
        assert!(g["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(g["error"].is_null());
    }

    flip_byte(&generation_files(dir.path())[2], 500);
    let j = persist_run(&["list", s(&store), "--key", s(&key), "--json"]);
    j.assert_code(0);
    let newest = &j.json()["states"][0]["generations"][2];
    assert_eq!(newest["verified"], false);
    assert!(newest["created_at"].is_null());
    assert!(newest["error"].as_str().unwrap().contains("HMAC"));
}

#[test]
fn inspect_shows_the_header_and_verifies_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 2000, 1000);
    let (_, key) = store_and_key(dir.path());
    let newest = generation_files(dir.path()).pop().unwrap();

    let r = persist_run(&["inspect", s(&newest), "--key", s(&key)]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("name:          demo_agent"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("sequence:      2"), "{}", r.stdout);
    assert!(
        r.stdout.contains("consistent with the file size"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("verification:    ok"), "{}", r.stdout);

    let unkeyed = persist_run(&["inspect", s(&newest)]);
    unkeyed.assert_code(0);
    assert!(
        unkeyed.stdout.contains("header (unverified):"),
        "{}",
        unkeyed.stdout
    );
    assert!(
        unkeyed.stdout.contains("not checked (no key given)"),
        "{}",
        unkeyed.stdout
    );

    let j = persist_run(&["inspect", s(&newest), "--key", s(&key), "--json"]);
    j.assert_code(0);
    let json = j.json();
    assert_eq!(json["header"]["name"], "demo_agent");
    assert_eq!(json["header"]["sequence"], 2);
    assert_eq!(json["header"]["format_version"], 2);
    assert_eq!(json["expected"]["sequence"], 2);
    assert_eq!(json["verification"]["ok"], true);
    assert_eq!(json["header"]["key_id"], json["verification"]["key_id"]);

    // A generation copied under another sequence number is caught by its signed header.
    let renamed_dir = dir.path().join("copy/demo_agent");
    fs::create_dir_all(&renamed_dir).unwrap();
    let renamed = renamed_dir.join("00000000000000000099.pst");
    fs::copy(&newest, &renamed).unwrap();
    let r = persist_run(&["inspect", s(&renamed), "--key", s(&key)]);
    r.assert_code(1);
    assert!(r.stdout.contains("carries sequence 2"), "{}", r.stdout);
}

#[test]
fn inspect_never_panics_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 1000, 1000);
    let (_, key) = store_and_key(dir.path());
    let good = fs::read(generation_files(dir.path()).pop().unwrap()).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated-header", good[..100].to_vec()),
        ("truncated-payload", good[..good.len() / 2].to_vec()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        (
            "magic-only",
            good[..8].iter().copied().chain([0xff; 300]).collect(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        for json in [false, true] {
            let mut args = vec!["inspect", s(&path), "--key", s(&key)];
            if json {
                args.push("--json");
            }
            let r = persist_run(&args);
            r.assert_code(1);
            if json {
                assert_eq!(r.json()["verification"]["ok"], false, "{name}");
            }
        }
    }
    persist_run(&["inspect", s(&dir.path().join("missing.pst"))]).assert_code(2);
    for not_a_file in [dir.path(), Path::new("/dev/zero")] {
        let r = persist_run(&["inspect", s(not_a_file)]);
        r.assert_code(2);
        assert!(r.stderr.contains("is not a regular file"), "{}", r.stderr);
    }
}

#[test]
fn verify_passes_then_fails_after_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 3000, 1000);
    let (store, key) = store_and_key(dir.path());
    let ok = persist_run(&["verify", s(&store), "--key", s(&key)]);
    ok.assert_code(0);
    assert!(
        ok.stdout.contains("demo_agent: ok (newest generation 3"),
        "{}",
        ok.stdout
    );
    assert_eq!(
        persist_run(&["verify", s(&store), "--key", s(&key), "--json"]).json()["ok"],
        true
    );

    flip_byte(&generation_files(dir.path())[2], 1000);
    let bad = persist_run(&["verify", s(&store), "--key", s(&key)]);
    bad.assert_code(1);
    assert!(bad.stdout.contains("demo_agent: FAILED"), "{}", bad.stdout);
    assert!(bad.stdout.contains("generation 3 ("), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("HMAC tag does not verify"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("newest valid generation: 2"),
        "{}",
        bad.stdout
    );

    let j = persist_run(&["verify", s(&store), "--key", s(&key), "--json"]);
    j.assert_code(1);
    let json = j.json();
    assert_eq!(json["ok"], false);
    let state = &json["states"][0];
    assert_eq!(state["newest"], 3);
    assert_eq!(state["newest_valid"], 2);
    assert_eq!(state["failed"][0]["sequence"], 3);

    // Every generation broken: no fallback left.
    for f in generation_files(dir.path()) {
        fs::write(&f, b"garbage").unwrap();
    }
    let r = persist_run(&["verify", s(&store), "--key", s(&key)]);
    r.assert_code(1);
    assert!(
        r.stdout.contains("no valid generation left"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("truncated"), "{}", r.stdout);
}

#[test]
fn verify_with_the_wrong_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 1000, 1000);
    let (store, _) = store_and_key(dir.path());
    let other = dir.path().join("other.key");
    persist_run(&["keygen", "--out", s(&other)]).assert_code(0);
    let r = persist_run(&["verify", s(&store), "--key", s(&other)]);
    r.assert_code(1);
    assert!(r.stdout.contains("unknown key id"), "{}", r.stdout);
}

#[test]
fn verify_of_an_empty_or_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 100, 100);
    let (store, key) = store_and_key(dir.path());
    // The demo's directory instead of its store: nothing there, with a hint.
    let r = persist_run(&["verify", s(dir.path()), "--key", s(&key)]);
    r.assert_code(1);
    assert!(r.stdout.contains("no state found"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("did you mean {}", store.display())),
        "{}",
        r.stdout
    );

    let missing = dir.path().join("nope");
    for cmd in ["verify", "list"] {
        let r = persist_run(&[cmd, s(&missing), "--key", s(&key)]);
        r.assert_code(2);
        assert!(r.stderr.contains("cannot open the store"), "{}", r.stderr);
    }
    let r = persist_run(&["list", s(&key), "--key", s(&key)]);
    r.assert_code(2);
    assert!(r.stderr.contains("is not a directory"), "{}", r.stderr);
}

#[test]
fn key_sources_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 100, 100);
    let (store, key) = store_and_key(dir.path());

    let missing = persist_run(&["verify", s(&store)]);
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("no key given"),
        "{}",
        missing.stderr
    );

    let from_env_file = run(persist()
        .args(["verify", s(&store)])
        .env("PERSIST_KEY_FILE", &key));
    from_env_file.assert_code(0);

    let hex: String = fs::read(&key)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let from_hex = run(persist()
        .args(["verify", s(&store)])
        .env("PERSIST_KEY", &hex));
    from_hex.assert_code(0);

    let not_hex = run(persist()
        .args(["verify", s(&store)])
        .env("PERSIST_KEY", "xyz"));
    not_hex.assert_code(2);
    assert!(not_hex.stderr.contains("PERSIST_KEY"), "{}", not_hex.stderr);

    let short = run(persist()
        .args(["verify", s(&store)])
        .env("PERSIST_KEY", "abcd"));
    short.assert_code(2);
    assert!(
        short.stderr.contains("at least 32 bytes"),
        "{}",
        short.stderr
    );

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let insecure = persist_run(&["list", s(&store), "--key", s(&key)]);
    insecure.assert_code(2);
    assert!(insecure.stderr.contains("mode 0644"), "{}", insecure.stderr);
    assert!(insecure.stderr.contains("chmod 600"), "{}", insecure.stderr);
    assert_eq!(insecure.stderr.lines().count(), 2, "{}", insecure.stderr);

    let absent = persist_run(&["list", s(&store), "--key", s(&dir.path().join("none"))]);
    absent.assert_code(2);
    assert!(
        absent.stderr.contains("cannot read key file"),
        "{}",
        absent.stderr
    );
}

#[test]
fn read_only_commands_work_beside_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 2000, 1000);
    let (store, key) = store_and_key(dir.path());
    let writer = persist_fs::FsBackend::open(&store).expect("takes the write lock");
    persist_run(&["list", s(&store), "--key", s(&key)]).assert_code(0);
    persist_run(&["verify", s(&store), "--key", s(&key)]).assert_code(0);
    let newest = generation_files(dir.path()).pop().unwrap();
    persist_run(&["inspect", s(&newest), "--key", s(&key)]).assert_code(0);

    let second_writer = persist_run(&["demo", "--dir", s(dir.path()), "--steps", "10"]);
    second_writer.assert_code(2);
    assert!(
        second_writer.stderr.contains("locked"),
        "{}",
        second_writer.stderr
    );
    drop(writer);
}

#[test]
fn usage_errors_exit_2() {
    persist_run(&[]).assert_code(2);
    persist_run(&["demo"]).assert_code(2);
    persist_run(&["demo", "--dir", "x", "--save-every", "0"]).assert_code(2);
    persist_run(&["verify"]).assert_code(2);
    persist_run(&["frobnicate"]).assert_code(2);
    persist_run(&["--help"]).assert_code(0);
}

#[test]
fn verify_decodes_the_states_this_build_knows() {
    use persist_core::Header;
    use persist_core::format;
    use persist_core::{Key, Keyring, Persist, RkyvFormat};

    let dir = tempfile::tempdir().unwrap();
    let run = persist_run(&[
        "demo",
        "--dir",
        s(dir.path()),
        "--steps",
        "200",
        "--save-every",
        "100",
        "--schemas",
    ]);
    run.assert_code(0);
    let (store, key) = store_and_key(dir.path());
    let ok = persist_run(&["verify", s(&store), "--key", s(&key)]);
    ok.assert_code(0);
    assert!(
        ok.stdout.contains("position: ok") && ok.stdout.contains("decoded as position v2"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout
            .contains("envelope only: this program has no schema for this state"),
        "the demo's own agent is not a users' schema: {}",
        ok.stdout
    );

    // An authentic envelope, right name, version and fingerprint, whose payload is not a
    // PositionState: only decoding can tell.
    let ring = Keyring::new(Key::from_file(&key).unwrap());
    let header = Header {
        key_id: ring.current().id(),
        name: "position".into(),
        schema_version: 2,
        fingerprint: persist_schemas::PositionState::fingerprint(),
        rkyv_format: RkyvFormat::CURRENT,
        sequence: 99,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(&ring, header, &[0xEE; 256]).unwrap();
    fs::write(store.join("position/00000000000000000099.pst"), bytes).unwrap();
    let bad = persist_run(&["verify", s(&store), "--key", s(&key), "--json"]);
    bad.assert_code(1);
    let json = bad.json();
    let position = json["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == "position")
        .unwrap();
    assert_eq!(position["ok"], false);
    assert_eq!(position["failed"][0]["sequence"], 99);
    assert_eq!(position["failed"][0]["kind"], "undecodable");
    let error = position["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("payload fails validation"), "{error}");
    // Authentic but undecodable: a load stops there, and so does verify.
    assert!(position["newest_valid"].is_null(), "{position}");
    let text = persist_run(&["verify", s(&store), "--key", s(&key)]);
    text.assert_code(1);
    assert!(
        text.stdout.contains("a load stops at generation 99"),
        "{}",
        text.stdout
    );

    // Another program's state that happens to be called `position`: same name, another layout.
    // Matched by name and fingerprint, it is not ours, so only its envelope is checked.
    let header = Header {
        key_id: ring.current().id(),
        name: "position".into(),
        schema_version: 2,
        fingerprint: persist_core::Fingerprint::of_descriptor("struct Position { lots: u32 }"),
        rkyv_format: RkyvFormat::CURRENT,
        sequence: 100,
        created_at_nanos: 0,
        payload_len: 0,
    };
    let bytes = format::seal(&ring, header, &[1; 64]).unwrap();
    fs::write(store.join("position/00000000000000000100.pst"), bytes).unwrap();
    let theirs = persist_run(&["verify", s(&store), "--key", s(&key)]);
    theirs.assert_code(0);
    assert!(
        theirs
            .stdout
            .contains("position: ok (newest generation 100")
            && theirs.stdout.contains("has another layout"),
        "{}",
        theirs.stdout
    );
}

/// Runs the demo with `--schemas` in `dir`: a snapshot of the nine users' states at each save.
fn demo_schemas(dir: &Path, steps: u64, every: u64, extra: &[&str]) -> Run {
    let steps = steps.to_string();
    let every = every.to_string();
    let mut args = vec![
        "demo",
        "--dir",
        s(dir),
        "--steps",
        &steps,
        "--save-every",
        &every,
        "--schemas",
    ];
    args.extend_from_slice(extra);
    persist_run(&args)
}

/// The total size of every generation file and recovery record under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            total += bytes_under(&path);
        } else if path.extension().is_some_and(|e| e == "pst" || e == "json") {
            total += fs::metadata(&path).unwrap().len();
        }
    }
    total
}

#[test]
fn demo_schemas_commits_snapshots_that_snapshots_status_verify_and_list_report() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_schemas(dir.path(), 200, 100, &[]);
    first.assert_code(0);
    let text = &first.stdout;
    assert!(
        text.contains("snapshot set agent_system") && text.contains("no snapshot yet"),
        "{text}"
    );
    assert!(
        text.contains("committed snapshot 1 of agent_system: 9 members written, 0 unchanged"),
        "{text}"
    );
    // The position moved and the replay buffer learned (written as a delta of its first
    // generation): the other seven members are referenced.
    assert!(
        text.contains(
            "committed snapshot 2 of agent_system: 2 members written, 7 unchanged and referenced"
        ),
        "{text}"
    );
    assert!(
        text.contains("replay_buffer: generation 2 is a delta of 1: "),
        "{text}"
    );
    let second = demo_schemas(dir.path(), 200, 100, &[]);
    second.assert_code(0);
    assert!(
        second.stdout.contains("resumed from snapshot 2"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("committed snapshot 4 of agent_system: 2 members written"),
        "{}",
        second.stdout
    );
    let (store, key) = store_and_key(dir.path());

    // persist snapshots
    let listed = persist_run(&["snapshots", s(&store), "--key", s(&key)]);
    listed.assert_code(0);
    assert!(
        listed
            .stdout
            .contains("agent_system (4 snapshots; newest whole: 4)")
            && listed.stdout.contains("<- newest whole")
            && listed.stdout.contains("after entry_agent")
            // An older snapshot shows what differs from the one above it.
            && listed
                .stdout
                .contains("as snapshot 2, except replay_buffer generation 1 (v2), position generation 1 (v2)"),
        "{}",
        listed.stdout
    );
    let all = persist_run(&["snapshots", s(&store), "--key", s(&key), "--all-members"]);
    all.assert_code(0);
    assert_eq!(all.stdout.matches("mdp_es ").count(), 4, "{}", all.stdout);
    let json = persist_run(&["snapshots", s(&store), "--key", s(&key), "--json"]);
    json.assert_code(0);
    let json = json.json();
    assert_eq!(json["ok"], true);
    let set = &json["sets"][0];
    assert_eq!(set["set"], "agent_system");
    assert_eq!(set["newest_whole"], 4);
    let snaps = set["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 4);
    assert!(snaps.iter().all(|s| s["whole"] == true), "{set}");
    assert_eq!(snaps[3]["newest_whole"], true);
    assert!(snaps[3]["created_at"].as_str().unwrap().ends_with('Z'));
    let members = snaps[3]["members"].as_array().unwrap();
    assert_eq!(members.len(), 9);
    let position = members.iter().find(|m| m["name"] == "position").unwrap();
    assert_eq!(position["schema_version"], 2);
    let position_generation = position["generation"].as_u64().unwrap();
    let exit = members.iter().find(|m| m["name"] == "exit_agent").unwrap();
    assert_eq!(exit["depends_on"][0], "entry_agent");

    // persist status
    let status = persist_run(&["status", s(&store), "--key", s(&key)]);
    status.assert_code(0);
    assert!(
        status.stdout.contains("newest whole snapshot 4, committed")
            && status.stdout.contains("data-loss window")
            && status.stdout.contains("4 snapshots kept")
            && status.stdout.contains("read from outside"),
        "{}",
        status.stdout
    );
    let status = persist_run(&["status", s(&store), "--key", s(&key), "--json"]).json();
    assert_eq!(status["sets"][0]["newest_whole"], 4);
    assert!(status["sets"][0]["newest_whole_age_seconds"].is_u64());
    assert_eq!(status["bytes_total"], bytes_under(&store));
    let states = status["states"].as_array().unwrap();
    let manifests = states
        .iter()
        .find(|s| s["name"] == "snapshot.agent_system")
        .unwrap();
    assert_eq!(manifests["generations"], 4);
    let summed: u64 = states.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(summed, bytes_under(&store));

    // persist verify: the manifests are verified with their set, not as a state.
    let verify = persist_run(&["verify", s(&store), "--key", s(&key)]);
    verify.assert_code(0);
    assert!(
        verify
            .stdout
            .contains("snapshot set agent_system: ok (newest snapshot 4 is whole")
            // The nine users' states are this binary's schemas: each member is decoded.
            && verify.stdout.contains("all 9 members decoded")
            && verify
                .stdout
                .contains("OK: 10 of 10 states and 1 of 1 snapshot set verified")
            && !verify.stdout.contains("snapshot.agent_system"),
        "{}",
        verify.stdout
    );
    let vjson = persist_run(&["verify", s(&store), "--key", s(&key), "--json"]).json();
    assert_eq!(vjson["snapshots"][0]["ok"], true);
    assert_eq!(vjson["snapshots"][0]["newest_whole"], 4);
    assert!(
        vjson["states"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["name"].as_str().unwrap().starts_with("snapshot.")),
        "{vjson}"
    );

    // persist list shows the manifests under their set.
    let list = persist_run(&["list", s(&store), "--key", s(&key), "--json"]);
    list.assert_code(0);
    let list = list.json();
    assert_eq!(list["states"].as_array().unwrap().len(), 10);
    assert_eq!(list["snapshot_sets"][0]["name"], "agent_system");
    assert_eq!(
        list["snapshot_sets"][0]["generations"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let text = persist_run(&["list", s(&store), "--key", s(&key)]);
    assert!(
        text.stdout.contains("store ") && text.stdout.contains(": 10 states"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("snapshot set agent_system (4 manifests"),
        "{}",
        text.stdout
    );

    // A corrupt member of the newest snapshot: it is not whole, a load falls back to 3.
    flip_byte(
        &store.join(format!("position/{position_generation:020}.pst")),
        100,
    );
    let listed = persist_run(&["snapshots", s(&store), "--key", s(&key)]);
    listed.assert_code(1);
    assert!(
        listed.stdout.contains("snapshot 4")
            && listed.stdout.contains("NOT WHOLE (corrupt)")
            && listed.stdout.contains("member position")
            && listed.stdout.contains("a load falls back to snapshot 3"),
        "{}",
        listed.stdout
    );
    let json = persist_run(&["snapshots", s(&store), "--key", s(&key), "--json"]);
    json.assert_code(1);
    let json = json.json();
    let set = &json["sets"][0];
    assert_eq!(set["ok"], false);
    assert_eq!(set["newest"], 4);
    assert_eq!(set["newest_whole"], 3);
    assert_eq!(set["snapshots"][3]["whole"], false);
    assert_eq!(set["snapshots"][3]["kind"], "corrupt");
    assert!(
        set["snapshots"][3]["problem"]
            .as_str()
            .unwrap()
            .contains("member position"),
        "{set}"
    );
    let verify = persist_run(&["verify", s(&store), "--key", s(&key)]);
    verify.assert_code(1);
    assert!(
        verify.stdout.contains("snapshot set agent_system: FAILED")
            && verify
                .stdout
                .contains("newest snapshot 4 is not whole [corrupt]: member position")
            && verify.stdout.contains("a load falls back to snapshot 3"),
        "{}",
        verify.stdout
    );
    let vjson = persist_run(&["verify", s(&store), "--key", s(&key), "--json"]).json();
    assert_eq!(vjson["snapshots"][0]["ok"], false);
    assert_eq!(vjson["snapshots"][0]["newest_whole"], 3);
    let status = persist_run(&["status", s(&store), "--key", s(&key)]);
    status.assert_code(1);
    assert!(
        status.stdout.contains("newest whole snapshot 3")
            && status.stdout.contains("FAILED: newest snapshot 4"),
        "{}",
        status.stdout
    );

    // The demo resumes from the newest whole snapshot, and says what it passed over.
    let third = demo_schemas(dir.path(), 100, 100, &[]);
    third.assert_code(0);
    assert!(
        third.stdout.contains("resumed from snapshot 3")
            && third.stdout.contains("passed over snapshot")
            && third.stdout.contains("member position"),
        "{}",
        third.stdout
    );
}

#[test]
fn demo_schemas_never_starts_fresh_when_no_snapshot_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    demo_schemas(dir.path(), 100, 100, &[]).assert_code(0);
    let (store, key) = store_and_key(dir.path());
    let manifest = store.join("snapshot.agent_system/00000000000000000001.pst");
    flip_byte(&manifest, 60);
    let snapshots = persist_run(&["snapshots", s(&store), "--key", s(&key)]);
    snapshots.assert_code(1);
    assert!(
        snapshots.stdout.contains("newest whole: none")
            && snapshots
                .stdout
                .contains("no whole snapshot left: a load of the set fails"),
        "{}",
        snapshots.stdout
    );
    let refused = demo_schemas(dir.path(), 100, 100, &[]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("cannot restore snapshot set agent_system"),
        "{}",
        refused.stderr
    );
    assert!(manifest.exists(), "the corrupt manifest is kept");
    let forced = demo_schemas(dir.path(), 100, 100, &["--fresh"]);
    forced.assert_code(0);
    assert!(
        forced.stdout.contains("--fresh: starting fresh")
            && forced
                .stdout
                .contains("committed snapshot 2 of agent_system: 9 members written"),
        "{}",
        forced.stdout
    );
}

#[test]
fn snapshots_and_status_of_a_store_without_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 200, 100);
    let (store, key) = store_and_key(dir.path());
    let listed = persist_run(&["snapshots", s(&store), "--key", s(&key)]);
    listed.assert_code(0);
    assert!(
        listed.stdout.contains("0 snapshot sets") && listed.stdout.contains("no snapshot found"),
        "{}",
        listed.stdout
    );
    let status = persist_run(&["status", s(&store), "--key", s(&key), "--json"]);
    status.assert_code(0);
    let json = status.json();
    assert_eq!(json["sets"].as_array().unwrap().len(), 0);
    assert_eq!(json["bytes_total"], bytes_under(&store));
    let verify = persist_run(&["verify", s(&store), "--key", s(&key), "--json"]);
    verify.assert_code(0);
    assert_eq!(verify.json()["snapshots"].as_array().unwrap().len(), 0);
    // Usage errors of the new commands and options exit 2.
    persist_run(&["snapshots"]).assert_code(2);
    persist_run(&["status", s(&store), "--bogus"]).assert_code(2);
    let key_arg = ["--key", s(&key)];
    for args in [
        &[
            "restore",
            "--from",
            "s3://b/p",
            "--to",
            "x",
            "--snapshot",
            "latest",
        ][..],
        &[
            "restore",
            "--from",
            "s3://b/p",
            "--to",
            "x",
            "--set",
            "agent_system",
        ][..],
        &[
            "restore",
            "--from",
            "s3://b/p",
            "--to",
            "x",
            "--snapshot",
            "1",
            "--state",
            "q",
        ][..],
    ] {
        let r = run(persist().args(args).args(key_arg));
        r.assert_code(2);
    }
}

#[test]
fn log_shows_what_each_demo_start_recovered() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), 2000, 1000);
    demo(dir.path(), 1000, 1000);
    let newest = generation_files(dir.path()).pop().unwrap();
    flip_byte(&newest, 200);
    demo(dir.path(), 1000, 1000);
    let store = dir.path().join("state");
    let r = persist_run(&["log", s(&store)]);
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].contains("load demo_agent"), "{}", r.stdout);
    assert!(lines[0].contains("started fresh"), "{}", r.stdout);
    assert!(lines[1].contains("recovered generation 2"), "{}", r.stdout);
    assert!(lines[2].contains("recovered generation 2"), "{}", r.stdout);
    assert!(r.stdout.contains("walked past 3 (corrupt)"), "{}", r.stdout);
    // --json: the records as stored, one per line; --last and --state select.
    let r = persist_run(&[
        "log",
        s(&store),
        "--json",
        "--state",
        "demo_agent",
        "--last",
        "1",
    ]);
    r.assert_code(0);
    let records: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"]["outcome"], "recovered");
    assert_eq!(records[0]["outcome"]["rejected"][0]["sequence"], 3);
    let r = persist_run(&["log", s(&store), "--state", "other"]);
    r.assert_code(0);
    assert!(r.stdout.contains("no recovery records"), "{}", r.stdout);
    // An entry that is not a record is named on stderr, and the exit code says so.
    fs::write(
        store.join("@recovery-log/99999999999999999999-0000000001-00000000-demo_agent.json"),
        b"\xff\xfe not json",
    )
    .unwrap();
    let r = persist_run(&["log", s(&store)]);
    r.assert_code(1);
    assert!(
        r.stderr.contains("unreadable recovery log entry"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.lines().filter(|l| !l.starts_with(' ')).count(), 3);
}
