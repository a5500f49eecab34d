//! `persist snapshots DIR [--json]`: every snapshot of every snapshot set, with its id, age,
//! members and whether it is whole; exit 1 if a set's newest snapshot is not whole.
//!
//! "Whole" is checked as far as envelopes go ([`Store::snapshots`]): the manifest verifies, and
//! every member it lists is present, is the generation listed and verifies. Decoding a member
//! needs its type, which only the program (its `load_snapshot`) has.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::{RejectKind, SnapshotInfo, Store};
use serde::Serialize;

use crate::error::{CliError, Status, write_json};
use crate::{keys, open, outln, time};

/// The prefix of a snapshot manifest's state name: the manifests of set `S` are the
/// generations of state `snapshot.S`.
pub const MANIFEST_PREFIX: &str = "snapshot.";

/// Whether state `name` holds the manifests of a snapshot set (and which).
pub fn manifest_set(name: &str) -> Option<&str> {
    name.strip_prefix(MANIFEST_PREFIX)
}

/// Arguments of `persist snapshots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store's root directory, or s3://bucket/prefix (configured from the AWS_*
    /// environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP).
    dir: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// List every snapshot's members in full (by default an older snapshot shows only the
    /// members that differ from the newer one listed above it).
    #[arg(long)]
    all_members: bool,
}

/// The snapshot sets of a store.
#[derive(Debug, Serialize)]
pub struct SnapshotsListing {
    /// The store's root.
    pub root: String,
    /// True when every set's newest snapshot is whole.
    pub ok: bool,
    /// The sets, by name.
    pub sets: Vec<SetListing>,
}

/// One snapshot set.
#[derive(Debug, Serialize)]
pub struct SetListing {
    /// The set's name.
    pub set: String,
    /// The id of the newest snapshot, whole or not.
    pub newest: Option<u64>,
    /// The id of the newest whole snapshot: what a load restores.
    pub newest_whole: Option<u64>,
    /// True when the newest snapshot is whole.
    pub ok: bool,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<SnapshotListing>,
}

/// One snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotListing {
    /// Its id (the manifest's sequence number).
    pub id: u64,
    /// Whether its manifest and every member verify.
    pub whole: bool,
    /// Whether it is the newest whole snapshot of its set.
    pub newest_whole: bool,
    /// When it was committed (RFC 3339, UTC); absent when the manifest does not verify.
    pub created_at: Option<String>,
    /// When it was committed (nanoseconds since the Unix epoch).
    pub created_at_unix_nanos: Option<u64>,
    /// Its age in whole seconds.
    pub age_seconds: Option<u64>,
    /// Its members in dependency order (empty when the manifest does not verify).
    pub members: Vec<MemberListing>,
    /// Why it is not whole (naming the member that fails).
    pub problem: Option<String>,
    /// What the problem means: `corrupt` (a load walks past it to an older snapshot), or
    /// `foreign`, `too new`, `undecodable`, `unreadable` (a load stops at it).
    pub kind: Option<String>,
}

/// One member of a snapshot.
#[derive(Debug, Serialize)]
pub struct MemberListing {
    /// The state's name.
    pub name: String,
    /// The generation the snapshot holds.
    pub generation: u64,
    /// Its schema version.
    pub schema_version: u32,
    /// Its layout fingerprint.
    pub fingerprint: String,
    /// The members it depends on (restored before it).
    pub depends_on: Vec<String>,
}

impl SnapshotListing {
    fn new(info: SnapshotInfo) -> Self {
        let members = info
            .members
            .into_iter()
            .map(|m| MemberListing {
                name: m.name,
                generation: m.sequence,
                schema_version: m.schema_version,
                fingerprint: m.fingerprint.to_string(),
                depends_on: m.depends_on,
            })
            .collect();
        SnapshotListing {
            id: info.id,
            whole: info.problem.is_none(),
            newest_whole: false,
            created_at: info.created_at.map(|t| time::rfc3339(time::unix_nanos(t))),
            created_at_unix_nanos: info.created_at.map(time::unix_nanos),
            age_seconds: info.created_at.map(|t| time::age(t).as_secs()),
            members,
            kind: info.problem.as_ref().map(|r| r.kind().to_string()),
            problem: info.problem.map(|r| r.reason.to_string()),
        }
    }

    /// Its age for people (`12s`, `5m 3s`), or `-`.
    pub fn age(&self) -> String {
        self.age_seconds.map_or("-".into(), |s| {
            time::human_age(std::time::Duration::from_secs(s))
        })
    }

    /// Whether a load walks past it (a corrupt snapshot) rather than stop at it.
    pub fn walked_past(&self) -> bool {
        self.kind.as_deref() == Some(RejectKind::Corrupt.as_str())
    }
}

impl SetListing {
    /// The snapshot with this id.
    pub fn get(&self, id: u64) -> Option<&SnapshotListing> {
        self.snapshots.iter().find(|s| s.id == id)
    }

    /// The newest snapshot, whole or not.
    pub fn newest(&self) -> Option<&SnapshotListing> {
        self.snapshots.last()
    }

    /// What a load does when the newest snapshot is not whole, in words.
    pub fn fallback(&self) -> String {
        let blocking = self.newest().filter(|s| !s.whole && !s.walked_past());
        match (blocking, self.newest_whole) {
            (Some(s), _) => format!(
                "a load stops at snapshot {} ({}, not corrupt) rather than fall back to an older \
                 one",
                s.id,
                s.kind.as_deref().unwrap_or("?")
            ),
            (None, Some(id)) => format!("a load falls back to snapshot {id}, the newest whole one"),
            (None, None) => "no whole snapshot left: a load of the set fails".to_string(),
        }
    }
}

/// Lists every snapshot of `set`, marking the newest whole one.
pub fn set_listing(store: &Store, set: &str, dir: &Path) -> Result<SetListing, CliError> {
    let infos = store.snapshots(set).map_err(|source| CliError::ListStore {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut snapshots: Vec<SnapshotListing> = infos.into_iter().map(SnapshotListing::new).collect();
    let newest_whole = snapshots.iter_mut().rev().find(|s| s.whole).map(|s| {
        s.newest_whole = true;
        s.id
    });
    let newest = snapshots.last().map(|s| s.id);
    Ok(SetListing {
        set: set.to_string(),
        ok: newest.is_some() && newest == newest_whole,
        newest,
        newest_whole,
        snapshots,
    })
}

/// Lists every snapshot set of `store`.
pub fn listing(store: &Store, dir: &Path) -> Result<Vec<SetListing>, CliError> {
    let sets = store
        .snapshot_sets()
        .map_err(|source| CliError::ListStore {
            path: dir.to_path_buf(),
            source,
        })?;
    sets.iter()
        .map(|set| set_listing(store, set, dir))
        // A set whose every manifest vanished since the listing (a live writer's retention).
        .filter(|l| l.as_ref().map_or(true, |l| !l.snapshots.is_empty()))
        .collect()
}

/// Lists the snapshots.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    let key = keys::require(key_file)?;
    let store = open::read_only(&args.dir, key)?;
    let sets = listing(&store, &args.dir)?;
    let listing = SnapshotsListing {
        root: args.dir.display().to_string(),
        ok: sets.iter().all(|s| s.ok),
        sets,
    };
    let status = if listing.ok {
        Status::Ok
    } else {
        Status::VerificationFailed
    };
    if args.json {
        write_json(out, &listing)?;
        return Ok(status);
    }
    let n = listing.sets.len();
    outln!(
        out,
        "store {}: {n} snapshot set{}",
        listing.root,
        if n == 1 { "" } else { "s" }
    )?;
    if n == 0 {
        let hint = open::empty_store_hint(&args.dir)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        outln!(
            out,
            "  no snapshot found{hint}: a program commits one with Store::snapshot"
        )?;
    }
    for set in &listing.sets {
        print_set(set, args.all_members, out)?;
    }
    Ok(status)
}

fn print_set(set: &SetListing, all_members: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let n = set.snapshots.len();
    outln!(
        out,
        "\n{} ({n} snapshot{}; newest whole: {})",
        set.set,
        if n == 1 { "" } else { "s" },
        set.newest_whole
            .map_or("none".to_string(), |id| id.to_string())
    )?;
    let mut newer: Option<&SnapshotListing> = None;
    for s in set.snapshots.iter().rev() {
        let verdict = match (&s.problem, s.walked_past()) {
            (None, _) if s.newest_whole => "whole  <- newest whole: a load restores it".to_string(),
            (None, _) => "whole".to_string(),
            (Some(e), true) => format!("NOT WHOLE (corrupt): {e}"),
            (Some(e), false) => format!(
                "NOT WHOLE ({}, NOT corrupt: a load stops here): {e}",
                s.kind.as_deref().unwrap_or("?")
            ),
        };
        outln!(
            out,
            "  snapshot {}  {}  ({} ago)  {verdict}",
            s.id,
            s.created_at.as_deref().unwrap_or("-"),
            s.age()
        )?;
        // The same members as the newer snapshot listed above (by name, in order), most of
        // them the same generations: only what differs.
        let same_names = |n: &SnapshotListing| {
            n.members.len() == s.members.len()
                && n.members
                    .iter()
                    .zip(&s.members)
                    .all(|(a, b)| a.name == b.name)
        };
        let diff = newer
            .filter(|n| !all_members && !s.members.is_empty() && same_names(n))
            .map(|n| {
                let changed: Vec<String> = n
                    .members
                    .iter()
                    .zip(&s.members)
                    .filter(|(a, b)| {
                        (a.generation, a.schema_version) != (b.generation, b.schema_version)
                    })
                    .map(|(_, b)| {
                        format!(
                            "{} generation {} (v{})",
                            b.name, b.generation, b.schema_version
                        )
                    })
                    .collect();
                (n.id, changed)
            })
            .filter(|(_, changed)| changed.len() * 2 <= s.members.len());
        if let Some((id, changed)) = diff {
            if changed.is_empty() {
                outln!(out, "    the same members as snapshot {id}")?;
            } else {
                outln!(out, "    as snapshot {id}, except {}", changed.join(", "))?;
            }
            newer = Some(s);
            continue;
        }
        if !s.members.is_empty() {
            newer = Some(s);
        }
        for m in &s.members {
            let after = if m.depends_on.is_empty() {
                String::new()
            } else {
                format!("  after {}", m.depends_on.join(", "))
            };
            outln!(
                out,
                "    {:<20} generation {:>6}  v{}{after}",
                m.name,
                m.generation,
                m.schema_version
            )?;
        }
    }
    if !set.ok {
        outln!(
            out,
            "  FAILED: the newest snapshot is not whole; {}",
            set.fallback()
        )?;
    }
    Ok(())
}
