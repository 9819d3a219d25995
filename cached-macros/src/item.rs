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
    /// The typed arguments (a `self` receiver is not listed).
    pub(crate) args: Vec<Arg>,
    /// `T` when the function is a method rewritten by `#[async_trait]`: a plain `fn` returning
    /// `Pin<Box<dyn Future<Output = T> + Send + 'async_trait>>`, whose value (not the boxed
    /// future) is what gets cached.
    pub(crate) boxed_output: Option<Type>,
}

/// One typed argument.
pub(crate) struct Arg {
    /// The name the generated outer function binds the argument to: the user's own name for a
    /// plain `name: T` or `mut name: T`, a `__memo_arg{i}` name for a destructuring pattern.
    pub(crate) binding: Ident,
    pub(crate) ty: Type,
    /// A `_` pattern: the function never reads the argument, so it is left out of the default
    /// key (calls that differ only in it share an entry).
    pub(crate) ignored: bool,
}

impl Parse for MemoFn {
    /// Parses the signature; the body is kept as its brace-delimited tokens, not parsed, so
    /// that a syntax error inside it is reported by rustc where it is (the body is emitted as
    /// written) and does not hide the errors of the options.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = match input.parse::<proc_macro2::TokenTree>() {
            Ok(proc_macro2::TokenTree::Group(group))
                if group.delimiter() == proc_macro2::Delimiter::Brace =>
            {
                group
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    &sig,
                    "`#[cached]` applies to a function with a body",
                ))
            }
        };
        let args = sig
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
                    ignored: matches!(&*typed.pat, Pat::Wild(_)),
                }),
            })
            .collect();
        let boxed_output = match (&sig.asyncness, &sig.output) {
            (None, syn::ReturnType::Type(_, ty)) => boxed_future_output(ty),
            _ => None,
        };
        Ok(MemoFn {
            boxed_output,
            attrs,
            vis,
            sig,
            body: quote::ToTokens::to_token_stream(&body),
            args,
        })
    }
}

/// `Pin<Box<dyn Future<Output = T> + ..>>` → `T`: the shape `#[async_trait]` gives an
/// `async fn` (as tracing's `#[instrument]` detects it), matched on the last path segments.
fn boxed_future_output(ty: &Type) -> Option<Type> {
    let inner = |ty: &Type, name: &str| -> Option<Type> {
        let Type::Path(path) = ty else { return None };
        let last = path.path.segments.last()?;
        if last.ident != name {
            return None;
        }
        match &last.arguments {
            syn::PathArguments::AngleBracketed(args) => match args.args.first()? {
                syn::GenericArgument::Type(ty) => Some(ty.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    let boxed = inner(&inner(ty, "Pin")?, "Box")?;
    let Type::TraitObject(object) = boxed else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let syn::TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::AssocType(output) if output.ident == "Output" => {
                Some(output.ty.clone())
            }
            _ => None,
        })
    })
}
