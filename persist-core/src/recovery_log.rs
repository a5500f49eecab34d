//! The recovery log: what each load of a store found, kept on the store's own backend so an
//! operator can ask afterwards "what did the program start from, and what did it walk past?"
//! (`persist log`).
//!
//! A store writes it when [`StoreConfig::recovery_log`](crate::StoreConfig::recovery_log) is
//! set: one [`LogRecord`] per [`Store::load`](crate::Store::load) and
//! [`Store::open`](crate::Store::open), whether it recovered a generation, found none, or failed.
//! Backends keep records through [`Backend::append_log`] and
//! [`Backend::read_log`]: by default one small JSON object per record
//! under [`LOG_PREFIX`] (create-only like every object, so concurrent writers never lose one);
//! PostgreSQL keeps a table.
//!
//! Invariants:
//!
//! - Writing the log never changes a load's outcome: a failed append is reported
//!   ([`RecoveryReport::log_error`]) and logged with `tracing`, and the value is still returned.
//! - The log is diagnostics, not state: it is not signed, not replicated and never read by a
//!   load. A reader treats every record as untrusted input: a record larger than
//!   [`MAX_RECORD_LEN`] is reported without being read, a malformed one is reported, neither
//!   panics.
//! - Log keys can never collide with a generation's: [`LOG_PREFIX`] contains `@`, which no
//!   state name may.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError};
use crate::error::LoadError;
use crate::reject::Rejection;
use crate::report::RecoveryReport;
use crate::store::Store;

/// The directory of the object-per-record log (see [`Backend::append_log`]).
pub const LOG_PREFIX: &str = "@recovery-log/";

/// The largest record a reader reads, in bytes (a real one is well under 4 KiB).
pub const MAX_RECORD_LEN: u64 = 64 * 1024;

/// One entry of the recovery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogRecord {
    /// When the load ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The state's schema name.
    pub state: String,
    /// `load` or `open`.
    pub operation: String,
    /// The process that loaded.
    pub pid: u32,
    /// What it found.
    pub outcome: Outcome,
}

/// What a load found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A generation was used.
    Recovered {
        /// The backend it came from.
        source: String,
        /// The generation used.
        sequence: u64,
        /// Its schema version.
        schema_version: u32,
        /// Its age when loaded, in milliseconds: the data-loss window.
        age_ms: u64,
        /// Its base, when it is a delta.
        base: Option<u64>,
        /// Migration steps applied, as (from, to).
        migrations: Vec<(u32, u32)>,
        /// Newer generations passed over, newest first.
        rejected: Vec<LoggedRejection>,
        /// The off-site location it was restored from, if the local store had nothing valid.
        restored_from: Option<String>,
    },
    /// The state had no generation: the program started fresh.
    NoGeneration {
        /// The backend searched.
        location: String,
    },
    /// The load failed: nothing was returned.
    Failed {
        /// What kind of failure: `all_invalid`, `blocked: <kind>`, `backend`, `off_site`, …
        kind: String,
        /// The error as the program got it.
        error: String,
    },
}

/// A generation a load passed over, as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoggedRejection {
    /// Its sequence number.
    pub sequence: u64,
    /// Its [`RejectKind`](crate::RejectKind), as text.
    pub kind: String,
    /// Why it was passed over.
    pub reason: String,
}

/// What [`Backend::read_log`] found: the records, oldest first, and the entries it could not
/// read (with why).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct LogEntries {
    /// The readable records, oldest first.
    pub records: Vec<LogRecord>,
    /// Entries that are not records: (where, why).
    pub unreadable: Vec<(String, String)>,
}

impl LogRecord {
    /// The record of a load of `state` by `operation` (`load`, `open`) that ended in `outcome`,
    /// now, by this process.
    pub fn new(state: &str, operation: &str, outcome: Outcome) -> LogRecord {
        LogRecord {
            at_ms: millis(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            state: state.to_string(),
            operation: operation.to_string(),
            pid: std::process::id(),
            outcome,
        }
    }

    /// When the load ended.
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.at_ms)
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }

    /// Parses a record, refusing anything larger than [`MAX_RECORD_LEN`].
    pub fn from_json(bytes: &[u8]) -> Result<LogRecord, String> {
        if bytes.len() as u64 > MAX_RECORD_LEN {
            return Err(format!(
                "{} bytes, more than a record may hold ({MAX_RECORD_LEN})",
                bytes.len()
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("not a recovery record: {e}"))
    }
}

impl Outcome {
    /// The outcome's name as in its JSON: `recovered`, `no_generation` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Recovered { .. } => "recovered",
            Outcome::NoGeneration { .. } => "no_generation",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// The outcome of a load that ended with `result`.
    pub fn of(result: Result<&RecoveryReport, &LoadError>) -> Outcome {
        match result {
            Ok(report) => Outcome::recovered(report),
            Err(LoadError::NoGeneration { location, .. }) => Outcome::NoGeneration {
                location: location.clone(),
            },
            Err(e) => Outcome::Failed {
                kind: failure_kind(e),
                error: e.to_string(),
            },
        }
    }

    fn recovered(report: &RecoveryReport) -> Outcome {
        Outcome::Recovered {
            source: report.source.clone(),
            sequence: report.sequence,
            schema_version: report.schema_version,
            age_ms: millis(report.age),
            base: report.base,
            migrations: report.migrations.iter().map(|m| (m.from, m.to)).collect(),
            rejected: report.rejected.iter().map(LoggedRejection::of).collect(),
            restored_from: report.restored_from.as_ref().map(|r| r.location.clone()),
        }
    }
}

impl LoggedRejection {
    /// A rejection of generation `sequence` of `kind` because of `reason`.
    pub fn new(sequence: u64, kind: &str, reason: &str) -> LoggedRejection {
        LoggedRejection {
            sequence,
            kind: kind.to_string(),
            reason: reason.to_string(),
        }
    }

    fn of(r: &Rejection) -> LoggedRejection {
        LoggedRejection {
            sequence: r.sequence,
            kind: r.kind().as_str().to_string(),
            reason: r.reason.to_string(),
        }
    }
}

impl Store {
    /// Appends the record of a load to the backend's recovery log when the store keeps one.
    /// Returns why it could not, if it could not (the load's outcome stands either way).
    pub(crate) fn record_load(
        &self,
        state: &str,
        operation: &str,
        outcome: Outcome,
    ) -> Option<String> {
        if !self.config().recovery_log {
            return None;
        }
        let record = LogRecord::new(state, operation, outcome);
        let error = self.backend().append_log(&record).err()?;
        tracing::warn!(state, %error, "the load could not be recorded in the recovery log");
        Some(error.to_string())
    }
}

fn failure_kind(e: &LoadError) -> String {
    match e {
        LoadError::NoGeneration { .. } => "no_generation".into(),
        LoadError::AllInvalid { .. } => "all_invalid".into(),
        LoadError::Blocked { kind, .. } => format!("blocked: {kind}"),
        LoadError::InvalidName(_) => "invalid_name".into(),
        LoadError::Backend(_) => "backend".into(),
        LoadError::OffSiteFailed { .. } => "off_site".into(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The key of a record in the object-per-record log: the time (milliseconds, 20 digits), the
/// process and a random word (fixed widths, so keys sort by time), then the state.
fn record_key(record: &LogRecord, nonce: u32) -> String {
    format!(
        "{LOG_PREFIX}{:020}-{:010}-{nonce:08x}-{}.json",
        record.at_ms, record.pid, record.state
    )
}

/// The state a record key names, if it is one.
fn state_of_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix(LOG_PREFIX)?.strip_suffix(".json")?;
    // 20 digits, '-', 10 digits, '-', 8 hex digits, '-'.
    name.get(41..).filter(|s| !s.is_empty())
}

/// [`Backend::append_log`] for object backends: one create-only object per record.
pub(crate) fn append_object<B: Backend + ?Sized>(
    backend: &B,
    record: &LogRecord,
) -> Result<(), BackendError> {
    let json = record.to_json();
    let mut tries = 0;
    loop {
        let mut nonce = [0u8; 4];
        getrandom::fill(&mut nonce).map_err(|e| BackendError::Other {
            location: backend.location(),
            source: format!("no randomness for a log key: {e}").into(),
        })?;
        let key = record_key(record, u32::from_le_bytes(nonce));
        match backend.put_new(&key, &[json.as_bytes()]) {
            Err(BackendError::AlreadyExists { .. }) if tries < 3 => tries += 1,
            other => return other,
        }
    }
}

/// [`Backend::read_log`] for object backends: the newest `last` records (of `state`).
pub(crate) fn read_objects<B: Backend + ?Sized>(
    backend: &B,
    state: Option<&str>,
    last: usize,
) -> Result<LogEntries, BackendError> {
    let mut metas = backend.list(LOG_PREFIX)?;
    metas.retain(|m| state.is_none_or(|s| state_of_key(&m.key) == Some(s)));
    let skip = metas.len().saturating_sub(last);
    let mut entries = LogEntries::default();
    for meta in metas.into_iter().skip(skip) {
        if meta.size > MAX_RECORD_LEN {
            let why = format!("{} bytes, more than a record may hold", meta.size);
            entries.unreadable.push((meta.key, why));
            continue;
        }
        let head = match backend.get_head(&meta.key, MAX_RECORD_LEN as usize + 1) {
            Ok(head) => head,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e @ BackendError::NotAnObject { .. }) => {
                entries.unreadable.push((meta.key, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        match LogRecord::from_json(&head.bytes) {
            Ok(record) => entries.records.push(record),
            Err(why) => entries.unreadable.push((meta.key, why)),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    fn record(state: &str, at_ms: u64) -> LogRecord {
        LogRecord {
            at_ms,
            state: state.into(),
            operation: "load".into(),
            pid: 7,
            outcome: Outcome::NoGeneration {
                location: "memory".into(),
            },
        }
    }

    #[test]
    fn records_round_trip_sorted_by_time_and_filtered_by_state() {
        let backend = MemoryBackend::new();
        for (state, at) in [("b", 3), ("a-1.x", 1), ("b", 2)] {
            backend.append_log(&record(state, at)).unwrap();
        }
        let all = backend.read_log(None, 10).unwrap();
        let times: Vec<u64> = all.records.iter().map(|r| r.at_ms).collect();
        assert_eq!(times, [1, 2, 3]);
        let b = backend.read_log(Some("b"), 1).unwrap();
        assert_eq!(b.records, [record("b", 3)]);
        assert_eq!(backend.read_log(Some("a-1.x"), 9).unwrap().records.len(), 1);
        // No generation listing sees the log.
        assert!(
            crate::generation::parse_generation_key(&backend.list("").unwrap()[0].key).is_none()
        );
    }

    #[test]
    fn hostile_entries_are_reported_not_read() {
        let backend = MemoryBackend::new();
        backend.append_log(&record("s", 5)).unwrap();
        let key = |n: u32| record_key(&record("s", n.into()), n);
        backend.put_new(&key(1), &[b"{\"at_ms\":"]).unwrap();
        backend.put_new(&key(2), &[&[0xff; 70_000]]).unwrap();
        let deep = "[".repeat(10_000);
        backend.put_new(&key(3), &[deep.as_bytes()]).unwrap();
        let read = backend.read_log(Some("s"), 10).unwrap();
        assert_eq!(read.records, [record("s", 5)]);
        assert_eq!(read.unreadable.len(), 3, "{:?}", read.unreadable);
        assert!(read.unreadable[1].1.contains("more than a record"));
    }
}
