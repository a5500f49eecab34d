//! Off-site replication: a `Replicator` copies every generation of a local store to an off-site
//! backend in the background; after the local disk is lost, a store with `off_site` set restores
//! the newest valid generation from the copy.
//!
//! The off-site backend here is a second local directory, so the example runs anywhere; in
//! production it is `persist_s3::S3Backend` (built with `S3BackendBuilder`), which the
//! replicator and the store use through the same `Backend` trait.
//!
//! `cargo run --example replication [DIR]`

use std::sync::Arc;
use std::time::Duration;

use persist_core::{Backend, Store, StoreConfig, persist};
use persist_examples::{ExampleDir, example_keyring};
use persist_fs::FsBackend;
use persist_s3::{Replicator, ReplicatorConfig};

#[persist(name = "position_book", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct PositionBook {
    pub tickets: Vec<u64>,
    pub exposure: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = ExampleDir::from_args()?;
    let local_dir = dir.path().join("local");
    let off_site: Arc<dyn Backend> = Arc::new(FsBackend::open(dir.path().join("off-site"))?);

    let store = Store::new(
        Box::new(FsBackend::open(&local_dir)?),
        example_keyring(),
        StoreConfig::default(),
    );
    // The replicator reads the local directory on its own (it shares no lock with the store).
    let replicator = Replicator::start(
        Box::new(FsBackend::open_read_only(&local_dir)?),
        Arc::clone(&off_site),
        ReplicatorConfig::default(),
    );

    let mut book = PositionBook {
        tickets: Vec::new(),
        exposure: 0.0,
    };
    for ticket in 1..=3 {
        book.tickets.push(ticket);
        book.exposure += 1_000.0;
        let receipt = store.save(&book)?;
        replicator.notify(); // optional: upload now rather than at the next poll
        println!("saved generation {}", receipt.sequence);
    }
    let status = replicator.wait_caught_up(Duration::from_secs(30));
    println!(
        "off-site: {} generations pending, {:.1} s behind",
        status.pending_generations, status.seconds_behind
    );
    assert!(status.is_caught_up(), "{status:?}");
    replicator.stop();
    drop(store);

    // The local disk is lost: a new, empty local directory, with the off-site copy configured.
    std::fs::remove_dir_all(&local_dir)?;
    let restored = Store::new(
        Box::new(FsBackend::open(&local_dir)?),
        example_keyring(),
        StoreConfig::default().with_off_site(off_site),
    );
    let loaded = restored.load::<PositionBook>()?;
    println!("restored: {}", loaded.report);
    assert_eq!(loaded.value, book);
    assert!(loaded.report.restored_from.is_some());
    Ok(())
}
