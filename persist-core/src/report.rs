//! What a load found: the generation used, the data-loss window, and every generation rejected
//! on the way with the reason.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::envelope::Header;
use crate::persist::MigrationStep;
use crate::reject::{RejectKind, Rejection};
use crate::schema::Fingerprint;

/// The report of a successful load.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The state's schema name.
    pub name: String,
    /// Where it was loaded from (the backend's location).
    pub source: String,
    /// The generation used.
    pub sequence: u64,
    /// Its schema version (before migration).
    pub schema_version: u32,
    /// Its layout fingerprint (of that version), from the signed header.
    pub fingerprint: Fingerprint,
    /// When it was sealed.
    pub created_at: SystemTime,
    /// How old it was when loaded: the data-loss window if the program stopped just now.
    pub age: Duration,
    /// When the generation used is a delta, its base: the payload was rebuilt from the chain.
    pub base: Option<u64>,
    /// Migration steps applied, oldest first.
    pub migrations: Vec<MigrationStep>,
    /// Newer generations that were rejected, newest first (local ones first when the value
    /// was restored from off-site).
    pub rejected: Vec<Rejection>,
    /// Set when the local store had no valid generation and the value came from the off-site
    /// copy ([`crate::StoreConfig::off_site`]).
    pub restored_from: Option<RestoredFrom>,
    /// Set when [`crate::StoreConfig::recovery_log`] is on and this load could not be recorded
    /// in the backend's recovery log (the value is still returned).
    pub log_error: Option<String>,
}

/// Where a restored value came from and how it was written back locally.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

    /// The rejected generations that were not corrupt: newer state this load walked past only
    /// because [`WalkPast`](crate::WalkPast) allowed it.
    pub fn walked_past_authentic(&self) -> impl Iterator<Item = &Rejection> {
        self.rejected
            .iter()
            .filter(|r| r.kind() != RejectKind::Corrupt)
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
        if let Some(e) = &self.log_error {
            write!(f, "\n  NOT recorded in the recovery log: {e}")?;
        }
        let authentic = self.walked_past_authentic().count();
        if authentic > 0 {
            write!(
                f,
                "\n  WARNING: walked past {authentic} newer generation(s) that are not corrupt \
                 (StoreConfig::walk_past): this is NOT the newest state; they are kept"
            )?;
        }
        Ok(())
    }
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
            fingerprint: header.fingerprint,
            created_at,
            age: SystemTime::now()
                .duration_since(created_at)
                .unwrap_or_default(),
            base: None,
            migrations,
            rejected,
            restored_from: None,
            log_error: None,
        }
    }
}
