use persist_core::persist;

#[persist(nested, version = 1)]
pub struct Inner {
    pub value: u8,
}

fn main() {}
