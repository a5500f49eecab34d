//! A private PostgreSQL cluster that one test owns and may crash: started by `ci/pg-server.sh`
//! on a port picked here (so a restart keeps it), killed with SIGKILL (a real server crash) or
//! stopped in immediate mode, restarted with `pg_ctl start` on the same data directory (crash
//! recovery runs), and always stopped and deleted when dropped, also when the test panics.
//!
//! Never the cluster of `PERSIST_PG_URL`: other tests use that one in parallel.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long a start, a restart or the death of a killed server may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A cluster of its own for one test.
pub struct PgCluster {
    /// A superuser's URL of database `persist_test`.
    pub url: String,
    /// The port it listens on (127.0.0.1), kept across restarts.
    pub port: u16,
    /// The data directory.
    data: PathBuf,
    /// The directory `ci/pg-server.sh` made: data, log and socket; deleted on drop.
    dir: PathBuf,
    /// The server binaries.
    bin: PathBuf,
    /// The OS user that owns the cluster when the tests run as root (`initdb` refuses root),
    /// as in `ci/pg-server.sh`.
    os_user: Option<String>,
}

impl PgCluster {
    /// Starts a private cluster for `test`, which is gated like every PostgreSQL test
    /// ([`super::pg_env`]: skipped without `PERSIST_PG_URL`, failed under `CI=true`, recorded
    /// in the marker). `None` (after saying why) when the test is skipped, also when the server
    /// binaries are missing here (outside CI).
    pub fn start(test: &str) -> Option<PgCluster> {
        super::pg_env(test)?;
        let Some(bin) = server_binaries() else {
            let reason = "PostgreSQL server binaries not found (PERSIST_PG_BIN or \
                          /usr/lib/postgresql/*/bin): a private cluster cannot be started";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {test} cannot run: {reason}");
            }
            eprintln!("SKIPPED postgres: {test}: {reason}");
            println!("SKIPPED postgres: {test}: {reason}");
            return None;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/pg-server.sh");
        let mut failures = Vec::new();
        // A free port can be taken between the pick and the server's bind: pick again.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let out = Command::new("bash")
                .arg(&script)
                .env("PERSIST_PG_PORT", port.to_string())
                .env("PERSIST_PG_BIN", &bin)
                .output()
                .expect("run ci/pg-server.sh");
            if !out.status.success() {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                continue;
            }
            let stdout = String::from_utf8(out.stdout).expect("UTF-8 exports");
            let export = |name: &str| {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                    .unwrap_or_else(|| panic!("ci/pg-server.sh printed no {name}"))
                    .to_string()
            };
            let data = PathBuf::from(export("PERSIST_PG_DATA"));
            let dir = data.parent().expect("data inside the cluster's dir").into();
            let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
            let os_user = root.then(|| {
                std::env::var("PERSIST_PG_OS_USER")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "postgres".into())
            });
            return Some(PgCluster {
                url: export("PERSIST_PG_URL"),
                port,
                data,
                dir,
                bin: PathBuf::from(export("PERSIST_PG_BIN")),
                os_user,
            });
        }
        panic!(
            "ci/pg-server.sh failed three times:\n{}",
            failures.join("\n---\n")
        );
    }

    /// The URL of database `name` on this cluster.
    pub fn url_of(&self, name: &str) -> String {
        let (base, _) = self.url.rsplit_once('/').expect("a URL with a database");
        format!("{base}/{name}")
    }

    /// A new superuser connection.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect as superuser")
    }

    /// The postmaster's pid (the first line of `postmaster.pid`), if the file is there and
    /// that process is this cluster's postmaster (a pid may have been reused).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid = self.pid_in_lock_file()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = self.data.to_str()?.as_bytes();
        let ours = cmdline.split(|&b| b == 0).any(|arg| arg == data);
        (ours && alive(pid)).then_some(pid)
    }

    /// The first line of `postmaster.pid`, if the file is there.
    fn pid_in_lock_file(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Crashes the server: SIGKILL to the postmaster (the pid in `postmaster.pid`) and, in the
    /// same `kill` call, to every process it started, so that the whole server dies at once
    /// as on a machine crash (the OS page cache survives, though). Returns the postmaster's pid
    /// once none of them runs any more.
    ///
    /// Killing only the postmaster would not crash the transactions in flight: a backend checks
    /// for a dead postmaster only when it sleeps waiting for its client, and may run "through
    /// multiple queries if we never have to wait for read" (`secure_read`, PostgreSQL's
    /// `be-secure.c`), COMMIT included. That happened here: a save cut that way returned `Ok`
    /// (its commit made durable by the orphaned backend). Correct for PostgreSQL, no fault of
    /// the persist backend, but not a crash of the save.
    pub fn kill(&mut self) -> u32 {
        let pid = self.postmaster_pid().expect("the cluster is running");
        let mut processes = vec![pid];
        processes.extend(children_of(pid));
        // One call, postmaster first: no child outlives it long enough to serve a client, and
        // the postmaster never sees a child die (it would restart the others itself).
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(processes.iter().map(|p| p.to_string()))
            .status()
            .expect("run kill");
        // A process forked after the listing (a new backend) dies on its own, postmaster gone.
        if let Some(pid) = wait_gone(&processes) {
            panic!("process {pid} of the killed cluster is still running after {PATIENCE:?}");
        }
        pid
    }

    /// Stops the server the way a crash would leave it (`pg_ctl stop -m immediate`: no
    /// shutdown checkpoint; the next start runs crash recovery).
    pub fn stop_immediate(&mut self) {
        let out = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {}", self.failure(&out));
    }

    /// Starts the server again on the same data directory and port (crash recovery runs if it
    /// crashed) and returns once it accepts connections. Retries while PostgreSQL refuses to
    /// start, e.g. because a process of the killed server still holds its shared memory.
    /// Returns how many `pg_ctl start` it took.
    pub fn restart(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        // A killed postmaster left its pid in `postmaster.pid`, and PostgreSQL refuses to start
        // while that pid exists: it cannot tell the zombie of an orphan (until init reaps it,
        // which can take seconds) from a live postmaster. Wait for the reaping.
        if let Some(old) = self.pid_in_lock_file() {
            while stat(old).is_some_and(|(state, _)| state == 'Z') {
                assert!(
                    Instant::now() < deadline,
                    "the killed postmaster {old} is still a zombie after {PATIENCE:?} (init \
                     does not reap orphans here?): PostgreSQL will not start while it exists"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = self
                .pg_ctl()
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-w", "-t", "30", "-o", &options, "start"])
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not restart: {}",
                self.failure(&out)
            );
            eprintln!(
                "pg_ctl start failed (attempt {attempts}), retrying: {}",
                self.failure(&out)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // `pg_ctl -w` returned once the server accepted connections; make sure ours get in.
        loop {
            match postgres::Client::connect(&self.url, postgres::NoTls) {
                Ok(_) => return attempts,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "the restarted cluster refuses connections: {e}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl -D DATA`, as the cluster's owner.
    fn pg_ctl(&self) -> Command {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = match &self.os_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(pg_ctl);
                c
            }
            None => Command::new(pg_ctl),
        };
        command.arg("-D").arg(&self.data);
        command
    }

    /// What a failed `pg_ctl` said, with the end of the server's log.
    fn failure(&self, out: &Output) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        format!(
            "{}{}\nserver.log (last lines):\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            let mut processes = children_of(pid);
            processes.push(pid);
            let stopped = self
                .pg_ctl()
                .args(["-m", "immediate", "-w", "-t", "20", "stop"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !stopped {
                for pid in &processes {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
            let _ = wait_gone(&processes);
        }
        // Only ever the directory `ci/pg-server.sh` made.
        let ours = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("persist-pg."));
        if ours {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `$PERSIST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (as `ci/pg-server.sh`).
fn server_binaries() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(bin) = std::env::var_os("PERSIST_PG_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin)).filter(|b| usable(b));
    }
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| usable(bin))
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The state letter and parent pid of `pid` (from `/proc/PID/stat`), if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` runs (a zombie has exited: nobody may reap an orphan at once).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The running children of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat(child).is_some_and(|(s, ppid)| ppid == pid && s != 'Z'))
        .collect()
}

/// Waits until none of `processes` runs; returns one still running after [`PATIENCE`].
/// Never panics (it runs in `Drop`).
fn wait_gone(processes: &[u32]) -> Option<u32> {
    let deadline = Instant::now() + PATIENCE;
    while let Some(&pid) = processes.iter().find(|&&pid| alive(pid)) {
        if Instant::now() >= deadline {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
