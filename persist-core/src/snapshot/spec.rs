//! What a snapshot set is: its name, its member states and what each depends on, in an order
//! where every member comes after its dependencies (checked when the spec is built).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use crate::check::Schema;
use crate::envelope::{self, MAX_NAME_LEN};
use crate::persist::{CodecError, Decoded, Persist};

use super::MANIFEST_PREFIX;

/// A member's decoder: validates, decodes and migrates a payload of a version into the current
/// type, boxed.
pub(crate) type LoadFn = fn(u32, &[u8]) -> Result<Decoded<Box<dyn Any + Send>>, CodecError>;

/// One member of a set: a state type and the members it depends on.
#[derive(Clone)]
pub(crate) struct MemberSpec {
    pub(crate) schema: Schema,
    pub(crate) depends_on: Vec<&'static str>,
    pub(crate) load: LoadFn,
}

impl MemberSpec {
    pub(crate) fn name(&self) -> &'static str {
        self.schema.name()
    }
}

/// The definition of a snapshot set: many states saved as one consistent set and restored in
/// dependency order. Build it once with [`SnapshotSpec::builder`].
///
/// ```
/// use persist_core::{SnapshotSpec, SpecError, persist};
///
/// #[persist(name = "regime", version = 1)]
/// struct Regime { state: u8 }
/// #[persist(name = "exit_agent", version = 1)]
/// struct ExitAgent { q: Vec<f32> }
///
/// let spec = SnapshotSpec::builder("agent_system")
///     .member_after::<ExitAgent>(&["regime"]) // declared first, restored second
///     .member::<Regime>()
///     .build()
///     .unwrap();
/// assert_eq!(spec.members().collect::<Vec<_>>(), ["regime", "exit_agent"]);
///
/// let cycle = SnapshotSpec::builder("bad")
///     .member_after::<ExitAgent>(&["regime"])
///     .member_after::<Regime>(&["exit_agent"])
///     .build();
/// assert!(matches!(cycle, Err(SpecError::Cycle { .. })));
/// ```
#[derive(Clone)]
pub struct SnapshotSpec {
    name: &'static str,
    manifest: Schema,
    /// In dependency order: every member after the members it depends on.
    members: Vec<MemberSpec>,
}

impl fmt::Debug for SnapshotSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotSpec")
            .field("name", &self.name)
            .field("members", &self.members().collect::<Vec<_>>())
            .finish()
    }
}

impl SnapshotSpec {
    /// Starts the spec of the set called `name` (1 to 55 bytes of `[A-Za-z0-9_.-]`).
    pub fn builder(name: &'static str) -> SnapshotSpecBuilder {
        SnapshotSpecBuilder {
            name,
            members: Vec::new(),
        }
    }

    /// The set's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name under which the set's manifests are stored: `snapshot.<name>`.
    pub fn manifest_name(&self) -> &'static str {
        self.manifest.name()
    }

    /// The members' names in dependency order (each after what it depends on).
    pub fn members(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.members.iter().map(MemberSpec::name)
    }

    /// What member `name` depends on (empty if nothing, or if it is not a member).
    pub fn depends_on(&self, name: &str) -> &[&'static str] {
        self.member(name).map_or(&[], |m| &m.depends_on)
    }

    pub(crate) fn member(&self, name: &str) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.name() == name)
    }

    pub(crate) fn member_specs(&self) -> &[MemberSpec] {
        &self.members
    }

    pub(crate) fn manifest_schema(&self) -> &Schema {
        &self.manifest
    }
}

/// Builds a [`SnapshotSpec`]; [`SnapshotSpecBuilder::build`] checks it.
#[derive(Clone)]
#[must_use]
pub struct SnapshotSpecBuilder {
    name: &'static str,
    members: Vec<MemberSpec>,
}

impl SnapshotSpecBuilder {
    /// Adds state `T`, which depends on no other member.
    pub fn member<T: Persist + Send + 'static>(self) -> Self {
        self.member_after::<T>(&[])
    }

    /// Adds state `T`, restored after the members named in `depends_on` (their schema names).
    pub fn member_after<T: Persist + Send + 'static>(
        mut self,
        depends_on: &[&'static str],
    ) -> Self {
        self.members.push(MemberSpec {
            schema: Schema::of::<T>(),
            depends_on: depends_on.to_vec(),
            load: |version, payload| {
                T::decode(version, payload).map(|d| Decoded {
                    value: Box::new(d.value) as Box<dyn Any + Send>,
                    migrations: d.migrations,
                })
            },
        });
        self
    }

    /// Checks the names, that each dependency is a member, and that the dependencies have no
    /// cycle; orders the members so each comes after its dependencies (otherwise keeping the
    /// order they were added in).
    pub fn build(self) -> Result<SnapshotSpec, SpecError> {
        let manifest_name = format!("{MANIFEST_PREFIX}{}", self.name);
        if manifest_name.len() > MAX_NAME_LEN || envelope::validate_name(self.name).is_err() {
            return Err(SpecError::InvalidName(self.name.to_string()));
        }
        if self.members.is_empty() {
            return Err(SpecError::Empty(self.name.to_string()));
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].iter().any(|o| o.name() == m.name()) {
                return Err(SpecError::Duplicate(m.name().to_string()));
            }
            if let Some(dependency) = m
                .depends_on
                .iter()
                .find(|d| !self.members.iter().any(|o| o.name() == **d))
            {
                return Err(SpecError::UnknownDependency {
                    member: m.name().to_string(),
                    dependency: dependency.to_string(),
                });
            }
        }
        let members = dependency_order(&self.members)?;
        Ok(SnapshotSpec {
            name: self.name,
            manifest: super::manifest::schema(intern(manifest_name)),
            members,
        })
    }
}

/// The members with each after its dependencies, stable otherwise; a cycle is an error naming it.
fn dependency_order(members: &[MemberSpec]) -> Result<Vec<MemberSpec>, SpecError> {
    let index: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name(), i))
        .collect();
    // 0 = not visited, 1 = on the current path, 2 = placed.
    let mut state = vec![0u8; members.len()];
    let mut order = Vec::with_capacity(members.len());
    fn visit(
        i: usize,
        members: &[MemberSpec],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), SpecError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|&p| members[p].name().to_string())
                    .collect();
                cycle.push(members[i].name().to_string());
                return Err(SpecError::Cycle { path: cycle });
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for dependency in &members[i].depends_on {
            visit(index[dependency], members, index, state, path, order)?;
        }
        path.pop();
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..members.len() {
        visit(i, members, &index, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order.into_iter().map(|i| members[i].clone()).collect())
}

/// A `'static` copy of a manifest's name, made once per name (a [`Schema`] names its state
/// with a `&'static str`; sets are few and their specs built once).
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = names.iter().find(|n| **n == name) {
        return found;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

/// Why a [`SnapshotSpec`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The set's name is not a valid name (or too long once prefixed with `snapshot.`).
    #[error(
        "invalid snapshot set name {0:?}: 1 to 55 bytes of [A-Za-z0-9_.-], not starting with a dot"
    )]
    InvalidName(String),
    /// The set has no member.
    #[error("snapshot set {0} has no member")]
    Empty(String),
    /// A state was added twice.
    #[error("state {0} is a member twice")]
    Duplicate(String),
    /// A member depends on a state that is not a member.
    #[error("member {member} depends on {dependency}, which is not a member of the set")]
    UnknownDependency {
        /// The member.
        member: String,
        /// The missing dependency.
        dependency: String,
    },
    /// The dependencies form a cycle, so no member of it can be restored first.
    #[error("the dependencies form a cycle: {}", path.join(" -> "))]
    Cycle {
        /// The members on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
}
