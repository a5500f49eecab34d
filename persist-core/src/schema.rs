//! Layout fingerprints and the rkyv format a payload is written in.
//!
//! A fingerprint is the SHA-256 of a type's canonical layout descriptor. `#[persist(...)]` and
//! `#[derive(Persist)]` build that descriptor by trait composition ([`crate::layout`]); a
//! hand-written [`crate::Persist`] impl passes its own descriptor text to
//! [`Fingerprint::of_descriptor`].

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of a type's canonical layout descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hashes a canonical descriptor, with a domain-separation prefix and the rkyv format of this
    /// build (so a change of rkyv format changes every fingerprint).
    ///
    /// ```
    /// use persist_core::Fingerprint;
    /// let a = Fingerprint::of_descriptor("struct Pos { ticket: u64, price: f64 }");
    /// let b = Fingerprint::of_descriptor("struct Pos { price: f64, ticket: u64 }");
    /// assert_ne!(a, b);
    /// ```
    pub fn of_descriptor(descriptor: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"persist/layout/v1\0");
        h.update([RkyvFormat::CURRENT.version, RkyvFormat::CURRENT.flags]);
        h.update(descriptor.as_bytes());
        Fingerprint(h.finalize().into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &hex::encode(&self.0[..8]))
    }
}

/// The rkyv format of a payload: rkyv's minor version (0.8 → 8) and its format flags.
///
/// The workspace pins rkyv's format features (`little_endian`, `aligned`, `pointer_width_32`);
/// a build with other features writes another format, which readers reject rather than misread.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RkyvFormat {
    /// rkyv's release line: 8 for 0.8.
    pub version: u8,
    /// Bit 0: little endian; bit 1: aligned primitives; bits 2–3: pointer width (0 = 16,
    /// 1 = 32, 2 = 64 bits).
    pub flags: u8,
}

impl RkyvFormat {
    /// The format of this build.
    pub const CURRENT: RkyvFormat = RkyvFormat {
        version: 8,
        flags: Self::current_flags(),
    };

    const fn current_flags() -> u8 {
        // The workspace enables rkyv's `little_endian`, `aligned` and `pointer_width_32`
        // features (see the root Cargo.toml); rkyv refuses to build with conflicting ones.
        let endian = 1;
        let aligned = 1 << 1;
        let width = 1 << 2;
        endian | aligned | width
    }
}

impl fmt::Display for RkyvFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = match (self.flags >> 2) & 3 {
            0 => "16",
            1 => "32",
            2 => "64",
            _ => "?",
        };
        write!(
            f,
            "rkyv 0.{} ({}, {}, {}-bit offsets)",
            self.version,
            if self.flags & 1 != 0 { "LE" } else { "BE" },
            if self.flags & 2 != 0 {
                "aligned"
            } else {
                "unaligned"
            },
            width
        )
    }
}
