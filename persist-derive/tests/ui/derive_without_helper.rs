use persist_core::Persist;
use persist_core::rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Persist)]
#[rkyv(crate = persist_core::rkyv)]
pub struct State {
    pub a: u32,
}

fn main() {}
