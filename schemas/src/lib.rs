//! Our users' state schemas, with their version histories and golden files.
//!
//! Not built yet: this is the schemas issue, which depends on `#[derive(Persist)]`. The demo's
//! hand-written state lives in `persist-cli` until then.
