use persist_core::rkyv::{Archive, Deserialize, Serialize};
use persist_core::{Persist, persist};

#[persist(name = "state", version = 1)]
#[derive(Archive, Serialize, Deserialize, Persist)]
#[rkyv(crate = persist_core::rkyv)]
pub struct State {
    pub a: u32,
}

fn main() {}
