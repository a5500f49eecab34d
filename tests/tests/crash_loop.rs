//! SIGKILL the torture binary at random moments, over and over, in one store directory: every
//! acknowledged save must survive, and each reopen must clean up what the killed save left.
//!
//! The same over snapshot commits (`persist-torture --snapshot`): after every kill the newest
//! whole snapshot must be the last acknowledged one or the one after it, and every member must
//! come from that very snapshot.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use persist_core::{LoadError, Persist, SnapshotError, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::snapshot::{self, MEMBERS, SnapAck};
use persist_tests::torture::{Ack, report, torture_state};
use persist_tests::{AgentState, test_keyring};
use rand::Rng;

/// The two loops run one at a time. Each opens the store it checks (taking its directory lock)
/// while the other spawns children: a child forked at that moment shares the lock's open file
/// description until it execs, and a torture child of the first loop starting in that window
/// finds its store "locked by another writer" (seen once in CI).
static SERIAL: Mutex<()> = Mutex::new(());

const KILLS: usize = 1000;
const SNAPSHOT_KILLS: usize = 500;
/// The kill comes a random 0..=this many microseconds after the snapshot child starts. A child
/// (debug build) restores and commits its first snapshot, which writes every member, in ~80 ms,
/// then commits one every ~20–40 ms: so about a third of the kills land in the restore or the
/// first commit, the rest among later commits.
const SNAPSHOT_SPREAD_MICROS: u64 = 250_000;
const RETAIN: usize = 3;
/// State sizes, picked at random per child: one page, several pages, and one above the 1 MiB
/// threshold where the HMAC runs on a second thread while the payload is written.
const ENTRIES: [usize; 4] = [16, 256, 4096, 50_000];

/// What one child did before it was killed.
struct Run {
    acks: Vec<Ack>,
    stderr: String,
}

/// The longest chain of deltas `persist-torture --deltas` writes.
const MAX_CHAIN: usize = 4;

fn kill_after(store_dir: &Path, entries: usize, delay: Duration, deltas: bool) -> Run {
    let mut args = vec!["--entries".to_string(), entries.to_string()];
    if deltas {
        args.push("--deltas".to_string());
    }
    let (out, stderr) = kill_child_after(store_dir, &args, delay);
    Run {
        acks: Ack::all_in(&out),
        stderr,
    }
}

/// Runs the torture binary with `args` (and `--retain RETAIN`) for `delay`, SIGKILLs it, and
/// returns its stdout and stderr.
fn kill_child_after(store_dir: &Path, args: &[String], delay: Duration) -> (Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_persist-torture"))
        .arg(store_dir)
        .args(args)
        .args(["--retain", &RETAIN.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn persist-torture");
    // Drain stdout while the child runs, so a full pipe never stalls it.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    std::thread::sleep(delay);
    let exited_on_its_own = child.try_wait().expect("poll child").is_some();
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let out = reader.join().expect("reader thread").expect("read stdout");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("read stderr");
    }
    assert!(
        !exited_on_its_own,
        "the torture binary exited before the kill: stdout {:?}, stderr {stderr}",
        String::from_utf8_lossy(&out)
    );
    (out, stderr)
}

fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut temps: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
                .collect()
        })
        .unwrap_or_default();
    temps.sort();
    temps
}

#[test]
fn sigkill_loop_never_loses_an_acknowledged_save() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let agent_dir = store_dir.join(AgentState::NAME);
    let mut rng = rand::rng();
    let started = Instant::now();

    // The newest value known durable: what the last check loaded.
    let mut durable = 0u64;
    let (mut total_acks, mut kills_mid_save, mut kills_after_unacked_save) = (0usize, 0, 0);
    let (mut delta_kills, mut loaded_deltas) = (0usize, 0usize);
    let mut max_generations = 0usize;
    let mut previous_generations = 0usize;
    for kill in 1..=KILLS {
        let entries = ENTRIES[rng.random_range(0..ENTRIES.len())];
        let delay = Duration::from_micros(rng.random_range(0..=30_000));
        // Three children in four write incremental generations; the others write whole ones
        // into the same store, so chains are cut by whole generations too.
        let deltas = rng.random_range(0..4) != 0;
        delta_kills += usize::from(deltas);
        let run = kill_after(&store_dir, entries, delay, deltas);
        total_acks += run.acks.len();

        // Acks come in order, continuing the counter from the durable value.
        let mut expect = durable;
        for ack in &run.acks {
            expect += 1;
            assert_eq!(ack.total_updates, expect, "kill {kill}: acks out of order");
        }
        let last_ack = run.acks.last().map_or(durable, |a| a.total_updates);

        // The next open removes the temp file of a save killed mid-way, and only that.
        let temps = temp_files(&agent_dir);
        kills_mid_save += usize::from(!temps.is_empty());
        assert!(
            temps.len() <= 1,
            "kill {kill}: several temp files {temps:?}"
        );
        let backend = FsBackend::open(&store_dir).expect("reopen after kill");
        assert_eq!(backend.removed_temps(), temps.as_slice(), "kill {kill}");
        assert!(temp_files(&agent_dir).is_empty(), "kill {kill}: temp left");

        let store = Store::new(
            Box::new(backend),
            test_keyring(),
            StoreConfig::default()
                .with_retain(RETAIN)
                .with_space_reserve(0),
        );
        let generations = store.generations(AgentState::NAME).unwrap().len();
        max_generations = max_generations.max(generations);

        match store.load::<AgentState>() {
            Ok(loaded) => {
                loaded_deltas += usize::from(loaded.report.base.is_some());
                let value = loaded.value;
                assert!(
                    loaded.report.rejected.is_empty(),
                    "kill {kill}: a kill left an invalid generation: {}",
                    loaded.report
                );
                // Every ack survives; at most the one save whose ack was never printed is extra.
                assert!(
                    value.total_updates == last_ack || value.total_updates == last_ack + 1,
                    "kill {kill}: loaded {} but the last ack was {last_ack}; stderr {}",
                    value.total_updates,
                    run.stderr
                );
                let unacked = value.total_updates == last_ack + 1;
                kills_after_unacked_save += usize::from(unacked);
                // Retention trims to RETAIN before each ack (plus the chain of a kept delta:
                // at most MAX_CHAIN older generations). A kill between a commit and its
                // retention leaves one generation more; kills in a row, before any ack, add up.
                let before = if run.acks.is_empty() {
                    previous_generations
                } else {
                    RETAIN + MAX_CHAIN
                };
                assert!(
                    generations <= before + usize::from(unacked),
                    "kill {kill}: {generations} generations (retain {RETAIN}, {before} before \
                     the last save, unacknowledged save committed: {unacked})"
                );
                assert_eq!(value, torture_state(value.q.len(), value.total_updates));
                durable = value.total_updates;
                previous_generations = generations;
            }
            Err(LoadError::NoGeneration { .. }) if last_ack == 0 => {}
            Err(e) => panic!("kill {kill}: load failed after the last ack {last_ack}: {e}"),
        }
    }
    let elapsed = started.elapsed();
    report(&format!(
        "crash_loop: {KILLS} kills ({delta_kills} of children writing deltas; {loaded_deltas} \
         loads after a kill rebuilt a delta), {total_acks} acks, final counter {durable}, \
         {kills_mid_save} kills left a temp file, {kills_after_unacked_save} kills came after an \
         unacknowledged durable save, max {max_generations} generations (retain {RETAIN}), \
         {:.1} s",
        elapsed.as_secs_f64()
    ));
    assert!(
        durable > 0 && total_acks > 0,
        "no save was ever acknowledged"
    );
    assert!(
        loaded_deltas > 0,
        "no kill left a delta as the newest generation"
    );
}

/// The temp files in every directory of the store, as (directory name, count).
fn temp_files_by_dir(store_dir: &Path) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = std::fs::read_dir(store_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, temp_files(&e.path()).len())
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn sigkill_loop_over_snapshot_commits_never_loses_or_mixes_a_snapshot() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let manifest_dir = format!("snapshot.{}", snapshot::SET);
    let spec = snapshot::spec();
    let mut rng = rand::rng();
    let started = Instant::now();

    // The counter of the newest snapshot known durable: what the last check restored.
    let mut durable = 0u64;
    // Every ack ever printed, by counter (counters never repeat: each child continues from the
    // snapshot restored after the previous kill, which is at least the last ack).
    let mut acked = std::collections::HashMap::new();
    let (mut total_acks, mut unacked_restored, mut referenced) = (0usize, 0usize, 0usize);
    let mut kills_without_ack = 0usize;
    let (mut kills_mid_member, mut kills_mid_manifest, mut kills_before_manifest) = (0, 0, 0);
    let mut max_generations = [0usize; 4];
    let mut previous_newest = [0u64; 4];
    for kill in 1..=SNAPSHOT_KILLS {
        let delay = Duration::from_micros(rng.random_range(0..=SNAPSHOT_SPREAD_MICROS));
        let (out, stderr) = kill_child_after(&store_dir, &["--snapshot".to_string()], delay);
        let acks = SnapAck::all_in(&out);
        total_acks += acks.len();
        kills_without_ack += usize::from(acks.is_empty());

        // Acks come in order, continuing the counter from the durable snapshot; under SIGKILL
        // (the page cache survives) no manifest is ever lost, so ids follow the counter.
        let mut expect = durable;
        let mut previous: Option<SnapAck> = None;
        for ack in &acks {
            expect += 1;
            assert_eq!(ack.k, expect, "kill {kill}: acks out of order");
            assert_eq!(ack.id, ack.k, "kill {kill}: snapshot id is not the counter");
            if let Some(p) = previous {
                referenced += ack
                    .sequences
                    .iter()
                    .zip(p.sequences)
                    .filter(|(a, b)| **a == *b)
                    .count();
            }
            previous = Some(*ack);
            assert!(
                acked.insert(ack.k, *ack).is_none(),
                "kill {kill}: counter repeated"
            );
        }
        let last_ack = acks.last().map_or(durable, |a| a.k);

        // The next open removes the temp file of the write the kill interrupted, and only it.
        let temps = temp_files_by_dir(&store_dir);
        assert!(
            temps.iter().map(|(_, n)| n).sum::<usize>() <= 1,
            "kill {kill}: several temp files {temps:?}"
        );
        match temps.first() {
            Some((d, _)) if *d == manifest_dir => kills_mid_manifest += 1,
            Some(_) => kills_mid_member += 1,
            None => {}
        }
        let backend = FsBackend::open(&store_dir).expect("reopen after kill");
        assert!(
            temp_files_by_dir(&store_dir).is_empty(),
            "kill {kill}: temp left"
        );
        let store = Store::new(
            Box::new(backend),
            test_keyring(),
            StoreConfig::default()
                .with_retain(RETAIN)
                .with_retain_snapshots(RETAIN)
                .with_space_reserve(0),
        );

        match store.load_snapshot(&spec) {
            Ok(mut restored) => {
                let got = snapshot::check_restored(&mut restored)
                    .unwrap_or_else(|e| panic!("kill {kill}: {e}; child's stderr {stderr}"));
                // Every ack survives; at most the one snapshot whose ack was never printed is
                // newer.
                assert!(
                    got.k == last_ack || got.k == last_ack + 1,
                    "kill {kill}: restored snapshot {} (counter {}) but the last ack was {last_ack}; \
                     stderr {stderr}",
                    got.id,
                    got.k
                );
                assert_eq!(got.id, got.k, "kill {kill}: snapshot id is not the counter");
                if let Some(ack) = acked.get(&got.k) {
                    assert_eq!(
                        ack.sequences, got.sequences,
                        "kill {kill}: snapshot {} restored other member generations than its \
                         commit acknowledged",
                        got.id
                    );
                } else if got.k == last_ack + 1 {
                    unacked_restored += 1;
                }
                // A member generation newer than the one the snapshot lists: the kill came after
                // that member was written and before the manifest was.
                let mut newest = [0u64; 4];
                for (i, name) in MEMBERS.iter().enumerate() {
                    let generations = store.generations(name).unwrap();
                    max_generations[i] = max_generations[i].max(generations.len());
                    newest[i] = generations.last().map_or(0, |g| g.sequence);
                }
                let orphaned = newest.iter().zip(got.sequences).any(|(n, s)| *n > s);
                kills_before_manifest += usize::from(orphaned && newest != previous_newest);
                previous_newest = newest;
                durable = got.k;
            }
            Err(SnapshotError::Load(LoadError::NoGeneration { .. })) if last_ack == 0 => {}
            Err(e) => {
                panic!("kill {kill}: load_snapshot failed after the last ack {last_ack}: {e}")
            }
        }
    }
    let elapsed = started.elapsed();
    report(&format!(
        "crash_loop snapshots: {SNAPSHOT_KILLS} kills ({kills_without_ack} before the child's \
         first ack), {total_acks} acknowledged snapshots, final counter {durable}, 0 lost or \
         mixed; {kills_mid_member} kills interrupted a member \
         write, {kills_mid_manifest} the manifest write, {kills_before_manifest} came after a \
         member was written and before its manifest, {unacked_restored} restored a snapshot \
         committed but not yet acknowledged (killed in the commit's retention or before the \
         ack); {referenced} member references to an unchanged \
         generation; max generations per member {max_generations:?} (retain {RETAIN}); {:.1} s",
        elapsed.as_secs_f64()
    ));
    assert!(
        durable > 0 && total_acks > 0,
        "no snapshot was ever acknowledged"
    );
}
