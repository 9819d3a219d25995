//! The attribute grammar: `#[cached(option = value, flag, ...)]`, parsed into typed, set-once
//! slots. Values are written as Rust (`key = (u64, String)`) or, as in the `cached` crate, as a
//! string holding Rust (`key = "String"`).
//!
//! `cached`'s spellings of an option we have are accepted with the same meaning (`ttl_secs`,
//! `ttl_millis`, `create`, `name`, ...), options that mean something memoflight always does
//! are accepted and change nothing (`sync_writes`, `in_impl`, ...), and the spellings `cached`
//! removed are refused with an error that names what to write instead ([`CACHED_HINTS`]).

use crate::errors::Errors;
use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitBool, LitStr, Token, Type};

/// The options, in the order the "unknown option" error lists them.
const OPTIONS: &[&str] = &[
    "async_store",
    "cache_err",
    "cache_none",
    "companions",
    "companions_vis",
    "convert",
    "crate",
    "expires",
    "force_refresh",
    "key",
    "max_size",
    "max_weight",
    "name",
    "refresh",
    "refresh_after",
    "result_fallback",
    "store",
    "ttl",
    "wait_timeout",
    "weigher",
    "with_cached_flag",
];

/// Options of the `cached` crate's `#[cached]` that memoflight does not take, with what to write
/// instead.
const CACHED_HINTS: &[(&str, &str)] = &[
    ("size", "write `max_size = N`"),
    ("time", "write `ttl = \"60s\"` (or `ttl_secs = 60`)"),
    ("time_refresh", "write `refresh = true` (with `ttl`)"),
    (
        "result",
        "not needed: a `Result` return type caches `Ok` values only (add `cache_err` for `Err`)",
    ),
    (
        "option",
        "not needed: an `Option` return type caches `Some` values only (add `cache_none` for \
         `None`)",
    ),
    // `#[io_cached]`'s options.
    (
        "disk",
        "write `async_store = DiskStore::new(dir)` (values on disk, one execution per key \
         across the processes of a machine)",
    ),
    (
        "redis",
        "write `async_store = RedisStore::new(url)` (values in Redis, one execution per key \
         across processes)",
    ),
    (
        "map_error",
        "not needed: with `async_store = DiskStore/RedisStore ..`, a store that fails is worked \
         around (the function runs, counted in `stats().store_errors`), so the function's own \
         error type is returned unchanged",
    ),
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
    /// The cache's name in traces and panic messages (`cached`'s `name`); the function's name
    /// by default.
    pub(crate) name: Option<Given<LitStr>>,
    /// The visibility of the generated companion functions (`cached`'s `companions_vis`).
    pub(crate) companions_vis: Option<Given<syn::Visibility>>,
    /// A `bool` expression over the arguments: when true, the call does not take a value
    /// stored before it (`cached`'s `force_refresh`).
    pub(crate) force_refresh: Option<Given<Expr>>,
    /// The path generated code reaches memoflight by (`crate = my_facade::memo`), for crates
    /// that re-export it; `::memoflight` by default.
    pub(crate) krate: Option<Given<syn::Path>>,
    /// The function returns `Return<T>`, whose `was_cached` is set on calls that did not run
    /// it (`cached`'s `with_cached_flag`).
    pub(crate) with_cached_flag: Option<Given<bool>>,
    /// On `Err`, return the expired value still held, if any (`cached`'s `result_fallback`).
    pub(crate) result_fallback: Option<Given<bool>>,
    /// Each value says when it has expired (`Expires`), as `cached`'s `expires`.
    pub(crate) expires: Option<Given<bool>>,
    /// A hit renews the TTL (`cached`'s `refresh`).
    pub(crate) refresh: Option<Given<bool>>,
    /// `false`: the companion functions are private and hidden (`cached`'s `companions`).
    pub(crate) companions: Option<Given<bool>>,
    /// The most total weight the cache holds: a `u64` expression.
    pub(crate) max_weight: Option<Given<Expr>>,
    /// The weight of an entry: a `Fn(&K, &V) -> u64` expression.
    pub(crate) weigher: Option<Given<Expr>>,
    /// `cached`'s `ty`: the type of the store `create` makes. Inferred here, so only checked to
    /// come with `create`.
    pub(crate) ty: Option<Given<Type>>,
}

impl Args {
    /// Parses the attribute's arguments, adding every error to `errors` instead of stopping at
    /// the first (a bad token skips to the next comma): what was understood is returned, so
    /// that validation can add its own errors.
    pub(crate) fn parse(input: ParseStream, errors: &mut Errors) -> Self {
        let mut args = Args::default();
        while !input.is_empty() {
            match input.call(<Ident as syn::ext::IdentExt>::parse_any) {
                Ok(name) => {
                    let bare = !input.peek(Token![=]);
                    if let Err(error) = args.parse_option(name.clone(), input).and_then(|set| set) {
                        errors.push(on_the_name(error, &name, bare));
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
            "ttl" => parse_duration(input, true).map(|v| set_ttl(&mut self.ttl, name, v)),
            "refresh_after" => {
                parse_duration(input, false).map(|v| set(&mut self.refresh_after, name, v))
            }
            "store" => parse_value(input, "an expression that makes a store")
                .map(|v| set_store(&mut self.store, name, v)),
            "wait_timeout" => {
                parse_duration(input, false).map(|v| set(&mut self.wait_timeout, name, v))
            }
            // `cached`'s spellings of ours.
            "ttl_secs" | "ttl_millis" => {
                parse_whole_duration(input, &option).map(|v| set_ttl(&mut self.ttl, name, v))
            }
            "crate" => parse_value(
                input,
                "the path memoflight is reached by, e.g. `my_crate::memo`",
            )
            .map(|v| set(&mut self.krate, name, v)),
            "with_cached_flag" => {
                parse_flag(input).map(|v| set(&mut self.with_cached_flag, name, v))
            }
            "result_fallback" => parse_flag(input).map(|v| set(&mut self.result_fallback, name, v)),
            "expires" => parse_flag(input).map(|v| set(&mut self.expires, name, v)),
            "refresh" => parse_flag(input).map(|v| set(&mut self.refresh, name, v)),
            "companions" => parse_flag(input).map(|v| set(&mut self.companions, name, v)),
            "max_weight" => parse_value(
                input,
                "a total weight, e.g. `max_weight = 64 * 1024 * 1024`",
            )
            .map(|v| set(&mut self.max_weight, name, v)),
            "weigher" => parse_value(
                input,
                "a function of the key and value, e.g. `weigher = |_, v: &Vec<u8>| v.len() as u64`",
            )
            .map(|v| set(&mut self.weigher, name, v)),
            "force_refresh" => parse_value(input, "a `bool` expression over the arguments")
                .map(|v| set(&mut self.force_refresh, name, v)),
            "create" => parse_value(input, "an expression that makes a store")
                .map(|v| set_store(&mut self.store, name, v)),
            "name" if input.peek(Token![=]) && input.peek2(LitStr) => {
                parse_string(input, "the cache's name").map(|v| set(&mut self.name, name, v))
            }
            "name" => parse_value(input, "the cache's name, a string")
                .and_then(|v: Expr| as_name(v))
                .map(|v| set(&mut self.name, name, v)),
            "companions_vis" => {
                parse_string(input, "a visibility in a string, e.g. `\"pub(crate)\"`")
                    .and_then(|v| parse_visibility(&v))
                    .map(|v| set(&mut self.companions_vis, name, v))
            }
            // What memoflight always does: accepted, and nothing changes.
            "sync_writes" => parse_sync_writes(input).map(Ok),
            "sync_writes_buckets" => {
                parse_value::<Expr>(input, "a number of buckets").map(|_| Ok(()))
            }
            "sync_lock" => parse_choice(input, &["mutex", "rwlock", "rw_lock"]).map(Ok),
            "unsync_reads" | "in_impl" | "unbound" => parse_flag(input).map(|_| Ok(())),
            "ty" => parse_value(input, "the store's type").map(|v| set(&mut self.ty, name, v)),
            _ => {
                if let Some((_, hint)) = CACHED_HINTS.iter().find(|(known, _)| *known == option) {
                    skip_value(input);
                    return Err(syn::Error::new(
                        name.span(),
                        format!("`{option}` (an option of the `cached` crate): {hint}"),
                    ));
                }
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

/// An option that takes a value given without one (`max_size,`): the value parsers report
/// where the value should be, which at the end of the attribute is the whole attribute; the
/// error goes on the option's name instead.
fn on_the_name(error: syn::Error, name: &Ident, bare: bool) -> syn::Error {
    match bare && error.to_string().starts_with("expected `=`") {
        true => syn::Error::new(
            name.span(),
            format!("`{name}` takes a value: write `{name} = ..`"),
        ),
        false => error,
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

/// `= "2s"` (parsed now by `humantime`, a spanned error if it is not a duration, or zero when
/// `zero_is_refused`), `= "<Duration expression>"` (`cached`'s form) or
/// `= <Duration expression>`.
fn parse_duration(input: ParseStream, zero_is_refused: bool) -> syn::Result<Expr> {
    if !input.peek(Token![=]) {
        let error = syn::Error::new(input.span(), "expected `=` and a duration");
        skip_value(input);
        return Err(error);
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) && !input.peek2(Token![.]) {
        let literal = input.parse::<LitStr>()?;
        if literal.value().trim_start().starts_with('-') {
            return Err(negative_duration(literal.span()));
        }
        let duration = match humantime::parse_duration(&literal.value()) {
            Ok(duration) => duration,
            // `cached`'s form: a `Duration` expression in a string.
            Err(error) => match literal.parse::<Expr>() {
                Ok(expr) if !matches!(expr, Expr::Lit(_) | Expr::Path(_)) => return Ok(expr),
                _ => {
                    return Err(syn::Error::new(
                        literal.span(),
                        format!(
                            "not a duration ({error}); write it like \"2s\", \"250ms\" or \
                             \"1m 30s\", or as a `Duration` expression"
                        ),
                    ))
                }
            },
        };
        let (secs, nanos) = (duration.as_secs(), duration.subsec_nanos());
        if (secs, nanos) == (0, 0) && zero_is_refused {
            return Err(zero_ttl(literal.span()));
        }
        return Ok(syn::parse_quote_spanned!(literal.span()=>
            ::core::time::Duration::new(#secs, #nanos)));
    }
    if input.peek(Token![-]) {
        let span = input.span();
        skip_value(input);
        return Err(negative_duration(span));
    }
    parse_rust(input, "a duration: \"2s\" or a `Duration` expression")
}

/// The TTL slot, which `ttl`, `ttl_secs` and `ttl_millis` all fill.
fn set_ttl(slot: &mut Option<Given<Expr>>, name: Ident, value: Expr) -> syn::Result<()> {
    if let Some(given) = slot {
        return Err(syn::Error::new(
            name.span(),
            format!("the TTL is given twice (`{}` and `{name}`)", given.name),
        ));
    }
    *slot = Some(Given { name, value });
    Ok(())
}

/// The store slot, which `store` and `create` (`cached`'s) both fill.
fn set_store(slot: &mut Option<Given<Expr>>, name: Ident, value: Expr) -> syn::Result<()> {
    if let Some(given) = slot {
        return Err(syn::Error::new(
            name.span(),
            format!("the store is given twice (`{}` and `{name}`)", given.name),
        ));
    }
    *slot = Some(Given { name, value });
    Ok(())
}

/// `ttl_secs = N` / `ttl_millis = N` (`cached`'s): a whole number, not zero.
fn parse_whole_duration(input: ParseStream, option: &str) -> syn::Result<Expr> {
    let literal: syn::LitInt = parse_value(input, "a whole number, e.g. `60`")?;
    if literal.base10_digits().starts_with('-') {
        return Err(negative_duration(literal.span()));
    }
    let count: u64 = literal.base10_parse()?;
    if count == 0 {
        return Err(zero_ttl(literal.span()));
    }
    Ok(match option {
        "ttl_secs" => syn::parse_quote_spanned!(literal.span()=>
            ::core::time::Duration::from_secs(#literal)),
        _ => syn::parse_quote_spanned!(literal.span()=>
            ::core::time::Duration::from_millis(#literal)),
    })
}

/// A `Duration` cannot be negative; said here rather than as rustc's type error (`-1`), a
/// suffix error (`"-1s"` read as an expression) or a parse error of the digits.
fn negative_duration(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "a negative duration: a `Duration` counts from zero up; write a positive one, e.g. \"60s\"",
    )
}

fn zero_ttl(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "a TTL of zero: every value would expire as it is stored, and no call would hit; leave \
         the TTL out to keep values until they are invalidated",
    )
}

/// `name = "..."`: a string literal (quoted or not, as `cached` takes it).
fn as_name(value: Expr) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(name),
            ..
        }) => Ok(name),
        Expr::Path(path) if path.path.get_ident().is_some() => {
            let ident = path.path.get_ident().expect("checked");
            Ok(LitStr::new(&ident.to_string(), ident.span()))
        }
        other => Err(syn::Error::new_spanned(
            other,
            "expected the cache's name, a string",
        )),
    }
}

/// `companions_vis = "pub(crate)"`; `""` is private.
fn parse_visibility(text: &LitStr) -> syn::Result<syn::Visibility> {
    match text.value().trim() {
        "" => Ok(syn::Visibility::Inherited),
        visibility => syn::parse_str(visibility).map_err(|_| {
            syn::Error::new(
                text.span(),
                "expected a visibility: \"pub\", \"pub(crate)\", \"pub(super)\" or \"\" (private)",
            )
        }),
    }
}

/// `sync_writes`, `= true`, `= false`, or a string: `"default"`, `"by_key"`, `"true"`,
/// `"false"` or `"disabled"` (`cached`'s spellings): every call of a memoflight function is
/// single-flight per key, so each spelling is accepted and changes nothing, `false` and
/// `"disabled"` included (single-flight cannot be turned off).
fn parse_sync_writes(input: ParseStream) -> syn::Result<()> {
    if input.peek(Token![=]) && input.peek2(LitStr) {
        return parse_choice(input, &["default", "by_key", "true", "false", "disabled"]);
    }
    parse_flag(input).map(drop)
}

/// `= "text"`: the string itself.
fn parse_string(input: ParseStream, expected: &str) -> syn::Result<LitStr> {
    if !input.peek(Token![=]) || !input.peek2(LitStr) {
        let error = syn::Error::new(input.span(), format!("expected `=` and {expected}"));
        skip_value(input);
        return Err(error);
    }
    input.parse::<Token![=]>()?;
    input.parse()
}

/// `= "one of choices"`.
fn parse_choice(input: ParseStream, choices: &[&str]) -> syn::Result<()> {
    let choice = parse_string(input, "a string")?;
    match choices.contains(&choice.value().as_str()) {
        true => Ok(()),
        false => Err(syn::Error::new(
            choice.span(),
            format!("expected one of: \"{}\"", choices.join("\", \"")),
        )),
    }
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
