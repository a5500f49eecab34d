//! The conformance suite on [`persist_postgres::PgBackend`] against the cluster of `common`
//! (`ci/pg-server.sh` in CI): a fresh database per check.

mod common;

use common::pg_env;
use persist_conformance::Subject;
use persist_postgres::{Migrate, PgBackend};

fn fresh(check: &str) -> Option<Subject> {
    let env = pg_env(&format!("conformance::{check}"))?;
    let url = env.fresh_database(check);
    let backend = PgBackend::connect(env.config(&url), Migrate::Apply).expect("connect");
    Some(Subject::new(backend))
}

/// A role that may read the tables but not write them: PostgreSQL answers
/// `insufficient_privilege`, which the backend reports as `AccessDenied`.
fn read_only(check: &str) -> Option<Subject> {
    let env = pg_env(&format!("conformance::{check}"))?;
    let url = env.fresh_database(check);
    drop(PgBackend::connect(env.config(&url), Migrate::Apply).expect("create the tables"));
    let role = format!("ro_{}", std::process::id());
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    db.batch_execute(&format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                 CREATE ROLE {role} LOGIN PASSWORD 'read-only';
             END IF;
         END $$;
         GRANT SELECT ON persist_generations, persist_layout TO {role};"
    ))
    .expect("create a read-only role");
    let (_, rest) = url.split_once('@').expect("user in the URL");
    let ro_url = format!("postgres://{role}:read-only@{rest}");
    let backend = PgBackend::connect(env.config(&ro_url), Migrate::Check).expect("connect");
    Some(Subject::new(backend))
}

persist_conformance::suite! {
    fresh: fresh,
    no_space: unsupported("PostgreSQL has no per-database size limit the test can set (a full disk would stop the whole cluster)"),
    access_denied: read_only,
}
