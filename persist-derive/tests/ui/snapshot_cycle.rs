use persist_core::persist;

#[persist(name = "regime", version = 1)]
struct Regime(u8);

#[persist(name = "exit_agent", version = 1)]
struct ExitAgent(u8);

#[persist(snapshot = "agent_system")]
struct AgentSystem {
    #[persist(after = "exit")]
    regime: Regime,
    #[persist(after = "regime")]
    exit: ExitAgent,
}

fn main() {}
