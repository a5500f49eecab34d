//! `#[persist(...)]`: makes a struct or an enum a persisted, versioned, migratable state.
//!
//! Use it through `persist_core` (`use persist_core::persist;`), which re-exports it the way
//! `serde` re-exports `serde_derive`; a downstream crate needs no other dependency.
//!
//! ```
//! use persist_core::persist;
//!
//! #[persist(nested)]                      // a type used inside states
//! pub struct Position { pub ticket: u64, pub entry: f64 }
//!
//! #[persist(name = "exit_agent", version = 1)]
//! pub struct ExitAgentV1 { pub positions: Vec<Position> }
//!
//! #[persist(name = "exit_agent", version = 2, from = ExitAgentV1)]
//! pub struct ExitAgent { pub positions: Vec<Position>, pub epsilon: f64 }
//!
//! impl From<ExitAgentV1> for ExitAgent {
//!     fn from(old: ExitAgentV1) -> Self { ExitAgent { positions: old.positions, epsilon: 0.1 } }
//! }
//! ```
//!
//! # Arguments
//!
//! - `name = "..."`: the schema name (1 to 64 characters of `A-Z a-z 0-9 _ . -`). Every version
//!   of a state has the same name.
//! - `version = N`: the schema version, at least 1.
//! - `from = Prev` / `try_from = Prev`: the previous version, a type with the same `name` and a
//!   lower `version`, and `impl From<Prev> for Self` (or `TryFrom`, whose error, any
//!   `Error + Send + Sync` or a string, is reported as `CodecError::Migration` carrying the error
//!   itself: `StepError::downcast_ref` gets it back with its type). The chain may be any length;
//!   each older version stays in the code as a frozen type.
//! - `validate = path`: a check run on every decoded value, after the whole chain has migrated
//!   it: `Self::check` or a free function, `fn(&Self) -> Result<(), E>` where `E` is any
//!   `Error + Send + Sync + 'static` or a string. A refusal is `CodecError::Invalid` carrying the
//!   error, and a load treats the generation as undecodable: the value is never handed out.
//! - `nested`: a struct or enum used inside states. It gets the rkyv derives and a layout
//!   descriptor, but no name or version: it is versioned by the states that contain it.
//!
//! ```
//! use persist_core::persist;
//!
//! #[persist(name = "agent", version = 1, validate = Self::check)]
//! pub struct Agent { pub epsilon: f64 }
//!
//! impl Agent {
//!     fn check(&self) -> Result<(), String> {
//!         if (0.0..=1.0).contains(&self.epsilon) { Ok(()) } else { Err(format!("epsilon {}", self.epsilon)) }
//!     }
//! }
//! ```
//!
//! # Two spellings: the attribute, or `#[derive(Persist)]` for types that already use rkyv
//!
//! A persisted type needs rkyv's `Archive`, `Serialize` and `Deserialize` derives. The attribute
//! form adds them: an attribute macro receives the whole item and may rewrite it, so
//! `#[persist(...)]` adds `#[derive(Archive, Serialize, Deserialize)]` and
//! `#[rkyv(crate = ::persist_core::rkyv)]` itself (a downstream crate needs no rkyv dependency),
//! then generates the `Layout` and `Persist` impls. Other derives and type-level `#[rkyv(...)]`
//! attributes (`derive(Debug)`, `compare(PartialEq)`, …) go below it.
//!
//! A codebase whose types already derive rkyv's traits writes `#[derive(Persist)]` next to them
//! instead, with the same arguments in `#[persist(...)]` as the derive's helper attribute,
//! **below** the `#[derive(...)]` line. It generates the same impls (the same fingerprint, too)
//! and leaves the rkyv derives to the user:
//!
//! ```
//! use persist_core::Persist;
//! use persist_core::rkyv::{Archive, Deserialize, Serialize};
//!
//! #[derive(Archive, Serialize, Deserialize, Persist)]
//! #[persist(nested)]
//! #[rkyv(crate = persist_core::rkyv)]       // or rkyv 0.8 as your own dependency
//! pub struct Position { pub ticket: u64, pub entry: f64 }
//!
//! #[derive(Archive, Serialize, Deserialize, Persist)]
//! #[persist(name = "book", version = 1)]
//! #[rkyv(crate = persist_core::rkyv)]
//! pub struct Book { pub positions: Vec<Position> }
//!
//! assert_eq!(<Book as persist_core::Persist>::NAME, "book");
//! ```
//!
//! `use persist_core::Persist` imports the trait and the derive at once (as `serde::Serialize`
//! does). With the attribute macro `persist` in scope too, `#[persist(...)]` below the derive is
//! still the helper; above it, rustc reports the name as ambiguous. `#[derive(Persist)]` without
//! rkyv's derives, without `#[persist(...)]`, or under `#[persist_core::persist(...)]` is a
//! compile error saying what to write instead.
//!
//! # What it generates
//!
//! - the rkyv derives (the archived type is `Archived<Name>`, e.g. `ArchivedExitAgent`);
//! - `impl persist_core::Layout`: the layout descriptor, composed from the fields' own
//!   `Layout` impls (names, order, archived offsets, sizes, alignments, enum variants and
//!   discriminants), see `persist_core::layout`;
//! - for a state, `impl persist_core::Persist`: name, version, the fingerprint (SHA-256 of the
//!   descriptor, computed once), the fingerprints of every older version of the chain, and a
//!   decoder that walks the chain upward from the version written in the signed header;
//! - compile-time checks that `from` names the same state at a lower version.
//!
//! # Limits
//!
//! Generic types and field-level `#[rkyv(...)]` attributes (such as `with = ...`, which change
//! the archived form behind the descriptor's back) are refused with a compile error.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Error, Item, parse_macro_input};

mod args;
mod check;
mod layout;
mod snapshot;
mod state;

/// Makes a struct or an enum a persisted state (`name`, `version`, optional `from`/`try_from`,
/// `validate`) or a type nested inside states (`nested`), adding rkyv's derives. See the crate
/// documentation.
#[proc_macro_attribute]
pub fn persist(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item = parse_macro_input!(item as Item);
    if let Some(derive) = derives_persist(attrs(&item)) {
        // Emit the item without the derive, keeping its rkyv derives and attributes.
        strip_derive_persist(&mut item);
        let error = Error::new(
            derive.span(),
            "`#[persist(...)]` above `#[derive(.., Persist)]`: write one or the other. Either \
             drop `Persist` (and rkyv's derives) from the derive list: `#[persist(...)]` alone \
             adds them; or keep `#[derive(Archive, Serialize, Deserialize, Persist)]` and move \
             `#[persist(...)]` below it, where it is the derive's helper attribute",
        )
        .to_compile_error();
        return quote! { #item #error }.into();
    }
    match expand_attribute(attr.into(), &item) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            // Emit the item as written (minus the rkyv attributes that would now be unknown), so
            // code using it does not drown the real error in follow-up ones.
            strip_rkyv_attrs(&mut item);
            let error = error.to_compile_error();
            quote! { #item #error }.into()
        }
    }
}

/// `#[derive(Persist)]` with `#[persist(...)]` as its helper attribute, for a type that derives
/// rkyv's `Archive`, `Serialize` and `Deserialize` itself. Generates what the attribute does,
/// except the rkyv derives. See the crate documentation.
#[proc_macro_derive(Persist, attributes(persist))]
pub fn derive_persist(item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as Item);
    match expand_derive(&item) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand_attribute(
    attr: proc_macro2::TokenStream,
    item: &Item,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = args::parse(attr, Span::call_site())?;
    if let args::Args::Snapshot(set) = &args {
        let mut item = item.clone();
        // On an error, the item is still emitted without its fields' `#[persist(...)]`, so the
        // error is the only one.
        let snapshot = snapshot::expand(set, &mut item).unwrap_or_else(|e| e.to_compile_error());
        return Ok(quote! {
            #snapshot
            #item
        });
    }
    let impls = impls(&args, item, &proc_macro2::TokenStream::new())?;
    // The impls first: the checks among them are then reported before rkyv's errors.
    Ok(quote! {
        #impls
        #[derive(
            ::persist_core::rkyv::Archive,
            ::persist_core::rkyv::Serialize,
            ::persist_core::rkyv::Deserialize
        )]
        #[rkyv(crate = ::persist_core::rkyv)]
        #item
    })
}

fn expand_derive(item: &Item) -> syn::Result<proc_macro2::TokenStream> {
    let helpers: Vec<&Attribute> = attrs(item)
        .iter()
        .filter(|a| a.path().is_ident("persist"))
        .collect();
    let attr = match helpers.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::new(
                Span::call_site(),
                "`#[derive(Persist)]` needs `#[persist(name = \"...\", version = N)]` (or \
                 `#[persist(nested)]` for a type used inside states) below the derive",
            ));
        }
        [_, second, ..] => {
            return Err(Error::new(
                second.span(),
                "one `#[persist(...)]` per type: merge the arguments",
            ));
        }
    };
    let tokens = match &attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        _ => proc_macro2::TokenStream::new(),
    };
    let args = args::parse(tokens, attr.span())?;
    let ident = ident(item);
    // The type must derive rkyv's traits itself. The impls are bounded on that alone (the
    // bound's supertraits are every rkyv bound they use), so without the derives the one error
    // is `RkyvDerived`'s, which says what to write.
    let bound = quote_spanned! {ident.span()=>
        where #ident: ::persist_core::__private::RkyvDerived
    };
    impls(&args, item, &bound)
}

/// The checks, the `Layout` impl and, for a state, the `Persist` impl.
fn impls(
    args: &args::Args,
    item: &Item,
    bound: &proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    check::item(item)?;
    let ident = ident(item);
    let fields = layout::assert_fields(item, ident);
    let layout = layout::impl_layout(item, ident, bound);
    let persist = match args {
        args::Args::Nested => proc_macro2::TokenStream::new(),
        args::Args::Snapshot(set) => {
            return Err(Error::new(
                set.span(),
                "`snapshot = \"...\"` is written as the attribute `#[persist(snapshot = \"...\")]`, \
                 not with `#[derive(Persist)]`",
            ));
        }
        args::Args::State(state) => state::impl_persist(ident, state, bound),
    };
    Ok(quote! {
        #fields
        #layout
        #persist
    })
}

fn ident(item: &Item) -> &syn::Ident {
    match item {
        Item::Struct(s) => &s.ident,
        Item::Enum(e) => &e.ident,
        _ => unreachable!("check::item accepts structs and enums only"),
    }
}

fn attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Struct(s) => &s.attrs,
        Item::Enum(e) => &e.attrs,
        _ => &[],
    }
}

/// The `Persist` in a `#[derive(..)]` of `attrs`, if any.
fn derives_persist(attrs: &[Attribute]) -> Option<syn::Path> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .filter_map(|a| {
            a.parse_args_with(
                syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
            )
            .ok()
        })
        .flatten()
        .find(|p| p.segments.last().is_some_and(|s| s.ident == "Persist"))
}

fn strip_rkyv_attrs(item: &mut Item) {
    let keep = |a: &syn::Attribute| !a.path().is_ident("rkyv");
    match item {
        Item::Struct(s) => {
            s.attrs.retain(keep);
            s.fields.iter_mut().for_each(|f| f.attrs.retain(keep));
        }
        Item::Enum(e) => {
            e.attrs.retain(keep);
            for v in &mut e.variants {
                v.attrs.retain(keep);
                v.fields.iter_mut().for_each(|f| f.attrs.retain(keep));
            }
        }
        _ => {}
    }
}

/// Removes `Persist` from the item's derive lists (after the attribute refused the pair).
fn strip_derive_persist(item: &mut Item) {
    let attrs = match item {
        Item::Struct(s) => &mut s.attrs,
        Item::Enum(e) => &mut e.attrs,
        _ => return,
    };
    for attr in attrs.iter_mut().filter(|a| a.path().is_ident("derive")) {
        let Ok(paths) = attr.parse_args_with(
            syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        ) else {
            continue;
        };
        let kept = paths
            .into_iter()
            .filter(|p| p.segments.last().is_none_or(|s| s.ident != "Persist"));
        *attr = syn::parse_quote! { #[derive(#(#kept),*)] };
    }
}
