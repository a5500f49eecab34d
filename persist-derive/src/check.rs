//! Checks on the annotated item that can be made from its tokens, with precise spans.
//!
//! Whether a field's type is supported is decided by the type system (the field's type must
//! implement `persist_core::Layout`); the checks here only catch what can never work, so that
//! the error names the real problem rather than a missing trait impl.

use syn::spanned::Spanned;
use syn::{Error, Fields, GenericArgument, Item, PathArguments, Type};

/// All errors found, combined.
pub fn item(item: &Item) -> Result<(), Error> {
    let mut errors: Vec<Error> = Vec::new();
    let (generics, fields): (_, Vec<&Fields>) = match item {
        Item::Struct(s) => (&s.generics, vec![&s.fields]),
        Item::Enum(e) => (&e.generics, e.variants.iter().map(|v| &v.fields).collect()),
        other => {
            return Err(Error::new(
                other.span(),
                "#[persist] applies to structs and enums",
            ));
        }
    };
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        errors.push(Error::new(
            generics.span(),
            "#[persist] types cannot be generic: a persisted layout must be one concrete type",
        ));
    }
    for field in fields.into_iter().flatten() {
        for attr in &field.attrs {
            if attr.path().is_ident("rkyv") {
                errors.push(Error::new(
                    attr.span(),
                    "field-level #[rkyv(...)] attributes are not supported: they change the \
                     archived form behind the layout descriptor's back",
                ));
            }
        }
        field_type(&field.ty, &mut errors);
    }
    match errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn unsupported(ty: &Type, what: &str, errors: &mut Vec<Error>) {
    errors.push(Error::new(
        ty.span(),
        format!("unsupported field type: {what} cannot be persisted"),
    ));
}

/// Rejects the kinds of type that can never be archived, looking inside containers.
fn field_type(ty: &Type, errors: &mut Vec<Error>) {
    match ty {
        Type::Reference(_) => unsupported(ty, "a reference (store the owned value)", errors),
        Type::Ptr(_) => unsupported(ty, "a raw pointer", errors),
        Type::BareFn(_) => unsupported(ty, "a function pointer", errors),
        Type::TraitObject(_) => unsupported(ty, "a trait object", errors),
        Type::ImplTrait(_) => unsupported(ty, "`impl Trait`", errors),
        Type::Never(_) => unsupported(ty, "`!`", errors),
        Type::Infer(_) => unsupported(ty, "`_`", errors),
        Type::Macro(_) => unsupported(ty, "a type macro", errors),
        Type::Array(a) => field_type(&a.elem, errors),
        Type::Slice(s) => field_type(&s.elem, errors),
        Type::Group(g) => field_type(&g.elem, errors),
        Type::Paren(p) => field_type(&p.elem, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| field_type(e, errors)),
        Type::Path(p) => {
            if p.qself.is_some() {
                unsupported(ty, "a qualified associated type", errors);
                return;
            }
            for seg in &p.path.segments {
                if let PathArguments::AngleBracketed(args) = &seg.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(t) = arg {
                            field_type(t, errors);
                        }
                    }
                }
            }
        }
        _ => unsupported(ty, "this kind of type", errors),
    }
}
