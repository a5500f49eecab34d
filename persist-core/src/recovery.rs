//! What a load found: the generation used, the data-loss window, and every generation rejected
//! on the way with the reason.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::backend::BackendError;
use crate::envelope::EnvelopeError;
use crate::persist::{CodecError, MigrationStep};
use crate::schema::Fingerprint;

/// Why one generation was not used.
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// It could not be read.
    #[error("unreadable: {0}")]
    Read(#[from] BackendError),
    /// The envelope failed a check (truncated, bad tag, unknown key, wrong name, …).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The header's fingerprint is not the layout this binary has for that version: the type
    /// changed without a version bump.
    #[error(
        "layout fingerprint mismatch for {name} v{version}: the generation has {found}, this \
         binary's type has {expected} (changed without a version bump?)"
    )]
    FingerprintMismatch {
        /// The state's schema name.
        name: String,
        /// The schema version.
        version: u32,
        /// This binary's fingerprint for that version.
        expected: Fingerprint,
        /// The fingerprint in the signed header.
        found: Fingerprint,
    },
    /// The payload failed validation, decoding or migration.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A generation that was passed over.
#[derive(Debug)]
pub struct Rejection {
    /// Its sequence number (from its name).
    pub sequence: u64,
    /// Its key in the backend.
    pub key: String,
    /// Why.
    pub reason: RejectReason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generation {} ({}): {}",
            self.sequence, self.key, self.reason
        )
    }
}

/// The report of a successful load.
#[derive(Debug)]
pub struct RecoveryReport {
    /// The state's schema name.
    pub name: String,
    /// Where it was loaded from (the backend's location).
    pub source: String,
    /// The generation used.
    pub sequence: u64,
    /// Its schema version (before migration).
    pub schema_version: u32,
    /// When it was sealed.
    pub created_at: SystemTime,
    /// How old it was when loaded: the data-loss window if the program stopped just now.
    pub age: Duration,
    /// Migration steps applied, oldest first.
    pub migrations: Vec<MigrationStep>,
    /// Newer generations that were rejected, newest first.
    pub rejected: Vec<Rejection>,
}

impl RecoveryReport {
    /// True when the newest generation was used as it was (no fallback, no migration).
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.migrations.is_empty()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "recovered {} from generation {} (schema v{}) in {}",
            self.name, self.sequence, self.schema_version, self.source
        )?;
        write!(
            f,
            "  age: {:.3} s (data-loss window)",
            self.age.as_secs_f64()
        )?;
        for m in &self.migrations {
            write!(f, "\n  migrated v{} -> v{}", m.from, m.to)?;
        }
        for r in &self.rejected {
            write!(f, "\n  rejected {r}")?;
        }
        Ok(())
    }
}
