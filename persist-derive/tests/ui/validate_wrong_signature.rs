use persist_core::persist;

#[persist(name = "state", version = 1, validate = Self::check)]
pub struct State {
    pub epsilon: f64,
}

impl State {
    // Must return `Result<(), E>`.
    fn check(&self) -> bool {
        self.epsilon >= 0.0
    }
}

fn main() {}
