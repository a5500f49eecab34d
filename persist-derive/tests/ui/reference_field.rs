use persist_core::persist;

#[persist(name = "state", version = 1)]
pub struct State {
    pub label: &'static str,
    pub handler: fn(u64) -> u64,
}

fn main() {}
