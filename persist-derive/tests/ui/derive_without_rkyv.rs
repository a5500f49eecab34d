use persist_core::Persist;

#[derive(Debug, Persist)]
#[persist(name = "state", version = 1)]
pub struct State {
    pub a: u32,
}

fn main() {}
