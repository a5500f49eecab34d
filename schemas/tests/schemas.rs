//! The schemas' migrations, generators and registry, and their committed golden files.

use std::path::Path;

use persist_compat::{self as compat, Sample};
use persist_core::Expect;
use persist_core::format;
use persist_core::{MigrationStep, Persist};
use persist_schemas::history::{ExitAgentStateV1, PositionStateV1, ReplayBufferStateV1};
use persist_schemas::*;

fn migrate<Old: Persist, New: Persist>(old: &Old) -> (New, Vec<MigrationStep>) {
    let bytes = old.encode().expect("encode");
    let d = New::decode(Old::VERSION, &bytes).expect("migrate");
    (d.value, d.migrations)
}

#[test]
fn exit_agent_v1_gets_a_neutral_giveback_scale() {
    let old = ExitAgentStateV1::generate(50, 7);
    let (new, steps): (ExitAgentState, _) = migrate(&old);
    assert_eq!(steps, [MigrationStep { from: 1, to: 2 }]);
    assert_eq!(new.journey.adaptive_giveback_scale, 1.0);
    assert_eq!(new.journey.ewma_flip_rate, old.journey.ewma_flip_rate);
    assert_eq!(new.q_table, old.q_table);
    assert_eq!(new.traces, old.traces);
}

#[test]
fn replay_buffer_v1_gets_its_cdf_recomputed() {
    let old = ReplayBufferStateV1::generate(1000, 3);
    let (new, steps): (ReplayBufferState, _) = migrate(&old);
    assert_eq!(steps, [MigrationStep { from: 1, to: 2 }]);
    assert_eq!(new.cdf.len(), 1000);
    assert!(new.cdf.windows(2).all(|w| w[0] <= w[1]), "monotone");
    assert!((new.cdf[999] - 1.0).abs() < 1e-12);
    assert!((new.cdf[0] - old.priorities[0] / old.sum_priorities).abs() < 1e-12);
    assert_eq!(new.experiences, old.experiences);
    // The same buffer generated at v2 directly has the same CDF.
    assert_eq!(new.cdf, ReplayBufferState::generate(1000, 3).cdf);
}

#[test]
fn cdf_of_no_priority_is_all_zero() {
    assert_eq!(compute_cdf(&[0.0, 0.0]), [0.0, 0.0]);
    assert!(compute_cdf(&[]).is_empty());
    assert_eq!(compute_cdf(&[1.0, 3.0]), [0.25, 1.0]);
}

#[test]
fn position_v1_is_renamed_widened_and_converted_to_nanoseconds() {
    let old = PositionStateV1::generate(11);
    let (new, _): (PositionState, _) = migrate(&old);
    assert_eq!(new.entry_price, f64::from(old.entry));
    assert_eq!(new.mfe, f64::from(old.mfe));
    assert_eq!(new.saved_at_nanos, old.saved_at * 1_000_000_000);
    assert_eq!(new.regime_at_entry, old.regime_at_entry);
}

#[test]
fn generators_are_deterministic_and_sized() {
    assert_eq!(
        ReplayBufferState::generate(100, 1),
        ReplayBufferState::generate(100, 1)
    );
    assert_ne!(
        ReplayBufferState::generate(100, 1),
        ReplayBufferState::generate(100, 2)
    );
    let r = ReplayBufferState::generate(10_000, 1);
    assert_eq!(
        (r.experiences.len(), r.priorities.len(), r.cdf.len()),
        (10_000, 10_000, 10_000)
    );
    assert!(r.next_index < r.capacity);
    let e = EntryAgentState::generate(10_000, 1);
    assert_eq!(e.q_table.len(), 10_000 * TradingAction::ALL.len());
    assert!(e.encode().expect("encode").len() > 10_000 * 4 * 24);
    let net = RiskAdversaryState::generate_network(&[64, 128, 1], 100, 1);
    match &net.model {
        RiskModel::Network { layers } => {
            assert_eq!(layers.len(), 2);
            assert_eq!(layers[0].weights.len(), 64 * 128);
        }
        RiskModel::Tabular { .. } => panic!("expected a network"),
    }
    let p = PortfolioRiskState::generate(20, 50, 1);
    assert_eq!(p.correlation_matrix.len(), 400);
    assert_eq!(p.correlation_matrix[21], 1.0);
    assert_eq!(ShadowAgentsState::generate(3, 10, 1).shadows.len(), 3);
    assert_eq!(MdpEsState::generate(10, 8, 5, 20, 1).history.len(), 20);
    assert_eq!(
        LearningMetricsState::generate(100, 1)
            .td_error_history
            .len(),
        100
    );
}

#[test]
fn every_state_round_trips() {
    fn round_trip<T: Persist + Sample + PartialEq + std::fmt::Debug>() {
        let v = T::sample();
        let back = T::decode(T::VERSION, &v.encode().expect("encode")).expect("decode");
        assert_eq!(back.value, v, "{}", T::NAME);
    }
    round_trip::<EntryAgentState>();
    round_trip::<ExitAgentState>();
    round_trip::<ReplayBufferState>();
    round_trip::<RiskAdversaryState>();
    round_trip::<LearningMetricsState>();
    round_trip::<PortfolioRiskState>();
    round_trip::<ShadowAgentsState>();
    round_trip::<PositionState>();
    round_trip::<MdpEsState>();
    let tabular = RiskAdversaryState::generate_tabular(5, 5, 1);
    let back = RiskAdversaryState::decode(1, &tabular.encode().expect("encode")).expect("decode");
    assert_eq!(back.value, tabular);
}

#[test]
fn registry_lists_every_state() {
    let entries = all();
    let names: Vec<(&str, u32)> = entries.iter().map(|e| (e.name, e.version)).collect();
    assert_eq!(
        names,
        [
            ("entry_agent", 1),
            ("exit_agent", 1),
            ("exit_agent", 2),
            ("replay_buffer", 1),
            ("replay_buffer", 2),
            ("risk_adversary", 1),
            ("learning_metrics", 1),
            ("portfolio_risk", 1),
            ("shadow_agents", 1),
            ("position", 1),
            ("position", 2),
            ("mdp_es", 1),
        ]
    );
    // `schemas()` lists each state's current version, as `all()` does last.
    let current: Vec<(&str, u32)> = persist_schemas::schemas()
        .iter()
        .map(|s| (s.name(), s.version()))
        .collect();
    let mut newest: Vec<(&str, u32)> = Vec::new();
    for (name, version) in names {
        match newest.last_mut() {
            Some(last) if last.0 == name => last.1 = version,
            _ => newest.push((name, version)),
        }
    }
    assert_eq!(current, newest);
}

#[test]
fn committed_golden_files_load_with_the_expected_values() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let ring = compat::golden_keyring();
    let open = |name: &str, v: u32| {
        let bytes = std::fs::read(dir.join(name).join(format!("v{v}.pst"))).expect("golden");
        let opened = format::open(&ring, &bytes, &Expect::default()).expect("authentic");
        assert_eq!(opened.header.schema_version, v);
        opened.payload.to_vec()
    };
    let exit = ExitAgentState::decode(1, &open("exit_agent", 1))
        .expect("v1 -> v2")
        .value;
    let v1 = ExitAgentStateV1::sample();
    assert_eq!(exit.journey.adaptive_giveback_scale, 1.0);
    assert_eq!(exit.q_table, v1.q_table);
    let replay = ReplayBufferState::decode(1, &open("replay_buffer", 1))
        .expect("v1 -> v2")
        .value;
    assert_eq!(
        replay.cdf,
        compute_cdf(&ReplayBufferStateV1::sample().priorities)
    );
    let pos = PositionState::decode(1, &open("position", 1))
        .expect("v1 -> v2")
        .value;
    assert_eq!(pos.entry_price, f64::from(PositionStateV1::sample().entry));
    let current = ReplayBufferState::decode(2, &open("replay_buffer", 2))
        .expect("v2")
        .value;
    assert_eq!(current, ReplayBufferState::sample());
}

/// Outside a git checkout, the checker refuses to pass by default (a rewritten snapshot could not
/// be told from the original); with `AcceptSelfConsistency` it verifies each snapshot against
/// its own descriptor and loads every golden file.
#[test]
fn check_without_git_history_uses_self_consistency() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("snapshots");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    for state in std::fs::read_dir(&src).expect("snapshots") {
        let state = state.expect("entry").path();
        let to = dir.join(state.file_name().expect("name"));
        std::fs::create_dir_all(&to).expect("mkdir");
        for file in std::fs::read_dir(&state).expect("state") {
            let file = file.expect("entry").path();
            std::fs::copy(&file, to.join(file.file_name().expect("name"))).expect("copy");
        }
    }
    let weak = compat::HistoryMode::AcceptSelfConsistency;
    let report = compat::check_with(&all(), &dir, weak).expect("check");
    if report.git_history() {
        eprintln!("SKIPPED: the temporary directory is inside a git checkout");
        return;
    }
    assert!(report.is_clean(), "{:?}", report.violations);
    assert!(
        matches!(
            report.history_missing,
            Some(compat::MissingHistory::NotAGitCheckout(_))
        ),
        "{report:?}"
    );
    match compat::check(&all(), &dir) {
        Err(e @ compat::CompatError::HistoryMissing { .. }) => {
            assert!(e.to_string().contains("--self-consistency-only"), "{e}")
        }
        other => panic!("without history, check must fail: {other:?}"),
    }

    let snap = dir.join("position/v2.schema");
    let text = std::fs::read_to_string(&snap).expect("read");
    std::fs::write(
        &snap,
        text.replace("entry_price@8:f64", "entry_price@8:f32"),
    )
    .expect("write");
    let rules: Vec<_> = compat::check_with(&all(), &dir, weak)
        .expect("check")
        .violations
        .iter()
        .map(|v| v.rule)
        .collect();
    assert_eq!(rules, [compat::Rule::SnapshotModified]);
    std::fs::write(&snap, text).expect("restore");

    // The committed expected value of a migrated golden file: a changed value is reported.
    let expected = dir.join("position/v1.expected.txt");
    let text = std::fs::read_to_string(&expected).expect("read");
    assert!(
        text.contains("current_version: 2\n---\nPositionState {"),
        "{text}"
    );
    std::fs::write(
        &expected,
        text.replace("bars_held: 244,", "bars_held: 245,"),
    )
    .expect("write");
    let report = compat::check_with(&all(), &dir, weak).expect("check");
    let rules: Vec<_> = report
        .violations
        .iter()
        .map(|v| (v.rule, v.version))
        .collect();
    assert_eq!(rules, [(compat::Rule::GoldenValueChanged, 1)]);
    assert_eq!(
        report.violations[0].diff,
        ["- 6:     bars_held: 245,", "+ 6:     bars_held: 244,"]
    );
    std::fs::write(&expected, text).expect("restore");

    let golden = dir.join("exit_agent/v1.pst");
    let mut bytes = std::fs::read(&golden).expect("read");
    bytes[100] ^= 0x40;
    std::fs::write(&golden, bytes).expect("write");
    let report = compat::check_with(&all(), &dir, weak).expect("check");
    let rules: Vec<_> = report
        .violations
        .iter()
        .map(|v| (v.rule, v.state.as_str(), v.version))
        .collect();
    assert_eq!(rules, [(compat::Rule::GoldenDoesNotLoad, "exit_agent", 1)]);
    assert!(
        report.violations[0].diff[0].contains("envelope rejected"),
        "{:?}",
        report.violations[0]
    );
}
