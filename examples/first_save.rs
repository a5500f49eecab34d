//! A first save and load: define a state, save it, load it back, read it in place.
//!
//! `cargo run --example first_save [DIR]`: run it twice with the same DIR and the second run
//! recovers the first run's state and continues from it.

use persist_core::{LoadError, Persist, Store, StoreConfig, persist};
use persist_examples::{ExampleDir, example_keyring};
use persist_fs::FsBackend;

/// A type used inside the state: `#[persist(nested)]`.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub ticket: u64,
    pub entry: f64,
}

/// The state: a schema name and version. `#[persist]` adds rkyv's derives, the layout
/// fingerprint and the `Persist` impl; other derives go below it.
#[persist(name = "example_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub epsilon: f64,
    pub steps: u64,
    pub positions: Vec<Position>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = ExampleDir::from_args()?;
    let store = Store::new(
        Box::new(FsBackend::open(dir.path())?),
        example_keyring(),
        StoreConfig::default(), // keep 4 generations, 100 MiB free-space reserve
    );
    println!("store in {}", dir.path().display());

    // The newest valid generation, or a fresh state the first time.
    let mut agent = match store.load::<Agent>() {
        Ok(loaded) => {
            println!("recovered: {}", loaded.report);
            loaded.value
        }
        Err(LoadError::NoGeneration { .. }) => {
            println!("no generation yet: starting fresh");
            Agent {
                epsilon: 1.0,
                steps: 0,
                positions: Vec::new(),
            }
        }
        Err(other) => return Err(other.into()),
    };

    // Some work, then a save: durable (fsync'd and renamed into place) when it returns.
    agent.steps += 1_000;
    agent.epsilon *= 0.9;
    agent.positions.push(Position {
        ticket: agent.steps,
        entry: 100.0 + agent.steps as f64 / 1_000.0,
    });
    let receipt = store.save(&agent)?;
    println!(
        "saved {} generation {} ({} bytes, schema v{}, fingerprint {})",
        Agent::NAME,
        receipt.sequence,
        receipt.bytes,
        Agent::VERSION,
        Agent::fingerprint()
    );

    // Loading returns the value and a report: which generation, how old, what was passed over.
    let loaded = store.load::<Agent>()?;
    assert_eq!(loaded.value, agent);
    println!("loaded generation {}", loaded.report.sequence);

    // Zero-copy: a validated view of the archived state, in place in the generation's bytes.
    let view = store.open::<Agent>()?;
    println!(
        "view: {} steps, {} positions, last ticket {}",
        view.steps.to_native(),
        view.positions.len(),
        view.positions.last().map_or(0, |p| p.ticket.to_native())
    );
    Ok(())
}
