//! Snapshot files (`v<N>.schema`: the layout descriptor, its field paths and fingerprint, as
//! text) and golden generation files (`v<N>.pst`: a signed generation of a sample value).

use std::fmt::Write as _;

use persist_core::format;
use persist_core::{Expect, Header};
use persist_core::{Fingerprint, Keyring, RkyvFormat};

use super::{CompatError, SchemaEntry, descriptor};

/// A parsed snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The state's name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The fingerprint, hex.
    pub fingerprint: String,
    /// The full descriptor.
    pub descriptor: String,
}

/// The text of a snapshot file.
pub fn render(name: &str, version: u32, descriptor_text: &str) -> String {
    let fingerprint = Fingerprint::of_descriptor(descriptor_text);
    let mut out = format!(
        "# Layout snapshot of state `{name}` version {version}, written by `cargo xtask schema bless`.\n\
         # Immutable once committed: a changed layout needs a new version.\n\
         name: {name}\nversion: {version}\nfingerprint: {fingerprint}\ndescriptor: {descriptor_text}\nfields:\n"
    );
    for line in descriptor::flatten(descriptor_text).unwrap_or_default() {
        let path = if line.path.is_empty() {
            "(root)"
        } else {
            &line.path
        };
        let _ = writeln!(out, "  {path}: {}", line.summary);
    }
    out
}

/// Parses a snapshot file's text.
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
            .map(str::to_string)
            .ok_or_else(|| format!("no `{key}:` line"))
    };
    Ok(Snapshot {
        name: field("name")?,
        version: field("version")?
            .parse()
            .map_err(|e| format!("version: {e}"))?,
        fingerprint: field("fingerprint")?,
        descriptor: field("descriptor")?,
    })
}

/// Whether a snapshot's text is exactly what `bless` writes for its own descriptor (its
/// fingerprint and field list agree with its descriptor): the check used without git history.
pub fn self_consistent(text: &str) -> bool {
    parse(text).is_ok_and(|s| render(&s.name, s.version, &s.descriptor) == text)
}

/// A golden generation of `entry`: its sample value, sealed with `ring` as sequence `version`,
/// created at time 0 (so the bytes are deterministic).
pub fn golden(entry: &SchemaEntry, ring: &Keyring) -> Result<Vec<u8>, CompatError> {
    let payload = (entry.encode_sample)().map_err(CompatError::Sample)?;
    let header = Header {
        key_id: ring.current().id(),
        name: entry.name.to_string(),
        schema_version: entry.version,
        fingerprint: entry.fingerprint,
        rkyv_format: RkyvFormat::CURRENT,
        sequence: u64::from(entry.version),
        created_at_nanos: 0,
        payload_len: 0,
    };
    format::seal(ring, header, &payload).map_err(CompatError::Envelope)
}

/// Loads golden bytes of `entry`'s version through the chain of the current type, and returns
/// the value's `{:#?}` rendering. `Err` says why it does not load, as diff lines.
pub fn load_golden(
    entry: &SchemaEntry,
    ring: &Keyring,
    bytes: &[u8],
) -> Result<String, Vec<String>> {
    let expect = Expect {
        name: Some(entry.name),
        sequence: None,
        min_version: Some(entry.oldest_version),
        max_version: Some(entry.current_version),
    };
    let opened =
        format::open(ring, bytes, &expect).map_err(|e| vec![format!("envelope rejected: {e}")])?;
    let h = &opened.header;
    if h.schema_version != entry.version {
        return Err(vec![format!(
            "header says version {}, the file is v{}",
            h.schema_version, entry.version
        )]);
    }
    if Some(h.fingerprint) != entry.chain_fingerprint {
        return Err(vec![
            format!("- fingerprint signed in the golden file: {}", h.fingerprint),
            match entry.chain_fingerprint {
                Some(f) => format!(
                    "+ fingerprint the current type expects for v{}: {f}",
                    h.schema_version
                ),
                None => format!("+ the current type has no v{}", h.schema_version),
            },
        ]);
    }
    let load = entry.load_debug;
    let payload = opened.payload;
    match std::panic::catch_unwind(|| load(h.schema_version, payload)) {
        Ok(Ok(rendering)) => Ok(rendering),
        Ok(Err(e)) => Err(vec![format!("decode/migration failed: {e}")]),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(vec![format!("migration panicked: {what}")])
        }
    }
}
