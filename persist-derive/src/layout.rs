//! Generates the `persist_core::Layout` impl: each field contributes its own type's descriptor.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, Ident, Item, Member};

/// `Field { name, offset, describe }` entries of a struct (`offsets`) or of an enum variant.
fn fields(ident: &Ident, fields: &Fields, offsets: bool) -> Vec<TokenStream> {
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(i.into()),
            };
            let name = match &field.ident {
                Some(ident) => ident.to_string().trim_start_matches("r#").to_string(),
                None => i.to_string(),
            };
            let ty = &field.ty;
            let offset = if offsets {
                quote! {
                    ::core::option::Option::Some(::core::mem::offset_of!(
                        <#ident as ::persist_core::rkyv::Archive>::Archived, #member
                    ))
                }
            } else {
                quote! { ::core::option::Option::None }
            };
            // The span of the field's type: an unsupported type is reported there.
            let describe = quote_spanned! {ty.span()=>
                ::persist_core::layout::Describer::describe::<#ty>
            };
            quote! {
                ::persist_core::layout::Field { name: #name, offset: #offset, describe: #describe }
            }
        })
        .collect()
}

/// `bound`: an extra where clause on the impl (the derive's `Self: RkyvDerived`), or nothing.
pub fn impl_layout(item: &Item, ident: &Ident, bound: &TokenStream) -> TokenStream {
    let body = match item {
        Item::Struct(s) => {
            let fields = fields(ident, &s.fields, true);
            quote! {
                const FIELDS: &[::persist_core::layout::Field] = &[#(#fields),*];
                d.structure(::persist_core::layout::Shape::of::<Self>(), FIELDS);
            }
        }
        Item::Enum(e) => {
            // rkyv archives the tag as a `u8` with the enum's own discriminants: an explicit
            // `= expr` restarts the count, later variants add one each.
            let mut base: Option<&syn::Expr> = None;
            let mut step = 0u64;
            let variants = e.variants.iter().map(|v| {
                if let Some((_, expr)) = &v.discriminant {
                    base = Some(expr);
                    step = 0;
                }
                let discriminant = match base {
                    Some(expr) => quote! { ((#expr) as u64) + #step },
                    None => quote! { #step },
                };
                step += 1;
                let name = v.ident.to_string().trim_start_matches("r#").to_string();
                let fields = fields(ident, &v.fields, false);
                quote! {
                    ::persist_core::layout::Variant {
                        name: #name,
                        discriminant: #discriminant,
                        fields: &[#(#fields),*],
                    }
                }
            });
            let variants: Vec<TokenStream> = variants.collect();
            quote! {
                const VARIANTS: &[::persist_core::layout::Variant] = &[#(#variants),*];
                d.enumeration(::persist_core::layout::Shape::of::<Self>(), VARIANTS);
            }
        }
        _ => unreachable!("checked: a struct or an enum"),
    };
    quote! {
        #[automatically_derived]
        impl ::persist_core::layout::Layout for #ident #bound {
            fn describe(d: &mut ::persist_core::layout::Describer) {
                #body
            }
        }
    }
}

/// Asserts, before anything else is checked, that every field's type has a layout descriptor:
/// a field whose type lacks `#[persist(nested)]` is then reported first, at the field's type,
/// with `Layout`'s message naming the fix, rather than after a page of rkyv errors.
pub fn assert_fields(item: &Item, ident: &Ident) -> TokenStream {
    let types: Vec<&syn::Type> = match item {
        Item::Struct(s) => s.fields.iter().map(|f| &f.ty).collect(),
        Item::Enum(e) => e
            .variants
            .iter()
            .flat_map(|v| v.fields.iter().map(|f| &f.ty))
            .collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return TokenStream::new();
    }
    // The bound spanned at the type's last token, so the error underlines the whole type.
    let bounds = types.iter().map(|ty| {
        let last = quote::ToTokens::to_token_stream(ty)
            .into_iter()
            .last()
            .map_or_else(|| ty.span(), |t| t.span());
        let bound = quote_spanned! {last=> ::persist_core::layout::Layout };
        quote! { #ty: #bound }
    });
    quote! {
        const _: () = {
            trait __PersistFields {}
            impl __PersistFields for #ident where #(#bounds),* {}
        };
    }
}
