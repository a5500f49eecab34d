use persist_core::persist;

#[persist(name = "state")]
pub struct State {
    pub a: u64,
}

fn main() {}
