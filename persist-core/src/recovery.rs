//! What a load found: the generation used, the data-loss window, and every generation rejected
//! on the way with the reason.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::backend::{Backend, BackendError};
use crate::envelope::{self, EnvelopeError, Header};
use crate::generation::{GenerationInfo, Listing};
use crate::persist::{CodecError, MigrationStep};
use crate::schema::Fingerprint;
use crate::store::LoadError;

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
         binary's type has {expected} (written by another build of the program?)"
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
    /// A key shaped like a generation's whose sequence number no store writes (0 or above
    /// [`crate::generation::MAX_SEQUENCE`]): not a generation, left alone.
    #[error("not a generation: sequence number outside 1..={max}", max = crate::generation::MAX_SEQUENCE)]
    SequenceOutOfRange,
}

/// What a rejection means for the state: whether a load may walk past the generation.
///
/// Only [`RejectKind::Corrupt`] generations are walked past by default. The others may hold
/// the newest authentic state, which a load must not silently replace with an older one, and
/// which retention never deletes; [`WalkPast`] opts in to walking past them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Not a generation, or damaged: it fails the length, magic, structure or the tag under a
    /// key the ring holds, or is no regular file. Provably not state this program wrote intact.
    Corrupt,
    /// Signed with a key id the ring lacks: it may be perfectly good state signed by another
    /// (an older, rotated or mistyped) key.
    Foreign,
    /// Authentic, but of a schema version, layout fingerprint, envelope or rkyv format this
    /// binary does not know: a newer release wrote it.
    TooNew,
    /// Authentic and of a known version, but its payload fails validation or a migration step
    /// (or its version is older than this binary migrates from).
    Undecodable,
    /// It could not be read (an I/O error, a permission): nothing is known about it.
    Unreadable,
}

impl RejectKind {
    /// What the operator should do about a generation of this kind.
    pub fn advice(self) -> &'static str {
        match self {
            RejectKind::Corrupt => "it is damaged or not a generation; older generations are used",
            RejectKind::Foreign => {
                "run the program with the key that signed it (as its signing key, or verify-only \
                 beside a new one: Keyring::with_verify_only)"
            }
            RejectKind::TooNew => {
                "a newer release of the program wrote it: deploy that release (or a newer one)"
            }
            RejectKind::Undecodable => {
                "it is authentic, but this binary's validation or migration rejects it: fix the \
                 migration (or deploy a release that still migrates from its version)"
            }
            RejectKind::Unreadable => "it could not be read: check the disk and its permissions",
        }
    }

    /// A short lower-case name: `corrupt`, `foreign`, `too new`, `undecodable`, `unreadable`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Corrupt => "corrupt",
            RejectKind::Foreign => "foreign",
            RejectKind::TooNew => "too new",
            RejectKind::Undecodable => "undecodable",
            RejectKind::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RejectReason {
    /// What this rejection means: see [`RejectKind`].
    pub fn kind(&self) -> RejectKind {
        use EnvelopeError as E;
        match self {
            RejectReason::Read(BackendError::NotAnObject { .. }) => RejectKind::Corrupt,
            RejectReason::Read(_) => RejectKind::Unreadable,
            RejectReason::SequenceOutOfRange => RejectKind::Corrupt,
            RejectReason::Envelope(e) => match e {
                E::UnknownKey(_) => RejectKind::Foreign,
                E::UnsupportedFormat { .. } | E::RkyvFormat { .. } | E::FutureVersion { .. } => {
                    RejectKind::TooNew
                }
                E::VersionTooOld { .. } => RejectKind::Undecodable,
                E::Truncated { .. }
                | E::BadMagic
                | E::BadTag
                | E::DamagedHeader { .. }
                | E::Reserved(_)
                | E::LengthMismatch { .. }
                | E::InvalidName(_)
                | E::WrongName { .. }
                | E::WrongSequence { .. } => RejectKind::Corrupt,
            },
            RejectReason::FingerprintMismatch { .. } => RejectKind::TooNew,
            RejectReason::Codec(CodecError::UnsupportedVersion(_)) => RejectKind::TooNew,
            RejectReason::Codec(_) => RejectKind::Undecodable,
        }
    }
}

/// Which authentic-but-unloadable generations a load may walk past to an older one
/// ([`crate::StoreConfig::walk_past`]). All `false` by default: the load stops with
/// [`LoadError::Blocked`] instead. Corrupt generations are always walked past. A generation
/// walked past this way is logged as an error and listed in the report; retention still never
/// deletes it.
///
/// ```
/// use persist_core::recovery::{RejectKind, WalkPast};
/// let rollback = WalkPast { too_new: true, ..WalkPast::default() };
/// assert!(rollback.allows(RejectKind::TooNew));
/// assert!(!rollback.allows(RejectKind::Foreign));
/// assert!(WalkPast::default().allows(RejectKind::Corrupt));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkPast {
    /// Walk past generations signed with a key the ring lacks.
    pub foreign: bool,
    /// Walk past generations of a version or layout this binary does not know (a rollback to an
    /// older release that must run on its own older generations).
    pub too_new: bool,
    /// Walk past authentic generations whose validation or migration fails.
    pub undecodable: bool,
    /// Walk past generations that cannot be read.
    pub unreadable: bool,
}

impl WalkPast {
    /// Walks past every kind of unloadable generation (the behaviour before kinds existed).
    pub const ALL: WalkPast = WalkPast {
        foreign: true,
        too_new: true,
        undecodable: true,
        unreadable: true,
    };

    /// Whether a load may walk past a generation of this kind.
    pub fn allows(&self, kind: RejectKind) -> bool {
        match kind {
            RejectKind::Corrupt => true,
            RejectKind::Foreign => self.foreign,
            RejectKind::TooNew => self.too_new,
            RejectKind::Undecodable => self.undecodable,
            RejectKind::Unreadable => self.unreadable,
        }
    }
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

impl Rejection {
    /// What the rejection means: see [`RejectKind`].
    pub fn kind(&self) -> RejectKind {
        self.reason.kind()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        let label = if kind == RejectKind::Corrupt {
            kind.as_str().to_string()
        } else {
            format!("{}, NOT corrupt", kind.as_str().to_uppercase())
        };
        write!(
            f,
            "generation {} ({}) [{label}]: {}",
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

    /// The rejected generations that were not corrupt: newer state this load walked past only
    /// because [`WalkPast`] allowed it.
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

/// How many times one walk re-lists after a generation vanished under it.
const MAX_RELISTS: usize = 64;

/// Walks the generations of `name` in `backend` from the newest back and returns the first one
/// `try_one` accepts: the whole of recovery, shared by [`crate::Store::load`],
/// [`crate::Store::open`] and [`crate::Store::newest_valid`].
///
/// - A corrupt generation (and any kind `walk_past` allows) is logged, listed with its reason,
///   and walked past.
/// - Any other kind stops the walk with [`LoadError::Blocked`]: an authentic generation this
///   program cannot use must not be silently replaced by an older one.
/// - A generation that vanished between listing and reading (`NotFound`) was deleted by a
///   writer's retention, so a newer one exists: the walk lists again and goes on, without
///   reporting it.
///
/// `NoGeneration` when there is none at all, `AllInvalid` (with every reason) when all are
/// corrupt: a fresh start and a disaster are different errors.
pub(crate) fn walk_back<R>(
    backend: &dyn Backend,
    name: &str,
    walk_past: WalkPast,
    mut try_one: impl FnMut(&GenerationInfo) -> Result<R, RejectReason>,
) -> Result<Accepted<R>, LoadError> {
    envelope::validate_name(name).map_err(LoadError::InvalidName)?;
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut tried = std::collections::BTreeSet::new();
    let mut relists = 0;
    let mut vanished = 0;
    'listing: loop {
        let listing = Listing::of(backend, name)?;
        if relists == 0 {
            rejected.extend(listing.beyond.iter().map(|key| Rejection {
                sequence: 0,
                key: key.clone(),
                reason: RejectReason::SequenceOutOfRange,
            }));
        }
        for generation in listing.generations.into_iter().rev() {
            if !tried.insert(generation.sequence) {
                continue;
            }
            let reason = match try_one(&generation) {
                Ok(value) => {
                    return Ok(Accepted {
                        value,
                        generation,
                        rejected,
                    });
                }
                Err(RejectReason::Read(BackendError::NotFound { .. })) => {
                    tracing::debug!(
                        name,
                        sequence = generation.sequence,
                        "generation vanished (superseded)"
                    );
                    vanished += 1;
                    if relists < MAX_RELISTS {
                        relists += 1;
                        continue 'listing;
                    }
                    continue;
                }
                Err(reason) => reason,
            };
            let rejection = Rejection {
                sequence: generation.sequence,
                key: generation.key,
                reason,
            };
            let kind = rejection.kind();
            if kind == RejectKind::Corrupt {
                tracing::warn!(name, rejection = %rejection, "generation rejected");
            } else if walk_past.allows(kind) {
                tracing::error!(name, rejection = %rejection, "walking past a generation that is not corrupt (StoreConfig::walk_past)");
            } else {
                return Err(LoadError::Blocked {
                    name: name.to_string(),
                    location: backend.location(),
                    kind,
                    generation: Box::new(rejection),
                    rejected,
                });
            }
            rejected.push(rejection);
        }
        break;
    }
    if tried.len() == vanished {
        return Err(LoadError::NoGeneration {
            name: name.to_string(),
            location: backend.location(),
        });
    }
    Err(LoadError::AllInvalid {
        name: name.to_string(),
        location: backend.location(),
        rejected,
    })
}
