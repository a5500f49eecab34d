//! The snapshot mode of the `persist-torture` binary (`--snapshot`): the set it commits, the
//! values of its members, the acks it prints, and the check a test runs on a restored snapshot.
//!
//! The set `torture` has four members of different sizes that change at different rates. The
//! child keeps a counter `k` (the number of snapshots committed so far, continued from the
//! restored snapshot) and commits snapshot after snapshot; in the snapshot of counter `k`, the
//! member of rate `r` holds the value of epoch `k / r` ([`SnapMember::epoch_of`]):
//!
//! | member | payload | rate | so |
//! |---|---|---|---|
//! | [`SnapClock`] | ~60 B | 1 | holds `k` itself, written by every commit |
//! | [`SnapRegime`] | 256 Q entries, ~6 KB | 2 | |
//! | [`SnapAgent`] | 4,096 Q entries, ~100 KB, depends on `snap_regime` | 3 | |
//! | [`SnapReplay`] | 60,000 Q entries, ~1.4 MB (signed on a second thread) | 5 | the slow write |
//!
//! A member whose epoch did not change is byte for byte the previous one, so the commit
//! references its generation instead of writing it. A restored snapshot is consistent exactly
//! when every member holds the epoch of the clock's `k` and equals the value generated for it
//! ([`check_restored`]): a member of another snapshot carries another epoch (or, for the same
//! epoch, is the same bytes), and payload damage past the envelope would not equal the
//! generated value.

use persist_core::{MemberOutcome, Persist, RestoredSnapshot, SnapshotSpec, persist};

use crate::{AgentState, QEntry};

/// The set's name (manifests are stored as `snapshot.torture`).
pub const SET: &str = "torture";

/// The clock: the counter `k` of the snapshot, and a little text.
#[persist(name = "snap_clock", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct SnapClock {
    /// The snapshot's counter.
    pub k: u64,
    /// Free text derived from `k`.
    pub note: String,
}

/// A small Q-table, changing every second snapshot.
#[persist(name = "snap_regime", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct SnapRegime {
    /// `k / 2` of the snapshot that wrote it.
    pub epoch: u64,
    /// The table.
    pub q: Vec<QEntry>,
}

/// A medium Q-table, changing every third snapshot; restored after [`SnapRegime`].
#[persist(name = "snap_agent", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct SnapAgent {
    /// `k / 3` of the snapshot that wrote it.
    pub epoch: u64,
    /// The table.
    pub q: Vec<QEntry>,
}

/// A large table (above the 1 MiB parallel-signing threshold), changing every fifth snapshot.
#[persist(name = "snap_replay", version = 1)]
#[derive(Clone, Debug, PartialEq)]
pub struct SnapReplay {
    /// `k / 5` of the snapshot that wrote it.
    pub epoch: u64,
    /// The table.
    pub q: Vec<QEntry>,
}

/// A member of the set: its rate and its value at an epoch.
pub trait SnapMember: Persist + Send + PartialEq + std::fmt::Debug + Sized + 'static {
    /// The member changes every `RATE` snapshots.
    const RATE: u64;
    /// The value of epoch `epoch`.
    fn at_epoch(epoch: u64) -> Self;
    /// The epoch the value holds.
    fn epoch(&self) -> u64;
    /// The epoch of the snapshot of counter `k`.
    fn epoch_of(k: u64) -> u64 {
        k / Self::RATE
    }
    /// The value in the snapshot of counter `k`.
    fn at(k: u64) -> Self {
        Self::at_epoch(Self::epoch_of(k))
    }
}

fn table(entries: usize, epoch: u64) -> Vec<QEntry> {
    AgentState::sample(entries, epoch).q
}

impl SnapMember for SnapClock {
    const RATE: u64 = 1;
    fn at_epoch(epoch: u64) -> Self {
        SnapClock {
            k: epoch,
            note: format!("snapshot counter {epoch}"),
        }
    }
    fn epoch(&self) -> u64 {
        self.k
    }
}

macro_rules! table_member {
    ($ty:ident, $rate:expr, $entries:expr) => {
        impl SnapMember for $ty {
            const RATE: u64 = $rate;
            fn at_epoch(epoch: u64) -> Self {
                $ty {
                    epoch,
                    q: table($entries, epoch),
                }
            }
            fn epoch(&self) -> u64 {
                self.epoch
            }
        }
    };
}

table_member!(SnapRegime, 2, 256);
table_member!(SnapAgent, 3, 4096);
table_member!(SnapReplay, 5, 60_000);

/// The members' names in dependency order (the order of an ack's sequences).
pub const MEMBERS: [&str; 4] = ["snap_clock", "snap_regime", "snap_agent", "snap_replay"];

/// The set: the clock, the regime, the agent after the regime, the replay table.
pub fn spec() -> SnapshotSpec {
    let spec = SnapshotSpec::builder(SET)
        .member::<SnapClock>()
        .member::<SnapRegime>()
        .member_after::<SnapAgent>(&["snap_regime"])
        .member::<SnapReplay>()
        .build()
        .expect("the torture set is valid");
    debug_assert_eq!(spec.members().collect::<Vec<_>>(), MEMBERS);
    spec
}

/// One acknowledged snapshot: `snap <k> <id> <ns> <seq>×4`, printed right after `commit`
/// returned `Ok`, with the generation each member of [`MEMBERS`] is listed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapAck {
    /// The snapshot's counter.
    pub k: u64,
    /// The snapshot's id (its manifest's sequence).
    pub id: u64,
    /// [`crate::torture::monotonic_nanos`] when `commit` had returned.
    pub at_nanos: u64,
    /// The generation of each member, in the order of [`MEMBERS`].
    pub sequences: [u64; 4],
}

impl SnapAck {
    /// The line the binary prints (without the newline).
    pub fn to_line(&self) -> String {
        let [a, b, c, d] = self.sequences;
        format!(
            "snap {} {} {} {a} {b} {c} {d}",
            self.k, self.id, self.at_nanos
        )
    }

    /// Parses a line printed by the binary; `None` for anything else.
    pub fn parse(line: &str) -> Option<SnapAck> {
        let mut words = line.split(' ');
        if words.next()? != "snap" {
            return None;
        }
        let mut number = || words.next()?.parse::<u64>().ok();
        let ack = SnapAck {
            k: number()?,
            id: number()?,
            at_nanos: number()?,
            sequences: [number()?, number()?, number()?, number()?],
        };
        words.next().is_none().then_some(ack)
    }

    /// The acks in a child's whole output; only complete (newline-terminated) lines count.
    pub fn all_in(output: &[u8]) -> Vec<SnapAck> {
        let complete = match output.iter().rposition(|&b| b == b'\n') {
            Some(end) => &output[..end],
            None => return Vec::new(),
        };
        String::from_utf8_lossy(complete)
            .lines()
            .filter_map(SnapAck::parse)
            .collect()
    }
}

/// What a consistent restored snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The counter every member agrees on.
    pub k: u64,
    /// The snapshot's id.
    pub id: u64,
    /// The generation of each member, in the order of [`MEMBERS`].
    pub sequences: [u64; 4],
}

fn take<T: SnapMember>(restored: &mut RestoredSnapshot, k: Option<u64>) -> Result<T, String> {
    let value = restored
        .take::<T>()
        .ok_or_else(|| format!("member {} not restored: {}", T::NAME, restored.report))?;
    if let Some(k) = k.filter(|&k| value.epoch() != T::epoch_of(k)) {
        return Err(format!(
            "MIXED: member {} holds epoch {} but the clock says k = {k} (epoch {})",
            T::NAME,
            value.epoch(),
            T::epoch_of(k)
        ));
    }
    if value != T::at_epoch(value.epoch()) {
        return Err(format!(
            "member {} differs from the value of its epoch {}",
            T::NAME,
            value.epoch()
        ));
    }
    Ok(value)
}

/// Checks a restored snapshot of the torture set: a whole snapshot with nothing rejected on the
/// way, every member restored from it, in dependency order, each holding exactly the value of
/// the clock's counter. Returns the counter, id and member generations, or what is wrong.
pub fn check_restored(restored: &mut RestoredSnapshot) -> Result<Restored, String> {
    let report = &restored.report;
    let id = report
        .snapshot
        .ok_or_else(|| format!("no whole snapshot restored: {report}"))?;
    if !report.rejected.is_empty() {
        return Err(format!("snapshots rejected on the way: {report}"));
    }
    let names: Vec<&str> = report.members.iter().map(|m| m.name.as_str()).collect();
    if names != MEMBERS {
        return Err(format!("members {names:?}, expected {MEMBERS:?}"));
    }
    let mut sequences = [0; 4];
    for (i, member) in report.members.iter().enumerate() {
        match &member.outcome {
            MemberOutcome::Restored { sequence, .. } => sequences[i] = *sequence,
            other => return Err(format!("member {} not restored: {other:?}", member.name)),
        }
        if !member.rejected.is_empty() {
            return Err(format!("member {} walked past generations", member.name));
        }
    }
    let k = take::<SnapClock>(restored, None)?.k;
    take::<SnapRegime>(restored, Some(k))?;
    take::<SnapAgent>(restored, Some(k))?;
    take::<SnapReplay>(restored, Some(k))?;
    Ok(Restored { k, id, sequences })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_ack_lines_round_trip_and_partial_lines_are_ignored() {
        let ack = SnapAck {
            k: 12,
            id: 12,
            at_nanos: 99,
            sequences: [12, 6, 4, 3],
        };
        assert_eq!(SnapAck::parse(&ack.to_line()), Some(ack));
        assert_eq!(SnapAck::parse("ack 1 2 3"), None);
        assert_eq!(SnapAck::parse("snap 1 2 3 4 5 6"), None);
        let out = format!("{}\nerr x\n{}\nsnap 13 13", ack.to_line(), ack.to_line());
        assert_eq!(SnapAck::all_in(out.as_bytes()), vec![ack, ack]);
    }

    /// The check can fail: a snapshot whose members hold different counters is reported mixed.
    #[test]
    fn check_restored_reports_a_mixed_snapshot() {
        use persist_core::{MemoryBackend, Store, StoreConfig};
        let store = Store::new(
            Box::new(MemoryBackend::new()),
            crate::test_keyring(),
            StoreConfig::default(),
        );
        let spec = spec();
        let commit = |clock: u64, agent: u64| {
            store
                .snapshot(&spec)
                .add(&SnapClock::at(clock))
                .and_then(|w| w.add(&SnapRegime::at(clock)))
                .and_then(|w| w.add(&SnapAgent::at(agent)))
                .and_then(|w| w.add(&SnapReplay::at(clock)))
                .and_then(|w| w.commit())
                .unwrap()
        };
        let first = commit(4, 4);
        let whole = check_restored(&mut store.load_snapshot(&spec).unwrap()).unwrap();
        assert_eq!((whole.k, whole.id), (4, first.id));
        // The agent of counter 2 (epoch 0) beside the clock of counter 4 (epoch 1).
        commit(4, 2);
        let error = check_restored(&mut store.load_snapshot(&spec).unwrap()).unwrap_err();
        assert!(error.starts_with("MIXED: member snap_agent"), "{error}");
    }

    #[test]
    fn members_change_at_their_rates() {
        assert_eq!(spec().members().collect::<Vec<_>>(), MEMBERS);
        assert_eq!(SnapAgent::at(6), SnapAgent::at(8));
        assert_ne!(SnapAgent::at(8), SnapAgent::at(9));
        assert_eq!(SnapReplay::at(7).q.len(), 60_000);
        assert_eq!(SnapClock::at(7).k, 7);
    }
}
