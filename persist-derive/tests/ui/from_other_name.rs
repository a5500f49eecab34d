use persist_core::persist;

#[persist(name = "other_state", version = 1)]
pub struct OtherV1 {
    pub a: u64,
}

#[persist(name = "state", version = 2, from = OtherV1)]
pub struct State {
    pub a: u64,
}

impl From<OtherV1> for State {
    fn from(old: OtherV1) -> Self {
        State { a: old.a }
    }
}

fn main() {}
