#![no_main]
//! The `envelope` target: see `fuzz/logic/core.rs` and `docs/FUZZING.md`.

use libfuzzer_sys::fuzz_target;

#[path = "../logic/core.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::envelope(data));
