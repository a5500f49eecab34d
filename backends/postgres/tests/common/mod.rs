//! The PostgreSQL cluster of the tests: `ci/pg-server.sh` starts one and exports
//! `PERSIST_PG_URL` (a superuser's URL). Without it a test prints `SKIPPED postgres: …` and
//! passes, unless `CI=true`, where it fails. `PERSIST_PG_RAN_MARKER` names a file each test that
//! ran appends its name to, so CI can prove they ran.

#![allow(dead_code)]

pub mod cluster;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use persist_postgres::PgConfig;

/// The cluster.
pub struct PgEnv {
    /// A superuser's URL.
    pub url: String,
}

/// The cluster, or `None` (after saying why) when there is none.
pub fn pg_env(test: &str) -> Option<PgEnv> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(url) = var("PERSIST_PG_URL") else {
        let reason = "PERSIST_PG_URL unset (eval \"$(ci/pg-server.sh)\" to start a cluster)";
        if var("CI").as_deref() == Some("true") {
            panic!("CI=true but the PostgreSQL tests cannot run: {reason}");
        }
        eprintln!("SKIPPED postgres: {test}: {reason}");
        println!("SKIPPED postgres: {test}: {reason}");
        return None;
    };
    if let Some(marker) = var("PERSIST_PG_RAN_MARKER") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&marker)
            .expect("open the PostgreSQL test marker file");
        f.write_all(format!("{test}\n").as_bytes())
            .expect("write the PostgreSQL test marker file");
    }
    Some(PgEnv { url })
}

static DATABASES: AtomicU64 = AtomicU64::new(0);

impl PgEnv {
    /// The superuser's connection.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect as superuser")
    }

    /// Creates a database with a unique name and returns the URL of it (same user).
    pub fn fresh_database(&self, hint: &str) -> String {
        let n = DATABASES.fetch_add(1, Ordering::SeqCst);
        let hint: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(30)
            .collect();
        let name = format!("t_{hint}_{}_{n}", std::process::id()).to_lowercase();
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.url_of(&name)
    }

    /// The URL of database `name` on the cluster, as the superuser.
    pub fn url_of(&self, name: &str) -> String {
        let (base, _) = self.url.rsplit_once('/').expect("a URL with a database");
        format!("{base}/{name}")
    }

    /// A config for `url`.
    pub fn config(&self, url: &str) -> PgConfig {
        PgConfig::from_url(url).expect("a valid URL")
    }
}
