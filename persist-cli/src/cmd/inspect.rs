//! `persist inspect FILE [--json]`: a generation file's header and, given a key, whether it
//! verifies.
//!
//! The header is decoded without verification first (its fields are untrusted until the tag
//! verifies). When the path looks like `<name>/<20 digits>.pst`, verification also expects that
//! name and sequence, as a load would.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::format;
use persist_core::format::TAG_LEN;
use persist_core::format::parse_generation_key;
use persist_core::{EnvelopeError, Expect};
use persist_core::{Header, Keyring};
use serde::Serialize;

use crate::error::{CliError, Status, write_json};
use crate::{keys, outln, time};

/// Arguments of `persist inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The generation file (`<store>/<name>/<sequence>.pst`).
    file: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

/// What `inspect` found.
#[derive(Debug, Serialize)]
struct Report {
    path: String,
    size: u64,
    /// The header as decoded, unverified unless `verification.ok`.
    header: Option<HeaderFields>,
    /// Why the header could not be decoded.
    header_error: Option<String>,
    /// The name and sequence expected from the file's path.
    expected: Option<ExpectedFromPath>,
    verification: Verification,
}

#[derive(Debug, Serialize)]
struct HeaderFields {
    format_version: u16,
    name: String,
    schema_version: u32,
    fingerprint: String,
    rkyv_format: String,
    sequence: u64,
    created_at: String,
    created_at_unix_nanos: u64,
    payload_len: u64,
    key_id: String,
    /// Whether the header's lengths account for the file's size.
    length_consistent: bool,
    /// A chunked generation's (format 3) chunk header: full or delta, and a delta's base.
    chunks: Option<ChunkFields>,
}

/// The chunk header of a format-3 generation (unverified unless `verification.ok`).
#[derive(Debug, Serialize)]
struct ChunkFields {
    /// `full` or `delta`.
    kind: &'static str,
    /// A delta's base generation.
    base_sequence: Option<u64>,
    /// How many deltas lead back to a full generation (0 for a full one).
    depth: u32,
    /// Chunks of the payload.
    chunk_count: u32,
    /// Bytes of the payload this file carries (the rest is its base's).
    literal_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ExpectedFromPath {
    name: String,
    sequence: u64,
}

#[derive(Debug, Serialize)]
struct Verification {
    /// Whether a key was given.
    checked: bool,
    /// Whether the envelope verifies (tag, structure, expected name and sequence).
    ok: bool,
    /// The id of the key given.
    key_id: Option<String>,
    /// Why it does not verify.
    error: Option<String>,
}

/// Inspects the file.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::resolve(key_file)?;
    // Only regular files: reading a device or a FIFO could block or never end.
    let meta = std::fs::metadata(&args.file).map_err(|source| CliError::Io {
        op: "read",
        path: args.file.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(CliError::NotAFile {
            path: args.file.clone(),
        });
    }
    let bytes = std::fs::read(&args.file).map_err(|source| CliError::Io {
        op: "read",
        path: args.file.clone(),
        source,
    })?;
    let (header, header_error) = match Header::decode_unverified(&bytes) {
        Ok(h) => (Some(h), None),
        Err(e) => (None, Some(e)),
    };
    let expected = expected_from_path(&args.file);
    let verification = match (&key, &header_error) {
        (None, _) => Verification {
            checked: false,
            ok: false,
            key_id: None,
            error: None,
        },
        (Some(key), _) => {
            let expect = Expect {
                name: expected.as_ref().map(|e| e.name.as_str()),
                sequence: expected.as_ref().map(|e| e.sequence),
                ..Expect::default()
            };
            // A delta verifies on its own (tag, table, its chunks); `persist verify` checks
            // its chain.
            let result = format::open_sealed(&Keyring::new(key.clone()), &bytes, &expect);
            Verification {
                checked: true,
                ok: result.is_ok(),
                key_id: Some(key.id().to_string()),
                error: result.err().map(|e: EnvelopeError| e.to_string()),
            }
        }
    };
    let size = bytes.len() as u64;
    let report = Report {
        path: args.file.display().to_string(),
        size,
        header: header.map(|h| fields(&h, &bytes)),
        header_error: header_error.map(|e| e.to_string()),
        expected,
        verification,
    };
    let failed =
        report.header.is_none() || (report.verification.checked && !report.verification.ok);
    if args.json {
        write_json(out, &report)?;
    } else {
        print(&report, out)?;
    }
    Ok(if failed {
        Status::VerificationFailed
    } else {
        Status::Ok
    })
}

fn fields(h: &Header, bytes: &[u8]) -> HeaderFields {
    let format_version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let head = &bytes[..format::HEAD_LEN.min(bytes.len())];
    let chunks = (format_version == format::CHUNKED_FORMAT)
        .then(|| format::ChunkHeader::decode_unverified(bytes))
        .flatten()
        .map(|c| ChunkFields {
            kind: if c.is_delta() { "delta" } else { "full" },
            base_sequence: c.is_delta().then_some(c.base_sequence),
            depth: c.depth,
            chunk_count: c.chunk_count,
            literal_bytes: c.literal_len,
        });
    HeaderFields {
        chunks,
        format_version,
        name: h.name.clone(),
        schema_version: h.schema_version,
        fingerprint: h.fingerprint.to_string(),
        rkyv_format: h.rkyv_format.to_string(),
        sequence: h.sequence,
        created_at: time::rfc3339(h.created_at_nanos),
        created_at_unix_nanos: h.created_at_nanos,
        payload_len: h.payload_len,
        key_id: h.key_id.to_string(),
        length_consistent: format::check_head(head, bytes.len() as u64).is_ok(),
    }
}

/// The name and sequence a path of the form `…/<name>/<20 digits>.pst` implies.
fn expected_from_path(path: &Path) -> Option<ExpectedFromPath> {
    let absolute = std::path::absolute(path).ok()?;
    let file = absolute.file_name()?.to_str()?;
    let dir = absolute.parent()?.file_name()?.to_str()?;
    let key = format!("{dir}/{file}");
    let (name, sequence) = parse_generation_key(&key)?;
    format::validate_name(name).ok()?;
    Some(ExpectedFromPath {
        name: name.to_string(),
        sequence,
    })
}

fn print(r: &Report, out: &mut dyn Write) -> Result<(), CliError> {
    outln!(out, "file:            {} ({} bytes)", r.path, r.size)?;
    match (&r.header, &r.header_error) {
        (Some(h), _) => {
            let trust = if r.verification.ok {
                ""
            } else {
                " (unverified)"
            };
            outln!(out, "header{trust}:")?;
            let format_note = if format::is_readable_format(h.format_version) {
                ""
            } else {
                " (not supported by this build)"
            };
            outln!(out, "  format:        {}{format_note}", h.format_version)?;
            outln!(out, "  name:          {}", h.name)?;
            outln!(out, "  schema:        v{}", h.schema_version)?;
            outln!(out, "  fingerprint:   {}", h.fingerprint)?;
            outln!(out, "  rkyv format:   {}", h.rkyv_format)?;
            outln!(out, "  sequence:      {}", h.sequence)?;
            outln!(out, "  created at:    {}", h.created_at)?;
            let consistency = if h.length_consistent {
                "consistent with the file size"
            } else {
                "INCONSISTENT with the file size"
            };
            outln!(
                out,
                "  payload:       {} bytes (header, payload or chunks, tag {TAG_LEN}: \
                 {consistency})",
                h.payload_len
            )?;
            outln!(out, "  key id:        {}", h.key_id)?;
            if let Some(c) = &h.chunks {
                match c.base_sequence {
                    Some(base) => outln!(
                        out,
                        "  delta:         of generation {base} (depth {}): {} chunks, {} bytes \
                         carried here, the rest from its chain (`persist verify` checks it)",
                        c.depth,
                        c.chunk_count,
                        c.literal_bytes
                    )?,
                    None => outln!(
                        out,
                        "  chunked:       full generation, {} chunks",
                        c.chunk_count
                    )?,
                }
            }
        }
        (None, Some(e)) => outln!(out, "header:          cannot be decoded: {e}")?,
        (None, None) => {}
    }
    if let Some(e) = &r.expected {
        outln!(
            out,
            "expected:        name {}, sequence {} (from the file's path)",
            e.name,
            e.sequence
        )?;
    }
    let v = &r.verification;
    match (v.checked, v.ok, &v.error) {
        (false, _, _) => outln!(out, "verification:    not checked (no key given)")?,
        (true, true, _) => outln!(
            out,
            "verification:    ok (key id {})",
            v.key_id.as_deref().unwrap_or("?")
        )?,
        (true, false, e) => outln!(
            out,
            "verification:    FAILED: {} (key id {})",
            e.as_deref().unwrap_or("unknown error"),
            v.key_id.as_deref().unwrap_or("?")
        )?,
    }
    Ok(())
}
