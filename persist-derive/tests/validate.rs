//! `validate = path`: a hook run on the decoded (and migrated) value; a value it refuses is never
//! handed out by a load, which reports the generation as undecodable with the hook's message.

use persist_core::{
    CodecError, Key, Keyring, LoadError, MemoryBackend, Persist, RejectKind, RejectReason, Store,
    StoreConfig, WalkPast, persist,
};

#[derive(Debug, PartialEq)]
pub struct OutOfRange(f64);

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epsilon {} is outside [0, 1]", self.0)
    }
}

impl std::error::Error for OutOfRange {}

#[persist(name = "agent", version = 1, validate = Self::check)]
#[derive(Clone, Debug, PartialEq)]
pub struct AgentV1 {
    pub epsilon: f64,
}

impl AgentV1 {
    fn check(&self) -> Result<(), OutOfRange> {
        if (0.0..=1.0).contains(&self.epsilon) {
            Ok(())
        } else {
            Err(OutOfRange(self.epsilon))
        }
    }
}

/// A free function returning a `String` error also works; it sees the migrated value.
fn check_agent(agent: &Agent) -> Result<(), String> {
    if agent.q.len() == agent.states as usize {
        Ok(())
    } else {
        Err(format!(
            "{} Q-values for {} states",
            agent.q.len(),
            agent.states
        ))
    }
}

#[persist(name = "agent", version = 2, from = AgentV1, validate = check_agent)]
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub epsilon: f64,
    pub states: u32,
    pub q: Vec<f64>,
}

impl From<AgentV1> for Agent {
    fn from(old: AgentV1) -> Self {
        // A deliberately wrong migration: one state, no Q-values.
        Agent {
            epsilon: old.epsilon,
            states: 1,
            q: Vec::new(),
        }
    }
}

fn store() -> Store {
    Store::new(
        Box::new(MemoryBackend::new()),
        Keyring::new(Key::from_bytes(b"persist validate test key, 32+ bytes".to_vec()).unwrap()),
        StoreConfig::default(),
    )
}

#[test]
fn decode_runs_the_hook() {
    let good = AgentV1 { epsilon: 0.5 };
    assert_eq!(
        AgentV1::decode(1, &good.encode().unwrap()).unwrap().value,
        good
    );

    let bad = AgentV1 { epsilon: 3.0 };
    let err = AgentV1::decode(1, &bad.encode().unwrap()).unwrap_err();
    let CodecError::Invalid { error } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error.downcast_ref::<OutOfRange>(), Some(&OutOfRange(3.0)));
    assert_eq!(
        err.to_string(),
        "decoded value fails validation: epsilon 3 is outside [0, 1]"
    );
}

#[test]
fn the_hook_sees_the_migrated_value() {
    let bytes = AgentV1 { epsilon: 0.5 }.encode().unwrap();
    let err = Agent::decode(1, &bytes).unwrap_err();
    assert!(
        matches!(&err, CodecError::Invalid { error } if error.to_string() == "0 Q-values for 1 states"),
        "{err:?}"
    );
    let ok = Agent {
        epsilon: 0.1,
        states: 2,
        q: vec![0.0, 1.0],
    };
    assert_eq!(Agent::decode(2, &ok.encode().unwrap()).unwrap().value, ok);
}

#[test]
fn a_load_never_returns_a_value_failing_validation() {
    let store = store();
    store.save(&AgentV1 { epsilon: 0.25 }).unwrap();
    store.save(&AgentV1 { epsilon: 7.0 }).unwrap();
    let err = store.load::<AgentV1>().unwrap_err();
    let LoadError::Blocked {
        kind, generation, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*kind, RejectKind::Undecodable);
    assert_eq!(generation.sequence, 2);
    assert!(
        matches!(
            &generation.reason,
            RejectReason::Codec(CodecError::Invalid { .. })
        ),
        "{generation:?}"
    );
    assert!(
        err.to_string().contains("epsilon 7 is outside [0, 1]"),
        "{err}"
    );

    // Walking past undecodable generations reaches the valid one.
    let walk = Store::new(
        Box::new(MemoryBackend::new()),
        Keyring::new(Key::from_bytes(b"persist validate test key, 32+ bytes".to_vec()).unwrap()),
        StoreConfig::default().with_walk_past(WalkPast::default().allow(RejectKind::Undecodable)),
    );
    walk.save(&AgentV1 { epsilon: 0.25 }).unwrap();
    walk.save(&AgentV1 { epsilon: 7.0 }).unwrap();
    let loaded = walk.load::<AgentV1>().unwrap();
    assert_eq!(loaded.value, AgentV1 { epsilon: 0.25 });
}
