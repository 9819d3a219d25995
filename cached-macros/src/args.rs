//! The attribute grammar: `#[cached(option = value, flag, ...)]`, parsed into typed, set-once
//! slots. Values are written as Rust (`key = (u64, String)`) or, as in `cached` 0.4x, as a
//! string holding Rust (`key = "String"`).

use crate::errors::Errors;
use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitBool, LitStr, Token, Type};

/// The options, in the order the "unknown option" error lists them.
const OPTIONS: &[&str] = &[
    "async_store",
    "cache_err",
    "cache_none",
    "convert",
    "key",
    "max_size",
    "refresh_after",
    "store",
    "ttl",
    "wait_timeout",
];

/// A value given to an option, with the span of the option's name for error messages.
pub(crate) struct Given<T> {
    pub(crate) name: Ident,
    pub(crate) value: T,
}

/// The parsed options; each is set at most once.
#[derive(Default)]
pub(crate) struct Args {
    /// An expression yielding an async store (I/O) to keep an `async fn`'s values in.
    pub(crate) async_store: Option<Given<Expr>>,
    /// Cache `Err` results too (only `Ok` by default).
    pub(crate) cache_err: Option<Given<bool>>,
    /// Cache `None` results too (only `Some` by default).
    pub(crate) cache_none: Option<Given<bool>>,
    /// An expression over the arguments that yields the key.
    pub(crate) convert: Option<Given<Expr>>,
    /// The type of the key `convert` yields, when it should be named.
    pub(crate) key: Option<Given<Type>>,
    /// The most entries the cache holds: an expression of type `usize`.
    pub(crate) max_size: Option<Given<Expr>>,
    /// How long an entry lives after it was computed, as a `Duration` expression.
    pub(crate) ttl: Option<Given<Expr>>,
    /// The age from which one caller recomputes an entry while the others keep getting it.
    pub(crate) refresh_after: Option<Given<Expr>>,
    /// An expression yielding the store to use instead of the default unbounded one.
    pub(crate) store: Option<Given<Expr>>,
    /// How long a caller waits for another's computation: a `Duration` expression, or a human
    /// duration string checked here, at compile time.
    pub(crate) wait_timeout: Option<Given<Expr>>,
}

impl Args {
    /// Parses the attribute's arguments, adding every error to `errors` instead of stopping at
    /// the first (a bad token skips to the next comma): what was understood is returned, so
    /// that validation can add its own errors.
    pub(crate) fn parse(input: ParseStream, errors: &mut Errors) -> Self {
        let mut args = Args::default();
        while !input.is_empty() {
            match input.call(syn::ext::IdentExt::parse_any) {
                Ok(name) => {
                    if let Err(error) = args.parse_option(name, input).and_then(|set| set) {
                        errors.push(error);
                    }
                }
                Err(_) => {
                    errors.push(syn::Error::new(
                        input.span(),
                        format!("expected an option, one of: {}", OPTIONS.join(", ")),
                    ));
                    skip_value(input);
                }
            }
            if input.is_empty() {
                break;
            }
            if input.parse::<Token![,]>().is_err() {
                errors.push(syn::Error::new(
                    input.span(),
                    "expected `,` between options",
                ));
                skip_value(input);
                let _ = input.parse::<Token![,]>();
            }
        }
        args
    }

    /// Parses the value of option `name` into its slot: the outer error is a value that does
    /// not parse, the inner one an option given twice.
    fn parse_option(&mut self, name: Ident, input: ParseStream) -> syn::Result<syn::Result<()>> {
        let option = name.to_string();
        match option.as_str() {
            "async_store" => parse_value(input, "an expression that makes an async store")
                .map(|v| set(&mut self.async_store, name, v)),
            "cache_err" => parse_flag(input).map(|v| set(&mut self.cache_err, name, v)),
            "cache_none" => parse_flag(input).map(|v| set(&mut self.cache_none, name, v)),
            "convert" => parse_value(input, "an expression over the arguments")
                .map(|v| set(&mut self.convert, name, v)),
            "key" => parse_value(input, "a type, e.g. `key = (u64, String)`")
                .map(|v| set(&mut self.key, name, v)),
            "max_size" => parse_value(input, "a number of entries, e.g. `max_size = 1000`")
                .map(|v| set(&mut self.max_size, name, v)),
            "ttl" => parse_duration(input).map(|v| set(&mut self.ttl, name, v)),
            "refresh_after" => parse_duration(input).map(|v| set(&mut self.refresh_after, name, v)),
            "store" => parse_value(input, "an expression that makes a store")
                .map(|v| set(&mut self.store, name, v)),
            "wait_timeout" => parse_duration(input).map(|v| set(&mut self.wait_timeout, name, v)),
            _ => {
                skip_value(input);
                Err(syn::Error::new(
                    name.span(),
                    format!(
                        "unknown option `{option}`; the options are: {}",
                        OPTIONS.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Fills a set-once slot; a second occurrence is an error spanned on it.
fn set<T>(slot: &mut Option<Given<T>>, name: Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            name.span(),
            format!("option `{name}` is given twice"),
        ));
    }
    *slot = Some(Given { name, value });
    Ok(())
}

/// `flag`, `flag = true` or `flag = false`.
fn parse_flag(input: ParseStream) -> syn::Result<bool> {
    if !input.peek(Token![=]) {
        return Ok(true);
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitBool) {
        return Ok(input.parse::<LitBool>()?.value);
    }
    let span = input.span();
    skip_value(input);
    Err(syn::Error::new(span, "expected `true` or `false`"))
}

/// `= <Rust>` or `= "<Rust>"`; `expected` describes the value for the error message.
fn parse_value<T: Parse>(input: ParseStream, expected: &str) -> syn::Result<T> {
    if !input.peek(Token![=]) {
        let error = syn::Error::new(input.span(), "expected `=` and a value");
        skip_value(input);
        return Err(error);
    }
    input.parse::<Token![=]>()?;
    parse_rust(input, expected)
}

/// `<Rust>` or `"<Rust>"` (the string form of `cached` 0.4x).
fn parse_rust<T: Parse>(input: ParseStream, expected: &str) -> syn::Result<T> {
    if input.peek(LitStr) && !input.peek2(Token![.]) {
        let literal = input.parse::<LitStr>()?;
        return literal
            .parse()
            .map_err(|_| syn::Error::new(literal.span(), format!("expected {expected}")));
    }
    let span = input.span();
    input.parse().map_err(|_| {
        skip_value(input);
        syn::Error::new(span, format!("expected {expected}"))
    })
}

/// `= "2s"` (parsed now by `humantime`, a spanned error if it is not a duration) or
/// `= <Duration expression>`.
fn parse_duration(input: ParseStream) -> syn::Result<Expr> {
    if !input.peek(Token![=]) {
        let error = syn::Error::new(input.span(), "expected `=` and a duration");
        skip_value(input);
        return Err(error);
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) && !input.peek2(Token![.]) {
        let literal = input.parse::<LitStr>()?;
        let duration = humantime::parse_duration(&literal.value()).map_err(|error| {
            syn::Error::new(
                literal.span(),
                format!("not a duration ({error}); write it like \"2s\", \"250ms\" or \"1m 30s\""),
            )
        })?;
        let (secs, nanos) = (duration.as_secs(), duration.subsec_nanos());
        return Ok(syn::parse_quote_spanned!(literal.span()=>
            ::core::time::Duration::new(#secs, #nanos)));
    }
    parse_rust(input, "a duration: \"2s\" or a `Duration` expression")
}

/// Skips tokens up to the next top-level comma, so that one bad option does not hide the next.
fn skip_value(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                return Ok(((), rest));
            }
            rest = next;
        }
        Ok(((), rest))
    });
}

/// The span to point at for an option that may be absent.
pub(crate) fn span_of<T>(given: &Option<Given<T>>) -> Option<Span> {
    given.as_ref().map(|given| given.name.span())
}
