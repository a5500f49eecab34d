//! Why a generation was not used, and what that means for the state: the vocabulary every
//! load, check and retention decision shares.

use std::fmt;

use crate::backend::BackendError;
use crate::envelope::EnvelopeError;
use crate::persist::CodecError;
use crate::schema::Fingerprint;

/// Why one generation was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("not a generation: sequence number outside 1..=9007199254740991 (2^53 - 1)")]
    SequenceOutOfRange,
    /// A snapshot manifest's member failed: the snapshot is not whole. Its kind is the member's.
    #[error("member {name} (generation {sequence}): {reason}")]
    Member {
        /// The member state's name.
        name: String,
        /// The generation the manifest lists.
        sequence: u64,
        /// Why that generation failed.
        reason: Box<RejectReason>,
    },
    /// The generation a snapshot manifest lists is missing, or is not the one it lists (another
    /// tag, version or fingerprint): the snapshot is not whole.
    #[error("member {name}: generation {sequence} {what}")]
    MemberMissing {
        /// The member state's name.
        name: String,
        /// The generation the manifest lists.
        sequence: u64,
        /// `is missing`, or what differs.
        what: &'static str,
    },
    /// A delta's base generation is missing: the delta cannot be rebuilt.
    #[error("delta: its base generation {base} is missing")]
    BaseMissing {
        /// The base's sequence number (in the delta's signed header).
        base: u64,
    },
    /// A delta's base is not the generation it was made from (a delta grafted onto another
    /// base), or lacks a chunk the delta refers to.
    #[error("delta: its base generation {base} {what}")]
    BaseMismatch {
        /// The base's sequence number.
        base: u64,
        /// What does not match.
        what: &'static str,
    },
    /// A link of a delta's chain failed: the delta is as unusable as that link. Its kind is the
    /// link's (a corrupt base makes its deltas corrupt; a base signed by another key makes them
    /// foreign).
    #[error("delta: its chain's generation {base} failed: {reason}")]
    BaseRejected {
        /// The sequence number of the link that failed.
        base: u64,
        /// Why it failed.
        reason: Box<RejectReason>,
    },
}

/// What a rejection means for the state: whether a load may walk past the generation.
///
/// Only [`RejectKind::Corrupt`] generations are walked past by default. The others may hold
/// the newest authentic state, which a load must not silently replace with an older one, and
/// which retention never deletes; [`WalkPast`] opts in to walking past them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
                | E::WrongSequence { .. }
                | E::BadChunkTable(_)
                | E::ChunkDigest { .. }
                | E::ChainTooLong { .. } => RejectKind::Corrupt,
                // Only a reader without a backend says this: it cannot tell.
                E::NeedsBase { .. } => RejectKind::Unreadable,
            },
            // A delta whose chain cannot be rebuilt is no state anyone can read.
            RejectReason::BaseMissing { .. } | RejectReason::BaseMismatch { .. } => {
                RejectKind::Corrupt
            }
            RejectReason::BaseRejected { reason, .. } => reason.kind(),
            RejectReason::FingerprintMismatch { .. } => RejectKind::TooNew,
            RejectReason::Codec(CodecError::UnsupportedVersion(_)) => RejectKind::TooNew,
            RejectReason::Codec(_) => RejectKind::Undecodable,
            RejectReason::Member { reason, .. } => match reason.as_ref() {
                // A member deleted or unreadable as a file breaks the snapshot, not its state.
                RejectReason::Read(BackendError::NotFound { .. }) => RejectKind::Corrupt,
                inner => inner.kind(),
            },
            RejectReason::MemberMissing { .. } => RejectKind::Corrupt,
        }
    }
}

/// Which authentic-but-unloadable generations a load may walk past to an older one
/// ([`crate::StoreConfig::walk_past`]). All `false` by default: the load stops with
/// [`crate::LoadError::Blocked`] instead. Corrupt generations are always walked past. A generation
/// walked past this way is logged as an error and listed in the report; retention still never
/// deletes it.
///
/// ```
/// use persist_core::{RejectKind, WalkPast};
/// let rollback = WalkPast::default().allow(RejectKind::TooNew);
/// assert!(rollback.allows(RejectKind::TooNew));
/// assert!(!rollback.allows(RejectKind::Foreign));
/// assert!(WalkPast::default().allows(RejectKind::Corrupt));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

    /// Also walks past generations of `kind` (corrupt ones are always walked past).
    #[must_use]
    pub fn allow(mut self, kind: RejectKind) -> Self {
        match kind {
            RejectKind::Corrupt => {}
            RejectKind::Foreign => self.foreign = true,
            RejectKind::TooNew => self.too_new = true,
            RejectKind::Undecodable => self.undecodable = true,
            RejectKind::Unreadable => self.unreadable = true,
        }
        self
    }

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
