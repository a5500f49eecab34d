use persist_core::persist;

#[persist(name = "state", version = 1, retain = 3)]
pub struct State {
    pub a: u64,
}

fn main() {}
