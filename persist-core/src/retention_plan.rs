//! Retention plans by count and by hourly and daily buckets, with a reason for every decision:
//! the rules behind off-site retention (persist-s3) and snapshot retention.
//!
//! For each state (or snapshot set), generations are verified and ranked newest first by their
//! signed creation time. A generation is kept if it is
//!
//! 1. the newest valid generation (always, whatever the policy says);
//! 2. among the newest `keep_last` valid ones;
//! 3. the newest valid one of its clock hour, for hours within `hourly_for`;
//! 4. the newest valid one of its UTC day, for days within `daily_for`;
//! 5. invalid but newer than every valid one (kept for inspection, never silently removed);
//! 6. not corrupt but unusable here (another key's, a newer release's): kept always.
//!
//! Everything else is deleted, with the reason.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::BackendError;
use crate::envelope::Header;
use crate::generation::GenerationInfo;
use crate::reject::{RejectKind, RejectReason};

/// How many generations (or snapshots) a retention plan keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest valid generations kept unconditionally (at least 1; default 4).
    pub keep_last: usize,
    /// Keep the newest generation of each hour for this long (default 24 h).
    pub hourly_for: Duration,
    /// Keep the newest generation of each UTC day for this long (default 7 days).
    pub daily_for: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 4,
            hourly_for: Duration::from_secs(24 * 3600),
            daily_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a generation is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetentionReason {
    /// The newest valid generation: never deleted.
    NewestValid,
    /// Among the newest `keep_last` valid ones (rank 1 is the newest).
    LastN {
        /// Its rank among valid generations.
        rank: usize,
    },
    /// The newest of its hour (hours since the Unix epoch).
    Hourly {
        /// The hour bucket.
        hour: u64,
    },
    /// The newest of its UTC day (days since the Unix epoch).
    Daily {
        /// The day bucket.
        day: u64,
    },
    /// Invalid, but newer than every valid generation: kept for inspection.
    InvalidButNewest {
        /// Why it is invalid.
        why: String,
    },
    /// Valid, but outside every rule.
    Expired {
        /// Its age in seconds.
        age_secs: u64,
    },
    /// Not corrupt, but this program cannot verify it (another key, a newer format): never
    /// deleted.
    NotCorrupt {
        /// What it is (`foreign`, `too new`, …).
        kind: RejectKind,
        /// Why it cannot be verified.
        why: String,
    },
    /// Corrupt and older than a valid generation.
    Invalid {
        /// Why it is invalid.
        why: String,
    },
    /// Would go by the rules above, but a kept snapshot manifest lists it: a snapshot never
    /// loses a member off-site while it is kept.
    Referenced {
        /// The manifest's key.
        snapshot: String,
    },
    /// Would go by the rules above, but a kept delta's chain runs through it: a delta is never
    /// orphaned.
    Base {
        /// The sequence number of the kept delta whose base it is.
        delta: u64,
    },
}

impl fmt::Display for RetentionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionReason::NewestValid => write!(f, "newest valid generation (never deleted)"),
            RetentionReason::LastN { rank } => write!(f, "one of the last N (rank {rank})"),
            RetentionReason::Hourly { hour } => {
                write!(f, "newest of hour {}", fmt_time(hour * 3600))
            }
            RetentionReason::Daily { day } => write!(f, "newest of day {}", fmt_day(*day)),
            RetentionReason::InvalidButNewest { why } => {
                write!(f, "invalid but newer than every valid one, kept: {why}")
            }
            RetentionReason::Expired { age_secs } => {
                write!(
                    f,
                    "expired: {age_secs} s old, not newest of a kept hour/day"
                )
            }
            RetentionReason::NotCorrupt { kind, why } => {
                write!(
                    f,
                    "{kind}, not corrupt: never deleted ({}): {why}",
                    kind.advice()
                )
            }
            RetentionReason::Invalid { why } => write!(f, "corrupt and superseded: {why}"),
            RetentionReason::Base { delta } => {
                write!(f, "the base of kept delta {delta}: kept with it")
            }
            RetentionReason::Referenced { snapshot } => {
                write!(
                    f,
                    "a kept snapshot references it ({snapshot}): kept with it"
                )
            }
        }
    }
}

/// One generation in a retention plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// The state's name.
    pub name: String,
    /// The sequence number.
    pub sequence: u64,
    /// The key.
    pub key: String,
    /// Its signed creation time, if it verified.
    pub created_at: Option<SystemTime>,
    /// True to keep, false to delete.
    pub keep: bool,
    /// Why.
    pub reason: RetentionReason,
}

impl fmt::Display for PlanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            if self.keep { "keep  " } else { "delete" },
            self.name,
            self.sequence,
            self.reason
        )
    }
}

/// Decides, newest first, which of the generations of `name` to keep (see the module docs).
/// `verify(generation, fresh)` checks one (`fresh`: do not answer from a cache); a generation
/// that cannot be read fails the plan, so a read error never turns into a delete.
pub fn plan_retention(
    name: &str,
    newest_first: &[GenerationInfo],
    policy: &RetentionPolicy,
    now: SystemTime,
    verify: &mut dyn FnMut(&GenerationInfo, bool) -> Result<Header, RejectReason>,
) -> Result<Vec<PlanEntry>, BackendError> {
    let keep_last = policy.keep_last.max(1);
    let mut valid_rank = 0usize;
    let mut hours = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut out = Vec::new();
    for g in newest_first {
        let entry = |created_at, keep, reason| PlanEntry {
            name: name.to_string(),
            sequence: g.sequence,
            key: g.key.clone(),
            created_at,
            keep,
            reason,
        };
        // Fresh until the newest valid generation is found (see `Pruner`).
        let header = match verify(g, valid_rank == 0) {
            Ok(h) => h,
            // Deleted since the listing (another prune): nothing to decide.
            Err(RejectReason::Read(BackendError::NotFound { .. })) => continue,
            // A generation that could not be read may be perfectly valid: no plan is made on
            // incomplete knowledge, so a network error never turns into a delete.
            Err(RejectReason::Read(e)) => return Err(e),
            Err(why) if why.kind() != RejectKind::Corrupt => {
                let kind = why.kind();
                out.push(entry(
                    None,
                    true,
                    RetentionReason::NotCorrupt {
                        kind,
                        why: why.to_string(),
                    },
                ));
                continue;
            }
            Err(why) => {
                let why = why.to_string();
                out.push(if valid_rank == 0 {
                    entry(None, true, RetentionReason::InvalidButNewest { why })
                } else {
                    entry(None, false, RetentionReason::Invalid { why })
                });
                continue;
            }
        };
        valid_rank += 1;
        let created = header.created_at();
        let secs = created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let age = now.duration_since(created).unwrap_or_default();
        // The newest generation of a bucket claims it, whatever keeps it.
        let newest_of_hour = hours.insert(secs / 3600);
        let newest_of_day = days.insert(secs / 86_400);
        let (keep, reason) = if valid_rank == 1 {
            (true, RetentionReason::NewestValid)
        } else if valid_rank <= keep_last {
            (true, RetentionReason::LastN { rank: valid_rank })
        } else if newest_of_hour && age < policy.hourly_for {
            (true, RetentionReason::Hourly { hour: secs / 3600 })
        } else if newest_of_day && age < policy.daily_for {
            (true, RetentionReason::Daily { day: secs / 86_400 })
        } else {
            (
                false,
                RetentionReason::Expired {
                    age_secs: age.as_secs(),
                },
            )
        };
        out.push(entry(Some(created), keep, reason));
    }
    Ok(out)
}

/// Keeps the base of every kept delta in `plan`, and the base of that, and so on
/// ([`RetentionReason::Base`]). A kept generation's base is read from its header without
/// verification (it can only keep more); one that cannot be read fails the plan.
pub fn keep_bases(
    backend: &dyn crate::Backend,
    plan: &mut [PlanEntry],
) -> Result<(), BackendError> {
    use std::collections::{BTreeMap, BTreeSet};
    // Per state, from the newest: a base is older than its delta, so one pass per state.
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by(|&a, &b| {
        (plan[a].name.as_str(), std::cmp::Reverse(plan[a].sequence))
            .cmp(&(plan[b].name.as_str(), std::cmp::Reverse(plan[b].sequence)))
    });
    let mut needed: BTreeMap<String, BTreeSet<(u64, u64)>> = BTreeMap::new();
    for i in order {
        let entry = &mut plan[i];
        let wanted = needed.get(&entry.name).and_then(|set| {
            set.iter()
                .find(|(base, _)| *base == entry.sequence)
                .map(|&(_, delta)| delta)
        });
        if !entry.keep
            && let Some(delta) = wanted
        {
            entry.keep = true;
            entry.reason = RetentionReason::Base { delta };
        }
        if !entry.keep {
            continue;
        }
        let head = match backend.get_head(&entry.key, crate::envelope::HEAD_LEN) {
            Ok(head) => head,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if crate::envelope::is_delta_unverified(&head.bytes)
            && let Some(chunk) =
                crate::envelope::chunked::ChunkHeader::decode_unverified(&head.bytes)
        {
            needed
                .entry(entry.name.clone())
                .or_default()
                .insert((chunk.base_sequence, entry.sequence));
        }
    }
    Ok(())
}

fn fmt_time(secs: u64) -> String {
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    // `YYYY-MM-DDTHH:MM:SSZ`
    format!("{} {}:00 UTC", &at[..10], &at[11..13])
}

/// A day number since the epoch as `YYYY-MM-DD` (UTC).
fn fmt_day(day: u64) -> String {
    fmt_time(day.saturating_mul(86_400))[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeError;
    use crate::key::KeyId;
    use crate::schema::{Fingerprint, RkyvFormat};

    /// Off-site retention deletes a superseded corrupt generation but never one that is only
    /// foreign (another key's) or too new, however old: they may be authentic state.
    #[test]
    fn only_corrupt_generations_are_deleted_off_site() {
        let info = |sequence| GenerationInfo {
            sequence,
            key: crate::generation::generation_key("s", sequence),
            size: 0,
        };
        let newest_first: Vec<GenerationInfo> = (1..=5).rev().map(info).collect();
        let header = |sequence| Header {
            key_id: KeyId([1; 8]),
            name: "s".into(),
            schema_version: 1,
            fingerprint: Fingerprint([0; 32]),
            rkyv_format: RkyvFormat::CURRENT,
            sequence,
            created_at_nanos: 0,
            payload_len: 0,
        };
        let mut verify = |g: &GenerationInfo, _fresh: bool| match g.sequence {
            5 | 4 => Ok(header(g.sequence)),
            3 => Err(RejectReason::Envelope(EnvelopeError::UnknownKey(KeyId(
                [9; 8],
            )))),
            2 => Err(RejectReason::Envelope(EnvelopeError::FutureVersion {
                found: 9,
                newest_known: 1,
            })),
            _ => Err(RejectReason::Envelope(EnvelopeError::BadTag)),
        };
        let policy = RetentionPolicy {
            keep_last: 1,
            hourly_for: Duration::ZERO,
            daily_for: Duration::ZERO,
        };
        let plan = plan_retention("s", &newest_first, &policy, UNIX_EPOCH, &mut verify).unwrap();
        let decision = |seq: u64| {
            let e = plan.iter().find(|e| e.sequence == seq).expect("planned");
            (e.keep, e.reason.clone())
        };
        assert_eq!(decision(5), (true, RetentionReason::NewestValid));
        assert!(matches!(
            decision(4),
            (false, RetentionReason::Expired { .. })
        ));
        assert!(matches!(
            decision(3),
            (
                true,
                RetentionReason::NotCorrupt {
                    kind: RejectKind::Foreign,
                    ..
                }
            )
        ));
        assert!(matches!(
            decision(2),
            (
                true,
                RetentionReason::NotCorrupt {
                    kind: RejectKind::TooNew,
                    ..
                }
            )
        ));
        assert!(matches!(
            decision(1),
            (false, RetentionReason::Invalid { .. })
        ));
    }

    #[test]
    fn days_format_as_dates() {
        assert_eq!(fmt_day(0), "1970-01-01");
        assert_eq!(fmt_day(19_723), "2024-01-01");
        assert_eq!(fmt_day(11_016), "2000-02-29");
    }
}
