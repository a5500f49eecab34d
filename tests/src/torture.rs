//! The protocol of the `persist-torture` binary: the state it saves and the acks it prints.
//!
//! The binary saves [`torture_state`] with an incrementing `total_updates` and prints one line per
//! acknowledged save (see [`Ack`]). The crash and power-cut tests read those lines to know which
//! saves were acknowledged before they killed the process or cut the power.

use crate::AgentState;

/// The state the torture binary saves: a fixed sample of `entries` Q-table entries with its
/// counter set to `total_updates`. A loaded value must equal
/// `torture_state(value.q.len(), value.total_updates)` exactly, which catches any payload damage
/// that slipped past the envelope.
pub fn torture_state(entries: usize, total_updates: u64) -> AgentState {
    let mut state = AgentState::sample(entries, 0);
    state.total_updates = total_updates;
    state
}

/// The current `CLOCK_MONOTONIC` time in nanoseconds: the same clock in every process, so the
/// acks of a child can be compared with the moment a test cut the power.
pub fn monotonic_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// Prints a line of results to stderr past the test harness's output capture (which only
/// catches `print!`/`eprint!`), so kill and cut counts, and `SKIPPED` lines, show in every run.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// One acknowledged save: `ack <total_updates> <sequence> <monotonic ns>`, printed right after
/// `Store::save` returned `Ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The saved counter.
    pub total_updates: u64,
    /// The generation's sequence number.
    pub sequence: u64,
    /// [`monotonic_nanos`] when `save` had returned.
    pub at_nanos: u64,
}

impl Ack {
    /// The line the binary prints (without the newline).
    pub fn to_line(&self) -> String {
        format!(
            "ack {} {} {}",
            self.total_updates, self.sequence, self.at_nanos
        )
    }

    /// Parses a line printed by the binary; `None` for anything else (an `err` line, or a line
    /// cut short by a kill).
    pub fn parse(line: &str) -> Option<Ack> {
        let mut words = line.split(' ');
        if words.next()? != "ack" {
            return None;
        }
        let ack = Ack {
            total_updates: words.next()?.parse().ok()?,
            sequence: words.next()?.parse().ok()?,
            at_nanos: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(ack)
    }

    /// The acks in a child's whole output; only complete (newline-terminated) lines count.
    pub fn all_in(output: &[u8]) -> Vec<Ack> {
        let complete = match output.iter().rposition(|&b| b == b'\n') {
            Some(end) => &output[..end],
            None => return Vec::new(),
        };
        String::from_utf8_lossy(complete)
            .lines()
            .filter_map(Ack::parse)
            .collect()
    }
}

/// The delta policy of `persist-torture --deltas`: every save chunked, chains of at most four
/// deltas, chunks of about 1 KiB.
pub fn delta_policy() -> persist_core::DeltaPolicy {
    persist_core::DeltaPolicy::default()
        .with_min_payload(0)
        .with_max_chain(4)
        .with_chunk_sizes(persist_core::ChunkSizes::around(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip_and_partial_lines_are_ignored() {
        let ack = Ack {
            total_updates: 12,
            sequence: 9,
            at_nanos: 123_456,
        };
        assert_eq!(Ack::parse(&ack.to_line()), Some(ack));
        assert_eq!(Ack::parse("err fsync failed"), None);
        assert_eq!(Ack::parse("ack 1 2"), None);
        assert_eq!(Ack::parse("ack 1 2 3 4"), None);
        let out = format!("{}\n{}\nack 13 1", ack.to_line(), ack.to_line());
        assert_eq!(Ack::all_in(out.as_bytes()), vec![ack, ack]);
        assert!(Ack::all_in(b"ack 1 2 3").is_empty());
    }

    #[test]
    fn torture_state_is_deterministic() {
        assert_eq!(torture_state(8, 5), torture_state(8, 5));
        assert_eq!(torture_state(8, 5).total_updates, 5);
        assert_ne!(torture_state(8, 5), torture_state(9, 5));
    }
}
