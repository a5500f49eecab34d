use persist_core::persist;

#[persist]
pub struct State {
    pub a: u64,
}

fn main() {}
