//! `#[persist(snapshot = "name")]`: a struct whose fields are the member states of a snapshot
//! set. Parse the fields' `#[persist(after = "field")]`, check the dependencies (unknown
//! fields and cycles are compile errors), expand to `impl persist_core::Snapshot`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Error, Fields, Ident, Item, LitStr, Type};

struct Member {
    field: Ident,
    ty: Type,
    after: Vec<LitStr>,
}

/// The item without the fields' `#[persist(...)]`, and the `Snapshot` impl.
pub fn expand(set: &LitStr, item: &mut Item) -> syn::Result<TokenStream> {
    let Item::Struct(s) = item else {
        return Err(Error::new(
            item.span(),
            "`#[persist(snapshot = \"...\")]` goes on a struct whose fields are the member states",
        ));
    };
    let Fields::Named(fields) = &mut s.fields else {
        return Err(Error::new(
            s.ident.span(),
            "a snapshot set is a struct with named fields, one per member state",
        ));
    };
    if !s.generics.params.is_empty() {
        return Err(Error::new(
            s.generics.span(),
            "a snapshot set cannot be generic",
        ));
    }
    let mut members = Vec::new();
    let mut error = None;
    for field in fields.named.iter_mut() {
        let mut after = Vec::new();
        field.attrs.retain(|attr| {
            if !attr.path().is_ident("persist") {
                return true;
            }
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("after") {
                    after.push(meta.value()?.parse::<LitStr>()?);
                    Ok(())
                } else {
                    Err(meta.error("a member field takes `#[persist(after = \"field\")]` only"))
                }
            });
            if let Err(e) = parsed {
                error.get_or_insert(e);
            }
            false
        });
        members.push(Member {
            field: field.ident.clone().expect("named fields"),
            ty: field.ty.clone(),
            after,
        });
    }
    if let Some(e) = error {
        return Err(e);
    }
    check_dependencies(&members)?;

    let ident = &s.ident;
    let add = members.iter().map(|m| {
        let field = &m.field;
        quote! { writer.add(&self.#field)?; }
    });
    let take = members.iter().map(|m| {
        let (field, ty) = (&m.field, &m.ty);
        quote! { #field: ::persist_core::__private::take_member::<#ty>(restored)?, }
    });
    let build = members.iter().map(|m| {
        let ty = &m.ty;
        let deps = m.after.iter().map(|dep| {
            let dep_ty = &members
                .iter()
                .find(|o| o.field == dep.value())
                .expect("checked")
                .ty;
            quote! { <#dep_ty as ::persist_core::Persist>::NAME }
        });
        quote! { .member_after::<#ty>(&[#(#deps),*]) }
    });
    // Two fields of the same state would be one member twice: a compile-time error.
    let mut distinct = Vec::new();
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            let (ta, tb) = (&a.ty, &b.ty);
            let message = format!(
                "fields `{}` and `{}` are the same state: each member of a snapshot set must be a \
                 different state",
                a.field, b.field
            );
            distinct.push(quote! {
                const _: () = ::core::assert!(
                    !::persist_core::__private::same_name(
                        <#ta as ::persist_core::Persist>::NAME,
                        <#tb as ::persist_core::Persist>::NAME,
                    ),
                    #message
                );
            });
        }
    }
    Ok(quote! {
        #(#distinct)*
        impl ::persist_core::Snapshot for #ident {
            fn spec() -> &'static ::persist_core::SnapshotSpec {
                static SPEC: ::std::sync::OnceLock<::persist_core::SnapshotSpec> =
                    ::std::sync::OnceLock::new();
                SPEC.get_or_init(|| {
                    ::persist_core::SnapshotSpec::builder(#set)
                        #(#build)*
                        .build()
                        .expect("names, distinct members and acyclic dependencies are checked at compile time")
                })
            }

            fn add_to(
                &self,
                writer: &mut ::persist_core::SnapshotWriter<'_>,
            ) -> ::core::result::Result<(), ::persist_core::SnapshotError> {
                #(#add)*
                ::core::result::Result::Ok(())
            }

            fn from_restored(
                restored: &mut ::persist_core::RestoredSnapshot,
            ) -> ::core::result::Result<Self, ::persist_core::SnapshotError> {
                ::core::result::Result::Ok(#ident { #(#take)* })
            }
        }
    })
}

/// Every `after` names another field, and the dependencies have no cycle.
fn check_dependencies(members: &[Member]) -> syn::Result<()> {
    for m in members {
        for dep in &m.after {
            if m.field == dep.value() {
                return Err(Error::new(dep.span(), "a member cannot depend on itself"));
            }
            if !members.iter().any(|o| o.field == dep.value()) {
                return Err(Error::new(
                    dep.span(),
                    format!("no field `{}` in this snapshot set", dep.value()),
                ));
            }
        }
    }
    // Depth-first search; 1 = on the path, 2 = done.
    fn visit(
        i: usize,
        members: &[Member],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> syn::Result<()> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut names: Vec<String> = path[start..]
                    .iter()
                    .map(|&p| members[p].field.to_string())
                    .collect();
                names.push(members[i].field.to_string());
                return Err(Error::new(
                    members[i].field.span(),
                    format!(
                        "the members' dependencies form a cycle: {}",
                        names.join(" -> ")
                    ),
                ));
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for dep in &members[i].after {
            let j = members
                .iter()
                .position(|o| o.field == dep.value())
                .expect("checked above");
            visit(j, members, state, path)?;
        }
        path.pop();
        state[i] = 2;
        Ok(())
    }
    let mut state = vec![0u8; members.len()];
    for i in 0..members.len() {
        visit(i, members, &mut state, &mut Vec::new())?;
    }
    Ok(())
}
