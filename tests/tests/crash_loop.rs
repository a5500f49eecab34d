//! SIGKILL the torture binary at random moments, over and over, in one store directory: every
//! acknowledged save must survive, and each reopen must clean up what the killed save left.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use persist_core::{LoadError, Persist, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_tests::torture::{Ack, report, torture_state};
use persist_tests::{AgentState, test_keyring};
use rand::Rng;

const KILLS: usize = 1000;
const RETAIN: usize = 3;
/// State sizes, picked at random per child: one page, several pages, and one above the 1 MiB
/// threshold where the HMAC runs on a second thread while the payload is written.
const ENTRIES: [usize; 4] = [16, 256, 4096, 50_000];

/// What one child did before it was killed.
struct Run {
    acks: Vec<Ack>,
    stderr: String,
}

fn kill_after(store_dir: &Path, entries: usize, delay: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_persist-torture"))
        .arg(store_dir)
        .args(["--entries", &entries.to_string()])
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
    let acks = Ack::all_in(&out);
    assert!(
        !exited_on_its_own,
        "the torture binary exited before the kill: stdout {:?}, stderr {stderr}",
        String::from_utf8_lossy(&out)
    );
    Run { acks, stderr }
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
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let agent_dir = store_dir.join(AgentState::NAME);
    let mut rng = rand::rng();
    let started = Instant::now();

    // The newest value known durable: what the last check loaded.
    let mut durable = 0u64;
    let (mut total_acks, mut kills_mid_save, mut kills_after_unacked_save) = (0usize, 0, 0);
    let mut max_generations = 0usize;
    let mut previous_generations = 0usize;
    for kill in 1..=KILLS {
        let entries = ENTRIES[rng.random_range(0..ENTRIES.len())];
        let delay = Duration::from_micros(rng.random_range(0..=30_000));
        let run = kill_after(&store_dir, entries, delay);
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
                // Retention trims to RETAIN before each ack. A kill between a commit and its
                // retention leaves one generation more; kills in a row, before any ack, add up.
                let before = if run.acks.is_empty() {
                    previous_generations
                } else {
                    RETAIN
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
        "crash_loop: {KILLS} kills, {total_acks} acks, final counter {durable}, \
         {kills_mid_save} kills left a temp file, {kills_after_unacked_save} kills came after an \
         unacknowledged durable save, max {max_generations} generations (retain {RETAIN}), \
         {:.1} s",
        elapsed.as_secs_f64()
    ));
    assert!(
        durable > 0 && total_acks > 0,
        "no save was ever acknowledged"
    );
}
