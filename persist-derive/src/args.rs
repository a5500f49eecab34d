//! The arguments of `#[persist(...)]`.

use proc_macro2::Span;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Error, LitInt, LitStr, Path};

/// The longest schema name (persist_core::format::MAX_NAME_LEN).
const MAX_NAME_LEN: usize = 64;

/// How a migration step from the previous version is written.
pub enum StepKind {
    /// `from = Prev`: `impl From<Prev> for Self`.
    From,
    /// `try_from = Prev`: `impl TryFrom<Prev> for Self`, whose error is reported.
    TryFrom,
}

/// The previous version of a state and how to migrate from it.
pub struct Step {
    pub prev: Path,
    pub kind: StepKind,
}

/// A top-level state: `#[persist(name = "...", version = N, from = Prev)]`.
pub struct StateArgs {
    pub name: LitStr,
    pub version: u32,
    pub step: Option<Step>,
    /// `validate = path`: `fn(&Self) -> Result<(), E>`, called after decoding and migrating.
    pub validate: Option<Path>,
}

/// What the attribute makes of the type.
pub enum Args {
    /// `#[persist(snapshot = "name")]`: a struct whose fields are the members of a snapshot set.
    Snapshot(LitStr),
    /// `#[persist(nested)]`: a type used inside states; layout only.
    Nested,
    /// A state with a name and a version.
    State(StateArgs),
}

/// Parses the arguments; missing ones are reported at `whole` (the attribute).
pub fn parse(tokens: proc_macro2::TokenStream, whole: Span) -> Result<Args, Error> {
    let mut nested: Option<Span> = None;
    let mut name: Option<LitStr> = None;
    let mut version: Option<u32> = None;
    let mut step: Option<Step> = None;
    let mut validate: Option<Path> = None;
    let mut snapshot: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "nested" => {
                if nested.replace(meta.path.span()).is_some() {
                    return Err(meta.error("duplicate `nested`"));
                }
            }
            "name" => {
                let lit: LitStr = meta.value()?.parse()?;
                validate_name(&lit)?;
                if name.replace(lit).is_some() {
                    return Err(meta.error("duplicate `name`"));
                }
            }
            "version" => {
                let lit: LitInt = meta.value()?.parse()?;
                let v: u32 = lit.base10_parse()?;
                if v == 0 {
                    return Err(Error::new(
                        lit.span(),
                        "versions start at 1: `version = 0` is not allowed",
                    ));
                }
                if version.replace(v).is_some() {
                    return Err(meta.error("duplicate `version`"));
                }
            }
            "from" | "try_from" => {
                let kind = if key == "from" {
                    StepKind::From
                } else {
                    StepKind::TryFrom
                };
                let prev: Path = meta.value()?.parse()?;
                if step.replace(Step { prev, kind }).is_some() {
                    return Err(
                        meta.error("only one previous version: give `from` or `try_from` once")
                    );
                }
            }
            "snapshot" => {
                let lit: LitStr = meta.value()?.parse()?;
                validate_set_name(&lit)?;
                if snapshot.replace(lit).is_some() {
                    return Err(meta.error("duplicate `snapshot`"));
                }
            }
            "validate" => {
                let path: Path = meta.value()?.parse()?;
                if validate.replace(path).is_some() {
                    return Err(meta.error("duplicate `validate`"));
                }
            }
            _ => {
                return Err(meta.error(
                    "unknown `persist` argument: expected `name`, `version`, `from`, `try_from`, \
                     `validate`, `nested` or `snapshot`",
                ));
            }
        }
        Ok(())
    });
    parser.parse2(tokens)?;

    if let Some(set) = snapshot {
        if nested.is_some()
            || name.is_some()
            || version.is_some()
            || step.is_some()
            || validate.is_some()
        {
            return Err(Error::new(
                set.span(),
                "`snapshot = \"...\"` makes a struct of member states: its members have their own \
                 names and versions, so it takes no other argument",
            ));
        }
        return Ok(Args::Snapshot(set));
    }

    if let Some(span) = nested {
        if name.is_some() || version.is_some() || step.is_some() || validate.is_some() {
            return Err(Error::new(
                span,
                "`nested` types have no name, version, previous version or validator of their \
                 own: validate them from the state that contains them",
            ));
        }
        return Ok(Args::Nested);
    }
    match (name, version) {
        (Some(name), Some(version)) => Ok(Args::State(StateArgs {
            name,
            version,
            step,
            validate,
        })),
        (None, None) => Err(Error::new(
            whole,
            "missing `name` and `version`: write `#[persist(name = \"...\", version = N)]` for a \
             state, or `#[persist(nested)]` for a type used inside states",
        )),
        (None, Some(_)) => Err(Error::new(whole, "missing `name = \"...\"`")),
        (Some(_), None) => Err(Error::new(whole, "missing `version = N`")),
    }
}

/// A snapshot set's name: a schema name that still fits once prefixed with `snapshot.`.
fn validate_set_name(lit: &LitStr) -> Result<(), Error> {
    validate_name(lit)?;
    if lit.value().len() > MAX_NAME_LEN - "snapshot.".len() {
        return Err(Error::new(
            lit.span(),
            "a snapshot set's name is at most 55 characters (its manifests are `snapshot.<name>`)",
        ));
    }
    Ok(())
}

/// The store's rule for schema names: 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with a dot.
fn validate_name(lit: &LitStr) -> Result<(), Error> {
    let name = lit.value();
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('.')
        || !name.bytes().all(ok)
    {
        return Err(Error::new(
            lit.span(),
            "a schema name is 1 to 64 characters of `A-Z a-z 0-9 _ . -`, not starting with `.`",
        ));
    }
    if name.starts_with("snapshot.") {
        return Err(Error::new(
            lit.span(),
            "names starting with `snapshot.` are reserved for snapshot manifests",
        ));
    }
    Ok(())
}
