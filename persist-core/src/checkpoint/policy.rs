//! When a state or a snapshot set is saved: [`SavePolicy`], and the per-target tally a
//! [`super::Checkpointer`] keeps against it.

use std::time::{Duration, Instant};

/// When a state (or a snapshot set) is saved by [`super::Checkpointer::record`] (or
/// [`super::Checkpointer::record_snapshot`]).
///
/// The specification's "full backup every hour, incremental every 5 minutes" is one policy for
/// a snapshot set: every 5 minutes a snapshot writes only the members that changed (the others
/// are referenced), and every hour one rewrites them all:
///
/// ```
/// use std::time::Duration;
/// let p = persist_core::SavePolicy::every(Duration::from_secs(300))
///     .full_every(Duration::from_secs(3600));
/// assert_eq!(p.full_every, Some(Duration::from_secs(3600)));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SavePolicy {
    /// Save after this many recorded events since the last save.
    pub every_events: Option<u64>,
    /// Save when the last save is at least this old (checked when an event is recorded).
    pub every: Option<Duration>,
    /// A low-priority state: skip its policy saves (with a warning) while the backend's free
    /// space is below this many bytes plus the payload. Critical states leave it `None`.
    pub skip_below_free: Option<u64>,
    /// A full save at least this often: for a snapshot set every member is rewritten (the
    /// snapshots in between write only the members that changed); for a state of a store with
    /// [`StoreConfig::deltas`](crate::StoreConfig::deltas), a full generation starts a new
    /// chain (the saves in between write deltas).
    pub full_every: Option<Duration>,
}

impl SavePolicy {
    /// Save every `n` events.
    ///
    /// ```
    /// let p = persist_core::SavePolicy::every_events(10).or_every(std::time::Duration::from_secs(3600));
    /// assert_eq!(p.every_events, Some(10));
    /// ```
    pub fn every_events(n: u64) -> Self {
        SavePolicy {
            every_events: Some(n.max(1)),
            ..SavePolicy::default()
        }
    }

    /// Save when the last save is at least `interval` old.
    pub fn every(interval: Duration) -> Self {
        SavePolicy::default().or_every(interval)
    }

    /// Also save when the last save is older than `interval`.
    pub fn or_every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// Marks the state low-priority: skipped while free space is below `bytes` plus the payload.
    pub fn low_priority(mut self, bytes: u64) -> Self {
        self.skip_below_free = Some(bytes);
        self
    }

    /// A full save at least every `interval` ([`SavePolicy::full_every`]).
    pub fn full_every(mut self, interval: Duration) -> Self {
        self.full_every = Some(interval);
        self
    }
}

/// What a checkpointer counts for one target against its policy.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) events: u64,
    pub(crate) last_save: Option<Instant>,
    pub(crate) last_full: Option<Instant>,
    /// The last payload size queued (to judge free space without serialising again).
    pub(crate) last_len: u64,
    /// True while its low-priority saves are being skipped (warned once per episode).
    pub(crate) skipping: bool,
}

impl Tally {
    /// Whether `policy` calls for a save now (after counting this event).
    pub(crate) fn due(&self, policy: &SavePolicy) -> bool {
        let by_count = policy.every_events.is_some_and(|n| self.events >= n);
        let by_time = policy
            .every
            .is_some_and(|every| self.last_save.is_none_or(|last| last.elapsed() >= every));
        by_count || by_time
    }

    /// When the next time-based save falls due, if the policy has one.
    pub(crate) fn next_due(&self, policy: &SavePolicy) -> Option<Instant> {
        let every = policy.every?;
        Some(
            self.last_save
                .map_or_else(Instant::now, |last| last + every),
        )
    }

    /// Whether the next snapshot should be full.
    pub(crate) fn full_due(&self, policy: &SavePolicy) -> bool {
        policy
            .full_every
            .is_some_and(|every| self.last_full.is_none_or(|last| last.elapsed() >= every))
    }

    /// A save was queued (or deliberately skipped): start counting again.
    pub(crate) fn reset(&mut self) {
        self.events = 0;
        self.last_save = Some(Instant::now());
    }
}
