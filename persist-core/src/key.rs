//! Signing keys and the key ring.
//!
//! Every generation is signed with HMAC-SHA256. There is no unsigned mode: a store always has a
//! [`Keyring`] with a current key that signs, and any number of older keys that still verify (so
//! a key can be rotated without losing the generations it signed).
//!
//! A key's id is derived from the key itself (the first 8 bytes of
//! `SHA-256("persist/key-id/v1" || key)`), so a key file needs no metadata and two different keys
//! cannot share an id by accident. The id is stored in every envelope header; it selects the key
//! that verifies the tag. It reveals nothing useful about the key.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The smallest key accepted, in bytes (the output size of SHA-256).
pub const MIN_KEY_LEN: usize = 32;

/// The largest key file read, in bytes.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// The environment variable that may hold a hex-encoded key (`persist` also reads
/// `PERSIST_KEY_FILE` for a key file).
pub const KEY_ENV: &str = "PERSIST_KEY";

const KEY_ID_DOMAIN: &[u8] = b"persist/key-id/v1";

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than [`MIN_KEY_LEN`].
    #[error("key is {len} bytes; at least {MIN_KEY_LEN} bytes are required")]
    TooShort {
        /// The length found.
        len: usize,
    },
    /// The key file can be read by its group or by others.
    #[error(
        "key file {path} has mode {mode:04o}: it is readable by group or others; \
         run `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a regular file (a FIFO, a device such as `/dev/zero`, a directory):
    /// a key must be a regular file, so that reading it can neither block nor be endless.
    #[error("key file {path} is a {what}, not a regular file")]
    NotRegular {
        /// The key file.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The key file is larger than any key ([`MAX_KEY_FILE_LEN`]).
    #[error("key file {path} is {len} bytes; a key file holds at most {MAX_KEY_FILE_LEN}")]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The environment variable is unset.
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// The variable's name.
        var: String,
    },
    /// The environment variable does not hold hex.
    #[error("environment variable {var} must hold the key as hex digits")]
    EnvNotHex {
        /// The variable's name.
        var: String,
    },
    /// Key text that is not hex.
    #[error("a key given as text must be hex digits")]
    NotHex,
    /// The operating system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(#[source] getrandom::Error),
}

/// An 8-byte key identifier, derived from the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A secret HMAC key of at least 32 bytes. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct Key {
    secret: Vec<u8>,
    id: KeyId,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Wraps raw key bytes.
    ///
    /// ```
    /// use persist_core::Key;
    /// assert!(Key::from_bytes(vec![7; 32]).is_ok());
    /// assert!(Key::from_bytes(vec![7; 16]).is_err());
    /// ```
    pub fn from_bytes(secret: Vec<u8>) -> Result<Self, KeyError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN);
        h.update(&secret);
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Ok(Key {
            secret,
            id: KeyId(id),
        })
    }

    /// Generates a new random 32-byte key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut secret = vec![0u8; MIN_KEY_LEN];
        getrandom::fill(&mut secret).map_err(KeyError::Random)?;
        Key::from_bytes(secret)
    }

    /// Reads a key file holding the raw key bytes. The file must be a regular file (a symbolic
    /// link to one is fine) of at most [`MAX_KEY_FILE_LEN`] bytes, not readable by its group or
    /// by others (mode `0600` or stricter), as for an SSH private key.
    ///
    /// The file is opened once, without blocking (a FIFO cannot stall the program), and every
    /// check is made on the open descriptor, so nothing can be swapped in between a check and
    /// the read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = options.open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if let Some(what) = not_regular(&meta) {
            return Err(KeyError::NotRegular {
                path: path.to_path_buf(),
                what,
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyError::InsecurePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(KeyError::TooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let mut secret = Vec::new();
        file.take(MAX_KEY_FILE_LEN)
            .read_to_end(&mut secret)
            .map_err(io)?;
        Key::from_bytes(secret)
    }

    /// Reads a hex-encoded key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::EnvMissing {
            var: var.to_string(),
        })?;
        Key::from_hex(&text).map_err(|e| match e {
            KeyError::NotHex => KeyError::EnvNotHex {
                var: var.to_string(),
            },
            other => other,
        })
    }

    /// Parses a hex-encoded key (surrounding white space ignored).
    ///
    /// ```
    /// let key = persist_core::Key::from_hex(&"ab".repeat(32)).unwrap();
    /// assert_eq!(key.secret(), &[0xab; 32]);
    /// ```
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?;
        Key::from_bytes(bytes)
    }

    /// The key's identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The raw secret (for writing a key file).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// What a path's metadata says it is instead of a regular file, if it is anything else.
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("FIFO");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("device");
        }
        if t.is_socket() {
            return Some("socket");
        }
    }
    Some("special file")
}

/// The keys a store signs and verifies with: one current key that signs, and older keys that
/// only verify.
///
/// ```
/// use persist_core::{Key, Keyring};
/// let old = Key::from_bytes(vec![1; 32]).unwrap();
/// let new = Key::from_bytes(vec![2; 32]).unwrap();
/// let ring = Keyring::new(new.clone()).with_verify_only(old.clone());
/// assert_eq!(ring.current().id(), new.id());
/// assert!(ring.get(old.id()).is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    others: Vec<Key>,
}

impl Keyring {
    /// A ring whose current (signing) key is `current`.
    pub fn new(current: Key) -> Self {
        Keyring {
            current,
            others: Vec::new(),
        }
    }

    /// Adds a key that verifies old generations but never signs.
    pub fn with_verify_only(mut self, key: Key) -> Self {
        if key.id() != self.current.id() && self.get(key.id()).is_none() {
            self.others.push(key);
        }
        self
    }

    /// The signing key.
    pub fn current(&self) -> &Key {
        &self.current
    }

    /// Every key of the ring, the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(&self.others)
    }

    /// The key with this id, if the ring holds it.
    pub fn get(&self, id: KeyId) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id() == id)
    }
}
