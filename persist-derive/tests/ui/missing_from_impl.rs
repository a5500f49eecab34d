use persist_core::persist;

#[persist(name = "state", version = 1)]
pub struct StateV1 {
    pub a: u32,
}

#[persist(name = "state", version = 2, from = StateV1)]
pub struct State {
    pub a: u64,
}

fn main() {}
