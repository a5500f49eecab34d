//! Where the signing key comes from, and writing a key file safely.
//!
//! Order: `--key FILE` (or `PERSIST_KEY_FILE`, which clap maps onto `--key`), then `PERSIST_KEY`
//! holding the key in hex. A key file must have mode 0600 or stricter.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use persist_core::KEY_ENV;
use persist_core::{Key, KeyError};

use crate::error::CliError;

/// The key given on the command line or in the environment, if any.
pub fn resolve(key_file: Option<&Path>) -> Result<Option<Key>, CliError> {
    if let Some(path) = key_file {
        return Key::from_file(path)
            .map(Some)
            .map_err(|source| CliError::Key {
                from: format!("key file {}", path.display()),
                source,
            });
    }
    match Key::from_env(KEY_ENV) {
        Ok(key) => Ok(Some(key)),
        Err(KeyError::EnvMissing { .. }) => Ok(None),
        Err(source) => Err(CliError::Key {
            from: format!("environment variable {KEY_ENV}"),
            source,
        }),
    }
}

/// The key given on the command line or in the environment; its absence is an error.
pub fn require(key_file: Option<&Path>) -> Result<Key, CliError> {
    resolve(key_file)?.ok_or(CliError::MissingKey)
}

/// Loads the key file at `path`, or creates it with a new random key if it does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(Key, bool), CliError> {
    let load = |path: &Path| {
        Key::from_file(path).map_err(|source| CliError::Key {
            from: format!("key file {}", path.display()),
            source,
        })
    };
    if fs::symlink_metadata(path).is_ok() {
        return Ok((load(path)?, false));
    }
    let key = Key::generate().map_err(CliError::GenerateKey)?;
    match write_key_file(path, &key, false) {
        Ok(()) => Ok((key, true)),
        // Another process created it meanwhile: use theirs.
        Err(CliError::KeyExists { .. }) => Ok((load(path)?, false)),
        Err(e) => Err(e),
    }
}

/// Writes `key` to `path` with mode 0600, durably and atomically: the bytes go to a new temp
/// file (created exclusively, mode 0600) in the same directory, which is fsynced and then linked
/// to `path` (refusing an existing file) or, with `force`, renamed over it; then the directory is
/// fsynced. A crash leaves either no key file or a complete one, never a partial key.
pub fn write_key_file(path: &Path, key: &Key, force: bool) -> Result<(), CliError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io { op, path, source }
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(CliError::KeyExists {
            path: path.to_path_buf(),
        });
    }
    let file_name = path.file_name().ok_or_else(|| CliError::Io {
        op: "write a key file at",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let temp = dir.join(format!(
        ".{}.{}.{nanos}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("create", &temp))?;
        file.write_all(key.secret()).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("fsync", &temp))?;
        drop(file);
        if force {
            fs::rename(&temp, path).map_err(io("replace", path))?;
        } else {
            fs::hard_link(&temp, path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    CliError::KeyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io("create", path)(source)
                }
            })?;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", &dir))
    })();
    // After a rename the temp name is gone; after a link (or a failure) it must go.
    if fs::symlink_metadata(&temp).is_ok()
        && let Err(e) = fs::remove_file(&temp)
    {
        tracing::warn!(path = %temp.display(), error = %e, "cannot remove temp key file");
    }
    result
}
