use persist_core::persist;

#[persist(name = "state", version = 2)]
pub struct StateV2 {
    pub a: u64,
}

#[persist(name = "state", version = 2, from = StateV2)]
pub struct State {
    pub a: u64,
}

impl From<StateV2> for State {
    fn from(old: StateV2) -> Self {
        State { a: old.a }
    }
}

fn main() {}
