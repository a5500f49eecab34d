use persist_core::persist;

#[persist(name = "state", version = 1)]
pub struct State<T> {
    pub value: T,
}

fn main() {}
