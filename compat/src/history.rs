//! The committed history of the snapshot files, from git.
//!
//! A snapshot or golden file "matches its history" when its bytes equal the version first
//! committed (the oldest commit of `HEAD` that touches the path): editing a committed file, even
//! in a later commit, is caught. That needs the *whole* history: outside a git checkout, in a
//! shallow clone (whose oldest commit is not the first), or when nothing under the snapshots
//! directory was ever committed, [`History::missing`] says why, and the checker refuses to run
//! unless told to accept each snapshot's internal consistency instead (see [`super`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CompatError, MissingHistory};

/// The first committed bytes of every file under a directory.
#[derive(Debug, Default)]
pub struct History {
    top: Option<PathBuf>,
    /// Repository-relative path → the commit that first added it.
    first_commit: HashMap<String, String>,
    /// Why the history is incomplete, if it is.
    missing: Option<MissingHistory>,
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
    /// Reads the history of `dir`. When it is incomplete, [`History::missing`] says why: `dir`
    /// is not inside a git work tree (or git is not installed), the repository is a shallow
    /// clone, or snapshot files exist but no commit touches `dir`. Without a work tree the
    /// history is empty; in a shallow clone it starts at the oldest commit fetched.
    pub fn of(dir: &Path) -> Result<Self, CompatError> {
        let has_files = has_files(dir);
        // The snapshots directory may not exist yet (first bless): ask git from its nearest
        // existing ancestor.
        let dir = dir.ancestors().find(|d| d.is_dir()).unwrap_or(dir);
        let not_a_checkout = |why: String| History {
            missing: Some(MissingHistory::NotAGitCheckout(why)),
            ..History::default()
        };
        let out = match git(dir, &["rev-parse", "--show-toplevel"]) {
            Ok(out) => out,
            Err(e) => return Ok(not_a_checkout(e.to_string())),
        };
        if !out.status.success() {
            return Ok(not_a_checkout(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let shallow = git(&top, &["rev-parse", "--is-shallow-repository"])
            .and_then(|o| check_status(o, "git rev-parse --is-shallow-repository"))?;
        let shallow = match String::from_utf8_lossy(&shallow.stdout).trim() {
            "true" => true,
            "false" => false,
            other => {
                return Err(CompatError::Git(format!(
                    "git rev-parse --is-shallow-repository answered {other:?} (git 2.15 or \
                     newer is needed)"
                )));
            }
        };
        let head = git(&top, &["rev-parse", "--verify", "-q", "HEAD"])?;
        if !head.status.success() {
            return Ok(History {
                top: Some(top),
                first_commit: HashMap::new(),
                missing: has_files.then_some(MissingHistory::NeverCommitted),
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
        let missing = if shallow {
            Some(MissingHistory::ShallowClone)
        } else if first_commit.is_empty() && has_files {
            Some(MissingHistory::NeverCommitted)
        } else {
            None
        };
        Ok(History {
            top: Some(top),
            first_commit,
            missing,
        })
    }

    /// Whether there is any history to compare with (a git checkout, maybe incomplete).
    pub fn available(&self) -> bool {
        self.top.is_some()
    }

    /// Why the history is incomplete; `None` when it is the whole history.
    pub fn missing(&self) -> Option<&MissingHistory> {
        self.missing.as_ref()
    }

    /// The history to check with once its incompleteness is accepted: none at all, so that
    /// each snapshot is checked against its own descriptor (a partial history would take a
    /// shallow clone's oldest commit for the first, or uncommitted files for committed ones).
    pub fn accept_missing(self) -> Self {
        match self.missing {
            None => self,
            Some(missing) => History {
                missing: Some(missing),
                ..History::default()
            },
        }
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

/// Whether `dir` holds any file one level down (`<state>/<file>`), i.e. something was blessed.
fn has_files(dir: &Path) -> bool {
    let Ok(states) = std::fs::read_dir(dir) else {
        return false;
    };
    states.flatten().any(|state| {
        std::fs::read_dir(state.path())
            .map(|mut files| files.any(|f| f.is_ok_and(|f| f.path().is_file())))
            .unwrap_or(false)
    })
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
