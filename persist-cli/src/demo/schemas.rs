//! `persist demo --schemas`: the users' nine states (`persist-schemas`) at production sizes,
//! saved as one snapshot set (`agent_system`) next to the agent's own state. Each run first
//! restores the newest whole snapshot (members in dependency order, migrating any older
//! version), then commits a new one at each of the agent's saves, in which only the position
//! changed: the other eight members are referenced, not written again (within a process: the
//! first commit after a start writes every member).

use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use persist_core::{
    LoadError, MemberOutcome, Persist, SnapshotError, SnapshotSpec, SpecError, Store,
};
use persist_schemas::{
    EntryAgentState, ExitAgentState, LearningMetricsState, MdpEsState, PortfolioRiskState,
    PositionState, ReplayBufferState, RiskAdversaryState, ShadowAgentsState,
};

use crate::error::CliError;
use crate::outln;

/// The snapshot set's name.
pub const SET: &str = "agent_system";

/// The nine states as one set: the exit agent and the shadow agents are restored after the
/// entry agent they complement, the portfolio risk after the position it measures, the risk
/// adversary after the replay buffer it samples.
pub fn spec() -> Result<SnapshotSpec, SpecError> {
    SnapshotSpec::builder(SET)
        .member::<EntryAgentState>()
        .member_after::<ExitAgentState>(&["entry_agent"])
        .member_after::<ShadowAgentsState>(&["entry_agent"])
        .member::<ReplayBufferState>()
        .member_after::<RiskAdversaryState>(&["replay_buffer"])
        .member::<LearningMetricsState>()
        .member::<PositionState>()
        .member_after::<PortfolioRiskState>(&["position"])
        .member::<MdpEsState>()
        .build()
}

/// The nine values, restored or generated, and the set's spec.
pub struct System {
    spec: SnapshotSpec,
    entry: EntryAgentState,
    exit: ExitAgentState,
    shadows: ShadowAgentsState,
    replay: ReplayBufferState,
    adversary: RiskAdversaryState,
    metrics: LearningMetricsState,
    position: PositionState,
    portfolio: PortfolioRiskState,
    mdp_es: MdpEsState,
}

fn snapshot_err(op: &'static str) -> impl Fn(SnapshotError) -> CliError {
    move |source| CliError::Snapshot {
        op,
        set: SET.to_string(),
        source: Box::new(source),
    }
}

/// Restores the newest whole snapshot of the nine states (or generates them, with sizes from
/// the specification: 10 000 Q-table states, 10 000 replay experiences, a 64-128-64-1 risk
/// network, … when there is none). Snapshots that exist but none of which can be restored stop
/// the demo, unless `fresh` says to start over (they are kept).
pub fn restore(
    store: &Store,
    seed: u64,
    fresh: bool,
    out: &mut dyn Write,
) -> Result<System, CliError> {
    let spec = spec().map_err(CliError::Spec)?;
    outln!(
        out,
        "users' states (persist-schemas) as snapshot set {SET}:"
    )?;
    let started = Instant::now();
    let system = match store.load_snapshot(&spec) {
        Ok(mut restored) => {
            let r = &restored.report;
            outln!(
                out,
                "  resumed from snapshot {} (committed {} ago) in {} ms",
                r.snapshot.map_or("-".to_string(), |id| id.to_string()),
                r.created_at
                    .map_or("-".to_string(), |t| crate::time::human_age(
                        crate::time::age(t)
                    )),
                started.elapsed().as_millis()
            )?;
            for m in &r.members {
                match &m.outcome {
                    MemberOutcome::Restored {
                        sequence,
                        schema_version,
                        migrations,
                        ..
                    } => {
                        let migrated = match (migrations.first(), migrations.last()) {
                            (Some(first), Some(last)) => {
                                format!(", migrated v{} -> v{}", first.from, last.to)
                            }
                            _ => String::new(),
                        };
                        outln!(
                            out,
                            "    {:<17} generation {sequence} (v{schema_version}{migrated})",
                            m.name
                        )?;
                    }
                    MemberOutcome::NotRestored { reason } => outln!(
                        out,
                        "    {:<17} not restored, generated anew: {reason}",
                        m.name
                    )?,
                    _ => {}
                }
            }
            for r in &r.rejected {
                outln!(out, "    passed over snapshot {r}")?;
            }
            System {
                spec,
                entry: take(&mut restored, || EntryAgentState::generate(10_000, seed)),
                exit: take(&mut restored, || ExitAgentState::generate(10_000, seed)),
                shadows: take(&mut restored, || {
                    ShadowAgentsState::generate(5, 2_000, seed)
                }),
                replay: take(&mut restored, || ReplayBufferState::generate(10_000, seed)),
                adversary: take(&mut restored, || {
                    RiskAdversaryState::generate_network(&[64, 128, 64, 1], 10_000, seed)
                }),
                metrics: take(&mut restored, || {
                    LearningMetricsState::generate(1_000, seed)
                }),
                position: take(&mut restored, || PositionState::generate(seed)),
                portfolio: take(&mut restored, || {
                    PortfolioRiskState::generate(20, 1_000, seed)
                }),
                mdp_es: take(&mut restored, || {
                    MdpEsState::generate(1_000, 50, 100, 1_000, seed)
                }),
            }
        }
        Err(SnapshotError::Load(LoadError::NoGeneration { .. })) => {
            outln!(out, "  no snapshot yet, starting fresh (seed {seed})")?;
            generate(spec, seed)
        }
        Err(e) if fresh => {
            outln!(out, "  {e}")?;
            outln!(
                out,
                "  --fresh: starting fresh (seed {seed}) although snapshots exist; those that \
                 cannot be restored are kept"
            )?;
            generate(spec, seed)
        }
        Err(e) => return Err(snapshot_err("restore")(e)),
    };
    Ok(system)
}

impl System {
    /// Moves the position on by one bar, lets the replay buffer learn (the two members that
    /// change between two snapshots) and commits the nine states as a new snapshot, printing
    /// which members were written, whole or as a delta, and their bytes.
    pub fn commit(&mut self, store: &Store, out: &mut dyn Write) -> Result<(), CliError> {
        self.position.bars_held = self.position.bars_held.saturating_add(1);
        self.position.saved_at_nanos = now_nanos();
        self.learn();
        let started = Instant::now();
        let receipt = store
            .snapshot(&self.spec)
            .add(&self.entry)
            .and_then(|w| w.add(&self.exit))
            .and_then(|w| w.add(&self.shadows))
            .and_then(|w| w.add(&self.replay))
            .and_then(|w| w.add(&self.adversary))
            .and_then(|w| w.add(&self.metrics))
            .and_then(|w| w.add(&self.position))
            .and_then(|w| w.add(&self.portfolio))
            .and_then(|w| w.add(&self.mdp_es))
            .and_then(|w| w.commit())
            .map_err(snapshot_err("commit"))?;
        for member in receipt.members.iter().filter(|m| m.written) {
            match member.base {
                Some(base) => outln!(
                    out,
                    "    {}: generation {} is a delta of {base}: {} bytes written",
                    member.name,
                    member.sequence,
                    member.bytes
                )?,
                None => outln!(
                    out,
                    "    {}: generation {} written whole: {} bytes",
                    member.name,
                    member.sequence,
                    member.bytes
                )?,
            }
        }
        let written = receipt.written().count();
        outln!(
            out,
            "  committed snapshot {} of {SET}: {written} member{} written, {} unchanged and \
             referenced, {} bytes in {} µs",
            receipt.id,
            if written == 1 { "" } else { "s" },
            receipt.members.len() - written,
            receipt.bytes_written,
            started.elapsed().as_micros()
        )?;
        for e in &receipt.retention_errors {
            outln!(
                out,
                "  warning: retention failed (the snapshot stands): {e}"
            )?;
        }
        Ok(())
    }
}

impl System {
    /// The replay buffer, the largest member, learns between two snapshots as a ring buffer
    /// does: 1% of its experiences at the cursor are replaced (new ones at the highest
    /// priority, as prioritised replay inserts them), and the sampling distribution follows.
    /// The store writes it as a delta of its previous generation.
    fn learn(&mut self) {
        let replay = &mut self.replay;
        let n = replay.experiences.len();
        if n == 0 {
            return;
        }
        let max = replay.priorities.iter().copied().fold(0.0, f64::max);
        let now = now_nanos();
        for i in 0..(n / 100).max(1) {
            let at = (replay.next_index as usize + i) % n;
            let e = &mut replay.experiences[at];
            e.timestamp = now;
            e.state_hash = e.state_hash.rotate_left(7) ^ now as u64;
            e.reward.total = -e.reward.total;
            replay.priorities[at] = max;
        }
        replay.next_index = ((replay.next_index as usize + (n / 100).max(1)) % n) as u32;
        replay.sum_priorities = replay.priorities.iter().sum();
        replay.cdf = persist_schemas::compute_cdf(&replay.priorities);
        replay.total_samples_taken += 32;
    }
}

/// The nine states generated from `seed`.
fn generate(spec: SnapshotSpec, seed: u64) -> System {
    System {
        spec,
        entry: EntryAgentState::generate(10_000, seed),
        exit: ExitAgentState::generate(10_000, seed),
        shadows: ShadowAgentsState::generate(5, 2_000, seed),
        replay: ReplayBufferState::generate(10_000, seed),
        adversary: RiskAdversaryState::generate_network(&[64, 128, 64, 1], 10_000, seed),
        metrics: LearningMetricsState::generate(1_000, seed),
        position: PositionState::generate(seed),
        portfolio: PortfolioRiskState::generate(20, 1_000, seed),
        mdp_es: MdpEsState::generate(1_000, 50, 100, 1_000, seed),
    }
}

/// Member `T` of a restored snapshot, or `generate()` when it was not restored.
fn take<T: Persist + 'static>(
    restored: &mut persist_core::RestoredSnapshot,
    generate: impl FnOnce() -> T,
) -> T {
    restored.take::<T>().unwrap_or_else(generate)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use persist_core::{Key, Keyring, StoreConfig};
    use persist_fs::FsBackend;

    use super::*;

    #[test]
    fn saves_the_nine_states_as_one_snapshot_then_resumes_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FsBackend::open(dir.path()).unwrap();
        let store = Store::new(
            Box::new(backend),
            Keyring::new(Key::generate().unwrap()),
            StoreConfig::default(),
        );
        let mut out = Vec::new();
        let mut system = restore(&store, 7, false, &mut out).unwrap();
        system.commit(&store, &mut out).unwrap();
        system.commit(&store, &mut out).unwrap();
        drop(system);
        let mut system = restore(&store, 7, false, &mut out).unwrap();
        system.commit(&store, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("no snapshot yet, starting fresh"), "{text}");
        assert!(
            text.contains("committed snapshot 1 of agent_system: 9 members written"),
            "{text}"
        );
        // Only the position and the replay buffer changed: two members written, seven
        // referenced.
        assert!(
            text.contains("snapshot 2 of agent_system: 2 members written, 7 unchanged"),
            "{text}"
        );
        assert!(text.contains("resumed from snapshot 2"), "{text}");
        assert!(
            text.contains("snapshot 3 of agent_system: 2 members written, 7 unchanged"),
            "{text}"
        );
        // Nine member states plus the manifests' state.
        assert_eq!(store.names().unwrap().len(), 10);
        let mut restored = store.load_snapshot(&spec().unwrap()).unwrap();
        assert_eq!(restored.report.snapshot, Some(3));
        let replay = restored.take::<ReplayBufferState>().unwrap();
        let generated = ReplayBufferState::generate(10_000, 7);
        assert_eq!(
            replay.total_samples_taken,
            generated.total_samples_taken + 3 * 32
        );
        assert_eq!(replay.experiences.len(), generated.experiences.len());
        let position = restored.take::<PositionState>().unwrap();
        assert_eq!(position.bars_held, PositionState::generate(7).bars_held + 3);
    }
}
