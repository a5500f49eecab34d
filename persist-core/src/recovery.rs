//! What a load found: the generation used, the data-loss window, and every generation rejected
//! on the way with the reason.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::backend::{Backend, BackendError};
use crate::envelope::{self, EnvelopeError, Header};
use crate::persist::{CodecError, MigrationStep};
use crate::schema::Fingerprint;
use crate::store::{GenerationInfo, LoadError, generations_in};

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
    /// Newer generations that were rejected, newest first (local ones first when the value
    /// was restored from off-site).
    pub rejected: Vec<Rejection>,
    /// Set when the local store had no valid generation and the value came from the off-site
    /// copy ([`crate::StoreConfig::off_site`]).
    pub restored_from: Option<RestoredFrom>,
}

/// Where a restored value came from and how it was written back locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredFrom {
    /// The off-site backend's location.
    pub location: String,
    /// The local generation it was written back as, if that succeeded.
    pub local_sequence: Option<u64>,
    /// Why writing it back locally failed, if it did (the value is still returned).
    pub write_back_error: Option<String>,
}

impl RecoveryReport {
    /// True when the newest generation was used as it was (no fallback, no migration).
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.migrations.is_empty() && self.restored_from.is_none()
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
        if let Some(r) = &self.restored_from {
            match (&r.local_sequence, &r.write_back_error) {
                (Some(seq), _) => write!(
                    f,
                    "\n  restored from off-site {}; written back locally as generation {seq}",
                    r.location
                )?,
                (None, Some(e)) => write!(
                    f,
                    "\n  restored from off-site {}; NOT written back locally: {e}",
                    r.location
                )?,
                (None, None) => write!(f, "\n  restored from off-site {}", r.location)?,
            }
        }
        for m in &self.migrations {
            write!(f, "\n  migrated v{} -> v{}", m.from, m.to)?;
        }
        for r in &self.rejected {
            write!(f, "\n  rejected {r}")?;
        }
        Ok(())
    }
}

/// The generation a walk back accepted, with what `try_one` made of it and the newer ones it
/// passed over.
pub(crate) struct Accepted<R> {
    /// What `try_one` returned for it.
    pub(crate) value: R,
    /// The generation.
    pub(crate) generation: GenerationInfo,
    /// Every newer generation rejected, newest first.
    pub(crate) rejected: Vec<Rejection>,
}

impl RecoveryReport {
    /// The report of a load that used generation `sequence` of `source`, whose authentic header
    /// is `header`.
    pub(crate) fn new(
        source: String,
        sequence: u64,
        header: &Header,
        migrations: Vec<MigrationStep>,
        rejected: Vec<Rejection>,
    ) -> Self {
        let created_at = header.created_at();
        RecoveryReport {
            name: header.name.clone(),
            source,
            sequence,
            schema_version: header.schema_version,
            created_at,
            age: SystemTime::now()
                .duration_since(created_at)
                .unwrap_or_default(),
            migrations,
            rejected,
            restored_from: None,
        }
    }
}

/// Walks the generations of `name` in `backend` from the newest back and returns the first one
/// `try_one` accepts. Each one it rejects is logged and listed with its reason; that is the
/// whole of recovery, shared by [`crate::Store::load`] and [`crate::Store::open`].
///
/// `NoGeneration` when there is none at all, `AllInvalid` (with every reason) when none is
/// accepted: a fresh start and a disaster are different errors.
pub(crate) fn walk_back<R>(
    backend: &dyn Backend,
    name: &str,
    mut try_one: impl FnMut(&GenerationInfo) -> Result<R, RejectReason>,
) -> Result<Accepted<R>, LoadError> {
    envelope::validate_name(name).map_err(LoadError::InvalidName)?;
    let generations = generations_in(backend, name)?;
    if generations.is_empty() {
        return Err(LoadError::NoGeneration {
            name: name.to_string(),
            location: backend.location(),
        });
    }
    let mut rejected = Vec::new();
    for generation in generations.into_iter().rev() {
        match try_one(&generation) {
            Ok(value) => {
                return Ok(Accepted {
                    value,
                    generation,
                    rejected,
                });
            }
            Err(reason) => {
                tracing::warn!(name, sequence = generation.sequence, %reason, "generation rejected");
                rejected.push(Rejection {
                    sequence: generation.sequence,
                    key: generation.key,
                    reason,
                });
            }
        }
    }
    Err(LoadError::AllInvalid {
        name: name.to_string(),
        location: backend.location(),
        rejected,
    })
}
