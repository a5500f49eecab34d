//! The S3 tests' fixture: a real S3-compatible server (moto in CI, see `ci/s3-server.sh`) named
//! by environment variables, a fresh bucket per test, and a small `Persist` type.
//!
//! Variables: `PERSIST_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//! `AWS_REGION`; `PERSIST_S3_MOTO_SERVER` (the `moto_server` binary) for the tests that stop and
//! restart a private server; `PERSIST_S3_RAN_MARKER`, a file each S3 test appends its name to,
//! so CI can prove the tests ran. Without them a test prints `SKIPPED s3: <reason>` and passes,
//! unless `CI=true`, where it fails.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use persist_core::{Key, Keyring, persist};
use persist_s3::{S3Backend, S3BackendBuilder};

/// Where the tests' server is and how to sign in.
#[derive(Clone, Debug)]
pub struct S3Env {
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub region: String,
}

/// The server from the environment, or `None` after printing why the test is skipped.
pub fn s3_env(test: &str) -> Option<S3Env> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(key_id), Some(secret)) = (
        var("PERSIST_S3_ENDPOINT"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) else {
        let reason = "PERSIST_S3_ENDPOINT, AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY unset \
                      (eval \"$(ci/s3-server.sh)\" to start moto)";
        if var("CI").as_deref() == Some("true") {
            panic!("CI=true but the S3 tests cannot run: {reason}");
        }
        eprintln!("SKIPPED s3: {test}: {reason}");
        println!("SKIPPED s3: {test}: {reason}");
        return None;
    };
    if let Some(marker) = var("PERSIST_S3_RAN_MARKER") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&marker)
            .expect("open the S3 test marker file");
        // One write per line: O_APPEND keeps a single write whole when tests run in parallel.
        f.write_all(format!("{test}\n").as_bytes())
            .expect("write the S3 test marker file");
    }
    Some(S3Env {
        endpoint,
        key_id,
        secret,
        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
    })
}

static BUCKETS: AtomicU64 = AtomicU64::new(0);

impl S3Env {
    /// Creates a bucket with a unique name and returns the name.
    pub fn fresh_bucket(&self, hint: &str) -> String {
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let bucket = format!("{hint}-{}-{n}-{nanos}", std::process::id());
        create_bucket(self, &bucket);
        bucket
    }

    /// A builder for this server (no bucket yet).
    pub fn builder(&self) -> S3BackendBuilder {
        S3BackendBuilder::new()
            .endpoint(&self.endpoint)
            .region(&self.region)
            .credentials(&self.key_id, &self.secret)
            .allow_http(true)
            .retries(1, Duration::from_secs(5))
    }

    /// A backend on `bucket` under `prefix`.
    pub fn backend(&self, bucket: &str, prefix: &str) -> S3Backend {
        self.builder()
            .bucket(bucket)
            .prefix(prefix)
            .build()
            .expect("build the S3 backend")
    }
}

/// Creates `bucket` on the server.
pub fn create_bucket(env: &S3Env, bucket: &str) {
    persist_s3::testing::create_bucket(
        &env.endpoint,
        &env.region,
        &env.key_id,
        &env.secret,
        bucket,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Incomplete multipart uploads in `bucket`.
pub fn incomplete_uploads(env: &S3Env, bucket: &str) -> usize {
    persist_s3::testing::incomplete_multipart_uploads(
        &env.endpoint,
        &env.region,
        &env.key_id,
        &env.secret,
        bucket,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The tests' signing key.
pub fn keyring() -> Keyring {
    Keyring::new(
        Key::from_bytes(b"persist s3 test key: 32+ bytes, never for production".to_vec())
            .expect("long enough"),
    )
}

/// A state of any size: a counter and bytes.
#[persist(name = "blob", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub counter: u64,
    pub data: Vec<u8>,
}

impl Blob {
    /// A blob of `len` pseudo-random bytes derived from `counter`.
    pub fn new(counter: u64, len: usize) -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ counter.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let data = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Blob { counter, data }
    }
}

/// A private moto server without authentication, for tests that stop and restart it.
pub struct Moto {
    binary: String,
    pub port: u16,
    child: Option<Child>,
}

impl Moto {
    /// Starts one on a free port, or `None` (with a SKIPPED line) if the binary is unknown.
    pub fn start(test: &str) -> Option<Moto> {
        let Some(binary) = std::env::var("PERSIST_S3_MOTO_SERVER")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            let reason = "PERSIST_S3_MOTO_SERVER unset (set by ci/s3-server.sh)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {test} cannot run: {reason}");
            }
            eprintln!("SKIPPED s3: {test}: {reason}");
            return None;
        };
        if let Ok(marker) = std::env::var("PERSIST_S3_RAN_MARKER") {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&marker)
                .expect("open the S3 test marker file");
            // One write per line (see above).
            f.write_all(format!("{test}\n").as_bytes())
                .expect("write the S3 test marker file");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut moto = Moto {
            binary,
            port,
            child: None,
        };
        moto.restart();
        Some(moto)
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An environment for this server (any credentials are accepted).
    pub fn env(&self) -> S3Env {
        S3Env {
            endpoint: self.endpoint(),
            key_id: "private".into(),
            secret: "private".into(),
            region: "us-east-1".into(),
        }
    }

    /// Kills the server (its in-memory buckets are gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let probe = "GET /moto-api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                let mut buf = String::new();
                if s.write_all(probe.as_bytes()).is_ok()
                    && s.read_to_string(&mut buf).is_ok()
                    && buf.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server on port {} did not come up", self.port);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
