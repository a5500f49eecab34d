//! How the 200 MB replay buffer changes between saves, for the incremental-generation benches:
//! a ring buffer whose writer replaces a contiguous 1% at its cursor, a buffer that grows by 1%
//! by appending, and the worst case, 1% of the records changed at random positions.

use crate::replay::{Experience, ReplayBuffer, XorShift};

/// One way the buffer changes between two saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A contiguous 1% replaced at the cursor, which then advances (wrapping).
    Ring,
    /// 1% appended at the end.
    Append,
    /// 1% of the records, at random positions, replaced in place.
    Random,
}

impl Workload {
    /// Every workload, in the order of docs/BENCHMARKS.md.
    pub const ALL: [Workload; 3] = [Workload::Ring, Workload::Append, Workload::Random];

    /// Its name in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Ring => "ring",
            Workload::Append => "append",
            Workload::Random => "random",
        }
    }

    /// Applies one step to `buffer` (1% of its records), drawing from `rng`.
    pub fn step(self, buffer: &mut ReplayBuffer, rng: &mut XorShift) {
        let n = buffer.experiences.len().max(1);
        let count = (n / 100).max(1);
        match self {
            Workload::Ring => {
                let mut at = buffer.next_index as usize % n;
                for _ in 0..count {
                    buffer.experiences[at] = experience(rng, at);
                    buffer.priorities[at] = rng.unit();
                    at = (at + 1) % n;
                }
                buffer.next_index = at as u32;
            }
            Workload::Append => {
                for i in 0..count {
                    buffer.experiences.push(experience(rng, n + i));
                    buffer.priorities.push(rng.unit());
                }
                buffer.capacity = buffer.experiences.len() as u32;
            }
            Workload::Random => {
                for _ in 0..count {
                    let at = (rng.next_u64() % n as u64) as usize;
                    buffer.experiences[at] = experience(rng, at);
                    buffer.priorities[at] = rng.unit();
                }
            }
        }
        buffer.total_samples_taken += count as u64;
        buffer.sum_priorities = buffer.priorities.iter().sum();
    }
}

fn experience(rng: &mut XorShift, i: usize) -> Experience {
    Experience::random(rng, i, 1_800_000_000)
}
