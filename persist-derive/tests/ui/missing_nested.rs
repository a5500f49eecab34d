use persist_core::persist;

// Forgot `#[persist(nested)]`.
pub struct Position {
    pub ticket: u64,
}

#[persist(name = "state", version = 1)]
pub struct State {
    pub positions: Vec<Position>,
}

fn main() {}
