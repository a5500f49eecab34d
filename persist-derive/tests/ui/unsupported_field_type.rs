use persist_core::persist;

#[persist(name = "state", version = 1)]
pub struct State {
    pub started: std::time::Instant,
}

fn main() {}
