//! `persist demo --dir DIR [--steps N] [--save-every K] [--seed S] [--schemas]
//! [--off-site s3://bucket/prefix]`: the README's main job.
//!
//! A Q-learning agent trades a simulated price series and checkpoints its whole state every K
//! steps and at the end. Run it again and it resumes from the newest valid generation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use persist_core::{Keyring, LoadError, Store, StoreConfig};
use persist_fs::FsBackend;
use persist_s3::{ReplicationStatus, Replicator, ReplicatorConfig, ThreadPriority};

use crate::demo::{ACTION_NAMES, DemoState, N_ACTIONS, N_STATES};
use crate::error::{CliError, Status};
use crate::{keys, outln};

/// The key file inside the demo directory.
const KEY_FILE: &str = "persist.key";
/// The store's root inside the demo directory.
const STORE_DIR: &str = "state";

/// Arguments of `persist demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The demo's directory: it holds the key file (persist.key) and the store (state/).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Learning steps to take in this run (one per simulated bar).
    #[arg(long, default_value_t = 500_000, value_name = "N")]
    steps: u64,
    /// Save a generation every K steps (and always at the end).
    #[arg(long, default_value_t = 50_000, value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..))]
    save_every: u64,
    /// The seed of a fresh run (a resumed run continues its saved generators).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also save the users' nine states (persist-schemas, at the specification's sizes) as one
    /// snapshot set, agent_system: restore its newest whole snapshot first (or start fresh when
    /// none exists), then commit a snapshot at each save (unchanged members are referenced).
    #[arg(long)]
    schemas: bool,
    /// Replicate every generation to s3://bucket/prefix (configured from the AWS_*
    /// environment) or postgres://user@host:port/database (password from PGPASSWORD; tables
    /// created if missing) in the background, print the replication lag after each save, and
    /// restore from it when the local store has no valid generation.
    #[arg(long, value_name = "URL")]
    off_site: Option<String>,
    /// Start fresh even though generations exist that cannot be loaded (all corrupt, or an
    /// authentic one this build cannot use: another key, a newer release, a failing
    /// migration). Without it the demo refuses and says what to do; with it, those
    /// generations are still kept (retention never deletes what it cannot load).
    #[arg(long)]
    fresh: bool,
    /// Free space each save must leave on the store's filesystem, in bytes (a save that would
    /// cut into it is refused before writing anything).
    #[arg(long, default_value_t = StoreConfig::default().space_reserve, value_name = "BYTES")]
    space_reserve: u64,
}

/// Runs or resumes the demo.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    std::fs::create_dir_all(&args.dir).map_err(|source| CliError::Io {
        op: "create directory",
        path: args.dir.clone(),
        source,
    })?;
    let key_path = args.dir.join(KEY_FILE);
    let key = match keys::resolve(key_file)? {
        Some(key) => key,
        None => {
            let (key, created) = keys::load_or_create(&key_path)?;
            if created {
                outln!(
                    out,
                    "created key file {} (mode 0600, key id {})",
                    key_path.display(),
                    key.id()
                )?;
            }
            key
        }
    };
    let store_path = args.dir.join(STORE_DIR);
    let backend = FsBackend::open(&store_path).map_err(|source| CliError::OpenStore {
        path: store_path.clone(),
        source,
    })?;
    for temp in backend.removed_temps() {
        outln!(
            out,
            "removed a stale temp file of an aborted save: {}",
            temp.display()
        )?;
    }
    // Two clients of the off-site copy: the store's restore, which the demo waits for, at normal
    // priority; the replicator's uploads, which must never slow the agent, at idle priority.
    let off_site_at = |priority| {
        let url = args.off_site.as_deref();
        url.map(|url| crate::open::off_site(url, priority))
            .transpose()
    };
    let off_site = off_site_at(ThreadPriority::Normal)?;
    // Incremental generations for states of 64 KiB and more: the snapshot members that change
    // are written as deltas of their previous generation.
    let deltas = persist_core::DeltaPolicy::default().with_min_payload(64 << 10);
    // Every load is recorded in the store's recovery log (`persist log DIR/state`).
    let mut config = StoreConfig::default()
        .with_space_reserve(args.space_reserve)
        .with_deltas(deltas)
        .with_recovery_log(true);
    config.off_site = off_site.map(Arc::from);
    let store = Store::new(Box::new(backend), Keyring::new(key), config);
    let uploads = off_site_at(ThreadPriority::Idle)?;
    let replicator = match uploads {
        Some(remote) => Some(Replicator::start(
            Box::new(FsBackend::open_read_only(&store_path).map_err(|source| {
                CliError::OpenStore {
                    path: store_path.clone(),
                    source,
                }
            })?),
            Arc::from(remote),
            ReplicatorConfig::default(),
        )),
        None => None,
    };

    let mut state = recover(&store, args.seed, args.fresh, out)?;
    let mut system = if args.schemas {
        Some(crate::demo::schemas::restore(
            &store, args.seed, args.fresh, out,
        )?)
    } else {
        None
    };
    let start_step = state.step;
    let target = state.step.saturating_add(args.steps);
    let started = Instant::now();
    while state.step < target {
        let next_save = (state.step / args.save_every)
            .saturating_add(1)
            .saturating_mul(args.save_every);
        let until = target.min(next_save);
        let stats = state.run(until - state.step);
        save(
            &store,
            &state,
            stats.reward / stats.steps.max(1) as f64,
            out,
        )?;
        if let Some(system) = &mut system {
            system.commit(&store, out)?;
        }
        if let Some(r) = &replicator {
            r.notify();
            print_lag("off-site", &r.status(), out)?;
        }
    }
    let elapsed = started.elapsed();
    summarize(&state, state.step - start_step, elapsed.as_secs_f64(), out)?;
    if let Some(r) = replicator {
        let status = r.wait_caught_up(Duration::from_secs(30));
        print_lag("off-site at exit", &status, out)?;
        r.stop();
    }
    let key_arg = if key_file.is_some() || std::env::var_os(persist_core::KEY_ENV).is_some() {
        String::new()
    } else {
        format!(" --key {}", key_path.display())
    };
    outln!(
        out,
        "check it with: persist verify {}{key_arg}   (or list, inspect{})",
        store_path.display(),
        if args.schemas {
            ", snapshots, status"
        } else {
            ""
        }
    )?;
    Ok(Status::Ok)
}

/// Loads the newest valid generation, or starts fresh when there is none. Generations that
/// exist but cannot be loaded stop the demo (its learning must not silently restart) unless
/// `fresh` says to start over anyway.
fn recover(
    store: &Store,
    seed: u64,
    fresh: bool,
    out: &mut dyn Write,
) -> Result<DemoState, CliError> {
    match store.load::<DemoState>() {
        Ok(loaded) => {
            outln!(out, "{}", loaded.report)?;
            let s = &loaded.value;
            outln!(
                out,
                "resuming at step {} (bar {}, price {:.2}, {} regime, epsilon {:.4}, cumulative \
                 reward {:.1} bps)",
                s.step,
                s.market.bar,
                s.market.price(),
                s.market.regime_name(),
                s.epsilon,
                s.cumulative_reward
            )?;
            Ok(loaded.value)
        }
        Err(LoadError::NoGeneration { .. }) => {
            outln!(out, "no generation yet, starting fresh (seed {seed})")?;
            Ok(DemoState::new(seed))
        }
        Err(err) if fresh => {
            outln!(out, "{err}")?;
            outln!(
                out,
                "--fresh: starting fresh (seed {seed}) although generations exist; those this \
                 build cannot load are kept"
            )?;
            Ok(DemoState::new(seed))
        }
        Err(err) => Err(CliError::Load(err)),
    }
}

/// Prints the replicator's lag and last error.
fn print_lag(what: &str, s: &ReplicationStatus, out: &mut dyn Write) -> Result<(), CliError> {
    outln!(
        out,
        "  {what}: {} generation{} pending, {:.1} s behind, {} uploaded{}",
        s.pending_generations,
        if s.pending_generations == 1 { "" } else { "s" },
        s.seconds_behind,
        s.uploaded_generations,
        s.last_error
            .as_deref()
            .map(|e| format!(", last error: {e}"))
            .unwrap_or_default()
    )
}

/// Saves one generation and prints its progress line.
fn save(
    store: &Store,
    state: &DemoState,
    avg_reward: f64,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let started = Instant::now();
    let receipt = store.save(state).map_err(CliError::Save)?;
    let micros = started.elapsed().as_micros();
    outln!(
        out,
        "saved generation {}: {} bytes in {micros} µs (step {}, epsilon {:.4}, avg reward {:+.3} \
         bps/step since the last save)",
        receipt.sequence,
        receipt.bytes,
        state.step,
        state.epsilon,
        avg_reward
    )?;
    if let Some(err) = &receipt.retention_error {
        outln!(out, "  warning: retention failed (the save stands): {err}")?;
    }
    Ok(())
}

/// Prints the final numbers.
fn summarize(
    state: &DemoState,
    steps: u64,
    seconds: f64,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let policy = state.policy_summary();
    outln!(
        out,
        "done: step {} ({steps} steps in {seconds:.2} s), cumulative reward {:.1} bps, {} trades, \
         recent reward {:+.3} bps/step",
        state.step,
        state.cumulative_reward,
        state.trades,
        state.reward_ewma
    )?;
    let best: Vec<String> = (0..N_ACTIONS)
        .map(|a| format!("{} {}", ACTION_NAMES[a], policy.best[a]))
        .collect();
    outln!(
        out,
        "q-table: {} values, {} of {N_STATES} states visited, greedy policy {}, checksum {:016x}",
        state.q.len(),
        policy.visited,
        best.join(" / "),
        state.q_checksum()
    )
}
