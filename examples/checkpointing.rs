//! A checkpointing loop: a training loop that records every step with a `Checkpointer`, which
//! saves in the background every N steps or T seconds, plus a synchronous save on a priority
//! event. A restarted run resumes from the newest generation.
//!
//! `cargo run --example checkpointing [DIR]`

use std::sync::Arc;
use std::time::Duration;

use persist_core::{Checkpointer, LoadError, SavePolicy, Store, StoreConfig, persist};
use persist_examples::{ExampleDir, example_keyring};
use persist_fs::FsBackend;

#[persist(name = "trainer", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct Trainer {
    pub step: u64,
    pub weights: Vec<f64>,
    pub loss: f64,
}

impl Trainer {
    fn train_step(&mut self) {
        self.step += 1;
        let target = (self.step as f64 * 0.01).sin();
        for (i, w) in self.weights.iter_mut().enumerate() {
            *w += 0.5 * (target - *w) / (i as f64 + 1.0).sqrt();
        }
        let n = self.weights.len() as f64;
        self.loss = self
            .weights
            .iter()
            .map(|w| (target - w).powi(2))
            .sum::<f64>()
            / n;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = ExampleDir::from_args()?;
    let store = Arc::new(Store::new(
        Box::new(FsBackend::open(dir.path())?),
        example_keyring(),
        StoreConfig::default(),
    ));

    let mut trainer = match store.load::<Trainer>() {
        Ok(loaded) => {
            println!("resuming at step {}: {}", loaded.value.step, loaded.report);
            loaded.value
        }
        Err(LoadError::NoGeneration { .. }) => Trainer {
            step: 0,
            weights: vec![0.0; 256],
            loss: 0.0,
        },
        Err(other) => return Err(other.into()),
    };

    // Saves every 500 steps or every 2 seconds, whichever comes first. The value is serialised
    // on this thread; one background writer makes it durable, so the loop never waits on disk.
    let policy = SavePolicy::every_events(500).or_every(Duration::from_secs(2));
    let mut checkpointer = Checkpointer::new(Arc::clone(&store), policy);
    let start = trainer.step;
    let mut queued = 0;
    for _ in 0..5_000 {
        trainer.train_step();
        if checkpointer.record(&trainer)? {
            queued += 1;
        }
        // A priority event: save now and wait until it is durable.
        if trainer.step % 2_500 == 0 {
            let receipt = checkpointer.save_now(&trainer)?;
            println!(
                "step {}: priority save, generation {} durable",
                trainer.step, receipt.sequence
            );
        }
    }
    println!(
        "{} steps from step {start}, {queued} background saves queued",
        trainer.step - start
    );

    // The final state, whatever the policy; shutdown waits until queued saves are durable.
    checkpointer.save_async(&trainer)?;
    checkpointer.shutdown(Duration::from_secs(30))?;
    let loaded = store.load::<Trainer>()?;
    println!(
        "newest generation {}: step {}, loss {:.6}",
        loaded.report.sequence, loaded.value.step, loaded.value.loss
    );
    assert_eq!(loaded.value.step, trainer.step);
    Ok(())
}
