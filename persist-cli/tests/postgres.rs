//! `persist db`, and `push`/`list`/`verify`/`restore`/`prune` with `postgres://` locations, end
//! to end against the PostgreSQL cluster of `ci/pg-server.sh` (PERSIST_PG_URL). Without it each
//! test prints `SKIPPED postgres:` and passes, unless `CI=true`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use persist_core::Backend;
use persist_core::recovery_log::{LogRecord, Outcome};

/// The cluster's URL without its password, and the password (the CLI takes it from PGPASSWORD).
fn cluster(test: &str) -> Option<(String, String)> {
    let Some(url) = std::env::var("PERSIST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let reason = "PERSIST_PG_URL unset (eval \"$(ci/pg-server.sh)\" to start a cluster)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the PostgreSQL tests cannot run: {reason}"
        );
        println!("SKIPPED postgres: {test}: {reason}");
        return None;
    };
    if let Ok(marker) = std::env::var("PERSIST_PG_RAN_MARKER") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(marker)
            .unwrap();
        f.write_all(format!("cli::{test}\n").as_bytes()).unwrap();
    }
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    Some((format!("{scheme}://{user}@{host}"), password.to_string()))
}

/// A fresh database on the cluster; its URL (no password).
fn fresh_database(admin: &str, password: &str, hint: &str) -> String {
    let name = format!("cli_{hint}_{}", std::process::id());
    let (base, _) = admin.rsplit_once('/').unwrap();
    let (scheme, rest) = base.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let with_password = format!("{scheme}://{user}:{password}@{host}/postgres");
    let mut client = postgres::Client::connect(&with_password, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    format!("{base}/{name}")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn persist(password: &str, key: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_persist"))
        .args(args)
        .arg("--key")
        .arg(key)
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn db_migrations_and_a_store_pushed_to_postgres_listed_verified_and_restored() {
    let Some((admin, password)) = cluster("db_and_push") else {
        return;
    };
    let url = fresh_database(&admin, &password, "push");
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("persist.key");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let keygen = Command::new(env!("CARGO_BIN_EXE_persist"))
        .args(["keygen", "--out", &s(&key)])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    // A store to push: the demo's.
    let demo = persist(
        &password,
        &key,
        &[
            "demo",
            "--dir",
            &s(tmp.path()),
            "--steps",
            "300",
            "--save-every",
            "100",
        ],
    );
    assert_eq!(demo.code, 0, "{}{}", demo.stdout, demo.stderr);

    let status = persist(&password, &key, &["db", "status", &url]);
    assert_eq!(status.code, 1, "{}", status.stdout);
    assert!(
        status.stdout.contains("layout 0 of 2 (outdated"),
        "{}",
        status.stdout
    );
    let migrated = persist(&password, &key, &["db", "migrate", &url]);
    assert_eq!(migrated.code, 0, "{}{}", migrated.stdout, migrated.stderr);
    assert!(
        migrated.stdout.contains("applied layout 1"),
        "{}",
        migrated.stdout
    );
    let status = persist(&password, &key, &["db", "status", &url]);
    assert!(
        status.stdout.contains("layout 2 of 2 (current)"),
        "{}",
        status.stdout
    );

    let state = tmp.path().join("state");
    let pushed = persist(&password, &key, &["push", &s(&state), "--to", &url]);
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    let listed = persist(&password, &key, &["list", &url, "--json"]);
    assert_eq!(listed.code, 0, "{}{}", listed.stdout, listed.stderr);
    assert!(
        listed.stdout.contains("\"verified\": true"),
        "{}",
        listed.stdout
    );
    let verified = persist(&password, &key, &["verify", &url]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // The disk dies: restore from the database.
    std::fs::remove_dir_all(&state).unwrap();
    let restored = persist(
        &password,
        &key,
        &["restore", "--from", &url, "--to", &s(&state)],
    );
    assert_eq!(restored.code, 0, "{}{}", restored.stdout, restored.stderr);
    assert!(
        restored.stdout.contains("restored demo_agent generation"),
        "{}",
        restored.stdout
    );
    let local = persist(&password, &key, &["verify", &s(&state)]);
    assert_eq!(local.code, 0, "{}", local.stdout);

    // The recovery log: empty, then a program's load record, read back from the table.
    let log = persist(&password, &key, &["log", &url]);
    assert_eq!(log.code, 0, "{}{}", log.stdout, log.stderr);
    assert!(log.stdout.contains("no recovery records"), "{}", log.stdout);
    let with_password = url.replacen("@", &format!(":{password}@"), 1);
    let record = LogRecord::new(
        "demo_agent",
        "load",
        Outcome::NoGeneration {
            location: "elsewhere".into(),
        },
    );
    persist_postgres::PgBackend::open(&with_password)
        .unwrap()
        .append_log(&record)
        .unwrap();
    let log = persist(&password, &key, &["log", &url, "--json"]);
    assert_eq!(log.code, 0, "{}{}", log.stdout, log.stderr);
    assert_eq!(log.stdout.trim(), record.to_json());

    // Down would delete generations: refused.
    let down = persist(&password, &key, &["db", "down", &url]);
    assert_eq!(down.code, 2, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stderr.contains("refusing to migrate"),
        "{}",
        down.stderr
    );
    // The password never shows, and a URL holding one is refused before any connection.
    for run in [
        &status, &migrated, &pushed, &listed, &verified, &restored, &down,
    ] {
        assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
    }
    let refused = persist(&password, &key, &["list", &with_password]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("PGPASSWORD"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(&password), "{}", refused.stderr);
}

/// `persist demo --off-site postgres://…` replicates to the database in the background, and a
/// run after the disk is lost resumes from it (the recovery log, kept locally, says so).
#[test]
fn demo_replicates_to_postgres_and_resumes_from_it_after_the_disk_is_lost() {
    let Some((admin, password)) = cluster("demo_off_site") else {
        return;
    };
    let url = fresh_database(&admin, &password, "demo_off_site");
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("persist.key");
    let dir = tmp.path().to_str().unwrap().to_string();
    let demo = |steps: &str| {
        let args = [
            "demo",
            "--dir",
            &dir,
            "--steps",
            steps,
            "--save-every",
            "100",
            "--off-site",
            &url,
        ];
        persist(&password, &key, &args)
    };
    let keygen = Command::new(env!("CARGO_BIN_EXE_persist"))
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let first = demo("400");
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("off-site at exit: 0 generations pending"),
        "{}",
        first.stdout
    );
    let listed = persist(&password, &key, &["list", &url, "--json"]);
    assert_eq!(listed.code, 0, "{}{}", listed.stdout, listed.stderr);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        json["states"][0]["generations"].as_array().unwrap().len(),
        4
    );

    // The disk dies: the next run restores from the database and resumes.
    std::fs::remove_dir_all(tmp.path().join("state")).unwrap();
    let second = demo("100");
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains("restored from off-site"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("resuming at step 400"),
        "{}",
        second.stdout
    );
    let log = persist(&password, &key, &["log", &format!("{dir}/state"), "--json"]);
    assert_eq!(log.code, 0, "{}{}", log.stdout, log.stderr);
    assert!(
        log.stdout.contains("\"restored_from\":\"postgres://"),
        "{}",
        log.stdout
    );
    for run in [&first, &listed, &second, &log] {
        assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
    }
}
