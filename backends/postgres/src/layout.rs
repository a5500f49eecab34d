//! The backend's own table layout, versioned, with up and down migrations (in the spirit of
//! the specification's migration system: `status`, `migrate`, `down`).
//!
//! Invariants:
//!
//! - `persist_layout` holds one row per applied layout version; the current layout is the
//!   highest. A layout newer than [`LAYOUT_VERSION`] is never touched (a newer release owns it).
//! - Every migration runs in one transaction under an advisory lock, so two programs migrating
//!   at once apply each step once, and a failed step leaves the previous layout.
//! - A down migration never deletes data: it refuses while the table it would drop holds rows
//!   (generations, recovery records).

use postgres::Client;

use crate::config::{PgConfig, PgError};

/// The newest table layout this build knows (and needs).
pub const LAYOUT_VERSION: u32 = 2;

/// One step of the layout.
struct Migration {
    version: u32,
    what: &'static str,
    up: &'static str,
    down: &'static str,
    /// The table a down migration must find empty, and what its rows are.
    guards: Option<(&'static str, &'static str)>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "generations: one row per generation key, its bytes a large object",
        up: "CREATE TABLE persist_generations (
                 key text PRIMARY KEY,
                 size bigint NOT NULL CHECK (size >= 0),
                 object oid NOT NULL,
                 committed_at timestamptz NOT NULL DEFAULT now()
             )",
        down: "DROP TABLE persist_generations",
        guards: Some(("persist_generations", "generation(s)")),
    },
    Migration {
        version: 2,
        what: "recovery log: one row per load (persist log)",
        up: "CREATE TABLE persist_recovery_log (
                 id bigserial PRIMARY KEY,
                 at timestamptz NOT NULL,
                 state text NOT NULL,
                 outcome text NOT NULL,
                 record jsonb NOT NULL
             );
             CREATE INDEX persist_recovery_log_state ON persist_recovery_log (state, at)",
        down: "DROP TABLE persist_recovery_log",
        guards: Some(("persist_recovery_log", "recovery record(s)")),
    },
];

/// An arbitrary, fixed advisory lock key for migrations ("persist" in ASCII).
const LOCK: i64 = 0x0070_6572_7369_7374;

/// What `persist db status` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutStatus {
    /// The database, redacted.
    pub location: String,
    /// The layout the database is at (0: no persist tables).
    pub current: u32,
    /// The layout this build knows.
    pub known: u32,
    /// The steps `migrate` would apply, as (version, description).
    pub pending: Vec<(u32, &'static str)>,
}

fn ensure_history(client: &mut Client, config: &PgConfig) -> Result<(), PgError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS persist_layout (
                 version integer PRIMARY KEY,
                 description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(|e| config.sql("create persist_layout", e))
}

/// The layout a database is at (0 when it has no persist tables).
pub(crate) fn current(client: &mut Client, config: &PgConfig) -> Result<u32, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('persist_layout') IS NOT NULL", &[])
        .map_err(|e| config.sql("read the layout", e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM persist_layout", &[])
        .map_err(|e| config.sql("read the layout", e))?
        .get(0);
    Ok(version.map_or(0, |v| v.max(0) as u32))
}

/// The layout status of the database.
pub fn status(config: &PgConfig) -> Result<LayoutStatus, PgError> {
    let mut client = config.client()?;
    let current = current(&mut client, config)?;
    Ok(LayoutStatus {
        location: config.location().to_string(),
        current,
        known: LAYOUT_VERSION,
        pending: MIGRATIONS
            .iter()
            .filter(|m| m.version > current)
            .map(|m| (m.version, m.what))
            .collect(),
    })
}

/// Applies every missing step up to [`LAYOUT_VERSION`]; returns the versions applied. Refuses
/// a database at a newer layout.
pub fn migrate(config: &PgConfig) -> Result<Vec<u32>, PgError> {
    let mut client = config.client()?;
    migrate_client(&mut client, config)
}

pub(crate) fn migrate_client(client: &mut Client, config: &PgConfig) -> Result<Vec<u32>, PgError> {
    ensure_history(client, config)?;
    let mut applied = Vec::new();
    let mut tx = client
        .transaction()
        .map_err(|e| config.sql("begin a migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .map_err(|e| config.sql("lock for a migration", e))?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM persist_layout", &[])
        .map_err(|e| config.sql("read the layout", e))?
        .get(0);
    let found = found.map_or(0, |v| v.max(0) as u32);
    too_new(config, found)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.up)
            .map_err(|e| config.sql("apply a migration", e))?;
        tx.execute(
            "INSERT INTO persist_layout (version, description) VALUES ($1, $2)",
            &[&(m.version as i32), &m.what],
        )
        .map_err(|e| config.sql("record a migration", e))?;
        tracing::info!(
            location = config.location(),
            version = m.version,
            "layout migrated up"
        );
        applied.push(m.version);
    }
    tx.commit()
        .map_err(|e| config.sql("commit a migration", e))?;
    Ok(applied)
}

/// Reverts the newest applied step; returns the layout left. Refuses when it would delete
/// generations, and at a layout newer than this build knows.
pub fn down(config: &PgConfig) -> Result<u32, PgError> {
    let mut client = config.client()?;
    let found = current(&mut client, config)?;
    too_new(config, found)?;
    let Some(m) = MIGRATIONS.iter().find(|m| m.version == found) else {
        return Ok(found);
    };
    let mut tx = client
        .transaction()
        .map_err(|e| config.sql("begin a migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .map_err(|e| config.sql("lock for a migration", e))?;
    if let Some((table, what)) = m.guards {
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .map_err(|e| config.sql("count rows", e))?
            .get(0);
        if rows > 0 {
            return Err(PgError::DownRefused {
                location: config.location().to_string(),
                from: found,
                table,
                what,
                rows,
            });
        }
    }
    tx.batch_execute(m.down)
        .map_err(|e| config.sql("revert a migration", e))?;
    tx.execute(
        "DELETE FROM persist_layout WHERE version = $1",
        &[&(m.version as i32)],
    )
    .map_err(|e| config.sql("record a migration", e))?;
    tx.commit()
        .map_err(|e| config.sql("commit a migration", e))?;
    tracing::info!(
        location = config.location(),
        version = m.version,
        "layout migrated down"
    );
    Ok(found - 1)
}

/// Refuses a layout newer than this build's.
pub(crate) fn too_new(config: &PgConfig, found: u32) -> Result<(), PgError> {
    if found > LAYOUT_VERSION {
        return Err(PgError::LayoutTooNew {
            location: config.location().to_string(),
            found,
            known: LAYOUT_VERSION,
        });
    }
    Ok(())
}
