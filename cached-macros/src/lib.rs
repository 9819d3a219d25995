#![warn(missing_docs)]
//! The `#[cached]` attribute of [memoflight](https://docs.rs/memoflight). Use it through the
//! `memoflight` crate: the generated code refers to `::memoflight::__private` (or to the path
//! given by `crate = ..`).
//!
//! The attribute is three typed phases: `args` parses the options, `item` parses the
//! function, `validate` checks them together and yields a plan, and `expand` turns the
//! plan into code. Errors from every phase are reported together, next to the untouched
//! function so that call sites do not cascade into more errors.

mod args;
mod errors;
mod expand;
mod item;
mod validate;

use errors::Errors;
use proc_macro::TokenStream;
use validate::Features;

/// Memoizes a function; see the `memoflight` crate for the options and guarantees. This is the
/// attribute of a `memoflight` built with its `tokio` feature (and so `async`); the facade
/// re-exports the one that matches its features as `memoflight::cached`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item.into(), Features::ALL).into()
}

/// `#[cached]` of a `memoflight` built with `async` but not `tokio`: `wait_timeout` on an
/// `async fn` is refused (it needs a timer).
#[doc(hidden)]
#[proc_macro_attribute]
pub fn cached_without_tokio(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item.into(), Features::WITHOUT_TOKIO).into()
}

/// `#[cached]` of a `memoflight` built without `async`: an `async fn` is refused.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn cached_without_async(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item.into(), Features::WITHOUT_ASYNC).into()
}

/// Parses the options and the function, validates them together and expands the plan; on any
/// error, emits the function untouched with every error found, so that call sites do not
/// cascade into more errors.
fn entry(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    features: Features,
) -> proc_macro2::TokenStream {
    let mut errors = Errors::default();
    let options = syn::parse::Parser::parse2(
        |input: syn::parse::ParseStream| Ok(args::Args::parse(input, &mut errors)),
        args,
    )
    .unwrap_or_default();
    let function = syn::parse2::<item::MemoFn>(item.clone())
        .map_err(|error| errors.push(error))
        .ok();
    let plan = function
        .as_ref()
        .and_then(|function| validate::validate(options, function, features, &mut errors));
    match (function, plan) {
        (Some(function), Some(plan)) if errors.is_empty() => expand::expand(&function, &plan),
        _ => {
            let errors = errors.to_compile_errors();
            quote::quote!(#item #errors)
        }
    }
}
