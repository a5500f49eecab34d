use persist_core::persist;

#[persist(version = 1)]
pub struct State {
    pub a: u64,
}

fn main() {}
