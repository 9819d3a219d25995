#![warn(missing_docs)]
//! The `#[cached]` attribute of [memoflight](https://docs.rs/memoflight). Use it through the
//! `memoflight` crate: the generated code refers to `::memoflight::__private`.
//!
//! The attribute is three typed phases: `args` parses the options, `item` parses the
//! function, `validate` checks them together and yields a plan, and `expand` turns the
//! plan into code. Errors from every phase are reported together, next to the untouched
//! function so that call sites do not cascade into more errors.

mod args;
mod expand;
mod item;
mod validate;

use proc_macro::TokenStream;

/// Memoizes a function; see the `memoflight` crate for the options and guarantees.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item.into()).into()
}

fn entry(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let function = match syn::parse2::<item::MemoFn>(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = error.to_compile_error();
            return quote::quote!(#item #error);
        }
    };
    let plan = syn::parse::Parser::parse2(args::Args::parse, args).and_then(|(args, errors)| {
        let plan = validate::validate(args, &function);
        match (errors, plan) {
            (None, plan) => plan,
            (Some(mut errors), Err(more)) => {
                errors.combine(more);
                Err(errors)
            }
            (Some(errors), Ok(_)) => Err(errors),
        }
    });
    match plan {
        Ok(plan) => expand::expand(&function, &plan),
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote::quote!(#item #errors)
        }
    }
}
