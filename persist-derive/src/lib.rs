//! `#[derive(Persist)]` for persist.
//!
//! Not implemented yet: the derive is its own issue. Until then, implement
//! `persist_core::Persist` by hand with the helpers of `persist_core::codec` (see that trait's
//! documentation). This crate exists so the workspace layout is final.
