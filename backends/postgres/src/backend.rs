//! [`PgBackend`]: generations as rows of `persist_generations`, their bytes large objects.
//!
//! How the backend keeps the trait's four guarantees:
//!
//! 1. **Create-only.** The key is the table's primary key: a second insert of a key fails with a
//!    unique violation, reported as [`BackendError::AlreadyExists`]; nothing is overwritten.
//! 2. **All or nothing.** A new object is one transaction: the large object is created and
//!    written, then the row inserted, then the transaction committed. Until the commit no
//!    reader sees the row; a failed or interrupted write rolls everything back (the large
//!    object included: large objects are transactional). An object of at most 1 MiB is one
//!    autocommitted statement, `INSERT ... lo_from_bytea(0, bytes)`: the same transaction in
//!    one round trip.
//! 3. **Durable on acknowledgement.** `commit` returns after PostgreSQL's `COMMIT`, which with
//!    the default `synchronous_commit = on` has flushed the WAL.
//! 4. **No litter.** Dropping a [`NewObject`] without `commit` rolls its transaction back (or,
//!    for a small object, never sends it).
//!
//! Large generations stream in and out: the first 1 MiB is buffered, then each `write` sends
//! its bytes to the large object (`lowrite`); a read fetches 1 MiB at a time (`loread`) into the
//! one aligned buffer it returns. No generation is ever held twice in memory.
//!
//! The recovery log ([`persist_core::recovery_log`]) is the table `persist_recovery_log`
//! (layout 2): one row per record, its state and outcome as columns, the record as `jsonb`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use persist_core::recovery_log::{LogEntries, LogRecord, MAX_RECORD_LEN};
use persist_core::rkyv::util::AlignedVec;
use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};
use postgres::Client;
use postgres::SimpleQueryMessage;
use postgres::error::SqlState;
use postgres::types::Type;

use crate::config::{PgConfig, PgError};
use crate::layout::{self, LAYOUT_VERSION};

/// `INV_READ` and `INV_WRITE` of `libpq-fs.h`.
const INV_READ: i32 = 0x40000;
const INV_WRITE: i32 = 0x20000;
/// A connection idle this long is checked before use.
const CHECK_AFTER: Duration = Duration::from_secs(1);
/// How long that check may take before the connection is replaced.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes fetched per `loread`, and sent per `lowrite`.
const READ_CHUNK: i32 = 1 << 20;

/// What a connecting backend does with an outdated table layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migrate {
    /// Apply the missing up migrations (the first program to connect creates the tables).
    Apply,
    /// Refuse an outdated layout ([`PgError::LayoutOutdated`]): an operator migrates with
    /// `persist db migrate`.
    Check,
}

/// A [`Backend`] over a PostgreSQL database.
pub struct PgBackend {
    config: PgConfig,
    /// Idle connections; each operation takes one (a new object keeps its own until committed).
    /// Idle connections and when each was last given back.
    idle: Mutex<Vec<(Client, Instant)>>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("location", &self.config.location())
            .finish_non_exhaustive()
    }
}

impl PgBackend {
    /// Connects to the database of `config`, checking its table layout: a newer layout than
    /// this build knows is refused ([`PgError::LayoutTooNew`]); an older one is migrated up
    /// with [`Migrate::Apply`], refused with [`Migrate::Check`].
    pub fn connect(config: PgConfig, migrate: Migrate) -> Result<PgBackend, PgError> {
        let mut client = config.client()?;
        let found = layout::current(&mut client, &config)?;
        layout::too_new(&config, found)?;
        if found < LAYOUT_VERSION {
            match migrate {
                Migrate::Apply => {
                    layout::migrate_client(&mut client, &config)?;
                }
                Migrate::Check => {
                    return Err(PgError::LayoutOutdated {
                        location: config.location().to_string(),
                        found,
                        needed: LAYOUT_VERSION,
                    });
                }
            }
        }
        Ok(PgBackend {
            config,
            idle: Mutex::new(vec![(client, Instant::now())]),
        })
    }

    /// Connects to a `postgres://` URL ([`PgBackend::connect`] with [`Migrate::Apply`]).
    pub fn open(url: &str) -> Result<PgBackend, PgError> {
        PgBackend::connect(PgConfig::from_url(url)?, Migrate::Apply)
    }

    /// A connection: an idle one if there is one (checked with a round trip first when it has
    /// been idle for [`CHECK_AFTER`]: the server may have restarted meanwhile, which the client
    /// notices only when a statement fails), else a new one.
    fn take(&self) -> Result<Conn<'_>, BackendError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let client = match idle {
            Some((mut client, since)) if !client.is_closed() => {
                if since.elapsed() < CHECK_AFTER || client.is_valid(CHECK_TIMEOUT).is_ok() {
                    client
                } else {
                    self.config.client().map_err(|e| self.other(e))?
                }
            }
            _ => self.config.client().map_err(|e| self.other(e))?,
        };
        Ok(Conn {
            backend: self,
            client: Some(client),
        })
    }

    fn other(&self, e: PgError) -> BackendError {
        BackendError::Other {
            location: self.config.location().to_string(),
            source: Box::new(e),
        }
    }

    /// A failed statement: `AccessDenied` when the server refused the privilege, else `Other`.
    fn sql(&self, op: &'static str, e: postgres::Error) -> BackendError {
        let denied = e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE);
        let error = self.config.sql(op, e);
        if denied {
            return BackendError::AccessDenied {
                location: self.config.location().to_string(),
                source: Box::new(error),
            };
        }
        self.other(error)
    }

    fn not_found(&self, key: &str) -> BackendError {
        BackendError::NotFound {
            location: self.config.location().to_string(),
            key: key.to_string(),
        }
    }

    /// Reads up to `limit` bytes of `key` (all of them with `None`) and its size, in one
    /// read-only transaction.
    fn read(&self, key: &str, limit: Option<usize>) -> Result<(AlignedVec, u64), BackendError> {
        let mut conn = self.take()?;
        let mut tx = conn
            .client()
            .transaction()
            .map_err(|e| self.sql("begin a read", e))?;
        let row = tx
            .query_opt(
                "SELECT object, size FROM persist_generations WHERE key = $1",
                &[&key],
            )
            .map_err(|e| self.sql("read a generation", e))?
            .ok_or_else(|| self.not_found(key))?;
        let (object, size): (u32, i64) = (row.get(0), row.get(1));
        let size = size.max(0) as u64;
        let want = limit.map_or(size, |l| (l as u64).min(size)) as usize;
        let fd: i32 = tx
            .query_one("SELECT lo_open($1, $2)", &[&object, &INV_READ])
            .map_err(|e| self.sql("open a large object", e))?
            .get(0);
        let mut out = AlignedVec::with_capacity(want);
        while out.len() < want {
            let n = READ_CHUNK.min((want - out.len()) as i32);
            let row = tx
                .query_typed_one(
                    "SELECT loread($1, $2)",
                    &[(&fd, Type::INT4), (&n, Type::INT4)],
                )
                .map_err(|e| self.sql("read a large object", e))?;
            // Borrowed from the row's buffer: copied once, into `out`.
            let chunk: &[u8] = row.get(0);
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(chunk);
        }
        tx.commit().map_err(|e| self.sql("end a read", e))?;
        Ok((out, size))
    }
}

/// A connection taken from the pool, given back when dropped (unless it broke).
struct Conn<'a> {
    backend: &'a PgBackend,
    client: Option<Client>,
}

impl Conn<'_> {
    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            self.backend
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((client, Instant::now()));
        }
    }
}

/// A generation being written. Its first [`SMALL_OBJECT`] bytes are buffered: an object no
/// larger is committed by one autocommitted statement (`lo_from_bytea` inside the row's
/// `INSERT`: one round trip, one WAL flush). A larger one opens a transaction and streams: the
/// buffer goes out as the large object's first `lowrite`, and every later `write` as its own.
struct PgObject<'a> {
    conn: Conn<'a>,
    key: String,
    /// Bytes not yet sent (only before the transaction starts).
    pending: Vec<u8>,
    /// The open transaction's large object (descriptor, oid), once streaming.
    streaming: Option<(i32, u32)>,
    size: u64,
    /// True once committed or rolled back.
    done: bool,
}

/// Objects up to this size are written in one statement.
const SMALL_OBJECT: usize = 1 << 20;

impl PgObject<'_> {
    /// Opens the transaction and the large object, and sends what was buffered.
    fn start_streaming(&mut self) -> Result<(i32, u32), BackendError> {
        let backend = self.conn.backend;
        let client = self.conn.client();
        client
            .batch_execute("BEGIN")
            .map_err(|e| backend.sql("begin a generation", e))?;
        let oid: u32 = client
            .query_one("SELECT lo_create(0)", &[])
            .map_err(|e| backend.sql("create a large object", e))?
            .get(0);
        let fd: i32 = client
            .query_one("SELECT lo_open($1, $2)", &[&oid, &INV_WRITE])
            .map_err(|e| backend.sql("open a large object", e))?
            .get(0);
        self.streaming = Some((fd, oid));
        let pending = std::mem::take(&mut self.pending);
        self.send(fd, &pending)?;
        Ok((fd, oid))
    }

    /// Sends `bytes` to the large object, 1 MiB per `lowrite`: the server never holds more of
    /// a generation than that in one message.
    fn send(&mut self, fd: i32, bytes: &[u8]) -> Result<(), BackendError> {
        let backend = self.conn.backend;
        for piece in bytes.chunks(READ_CHUNK as usize) {
            self.conn
                .client()
                .execute_typed(
                    "SELECT lowrite($1, $2)",
                    &[(&fd, Type::INT4), (&piece, Type::BYTEA)],
                )
                .map_err(|e| backend.sql("write a large object", e))?;
        }
        Ok(())
    }

    fn already_exists(&self) -> BackendError {
        BackendError::AlreadyExists {
            location: self.conn.backend.config.location().to_string(),
            key: self.key.clone(),
        }
    }
}

impl NewObject for PgObject<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.size += bytes.len() as u64;
        match self.streaming {
            Some((fd, _)) => self.send(fd, bytes),
            None if self.pending.len() + bytes.len() <= SMALL_OBJECT => {
                self.pending.extend_from_slice(bytes);
                Ok(())
            }
            None => {
                let (fd, _) = self.start_streaming()?;
                self.send(fd, bytes)
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), BackendError> {
        let backend = self.conn.backend;
        let (key, size) = (self.key.clone(), self.size as i64);
        let unique = |e: &postgres::Error| e.code() == Some(&SqlState::UNIQUE_VIOLATION);
        let Some((_, object)) = self.streaming else {
            // One statement: the large object and the row commit together or not at all.
            let pending = std::mem::take(&mut self.pending);
            let inserted = self.conn.client().execute_typed(
                "INSERT INTO persist_generations (key, size, object) \
                 VALUES ($1, $2, lo_from_bytea(0, $3))",
                &[
                    (&key, Type::TEXT),
                    (&size, Type::INT8),
                    (&pending.as_slice(), Type::BYTEA),
                ],
            );
            self.done = true;
            return match inserted {
                Ok(_) => Ok(()),
                Err(e) if unique(&e) => Err(self.already_exists()),
                Err(e) => Err(backend.sql("insert a generation", e)),
            };
        };
        let inserted = self.conn.client().execute(
            "INSERT INTO persist_generations (key, size, object) VALUES ($1, $2, $3)",
            &[&key, &size, &object],
        );
        match inserted {
            Ok(_) => {}
            // `Drop` rolls back, the large object with it.
            Err(e) if unique(&e) => return Err(self.already_exists()),
            Err(e) => return Err(backend.sql("insert a generation", e)),
        }
        self.conn
            .client()
            .batch_execute("COMMIT")
            .map_err(|e| backend.sql("commit a generation", e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PgObject<'_> {
    fn drop(&mut self) {
        if !self.done && self.streaming.is_some() {
            // A broken connection is dropped by `Conn` (the server rolled back already).
            let _ = self.conn.client().batch_execute("ROLLBACK");
        }
    }
}

impl Backend for PgBackend {
    fn location(&self) -> String {
        self.config.location().to_string()
    }

    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        Ok(Box::new(PgObject {
            conn: self.take()?,
            key: key.to_string(),
            pending: Vec::new(),
            streaming: None,
            size: 0,
            done: false,
        }))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        let (bytes, _) = self.read(key, None)?;
        Ok(ObjectBytes::new(bytes))
    }

    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        let (bytes, size) = self.read(key, Some(len))?;
        Ok(ObjectHead::new(bytes.to_vec(), size))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let mut conn = self.take()?;
        let rows = conn
            .client()
            .query_typed(
                "SELECT key, size FROM persist_generations WHERE starts_with(key, $1) \
                 ORDER BY key",
                &[(&prefix, Type::TEXT)],
            )
            .map_err(|e| self.sql("list generations", e))?;
        Ok(rows
            .iter()
            .map(|r| ObjectMeta::new(r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }

    /// A row of `persist_recovery_log` (layout 2), its record as `jsonb`.
    fn append_log(&self, record: &LogRecord) -> Result<(), BackendError> {
        let mut conn = self.take()?;
        conn.client()
            .execute(
                "INSERT INTO persist_recovery_log (at, state, outcome, record) \
                 VALUES (to_timestamp($1::bigint / 1000.0), $2, $3, $4::text::jsonb)",
                &[
                    &i64::try_from(record.at_ms).unwrap_or(i64::MAX),
                    &record.state,
                    &record.outcome.name(),
                    &record.to_json(),
                ],
            )
            .map_err(|e| self.sql("append to the recovery log", e))?;
        Ok(())
    }

    /// The newest `last` rows (of `state`), oldest first; a row over
    /// [`MAX_RECORD_LEN`] is reported, not fetched.
    fn read_log(&self, state: Option<&str>, last: usize) -> Result<LogEntries, BackendError> {
        let mut conn = self.take()?;
        let rows = conn
            .client()
            .query(
                "SELECT id, octet_length(record::text), \
                        CASE WHEN octet_length(record::text) <= $3 THEN record::text END \
                 FROM (SELECT id, at, record FROM persist_recovery_log \
                       WHERE $1::text IS NULL OR state = $1 \
                       ORDER BY at DESC, id DESC LIMIT $2) newest \
                 ORDER BY at, id",
                &[
                    &state,
                    &i64::try_from(last).unwrap_or(i64::MAX),
                    &(MAX_RECORD_LEN as i32),
                ],
            )
            .map_err(|e| self.sql("read the recovery log", e))?;
        let mut entries = LogEntries::default();
        for row in rows {
            let (id, len, text): (i64, i32, Option<String>) = (row.get(0), row.get(1), row.get(2));
            let parsed = match text {
                Some(text) => LogRecord::from_json(text.as_bytes()),
                None => Err(format!("{len} bytes, more than a record may hold")),
            };
            match parsed {
                Ok(record) => entries.records.push(record),
                Err(why) => entries
                    .unreadable
                    .push((format!("persist_recovery_log row {id}"), why)),
            }
        }
        Ok(entries)
    }

    /// One transaction deletes the row and unlinks its large object. It commits with
    /// `synchronous_commit` off: atomic like every commit, but not waiting for the WAL flush.
    /// A crash within the next few hundred milliseconds can undo the delete, which brings back
    /// a superseded generation whole (retention deletes it again); it can never leave half a
    /// generation. Saves, which must be durable when acknowledged, wait for their flush.
    ///
    /// The transaction is one message (the simple-query protocol, the key an escaped literal):
    /// one round trip, as retention runs after every save.
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        let mut conn = self.take()?;
        let literal = format!("E'{}'", key.replace('\\', "\\\\").replace('\'', "''"));
        let script = format!(
            "BEGIN; SET LOCAL synchronous_commit TO off; \
             WITH gone AS (DELETE FROM persist_generations WHERE key = {literal} \
             RETURNING object) SELECT lo_unlink(object) FROM gone; COMMIT"
        );
        let client = conn.client();
        let messages = match client.simple_query(&script) {
            Ok(messages) => messages,
            Err(e) => {
                // The failed statement left the transaction open and aborted.
                let _ = client.batch_execute("ROLLBACK");
                return Err(self.sql("delete a generation", e));
            }
        };
        let unlinked = messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        if unlinked == 0 {
            return Err(self.not_found(key));
        }
        Ok(())
    }
}
