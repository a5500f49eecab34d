//! A migration chain: three versions of one state. Generations written by the older versions
//! load as the current one, migrated step by step; a step that cannot convert a value, or a
//! migrated value that fails validation, stops the load instead of returning bad state.
//!
//! `cargo run --example migration [DIR]`

use persist_core::{LoadError, Persist, RejectKind, Store, StoreConfig, persist};
use persist_examples::{ExampleDir, example_keyring};
use persist_fs::FsBackend;

// ---- version 1, as the first release wrote it (frozen: never edit an old version) ----------

#[persist(name = "exit_agent", version = 1)]
#[derive(Clone, Debug)]
pub struct ExitAgentV1 {
    pub q: Vec<f32>,
    pub epsilon: f32,
}

// ---- version 2: wider Q-values, and a learning rate --------------------------------------

#[persist(name = "exit_agent", version = 2, from = ExitAgentV1)]
#[derive(Clone, Debug)]
pub struct ExitAgentV2 {
    pub q: Vec<f64>,
    pub epsilon: f64,
    pub alpha: f64,
}

/// An infallible step: `from = ExitAgentV1` and `impl From`.
impl From<ExitAgentV1> for ExitAgentV2 {
    fn from(old: ExitAgentV1) -> Self {
        ExitAgentV2 {
            q: old.q.into_iter().map(f64::from).collect(),
            epsilon: f64::from(old.epsilon),
            alpha: 0.1,
        }
    }
}

// ---- version 3, the current one: Q-values as a table of actions ---------------------------

/// The current version. `validate` runs on every value loaded, after migration.
#[persist(name = "exit_agent", version = 3, try_from = ExitAgentV2, validate = Self::check)]
#[derive(Clone, Debug)]
pub struct ExitAgent {
    pub actions: u32,
    pub q: Vec<f64>,
    pub epsilon: f64,
    pub alpha: f64,
}

/// A fallible step: `try_from = ExitAgentV2` and `impl TryFrom`. Its error is reported by the
/// load (`CodecError::Migration`), and the generation is kept, not deleted.
impl TryFrom<ExitAgentV2> for ExitAgent {
    type Error = String;
    fn try_from(old: ExitAgentV2) -> Result<Self, String> {
        if !old.q.len().is_multiple_of(3) {
            return Err(format!(
                "{} Q-values do not make rows of 3 actions",
                old.q.len()
            ));
        }
        Ok(ExitAgent {
            actions: 3,
            q: old.q,
            epsilon: old.epsilon,
            alpha: old.alpha,
        })
    }
}

impl ExitAgent {
    fn check(&self) -> Result<(), String> {
        if (0.0..=1.0).contains(&self.epsilon) {
            Ok(())
        } else {
            Err(format!("epsilon {} is outside [0, 1]", self.epsilon))
        }
    }
}

fn open_store(dir: &std::path::Path) -> Result<Store, Box<dyn std::error::Error>> {
    Ok(Store::new(
        Box::new(FsBackend::open(dir)?),
        example_keyring(),
        StoreConfig::default(),
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = ExampleDir::from_args()?;
    let store = open_store(&dir.path().join("good"))?;

    // The first release saved a v1 generation...
    store.save(&ExitAgentV1 {
        q: vec![0.5, -0.25, 1.0, 0.0, 0.125, -1.0],
        epsilon: 0.2,
    })?;
    // ...and this release loads it as v3: v1 -> v2 -> v3, read from the signed header.
    let loaded = store.load::<ExitAgent>()?;
    let steps: Vec<String> = loaded
        .report
        .migrations
        .iter()
        .map(|m| format!("v{} -> v{}", m.from, m.to))
        .collect();
    println!(
        "loaded generation {} (schema v{}) migrated {}: {:?}",
        loaded.report.sequence,
        loaded.report.schema_version,
        steps.join(", "),
        loaded.value
    );
    assert_eq!(loaded.value.actions, 3);
    println!(
        "{} accepts versions {}..={}; fingerprints: v1 {}, v3 {}",
        ExitAgent::NAME,
        ExitAgent::OLDEST_VERSION,
        ExitAgent::VERSION,
        ExitAgent::fingerprint_of(1).expect("in the chain"),
        ExitAgent::fingerprint()
    );

    // A v2 generation the step refuses: the load stops with the step's message.
    let refused = open_store(&dir.path().join("refused"))?;
    refused.save(&ExitAgentV2 {
        q: vec![1.0; 4],
        epsilon: 0.1,
        alpha: 0.1,
    })?;
    match refused.load::<ExitAgent>() {
        Err(LoadError::Blocked {
            kind: RejectKind::Undecodable,
            ..
        }) => {
            println!("refused by the migration step, as expected")
        }
        other => panic!("expected an undecodable generation, got {other:?}"),
    }

    // A v2 generation that migrates but fails validation: never handed out either.
    let invalid = open_store(&dir.path().join("invalid"))?;
    invalid.save(&ExitAgentV2 {
        q: vec![0.0; 3],
        epsilon: 4.0,
        alpha: 0.1,
    })?;
    let err = invalid.load::<ExitAgent>().unwrap_err();
    assert!(
        err.to_string().contains("epsilon 4 is outside [0, 1]"),
        "{err}"
    );
    println!("refused by validation, as expected:\n  {err}");
    Ok(())
}
