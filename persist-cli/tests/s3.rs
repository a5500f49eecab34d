//! `persist push`, `restore`, `prune`, and `list`/`verify` of `s3://` URLs, end to end against
//! a real S3-compatible server (moto in CI: see `ci/s3-server.sh`). Without the server's
//! variables each test prints `SKIPPED s3: …` and passes, unless `CI=true`.

use std::fs;
use std::io::Write;
use std::path::Path;

mod common;

use common::{Run, run, s};

struct Server {
    endpoint: String,
    key_id: String,
    secret: String,
    region: String,
}

fn server(test: &str) -> Option<Server> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(key_id), Some(secret)) = (
        var("PERSIST_S3_ENDPOINT"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) else {
        let reason = "PERSIST_S3_ENDPOINT, AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY unset";
        if var("CI").as_deref() == Some("true") {
            panic!("CI=true but the S3 tests cannot run: {reason}");
        }
        eprintln!("SKIPPED s3: {test}: {reason}");
        return None;
    };
    if let Some(marker) = var("PERSIST_S3_RAN_MARKER") {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(marker)
            .unwrap();
        // One write per line: O_APPEND keeps a single write whole when tests run in parallel.
        f.write_all(format!("persist-cli::{test}\n").as_bytes())
            .unwrap();
    }
    Some(Server {
        endpoint,
        key_id,
        secret,
        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
    })
}

impl Server {
    fn bucket(&self, hint: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let bucket = format!("cli-{hint}-{}-{nanos}", std::process::id());
        persist_s3::testing::create_bucket(
            &self.endpoint,
            &self.region,
            &self.key_id,
            &self.secret,
            &bucket,
        )
        .unwrap();
        bucket
    }

    fn persist(&self, key: &Path, args: &[&str]) -> Run {
        let mut cmd = common::persist();
        if key.exists() {
            // The demo makes its own key; every other command reads it.
            cmd.env("PERSIST_KEY_FILE", key);
        }
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REGION", &self.region)
            .env("AWS_ALLOW_HTTP", "true")
            .args(args);
        run(&mut cmd)
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir.join("demo_agent"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pst"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs the demo in `dir`: a store in `dir/state`, a key in `dir/persist.key`.
fn demo(server: &Server, dir: &Path, steps: u64) {
    let key = dir.join("persist.key");
    server
        .persist(
            &key,
            &[
                "demo",
                "--dir",
                s(dir),
                "--steps",
                &steps.to_string(),
                "--save-every",
                "100",
            ],
        )
        .assert_code(0);
}

#[test]
fn push_list_verify_then_restore_a_wiped_directory() {
    let Some(server) = server("push_list_verify_then_restore_a_wiped_directory") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    demo(&server, tmp.path(), 600);
    let key = tmp.path().join("persist.key");
    let state = tmp.path().join("state");
    let before = files(&state);
    assert!(before.len() >= 2, "{before:?}");
    let url = format!("s3://{}/agents/demo", server.bucket("push"));

    let pushed = server.persist(&key, &["push", s(&state), "--to", &url]);
    pushed.assert_code(0);
    assert!(
        pushed
            .stdout
            .contains(&format!("{} generations", before.len())),
        "{}",
        pushed.stdout
    );
    // Idempotent: a second push has nothing to do.
    let again = server.persist(&key, &["push", s(&state), "--to", &url]);
    again.assert_code(0);
    assert!(again.stdout.contains("0 generations"), "{}", again.stdout);

    let listed = server.persist(&key, &["list", &url, "--json"]);
    listed.assert_code(0);
    let json = listed.json();
    let gens = json["states"][0]["generations"].as_array().unwrap();
    assert_eq!(gens.len(), before.len());
    assert!(
        gens.iter().all(|g| g["verified"] == true),
        "{}",
        listed.stdout
    );
    server.persist(&key, &["verify", &url]).assert_code(0);

    // The disk dies; restore brings back the newest generation, byte for byte.
    fs::remove_dir_all(&state).unwrap();
    let restored = server.persist(&key, &["restore", "--from", &url, "--to", s(&state)]);
    restored.assert_code(0);
    assert!(
        restored.stdout.contains("restored demo_agent generation"),
        "{}",
        restored.stdout
    );
    let after = files(&state);
    assert_eq!(after, vec![before.last().unwrap().clone()]);
    server.persist(&key, &["verify", s(&state)]).assert_code(0);
    // The demo resumes from it.
    demo(&server, tmp.path(), 700);

    // A chosen older generation.
    let oldest = before[0]
        .0
        .trim_end_matches(".pst")
        .trim_start_matches('0')
        .to_string();
    let other = tmp.path().join("other");
    server
        .persist(
            &key,
            &[
                "restore",
                "--from",
                &url,
                "--to",
                s(&other),
                "--state",
                "demo_agent",
                "--generation",
                &oldest,
            ],
        )
        .assert_code(0);
    assert_eq!(files(&other), vec![before[0].clone()]);
    // --generation without --state is a usage error; a missing generation a failure.
    server
        .persist(
            &key,
            &[
                "restore",
                "--from",
                &url,
                "--to",
                s(&other),
                "--generation",
                "1",
            ],
        )
        .assert_code(2);
    let missing = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&other),
            "--state",
            "demo_agent",
            "--generation",
            "999999",
        ],
    );
    missing.assert_code(1);
    assert!(
        missing.stdout.contains("no generation 999999"),
        "{}",
        missing.stdout
    );
}

#[test]
fn prune_dry_run_lists_reasons_then_prune_deletes_exactly_those() {
    let Some(server) = server("prune_dry_run_lists_reasons_then_prune_deletes_exactly_those")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    demo(&server, tmp.path(), 500);
    let key = tmp.path().join("persist.key");
    let state = tmp.path().join("state");
    let url = format!("s3://{}", server.bucket("prune"));
    server
        .persist(&key, &["push", s(&state), "--to", &url])
        .assert_code(0);
    let n = files(&state).len();
    assert!(n >= 3, "{n}");

    let dry = server.persist(&key, &["prune", &url, "--dry-run", "--keep-last", "2"]);
    dry.assert_code(0);
    let deletes: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("delete"))
        .collect();
    let keeps: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("keep"))
        .collect();
    assert_eq!(deletes.len(), n - 2, "{}", dry.stdout);
    assert_eq!(keeps.len(), 2, "{}", dry.stdout);
    assert!(
        keeps[0].contains("newest valid generation"),
        "{}",
        dry.stdout
    );
    assert!(keeps[1].contains("last N"), "{}", dry.stdout);
    assert!(
        deletes.iter().all(|l| l.contains("expired")),
        "{}",
        dry.stdout
    );
    // Nothing deleted by the dry run.
    let listed = server.persist(&key, &["list", &url, "--json"]);
    let json = listed.json();
    assert_eq!(
        json["states"][0]["generations"].as_array().unwrap().len(),
        n
    );

    let real = server.persist(&key, &["prune", &url, "--keep-last", "2"]);
    real.assert_code(0);
    let real_deletes: Vec<&str> = real
        .stdout
        .lines()
        .filter(|l| l.starts_with("delete "))
        .collect();
    // The same generations, for the same reasons; only the ages may have ticked over a second
    // between the two runs.
    assert_eq!(without_ages(&real_deletes), without_ages(&deletes));
    let listed = server.persist(&key, &["list", &url, "--json"]);
    let json = listed.json();
    assert_eq!(
        json["states"][0]["generations"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn wrong_credentials_name_the_endpoint_and_bucket() {
    let Some(mut server) = server("wrong_credentials_name_the_endpoint_and_bucket") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    demo(&server, tmp.path(), 100);
    let key = tmp.path().join("persist.key");
    let bucket = server.bucket("creds");
    server.secret = "wrong".into();
    let run = server.persist(&key, &["verify", &format!("s3://{bucket}")]);
    run.assert_code(2);
    assert!(run.stderr.contains("access denied"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&bucket) && run.stderr.contains(&server.endpoint),
        "{}",
        run.stderr
    );
}

#[test]
fn demo_replicates_off_site_reports_lag_and_resumes_from_it_after_the_disk_is_lost() {
    let Some(server) = server("demo_replicates_off_site_reports_lag_and_resumes") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("persist.key");
    let url = format!("s3://{}/demo", server.bucket("demo"));
    let args = |steps: &'static str| {
        vec![
            "demo".to_string(),
            "--dir".into(),
            s(tmp.path()).into(),
            "--steps".into(),
            steps.into(),
            "--save-every".into(),
            "100".into(),
            "--off-site".into(),
            url.clone(),
        ]
    };
    let first: Vec<String> = args("400");
    let run = server.persist(&key, &first.iter().map(String::as_str).collect::<Vec<_>>());
    run.assert_code(0);
    assert!(run.stdout.contains("off-site:"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("off-site at exit: 0 generations pending"),
        "{}",
        run.stdout
    );
    // Every local generation is off-site.
    let local = files(&tmp.path().join("state"));
    let listed = server.persist(&key, &["list", &url, "--json"]);
    let json = listed.json();
    let remote: Vec<u64> = json["states"][0]["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["sequence"].as_u64().unwrap())
        .collect();
    assert!(remote.len() >= local.len(), "{remote:?} vs {local:?}");

    // The disk dies (the key survives elsewhere): the next run restores from off-site.
    fs::remove_dir_all(tmp.path().join("state")).unwrap();
    let second: Vec<String> = args("100");
    let run = server.persist(&key, &second.iter().map(String::as_str).collect::<Vec<_>>());
    run.assert_code(0);
    assert!(
        run.stdout.contains("restored from off-site"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("resuming at step 400"),
        "{}",
        run.stdout
    );
}

/// The lines with every "<n> s old" replaced by "_ s old".
fn without_ages(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let is_age = words.get(i + 1) == Some(&"s")
                        && words.get(i + 2).is_some_and(|n| n.starts_with("old"))
                        && w.bytes().all(|b| b.is_ascii_digit());
                    if is_age { "_" } else { w }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The generation files of every state in the store `dir`, as (state/file, bytes), sorted.
fn all_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for state in fs::read_dir(dir).unwrap() {
        let state = state.unwrap().path();
        if !state.is_dir() {
            continue;
        }
        for file in fs::read_dir(&state).unwrap() {
            let p = file.unwrap().path();
            if p.extension().is_some_and(|e| e == "pst") {
                out.push((
                    format!(
                        "{}/{}",
                        state.file_name().unwrap().to_string_lossy(),
                        p.file_name().unwrap().to_string_lossy()
                    ),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restore_a_whole_snapshot_after_the_local_store_is_wiped() {
    let Some(server) = server("restore_a_whole_snapshot_after_the_local_store_is_wiped") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("persist.key");
    let state = tmp.path().join("state");
    // Three snapshots of the nine users' states (the first writes nine members, the others
    // only the position).
    server
        .persist(
            &key,
            &[
                "demo",
                "--dir",
                s(tmp.path()),
                "--steps",
                "300",
                "--save-every",
                "100",
                "--schemas",
            ],
        )
        .assert_code(0);
    let snapshots = server.persist(&key, &["snapshots", s(&state), "--json"]);
    snapshots.assert_code(0);
    let json = snapshots.json();
    let snaps = json["sets"][0]["snapshots"].as_array().unwrap().clone();
    assert_eq!(snaps.len(), 3);
    let members = |i: usize| -> Vec<String> {
        snaps[i]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{}/{:020}.pst",
                    m["name"].as_str().unwrap(),
                    m["generation"].as_u64().unwrap()
                )
            })
            .collect()
    };
    // Corrupt the newest snapshot's position before pushing: off-site, snapshot 3 is not whole.
    let newest_position = members(2)
        .into_iter()
        .find(|k| k.starts_with("position/"))
        .unwrap();
    let mut bytes = fs::read(state.join(&newest_position)).unwrap();
    bytes[100] ^= 1;
    fs::write(state.join(&newest_position), bytes).unwrap();
    let before = all_files(&state);

    let url = format!("s3://{}/agents/system", server.bucket("snap"));
    server
        .persist(&key, &["push", s(&state), "--to", &url])
        .assert_code(0);
    let remote = server.persist(&key, &["snapshots", &url]);
    remote.assert_code(1);
    assert!(
        remote.stdout.contains("member position") && remote.stdout.contains("newest whole: 2"),
        "{}",
        remote.stdout
    );
    let status = server.persist(&key, &["status", &url, "--json"]);
    status.assert_code(1);
    assert_eq!(status.json()["sets"][0]["newest_whole"], 2);

    // The disk dies.
    fs::remove_dir_all(&state).unwrap();

    // Snapshot 3 is refused, naming the member; nothing is written.
    let refused = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&state),
            "--snapshot",
            "3",
        ],
    );
    refused.assert_code(1);
    assert!(
        refused
            .stdout
            .contains("snapshot 3 of agent_system is not whole [corrupt]: member position"),
        "{}",
        refused.stdout
    );
    assert!(!state.exists() || all_files(&state).is_empty());
    let missing = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&state),
            "--snapshot",
            "9",
        ],
    );
    missing.assert_code(1);
    assert!(
        missing.stdout.contains("no snapshot 9"),
        "{}",
        missing.stdout
    );
    let no_set = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&state),
            "--snapshot",
            "newest",
            "--set",
            "nope",
        ],
    );
    no_set.assert_code(2);
    assert!(
        no_set.stderr.contains("no snapshot set nope") && no_set.stderr.contains("agent_system"),
        "{}",
        no_set.stderr
    );

    // `newest` passes over snapshot 3 to 2, the newest whole one, byte for byte.
    let restored = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&state),
            "--snapshot",
            "newest",
        ],
    );
    restored.assert_code(0);
    assert!(
        restored.stdout.contains("skipped snapshot 3")
            && restored
                .stdout
                .contains("restored snapshot 2 of agent_system")
            && restored.stdout.contains("whole in"),
        "{}",
        restored.stdout
    );
    // Snapshot 2's members, its manifest, and the chain of its one delta member: the demo
    // writes the replay buffer incrementally, so its generation 2 comes with its base 1.
    let chain = "replay_buffer/00000000000000000001.pst";
    let mut expected: Vec<(String, Vec<u8>)> = before
        .iter()
        .filter(|(k, _)| {
            members(1).contains(k)
                || k == "snapshot.agent_system/00000000000000000002.pst"
                || k == chain
        })
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(all_files(&state).len(), 11);
    assert_eq!(all_files(&state), expected);
    let local = server.persist(&key, &["snapshots", s(&state), "--json"]);
    local.assert_code(0);
    assert_eq!(local.json()["sets"][0]["newest_whole"], 2);
    // Again: already there, nothing copied.
    let again = server.persist(
        &key,
        &[
            "restore",
            "--from",
            &url,
            "--to",
            s(&state),
            "--snapshot",
            "2",
        ],
    );
    again.assert_code(0);
    assert!(
        again
            .stdout
            .contains("0 objects (0 bytes) copied, 10 already there"),
        "{}",
        again.stdout
    );
    // The demo resumes from it.
    let resumed = server.persist(
        &key,
        &[
            "demo",
            "--dir",
            s(tmp.path()),
            "--steps",
            "100",
            "--save-every",
            "100",
            "--schemas",
        ],
    );
    resumed.assert_code(0);
    assert!(
        resumed.stdout.contains("resumed from snapshot 2"),
        "{}",
        resumed.stdout
    );

    // The state-by-state restore leaves the manifests alone.
    let other = tmp.path().join("other");
    let plain = server.persist(&key, &["restore", "--from", &url, "--to", s(&other)]);
    plain.assert_code(0);
    assert!(
        plain
            .stdout
            .contains("skipped the manifests of snapshot set agent_system"),
        "{}",
        plain.stdout
    );
    assert!(!other.join("snapshot.agent_system").exists());
}

/// A delta restored from off-site comes back with its chain (bases first), and verifies.
#[test]
fn a_delta_is_restored_with_its_chain() {
    let Some(server) = server("a_delta_is_restored_with_its_chain") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("persist.key");
    let args = ["demo", "--dir", s(tmp.path()), "--steps", "300"];
    server
        .persist(
            &key,
            &[&args[..], &["--save-every", "100", "--schemas"]].concat(),
        )
        .assert_code(0);
    let state = tmp.path().join("state");
    let url = format!("s3://{}/agents/chain", server.bucket("chain"));
    server
        .persist(&key, &["push", s(&state), "--to", &url])
        .assert_code(0);
    let other = tmp.path().join("other");
    let restore = [
        "restore",
        "--from",
        &url,
        "--to",
        s(&other),
        "--state",
        "replay_buffer",
    ];
    server.persist(&key, &restore).assert_code(0);
    // The newest replay buffer (3) is a delta of 2, a delta of the full 1: all three are back.
    let mut restored: Vec<String> = fs::read_dir(other.join("replay_buffer"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    restored.sort();
    assert_eq!(restored.len(), 3, "{restored:?}");
    let listed = server.persist(&key, &["list", s(&other), "--json"]);
    listed.assert_code(0);
    let json = listed.json();
    let newest = json["states"][0]["generations"][2].clone();
    assert_eq!(newest["generation_kind"], "delta", "{}", listed.stdout);
    assert_eq!(newest["base"], 2, "{}", listed.stdout);
    server.persist(&key, &["verify", s(&other)]).assert_code(0);
}
