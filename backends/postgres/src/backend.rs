//! [`PgBackend`]: generations as rows of `persist_generations`, their bytes large objects.
//!
//! How the backend keeps the trait's four guarantees:
//!
//! 1. **Create-only.** The key is the table's primary key: a second insert of a key fails with a
//!    unique violation, reported as [`BackendError::AlreadyExists`]; nothing is overwritten.
//! 2. **All or nothing.** A new object is one transaction: the large object is created and
//!    written, then the row inserted, then the transaction committed. Until the commit no
//!    reader sees the row; a failed or interrupted write rolls everything back (the large
//!    object included: large objects are transactional).
//! 3. **Durable on acknowledgement.** `commit` returns after PostgreSQL's `COMMIT`, which with
//!    the default `synchronous_commit = on` has flushed the WAL.
//! 4. **No litter.** Dropping a [`NewObject`] without `commit` rolls its transaction back.
//!
//! Large generations stream in and out: each `write` sends its bytes to the large object
//! (`lowrite`), and a read fetches 1 MiB at a time (`loread`) into the one aligned buffer it
//! returns; no generation is ever held twice in memory.

use std::sync::{Mutex, PoisonError};

use persist_core::rkyv::util::AlignedVec;
use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};
use postgres::Client;
use postgres::error::SqlState;

use crate::config::{PgConfig, PgError};
use crate::layout::{self, LAYOUT_VERSION};

/// `INV_READ` and `INV_WRITE` of `libpq-fs.h`.
const INV_READ: i32 = 0x40000;
const INV_WRITE: i32 = 0x20000;
/// Bytes fetched per `loread`.
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
    idle: Mutex<Vec<Client>>,
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
            idle: Mutex::new(vec![client]),
        })
    }

    /// Connects to a `postgres://` URL ([`PgBackend::connect`] with [`Migrate::Apply`]).
    pub fn open(url: &str) -> Result<PgBackend, PgError> {
        PgBackend::connect(PgConfig::from_url(url)?, Migrate::Apply)
    }

    fn take(&self) -> Result<Conn<'_>, BackendError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
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
            let chunk: Vec<u8> = tx
                .query_one("SELECT loread($1, $2)", &[&fd, &n])
                .map_err(|e| self.sql("read a large object", e))?
                .get(0);
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
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
                .push(client);
        }
    }
}

/// A generation being written: an open transaction with its large object.
struct PgObject<'a> {
    conn: Conn<'a>,
    key: String,
    fd: i32,
    object: u32,
    size: u64,
    /// True once committed or rolled back.
    done: bool,
}

impl NewObject for PgObject<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        let backend = self.conn.backend;
        self.conn
            .client()
            .execute("SELECT lowrite($1, $2)", &[&self.fd, &bytes])
            .map_err(|e| backend.sql("write a large object", e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), BackendError> {
        let backend = self.conn.backend;
        let (key, object, size) = (self.key.clone(), self.object, self.size as i64);
        let client = self.conn.client();
        let inserted = client.execute(
            "INSERT INTO persist_generations (key, size, object) VALUES ($1, $2, $3)",
            &[&key, &size, &object],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // `Drop` rolls back, the large object with it.
                return Err(BackendError::AlreadyExists {
                    location: backend.config.location().to_string(),
                    key,
                });
            }
            Err(e) => return Err(backend.sql("insert a generation", e)),
        }
        client
            .batch_execute("COMMIT")
            .map_err(|e| backend.sql("commit a generation", e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PgObject<'_> {
    fn drop(&mut self) {
        if !self.done {
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
        let mut conn = self.take()?;
        let client = conn.client();
        client
            .batch_execute("BEGIN")
            .map_err(|e| self.sql("begin a generation", e))?;
        let mut object = PgObject {
            conn,
            key: key.to_string(),
            fd: -1,
            object: 0,
            size: 0,
            done: false,
        };
        let client = object.conn.client();
        let oid: u32 = client
            .query_one("SELECT lo_create(0)", &[])
            .map_err(|e| self.sql("create a large object", e))?
            .get(0);
        let fd: i32 = client
            .query_one("SELECT lo_open($1, $2)", &[&oid, &INV_WRITE])
            .map_err(|e| self.sql("open a large object", e))?
            .get(0);
        object.object = oid;
        object.fd = fd;
        Ok(Box::new(object))
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
            .query(
                "SELECT key, size FROM persist_generations WHERE starts_with(key, $1) \
                 ORDER BY key",
                &[&prefix],
            )
            .map_err(|e| self.sql("list generations", e))?;
        Ok(rows
            .iter()
            .map(|r| ObjectMeta::new(r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        let mut conn = self.take()?;
        let mut tx = conn
            .client()
            .transaction()
            .map_err(|e| self.sql("begin a delete", e))?;
        let row = tx
            .query_opt(
                "DELETE FROM persist_generations WHERE key = $1 RETURNING object",
                &[&key],
            )
            .map_err(|e| self.sql("delete a generation", e))?
            .ok_or_else(|| self.not_found(key))?;
        let object: u32 = row.get(0);
        tx.execute("SELECT lo_unlink($1)", &[&object])
            .map_err(|e| self.sql("unlink a large object", e))?;
        tx.commit().map_err(|e| self.sql("commit a delete", e))
    }
}
