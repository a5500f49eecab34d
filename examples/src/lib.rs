//! What the examples share: where they keep their store, and their signing key.
//!
//! Run them from the workspace root:
//!
//! ```sh
//! cargo run --example first_save      # define a state, save it, load it back, view it in place
//! cargo run --example migration       # three versions of a state: old generations load migrated
//! cargo run --example checkpointing   # a training loop saving through a Checkpointer
//! cargo run --example replication     # off-site copies, and a restore after losing the disk
//! ```
//!
//! Each takes an optional directory (`cargo run --example first_save -- ./state`); without one
//! it works in a temporary directory removed at exit. Run `first_save` twice on the same
//! directory to see the second run recover the first run's state.

use std::path::{Path, PathBuf};

use persist_core::{Key, Keyring};

/// The directory named by the first argument, or a fresh temporary one.
pub struct ExampleDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl ExampleDir {
    /// The first command-line argument, or a temporary directory.
    pub fn from_args() -> std::io::Result<Self> {
        match std::env::args_os().nth(1) {
            Some(dir) => Ok(ExampleDir {
                path: PathBuf::from(dir),
                _temp: None,
            }),
            None => {
                let temp = tempfile::tempdir()?;
                Ok(ExampleDir {
                    path: temp.path().to_path_buf(),
                    _temp: Some(temp),
                })
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The examples' key ring. A constant key keeps the examples short; a program loads its key
/// with `Key::from_file` (a file of mode 0600) or `Key::from_env`, never from its source.
pub fn example_keyring() -> Keyring {
    Keyring::new(
        Key::from_bytes(b"persist example key: 32+ bytes, never for production".to_vec())
            .expect("long enough"),
    )
}
