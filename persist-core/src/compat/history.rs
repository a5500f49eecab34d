//! The committed history of the snapshot files, from git.
//!
//! A snapshot or golden file "matches its history" when its bytes equal the version first
//! committed (the oldest commit of `HEAD` that touches the path): editing a committed file, even
//! in a later commit, is caught. Outside a git checkout there is no history, and the checker
//! falls back to each snapshot's internal consistency (see [`super`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::CompatError;

/// The first committed bytes of every file under a directory.
#[derive(Debug, Default)]
pub struct History {
    top: Option<PathBuf>,
    /// Repository-relative path → the commit that first added it.
    first_commit: HashMap<String, String>,
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, CompatError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| CompatError::Git(format!("cannot run git: {e}")))
}

impl History {
    /// Reads the history of `dir`; an empty history when `dir` is not inside a git work tree
    /// (or git is not installed, or the repository has no commit yet).
    pub fn of(dir: &Path) -> Result<Self, CompatError> {
        // The snapshots directory may not exist yet (first bless): ask git from its nearest
        // existing ancestor.
        let dir = dir.ancestors().find(|d| d.is_dir()).unwrap_or(dir);
        let Ok(out) = git(dir, &["rev-parse", "--show-toplevel"]) else {
            return Ok(History::default());
        };
        if !out.status.success() {
            return Ok(History::default());
        }
        let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let head = git(&top, &["rev-parse", "--verify", "-q", "HEAD"])?;
        if !head.status.success() {
            return Ok(History {
                top: Some(top),
                first_commit: HashMap::new(),
            });
        }
        // Only the history of the snapshots directory (`.` relative to it).
        let out = git(
            dir,
            &[
                "log",
                "--reverse",
                "--format=commit %H",
                "--name-only",
                "--no-renames",
                "HEAD",
                "--",
                ".",
            ],
        )
        .and_then(|o| check_status(o, "git log"))?;
        let mut first_commit = HashMap::new();
        let mut commit = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(c) = line.strip_prefix("commit ") {
                commit = c.to_string();
            } else if !line.is_empty() {
                first_commit
                    .entry(line.to_string())
                    .or_insert_with(|| commit.clone());
            }
        }
        Ok(History {
            top: Some(top),
            first_commit,
        })
    }

    /// Whether history is available (a git checkout).
    pub fn available(&self) -> bool {
        self.top.is_some()
    }

    /// The bytes of `path` as first committed; `None` if it was never committed.
    pub fn first_committed(&self, path: &Path) -> Result<Option<Vec<u8>>, CompatError> {
        let Some(top) = &self.top else {
            return Ok(None);
        };
        let abs = std::path::absolute(path)
            .map_err(|e| CompatError::Git(format!("{}: {e}", path.display())))?;
        let top_abs = top.canonicalize().unwrap_or_else(|_| top.clone());
        let parent = abs
            .parent()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
        let Some(parent) = parent else {
            return Ok(None);
        };
        let Ok(rel_dir) = parent.strip_prefix(&top_abs) else {
            return Ok(None);
        };
        let Some(file) = abs.file_name() else {
            return Ok(None);
        };
        let rel = rel_dir.join(file).to_string_lossy().replace('\\', "/");
        let Some(commit) = self.first_commit.get(&rel) else {
            return Ok(None);
        };
        let out = git(top, &["show", &format!("{commit}:{rel}")])
            .and_then(|o| check_status(o, "git show"))?;
        Ok(Some(out.stdout))
    }
}

fn check_status(
    out: std::process::Output,
    what: &str,
) -> Result<std::process::Output, CompatError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(CompatError::Git(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
