//! The function `#[cached]` is applied to, as parsed: its signature typed, its body kept as
//! tokens (never inspected, only moved into the uncached twin).

use proc_macro2::TokenStream;
use quote::format_ident;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, FnArg, Ident, Pat, Signature, Type, Visibility};

/// The memoized function.
pub(crate) struct MemoFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: TokenStream,
    /// The typed arguments (a `self` receiver is rejected by validation and not listed).
    pub(crate) args: Vec<Arg>,
}

/// One typed argument.
pub(crate) struct Arg {
    /// The name the generated outer function binds the argument to: the user's own name for a
    /// plain `name: T` or `mut name: T`, a `__memo_arg{i}` name for a destructuring pattern.
    pub(crate) binding: Ident,
    pub(crate) ty: Type,
}

impl Parse for MemoFn {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let function: syn::ItemFn = input.parse()?;
        let args = function
            .sig
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(index, input)| match input {
                FnArg::Receiver(_) => None,
                FnArg::Typed(typed) => Some(Arg {
                    binding: match &*typed.pat {
                        Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => {
                            pat.ident.clone()
                        }
                        _ => format_ident!("__memo_arg{}", index),
                    },
                    ty: (*typed.ty).clone(),
                }),
            })
            .collect();
        let block = &function.block;
        Ok(MemoFn {
            attrs: function.attrs,
            vis: function.vis,
            sig: function.sig.clone(),
            body: quote::quote!(#block),
            args,
        })
    }
}
