use persist_core::rkyv::{Archive, Deserialize, Serialize};

#[persist_core::persist(name = "state", version = 1)]
#[derive(Archive, Serialize, Deserialize, persist_core::Persist)]
#[rkyv(crate = persist_core::rkyv)]
pub struct State {
    pub a: u32,
}

fn main() {}
