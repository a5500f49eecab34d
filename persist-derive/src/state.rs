//! Generates the `persist_core::Persist` impl of a state and its migration chain.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use crate::args::{StateArgs, StepKind};

/// `bound`: an extra where clause on the impl (the derive's `Self: RkyvDerived`), or nothing.
pub fn impl_persist(ident: &Ident, args: &StateArgs, bound: &TokenStream) -> TokenStream {
    let name = &args.name;
    let version = args.version;
    let p = quote! { ::persist_core };

    let (oldest, older_fingerprint, older_descriptor, older_decode, checks) = match &args.step {
        None => (
            quote! { #version },
            quote! { ::core::option::Option::None },
            quote! { ::core::option::Option::None },
            quote! { ::core::result::Result::Err(#p::CodecError::UnsupportedVersion(version)) },
            TokenStream::new(),
        ),
        Some(step) => {
            let prev = &step.prev;
            let prev_text = quote!(#prev).to_string().replace(' ', "");
            let name_msg = format!(
                "`{prev_text}` is a version of another state: its `name` differs from {:?}",
                name.value()
            );
            let version_msg =
                format!("`{prev_text}` must have a version lower than this one ({version})");
            let checks = quote_spanned! {prev.span()=>
                const _: () = {
                    if !#p::__private::str_eq(<#prev as #p::Persist>::NAME, #name) {
                        ::core::panic!(#name_msg);
                    }
                    if <#prev as #p::Persist>::VERSION >= #version {
                        ::core::panic!(#version_msg);
                    }
                };
            };
            // The step goes through a trait of ours, so that a missing `From`/`TryFrom` impl
            // is reported in the words of the argument written (`TryFrom`, not the `From` of
            // std's blanket impl) and says what to write.
            let convert = match step.kind {
                StepKind::From => quote_spanned! {prev.span()=>
                    <Self as #p::__private::MigrateFrom<#prev>>::migrate(old.value)
                },
                StepKind::TryFrom => quote_spanned! {prev.span()=>
                    <Self as #p::__private::TryMigrateFrom<#prev>>::try_migrate(old.value).map_err(
                        |error| #p::CodecError::Migration {
                            from: <#prev as #p::Persist>::VERSION,
                            to: #version,
                            reason: ::std::string::ToString::to_string(&error),
                            error,
                        },
                    )?
                },
            };
            (
                quote! { <#prev as #p::Persist>::OLDEST_VERSION },
                quote! { <#prev as #p::Persist>::fingerprint_of(version) },
                quote! { <#prev as #p::Persist>::descriptor_of(version) },
                quote! {{
                    let old = <#prev as #p::Persist>::decode(version, payload)?;
                    let mut migrations = old.migrations;
                    let value = #convert;
                    migrations.push(#p::MigrationStep {
                        from: <#prev as #p::Persist>::VERSION,
                        to: #version,
                    });
                    ::core::result::Result::Ok(#p::Decoded { value, migrations })
                }},
                checks,
            )
        }
    };

    // `validate = path`: the whole chain decodes and migrates first, then the hook sees the
    // current value; its error becomes `CodecError::Invalid`.
    let decode_body = quote! {
        if version == #version {
            return ::core::result::Result::Ok(#p::Decoded {
                value: #p::codec::decode::<Self>(payload)?,
                migrations: ::std::vec::Vec::new(),
            });
        }
        if version > #version {
            return ::core::result::Result::Err(#p::CodecError::UnsupportedVersion(version));
        }
        #older_decode
    };
    let decode_body = match &args.validate {
        None => decode_body,
        Some(path) => {
            let call = quote_spanned! {path.span()=>
                #p::__private::validate::<Self, _>(&decoded.value, #path)?
            };
            quote! {
                let chain = || -> ::core::result::Result<#p::Decoded<Self>, #p::CodecError> {
                    #decode_body
                };
                let decoded = chain()?;
                #call;
                ::core::result::Result::Ok(decoded)
            }
        }
    };

    quote! {
        #checks

        #[automatically_derived]
        impl #p::Persist for #ident #bound {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const OLDEST_VERSION: u32 = #oldest;

            fn fingerprint() -> #p::Fingerprint {
                static FINGERPRINT: ::std::sync::OnceLock<#p::Fingerprint> =
                    ::std::sync::OnceLock::new();
                *FINGERPRINT.get_or_init(|| {
                    #p::__private::state_fingerprint::<Self>(#name, #version)
                })
            }

            fn fingerprint_of(version: u32) -> ::core::option::Option<#p::Fingerprint> {
                if version == #version {
                    ::core::option::Option::Some(<Self as #p::Persist>::fingerprint())
                } else {
                    #older_fingerprint
                }
            }

            fn descriptor_of(version: u32) -> ::core::option::Option<::std::string::String> {
                if version == #version {
                    ::core::option::Option::Some(
                        #p::__private::state_descriptor::<Self>(#name, #version),
                    )
                } else {
                    #older_descriptor
                }
            }

            fn encode(&self) -> ::core::result::Result<#p::rkyv::util::AlignedVec, #p::CodecError> {
                #p::codec::encode(self)
            }

            fn encode_into(
                &self,
                buffer: #p::rkyv::util::AlignedVec,
            ) -> ::core::result::Result<#p::rkyv::util::AlignedVec, #p::CodecError> {
                #p::codec::encode_into(self, buffer)
            }

            fn decode(
                version: u32,
                payload: &[u8],
            ) -> ::core::result::Result<#p::Decoded<Self>, #p::CodecError> {
                #decode_body
            }
        }
    }
}
