//! What the `persist` binary's test files share: running the binary with a clean environment
//! and checking what it printed.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The output of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code (printing both streams if it differs) and that nothing panicked.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    /// Standard output as JSON (for `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// The binary with a clean environment (no key variables inherited, warnings only).
pub fn persist() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_persist"));
    cmd.env_remove("PERSIST_KEY_FILE")
        .env_remove("PERSIST_KEY")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path as the `&str` an argument list wants.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}
