#![no_main]
//! The `states` target: see `fuzz/logic/states.rs` and `docs/FUZZING.md`.

use libfuzzer_sys::fuzz_target;

#[path = "../logic/states.rs"]
mod logic;

fuzz_target!(|data: &[u8]| logic::states(data));
