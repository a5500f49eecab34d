//! `persist restore --from s3://bucket/prefix --to DIR [--state NAME] [--generation SEQ]`:
//! copies, for each state (or the one named), the newest off-site generation that verifies
//! (or the one asked for, if it verifies) into a store directory, byte for byte under the same
//! key. A program's next `load` then finds it.
//!
//! `--snapshot ID|newest [--set NAME]` restores a whole snapshot instead: it checks off-site
//! that the snapshot is whole (manifest and every member verify), copies its members and then
//! its manifest (so a crash mid-restore never leaves a manifest without its members), and
//! checks the local copy. The state-by-state restore skips manifests: the newest generation of
//! each member need not be the one a manifest lists.

use std::io::Write;
use std::path::{Path, PathBuf};

use persist_core::format::{self, generation_key};
use persist_core::{Backend, BackendError, GenerationInfo, Keyring, Store, StoreConfig};
use persist_fs::FsBackend;

use super::snapshots::{self, MANIFEST_PREFIX, SetListing, SnapshotListing, manifest_set};
use crate::error::{CliError, Status};
use crate::{keys, open, outln};

/// Arguments of `persist restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where from: s3://bucket/prefix (configured from the AWS_* environment) or
    /// postgres://user@host:port/database (password from PGPASSWORD).
    #[arg(long, value_name = "S3_URL")]
    from: String,
    /// The local store's root directory (created if missing).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Restore only this state.
    #[arg(long, value_name = "NAME")]
    state: Option<String>,
    /// Restore this generation instead of the newest valid one (needs --state).
    #[arg(long, value_name = "SEQ")]
    generation: Option<u64>,
    /// Restore a whole snapshot: its id, or `newest` for the newest whole one. Members are
    /// copied first, then the manifest.
    #[arg(long, value_name = "ID|newest", conflicts_with_all = ["state", "generation"])]
    snapshot: Option<SnapshotId>,
    /// The snapshot set to restore from (needed when the store holds several).
    #[arg(long, value_name = "NAME", requires = "snapshot")]
    set: Option<String>,
}

/// Which snapshot `--snapshot` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotId {
    /// The newest whole snapshot.
    Newest,
    /// The snapshot with this id.
    Id(u64),
}

impl std::str::FromStr for SnapshotId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "newest" {
            return Ok(SnapshotId::Newest);
        }
        s.parse()
            .map(SnapshotId::Id)
            .map_err(|_| format!("{s:?} is neither a snapshot id (a number) nor `newest`"))
    }
}

/// How copying one object ended.
enum Copied {
    /// Written, with its size.
    Written(usize),
    /// Already there, byte for byte.
    AlreadyThere,
    /// Another object is there under the key: left alone.
    Different,
}

/// Copies `key` from `remote` to `local`, byte for byte, never replacing an object; a delta's
/// chain first, oldest base first, so the local store never holds a delta without its base
/// (the caller verified the generation off-site, chain included). A base that differs locally
/// makes the result `Different`: the delta is not copied onto it.
fn copy(remote: &Store, local: &FsBackend, key: &str, to: &Path) -> Result<Copied, CliError> {
    let mut chain = vec![key.to_string()];
    while chain.len() <= format::MAX_DEPTH as usize {
        let last = chain.last().expect("not empty");
        let head = remote
            .backend()
            .get_head(last, format::HEAD_LEN)
            .map_err(|source| CliError::Storage {
                op: format!("read {last} from {}", remote.backend().location()),
                source,
            })?;
        let base = format::is_delta_unverified(&head.bytes)
            .then(|| format::ChunkHeader::decode_unverified(&head.bytes))
            .flatten();
        let (Some(base), Some((name, _))) = (base, format::parse_generation_key(last)) else {
            break;
        };
        chain.push(generation_key(name, base.base_sequence));
    }
    for base in chain[1..].iter().rev() {
        if let Copied::Different = copy_one(remote, local, base, to)? {
            return Ok(Copied::Different);
        }
    }
    copy_one(remote, local, key, to)
}

/// Copies one object (see [`copy`]).
fn copy_one(remote: &Store, local: &FsBackend, key: &str, to: &Path) -> Result<Copied, CliError> {
    let bytes = remote
        .backend()
        .get(key)
        .map_err(|source| CliError::Storage {
            op: format!("read {key} from {}", remote.backend().location()),
            source,
        })?;
    match local.put_new(key, &[&bytes]) {
        Ok(()) => Ok(Copied::Written(bytes.len())),
        Err(BackendError::AlreadyExists { .. }) => {
            if local.get(key).is_ok_and(|b| b[..] == bytes[..]) {
                Ok(Copied::AlreadyThere)
            } else {
                Ok(Copied::Different)
            }
        }
        Err(source) => Err(CliError::Storage {
            op: format!("write {key} to {}", to.display()),
            source,
        }),
    }
}

/// Restores.
pub fn run(args: &Args, key_file: Option<&Path>, out: &mut dyn Write) -> Result<Status, CliError> {
    if args.generation.is_some() && args.state.is_none() {
        return Err(CliError::GenerationWithoutState);
    }
    let key = keys::require(key_file)?;
    let remote = Store::new(
        open::remote(&args.from, open::Migrate::Check)?,
        Keyring::new(key.clone()),
        StoreConfig::default(),
    );
    if let Some(wanted) = args.snapshot {
        return restore_snapshot(args, &remote, wanted, key, out);
    }
    if let Some(set) = args.state.as_deref().and_then(manifest_set) {
        return Err(CliError::ManifestState {
            set: set.to_string(),
        });
    }
    let storage = |op: String| move |source| CliError::Storage { op, source };
    let location = remote.backend().location();
    let mut names = match &args.state {
        Some(name) => vec![name.clone()],
        None => remote
            .names()
            .map_err(storage(format!("list {location}")))?,
    };
    names.retain(|name| manifest_set(name).is_none());
    for set in remote
        .snapshot_sets()
        .map_err(storage(format!("list {location}")))?
        .iter()
        .filter(|_| args.state.is_none())
    {
        outln!(
            out,
            "skipped the manifests of snapshot set {set}: restore a whole snapshot with \
             --snapshot ID|newest"
        )?;
    }
    let local = FsBackend::open(&args.to).map_err(|source| CliError::OpenStore {
        path: args.to.clone(),
        source,
    })?;
    let mut ok = !names.is_empty();
    if names.is_empty() {
        outln!(out, "FAILED: no state found in {location}")?;
    }
    for name in names {
        let generations = remote
            .generations(&name)
            .map_err(storage(format!("list {name} in {location}")))?;
        let Some(chosen) = choose(&remote, &name, &generations, args.generation, out)? else {
            ok = false;
            continue;
        };
        match copy(&remote, &local, &chosen.key, &args.to)? {
            Copied::Written(bytes) => outln!(
                out,
                "restored {name} generation {} ({bytes} bytes) from {location} to {}",
                chosen.sequence,
                args.to.display()
            )?,
            Copied::AlreadyThere => outln!(
                out,
                "{name} generation {} is already in {}",
                chosen.sequence,
                args.to.display()
            )?,
            Copied::Different => {
                ok = false;
                outln!(
                    out,
                    "FAILED: {name}: a different generation {} exists in {}; not replaced",
                    chosen.sequence,
                    args.to.display()
                )?;
            }
        }
    }
    Ok(if ok {
        Status::Ok
    } else {
        Status::VerificationFailed
    })
}

/// The generation to restore: the one asked for if it verifies, else the newest that does.
fn choose<'a>(
    remote: &Store,
    name: &str,
    generations: &'a [GenerationInfo],
    wanted: Option<u64>,
    out: &mut dyn Write,
) -> Result<Option<&'a GenerationInfo>, CliError> {
    if let Some(seq) = wanted {
        let Some(g) = generations.iter().find(|g| g.sequence == seq) else {
            outln!(out, "FAILED: {name}: no generation {seq} off-site")?;
            return Ok(None);
        };
        return match remote.verify_generation(name, g) {
            Ok(_) => Ok(Some(g)),
            Err(e) => {
                outln!(out, "FAILED: {name} generation {seq} does not verify: {e}")?;
                Ok(None)
            }
        };
    }
    for g in generations.iter().rev() {
        match remote.verify_generation(name, g) {
            Ok(_) => return Ok(Some(g)),
            Err(e) => outln!(out, "  skipped {name} generation {}: {e}", g.sequence)?,
        }
    }
    outln!(out, "FAILED: {name}: no valid generation off-site")?;
    Ok(None)
}

/// Restores a whole snapshot: checks it off-site, copies its members, then its manifest, then
/// checks the local copy.
fn restore_snapshot(
    args: &Args,
    remote: &Store,
    wanted: SnapshotId,
    key: persist_core::Key,
    out: &mut dyn Write,
) -> Result<Status, CliError> {
    let location = remote.backend().location();
    let from = Path::new(&args.from);
    let sets = remote.snapshot_sets().map_err(|source| CliError::Storage {
        op: format!("list {location}"),
        source,
    })?;
    let set = match (&args.set, sets.as_slice()) {
        (Some(set), _) if sets.contains(set) => set.clone(),
        (Some(set), _) => {
            return Err(CliError::NoSnapshotSet {
                location,
                wanted: Some(set.clone()),
                sets,
            });
        }
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(CliError::NoSnapshotSet {
                location,
                wanted: None,
                sets,
            });
        }
        (None, _) => return Err(CliError::AmbiguousSnapshotSet { location, sets }),
    };
    let listing = snapshots::set_listing(remote, &set, from)?;
    let Some(chosen) = choose_snapshot(&listing, wanted, out)? else {
        return Ok(Status::VerificationFailed);
    };
    let local = FsBackend::open(&args.to).map_err(|source| CliError::OpenStore {
        path: args.to.clone(),
        source,
    })?;
    let mut keys: Vec<(String, String)> = chosen
        .members
        .iter()
        .map(|m| {
            (
                format!("{} generation {}", m.name, m.generation),
                generation_key(&m.name, m.generation),
            )
        })
        .collect();
    // The manifest last: a snapshot exists once its manifest does, never before its members.
    keys.push((
        format!("manifest of snapshot {}", chosen.id),
        generation_key(&format!("{MANIFEST_PREFIX}{set}"), chosen.id),
    ));
    let (mut written, mut bytes, mut there) = (0, 0, 0);
    for (what, key) in &keys {
        match copy(remote, &local, key, &args.to)? {
            Copied::Written(n) => {
                written += 1;
                bytes += n;
                outln!(out, "  copied {what} ({n} bytes)")?;
            }
            Copied::AlreadyThere => {
                there += 1;
                outln!(out, "  {what} is already in {}", args.to.display())?;
            }
            Copied::Different => {
                outln!(
                    out,
                    "FAILED: a different {what} exists in {} ({key}); not replaced, and the \
                     snapshot's manifest not copied",
                    args.to.display()
                )?;
                return Ok(Status::VerificationFailed);
            }
        }
    }
    drop(local);
    // What landed locally must be the same whole snapshot.
    let local = open::read_only(&args.to, key)?;
    let check = snapshots::set_listing(&local, &set, &args.to)?;
    match check.get(chosen.id) {
        Some(s) if s.whole => {}
        found => {
            outln!(
                out,
                "FAILED: snapshot {} of {set} copied but not whole in {}: {}",
                chosen.id,
                args.to.display(),
                found
                    .and_then(|s| s.problem.as_deref())
                    .unwrap_or("its manifest is missing")
            )?;
            return Ok(Status::VerificationFailed);
        }
    }
    outln!(
        out,
        "restored snapshot {} of {set} (committed {}, {} ago) from {location} to {}: {} \
         member{} and the manifest, {written} object{} ({bytes} bytes) copied, {there} already \
         there; whole in {}",
        chosen.id,
        chosen.created_at.as_deref().unwrap_or("-"),
        chosen.age(),
        args.to.display(),
        chosen.members.len(),
        if chosen.members.len() == 1 { "" } else { "s" },
        if written == 1 { "" } else { "s" },
        args.to.display()
    )?;
    Ok(Status::Ok)
}

/// The snapshot to restore: the one asked for if it is whole, or the newest whole one.
fn choose_snapshot<'a>(
    listing: &'a SetListing,
    wanted: SnapshotId,
    out: &mut dyn Write,
) -> Result<Option<&'a SnapshotListing>, CliError> {
    let set = &listing.set;
    let not_whole = |s: &SnapshotListing| {
        format!(
            "snapshot {} of {set} is not whole [{}]: {}",
            s.id,
            s.kind.as_deref().unwrap_or("?"),
            s.problem.as_deref().unwrap_or("?")
        )
    };
    match wanted {
        SnapshotId::Id(id) => match listing.get(id) {
            None => {
                let ids: Vec<String> = listing.snapshots.iter().map(|s| s.id.to_string()).collect();
                outln!(
                    out,
                    "FAILED: {set} has no snapshot {id} off-site (it has: {})",
                    ids.join(", ")
                )?;
                Ok(None)
            }
            Some(s) if !s.whole => {
                outln!(out, "FAILED: {}; not restored", not_whole(s))?;
                Ok(None)
            }
            Some(s) => Ok(Some(s)),
        },
        SnapshotId::Newest => {
            for s in listing.snapshots.iter().rev() {
                if s.whole {
                    return Ok(Some(s));
                }
                outln!(out, "  skipped {}", not_whole(s))?;
            }
            outln!(out, "FAILED: {set}: no whole snapshot off-site")?;
            Ok(None)
        }
    }
}
