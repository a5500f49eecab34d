use persist_core::persist;

#[persist(name = "state", version = 0)]
pub struct State {
    pub a: u64,
}

fn main() {}
