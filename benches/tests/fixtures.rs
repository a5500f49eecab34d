//! The bench fixtures and floors do what the benches claim: the states round-trip through a
//! store at the sizes stated, the floor keeps its directory small, the tag floor computes exactly
//! the tag the store wrote, and the report reads criterion's estimates.

use persist_bench::agent::EntryAgentState;
use persist_bench::floor::{ProtocolFloor, tag_floor};
use persist_bench::replay::{ReplayBuffer, SPEC_EXPERIENCES};
use persist_bench::{bench_keyring, open_store, report};
use persist_core::format::{HEADER_LEN, TAG_LEN};
use persist_core::{Persist, StoreConfig};

#[test]
fn four_kb_state_has_a_4096_byte_payload_and_round_trips() {
    let state = EntryAgentState::four_kb(3);
    assert_eq!(state.encode().unwrap().len(), 4096);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), StoreConfig::default()).unwrap();
    let receipt = store.save(&state).unwrap();
    assert_eq!(receipt.bytes, (HEADER_LEN + 4096 + TAG_LEN) as u64);
    assert_eq!(store.load::<EntryAgentState>().unwrap().value, state);
}

#[test]
fn replay_experience_costs_104_bytes_and_round_trips() {
    let small = ReplayBuffer::sample(10, 1).encode().unwrap().len();
    let big = ReplayBuffer::sample(1010, 1).encode().unwrap().len();
    // 96 bytes of experience and 8 of priority each.
    assert_eq!(big - small, 1000 * 104);

    let buffer = ReplayBuffer::sample(SPEC_EXPERIENCES, 9);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), StoreConfig::default()).unwrap();
    store.save(&buffer).unwrap();
    assert_eq!(store.load::<ReplayBuffer>().unwrap().value, buffer);
}

#[test]
fn floor_writes_durable_files_and_keeps_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut floor = ProtocolFloor::new(dir.path(), 4).unwrap();
    let mut last = None;
    for i in 0..10u8 {
        last = Some(floor.write(&[i; 100]).unwrap());
    }
    assert_eq!(std::fs::read(last.unwrap()).unwrap(), vec![9u8; 100]);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.iter().all(|n| n.ends_with(".dat")),
        "no temp file left: {names:?}"
    );
    assert_eq!(floor.live().count(), 4);
}

#[test]
fn tag_floor_computes_exactly_the_tag_the_store_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), StoreConfig::default()).unwrap();
    store.save(&EntryAgentState::four_kb(1)).unwrap();
    // About 5 MB: signed on the store's second thread, its chunks hashed in parallel.
    store.save(&ReplayBuffer::sample(50_000, 3)).unwrap();
    for name in [EntryAgentState::NAME, ReplayBuffer::NAME] {
        let newest = store.generations(name).unwrap().pop().unwrap();
        let bytes = std::fs::read(dir.path().join(newest.key)).unwrap();
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        assert_eq!(tag_floor(bench_keyring().current(), signed), tag, "{name}");
    }
}

#[test]
fn report_renders_ratios_from_criterion_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let write = |group: &str, name: &str, median: f64| {
        let path = dir.path().join(group).join(name).join("new");
        std::fs::create_dir_all(&path).unwrap();
        let json = format!(r#"{{"median":{{"point_estimate":{median}}}}}"#);
        std::fs::write(path.join("estimates.json"), json).unwrap();
    };
    for c in report::COMPARISONS {
        write(c.group, c.store, 2_000_000.0);
        write(c.group, c.floor, 1_000_000.0);
    }
    for (group, name) in report::SINGLES {
        write(group, name, 1500.0);
    }
    let tables = report::render(dir.path()).unwrap();
    assert!(
        tables.contains(
            "| save_4kb | store_save | 2.0 ms | protocol_floor | 1.0 ms | 2.00× | ≤ 1.15× | no |"
        ),
        "{tables}"
    );
    assert!(
        tables.contains("| spec_8_2 | replay_10k_load | 1.5 µs |"),
        "{tables}"
    );

    std::fs::remove_file(
        dir.path()
            .join("spec_8_2/replay_10k_load/new/estimates.json"),
    )
    .unwrap();
    assert!(matches!(
        report::render(dir.path()),
        Err(report::ReportError::Read { .. })
    ));
}
