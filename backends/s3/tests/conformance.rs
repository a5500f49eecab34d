//! The conformance suite on [`persist_s3::S3Backend`] against the S3-compatible server of
//! `common` (moto in CI): a fresh bucket per check. Without the server's variables every check
//! prints `SKIPPED s3: …` and passes, unless `CI=true`, where it fails.

mod common;

use common::s3_env;
use persist_conformance::Subject;

fn fresh(check: &str) -> Option<Subject> {
    let env = s3_env(&format!("conformance::{check}"))?;
    let bucket = env.fresh_bucket("conformance");
    Some(Subject::new(env.backend(&bucket, "c")))
}

/// The right key id with the wrong secret: moto, started by `ci/s3-server.sh` with signature
/// checking on, answers `403 SignatureDoesNotMatch`, as S3 does.
fn wrong_credentials(check: &str) -> Option<Subject> {
    let env = s3_env(&format!("conformance::{check}"))?;
    let bucket = env.fresh_bucket("conformance");
    let backend = env
        .builder()
        .credentials(&env.key_id, "not-the-secret")
        .bucket(&bucket)
        .prefix("c")
        .build()
        .expect("build the S3 backend");
    Some(Subject::new(backend))
}

persist_conformance::suite! {
    fresh: fresh,
    no_space: unsupported("S3 has no full state: a bucket has no size limit, no quota can be set through the S3 API, and moto enforces none"),
    access_denied: wrong_credentials,
}
