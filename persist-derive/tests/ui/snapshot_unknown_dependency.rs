use persist_core::persist;

#[persist(name = "regime", version = 1)]
struct Regime(u8);

#[persist(snapshot = "agent_system")]
struct AgentSystem {
    #[persist(after = "weather")]
    regime: Regime,
}

fn main() {}
