//! Rules that span options and the function: checked together, every violation reported at
//! once, each spanned on the tokens to fix. The result is a [`Plan`], the only input of
//! [`crate::expand`].

use crate::args::{span_of, Args, Given};
use crate::errors::Errors;
use crate::item::{Arg, MemoFn};
use syn::visit::Visit;
use syn::{Expr, GenericArgument, GenericParam, Ident, PathArguments, ReturnType, Type};

/// What to generate.
pub(crate) struct Plan {
    pub(crate) key: Key,
    pub(crate) mode: Mode,
    /// The function's return type.
    pub(crate) ret: Type,
    /// The type the store holds.
    pub(crate) value: Type,
    /// Where the values live.
    pub(crate) store: StoreKind,
    /// `wait_timeout`, as a `Duration` expression.
    pub(crate) wait_timeout: Option<Expr>,
    /// A method (it has a `self` receiver): its cache lives inside its handle function and is
    /// reached through `Self::`.
    pub(crate) method: bool,
    /// The cache's name (`name = ..`, or the function's).
    pub(crate) name: String,
    /// The visibility of `_no_cache`, `_with_origin` and `_prime_cache` (`companions_vis =
    /// ..`, or the function's).
    pub(crate) companions_vis: Option<syn::Visibility>,
    /// `force_refresh = ..`: a `bool` expression over the arguments.
    pub(crate) force_refresh: Option<Expr>,
    /// The function's type and const parameters, forwarded by turbofish; a cache per
    /// instantiation when not empty.
    pub(crate) generics: Vec<Ident>,
    /// The path generated code reaches memoflight by (`crate = ..`, or `::memoflight`).
    pub(crate) krate: syn::Path,
    /// `with_cached_flag`: the value is a `Return<T>`, flagged on calls that did not compute.
    pub(crate) cached_flag: bool,
    /// `result_fallback`: an `Err` gives way to the expired value still held.
    pub(crate) fallback: bool,
    /// `companions = false`: the companions are private and hidden from the docs.
    pub(crate) hidden_companions: bool,
}

/// Where a cache keeps its values.
pub(crate) enum StoreKind {
    /// The default `Unbounded` store (in an `Expiring` with `expires`).
    Unbounded { expires: bool },
    /// The built-in `Bounded` store (`max_size`, `ttl`, `refresh_after`).
    Bounded(Box<Bounds>),
    /// `store = ..`: a store the user makes.
    Custom(Expr),
    /// `async_store = ..`: an async store (I/O), behind an `AsyncCache`. Its read is awaited
    /// by the miss path: there is no inline hit path.
    Async(Expr),
}

impl StoreKind {
    /// An `AsyncCache` over an async store, rather than a `Cache`.
    pub(crate) fn is_async(&self) -> bool {
        matches!(self, StoreKind::Async(_))
    }
}

/// The limits of the built-in bounded store.
pub(crate) struct Bounds {
    /// A `usize` expression.
    pub(crate) max_size: Option<Expr>,
    /// A `Duration` expression.
    pub(crate) ttl: Option<Expr>,
    /// A `Duration` expression.
    pub(crate) refresh_after: Option<Expr>,
    /// `refresh = true`: the `ttl` counts from an entry's last read (`Bounded::time_to_idle`).
    pub(crate) idle: bool,
    /// `result_fallback`: an expired entry is kept one more `ttl` as a fallback
    /// (`Bounded::keep_expired_for`).
    pub(crate) keep_expired: bool,
    /// A `u64` expression.
    pub(crate) max_weight: Option<Expr>,
    /// A `Fn(&K, &V) -> u64` expression.
    pub(crate) weigher: Option<Expr>,
    /// `expires`: values say when they have expired (`Expiring<..>` around the store).
    pub(crate) expires: bool,
}

/// How the key is made.
pub(crate) enum Key {
    /// From all the arguments.
    Args(Vec<KeyPart>),
    /// From `convert = expr`, with `key = Type` when given.
    Convert {
        expr: Box<Expr>,
        ty: Option<Box<Type>>,
    },
}

/// One argument as part of the key.
pub(crate) struct KeyPart {
    pub(crate) binding: Ident,
    /// The argument's type.
    pub(crate) ty: Type,
    /// For `&T` / `&mut T`: `T`, stored as `<T as ToOwned>::Owned`.
    pub(crate) referent: Option<Type>,
    /// For `Option<&T>` / `Option<&mut T>`: `T`, stored as `Option<<T as ToOwned>::Owned>`.
    pub(crate) optional_referent: Option<Type>,
}

/// Which results are cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    All,
    Ok,
    Some,
}

/// What the `memoflight` facade was built with; it picks the attribute that says so (see
/// `lib.rs`), as tokio picks between its `main` attributes.
#[derive(Clone, Copy)]
pub(crate) struct Features {
    /// `#[cached]` on an `async fn`.
    pub(crate) r#async: bool,
    /// A timer, for `wait_timeout` on an `async fn`.
    pub(crate) tokio: bool,
}

impl Features {
    pub(crate) const ALL: Features = Features {
        r#async: true,
        tokio: true,
    };
    pub(crate) const WITHOUT_TOKIO: Features = Features {
        r#async: true,
        tokio: false,
    };
    pub(crate) const WITHOUT_ASYNC: Features = Features {
        r#async: false,
        tokio: false,
    };
}

/// Checks the options against the function and decides what to generate; adds every problem
/// to `errors` and returns a plan only if there is none.
pub(crate) fn validate(
    args: Args,
    function: &MemoFn,
    features: Features,
    errors: &mut Errors,
) -> Option<Plan> {
    let sig = &function.sig;

    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            "`#[cached]` cannot memoize a `const fn`: a cache is run-time state",
        );
    }
    if let (Some(asyncness), false) = (&sig.asyncness, features.r#async) {
        errors.at(
            asyncness,
            "`#[cached]` on an `async fn` needs memoflight's `async` feature: \
             `memoflight = { version = \"0.1\", features = [\"async\"] }`",
        );
    }
    if let (Some(_), Some(timeout), false) = (&sig.asyncness, &args.wait_timeout, features.tokio) {
        errors.at(
            &timeout.name,
            "`wait_timeout` on an `async fn` needs a timer: enable memoflight's `tokio` feature",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "`#[cached]` cannot memoize a variadic function");
    }
    let method = sig.receiver().is_some();
    if let Some(receiver) = sig.receiver() {
        check_method(receiver, &args, errors);
    }
    // Type and const parameters: a cache per instantiation (`GenericSlot`), reached by
    // turbofish from the generated twins. Not in an `#[async_trait]` method, whose cache is a
    // `static` in its body.
    let generics: Vec<Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(param.ident.clone()),
            GenericParam::Const(param) => Some(param.ident.clone()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if let (Some(force), Some(_)) = (&args.force_refresh, &function.boxed_output) {
        errors.at(
            &force.name,
            "`force_refresh` is not supported on an `#[async_trait]` method: call \
             `invalidate` on its cache before the call",
        );
    }
    if !generics.is_empty() && function.boxed_output.is_some() {
        errors.at(
            &sig.generics,
            "a generic `#[async_trait]` method cannot be memoized: its cache is a `static` in \
             its body, which cannot name its type parameters",
        );
    }

    let ret = match &sig.output {
        // `#[async_trait]`'s boxed future: the value it yields is what is cached.
        ReturnType::Type(..) if function.boxed_output.is_some() => function.boxed_output.clone(),
        ReturnType::Type(_, ty) if !is_unit(ty) => Some((**ty).clone()),
        ReturnType::Type(_, ty) => {
            errors.at(ty, "a memoized function must return a value to cache");
            None
        }
        ReturnType::Default => {
            errors.at(
                &sig.ident,
                "a memoized function must return a value to cache; this one returns `()`",
            );
            None
        }
    };
    if let Some(ret) = &ret {
        if contains_impl_trait(ret) {
            errors.at(
                ret,
                "cannot cache an `impl Trait` value: name the return type",
            );
        }
    }

    let (mode, value) = match &ret {
        Some(ret) => mode_of(ret, &args, errors),
        None => (Mode::All, None),
    };

    check_async_store(&args, function, errors);
    let store = store_kind(&args, errors);
    let wait_timeout = args.wait_timeout.map(|timeout| timeout.value);
    let name = args
        .name
        .map_or_else(|| sig.ident.to_string(), |name| name.value.value());
    // `companions = false`: private, and hidden from the docs.
    if let (Some(companions), Some(vis)) = (&args.companions, &args.companions_vis) {
        if !companions.value {
            errors.at(
                &vis.name,
                "`companions = false` makes the companions private: leave out `companions_vis`",
            );
        }
    }
    let companions_vis = match &args.companions {
        Some(given) if !given.value => Some(syn::Visibility::Inherited),
        _ => args.companions_vis.map(|vis| vis.value),
    };
    let force_refresh = args.force_refresh.map(|force| force.value);
    let flag = |given: &Option<Given<bool>>| given.as_ref().is_some_and(|given| given.value);
    // The return type is checked by the trait bound of the generated `flag_cached` call,
    // spanned on it: an alias of `Return<T>` is one too.
    let cached_flag = flag(&args.with_cached_flag);
    let fallback = flag(&args.result_fallback);
    if let Some(given) = args.result_fallback.as_ref().filter(|given| given.value) {
        check_fallback(&given.name, mode, &store, errors);
    }
    let hidden_companions = args.companions.as_ref().is_some_and(|given| !given.value);
    let krate = args
        .krate
        .map_or_else(|| syn::parse_quote!(::memoflight), |krate| krate.value);
    let key = match (args.convert, args.key) {
        (Some(convert), None) if selected_args(&convert.value, function).is_some() => {
            let selected = selected_args(&convert.value, function).unwrap_or_default();
            Key::Args(key_parts(&selected, errors))
        }
        (Some(convert), key) => Key::Convert {
            expr: Box::new(convert.value),
            ty: key.map(|key| Box::new(key.value)),
        },
        (None, Some(key)) => {
            errors.at(
                &key.name,
                "`key` names the type of the key that `convert = ..` makes; add `convert`",
            );
            Key::Args(Vec::new())
        }
        // A `_` argument is never read: not part of the key.
        (None, None) => Key::Args(key_parts(
            &function
                .args
                .iter()
                .filter(|arg| !arg.ignored)
                .collect::<Vec<_>>(),
            errors,
        )),
    };

    // `#[async_trait]` methods keep their cache inside their body: typed, like a method's.
    let boxed = function.boxed_output.is_some();
    if let (Some(store), true, false) = (&args.store, boxed, method) {
        errors.at(
            &store.name,
            format!(
                "`{} = ..` is not supported on `#[async_trait]` methods yet",
                store.name
            ),
        );
    }
    if let Key::Convert { ty: None, expr } = &key {
        // The handle infers the key type from `convert` over the arguments' types, which an
        // `impl Trait` argument does not name.
        if let Some(arg) = function
            .args
            .iter()
            .find(|arg| contains_impl_trait(&arg.ty))
        {
            errors.at(
                expr,
                format!(
                    "name the key type with `key = ..`: it cannot be inferred from `convert` \
                     while argument `{}` is an `impl Trait`",
                    arg.binding
                ),
            );
        }
    }
    if let (true, Key::Convert { ty: None, expr }) = (method || boxed, &key) {
        errors.at(
            expr,
            "name the key type with `key = ..` (a method's cache must spell it), or select \
             arguments: `convert = (a, b)`",
        );
    }

    match (errors.is_empty(), ret, value) {
        (true, Some(ret), Some(value)) => Some(Plan {
            key,
            mode,
            ret,
            value,
            store,
            wait_timeout,
            method,
            name,
            companions_vis,
            force_refresh,
            generics,
            krate,
            cached_flag,
            fallback,
            hidden_companions,
        }),
        _ => None,
    }
}

/// `result_fallback` returns the expired value still held when computing a fresh one returned
/// `Err`: it needs a `Result` whose `Err` is not cached, and values that expire.
fn check_fallback(name: &Ident, mode: Mode, store: &StoreKind, errors: &mut Errors) {
    if mode != Mode::Ok {
        errors.at(
            name,
            "`result_fallback` applies to a function returning `Result<T, E>` whose `Err` is \
             not cached (without `cache_err`)",
        );
    }
    let expiring = match store {
        StoreKind::Unbounded { expires } => *expires,
        StoreKind::Bounded(bounds) => bounds.ttl.is_some() || bounds.expires,
        StoreKind::Custom(_) | StoreKind::Async(_) => true,
    };
    if !expiring {
        errors.at(
            name,
            "`result_fallback` returns the expired value when computing a fresh one fails: \
             give values a lifetime with `ttl = \"10m\"` or `expires`",
        );
    }
}

/// A method's cache is one for the whole type, shared by every instance, so its key must be
/// said (`convert`), and spelled (`key`) unless it is a selection of arguments: the cache is a
/// `static` inside the handle function, whose type must be written out.
fn check_method(receiver: &syn::Receiver, args: &Args, errors: &mut Errors) {
    if args.convert.is_none() {
        errors.at(
            receiver,
            "a method's cache is shared by every instance of the type: say what the key is \
             with `convert = ..`, e.g. `convert = (self.id, n)`, or `convert = n` to share \
             results across instances",
        );
    }
    if let Some(store) = &args.store {
        errors.at(
            &store.name,
            format!("`{} = ..` is not supported on methods yet", store.name),
        );
    }
}

/// `async_store = ..` serves a free function, `async` or not (a sync one needs the `tokio`
/// feature, checked by the trait bound of its generated call), in place of every in-memory
/// store option.
fn check_async_store(args: &Args, function: &MemoFn, errors: &mut Errors) {
    let Some(async_store) = &args.async_store else {
        return;
    };
    if function.boxed_output.is_some() {
        errors.at(
            &async_store.name,
            "`async_store = ..` is not supported on `#[async_trait]` methods yet",
        );
    }
    if function.sig.receiver().is_some() {
        errors.at(
            &async_store.name,
            "`async_store = ..` is not supported on methods yet",
        );
    }
    let store = args.store.as_ref().map(|store| &store.name);
    for name in store.into_iter().chain(built_in_options(args)) {
        errors.at(
            name,
            format!(
                "`{name}` configures an in-memory store and cannot be combined with \
                 `async_store = ..`; configure the async store instead"
            ),
        );
    }
    if let Some(fallback) = args.result_fallback.as_ref().filter(|given| given.value) {
        errors.at(
            &fallback.name,
            "`result_fallback` is not supported with `async_store = ..` yet",
        );
    }
}

/// Which store the cache keeps its values in, decided once here. `max_size`, `ttl` and
/// `refresh_after` configure the built-in store, so they exclude `store = ..` (and
/// `async_store = ..`, see [`check_async_store`]); a literal `max_size` must leave room for one
/// entry.
fn store_kind(args: &Args, errors: &mut Errors) -> StoreKind {
    if let Some(store) = &args.store {
        let names = built_in_options(args);
        for name in names {
            errors.at(
                name,
                format!(
                    "`{name}` configures the built-in store and cannot be combined with \
                     `{} = ..`; configure the store you pass instead",
                    store.name
                ),
            );
        }
    }
    // `cached`'s `ty` names the type of the store `create` makes (inferred here).
    if let (Some(ty), None) = (&args.ty, &args.store) {
        errors.at(
            &ty.name,
            "`ty` names the type of the store that `create = ..` makes: add `create` with the \
             expression that makes it (its type is then inferred, so `ty` may be left out)",
        );
    }
    if let (Some(refresh @ Given { value: true, .. }), None) = (&args.refresh, &args.ttl) {
        errors.at(
            &refresh.name,
            "`refresh` renews the TTL on every hit: give one with `ttl = \"10m\"`",
        );
    }
    if let (Some(max_weight), Some(max_size)) = (&args.max_weight, &args.max_size) {
        errors.at(
            &max_weight.name,
            format!(
                "`max_weight` bounds the total weight, `{}` the number of entries: give one",
                max_size.name
            ),
        );
    }
    match (&args.max_weight, &args.weigher) {
        (Some(max_weight), None) => errors.at(
            &max_weight.name,
            "`max_weight` needs a `weigher = |key, value| ..` that gives each entry's weight \
             (a `u64`); without one, write `max_size`",
        ),
        (None, Some(weigher)) => errors.at(
            &weigher.name,
            "`weigher` weighs entries against a `max_weight = ..`: add one",
        ),
        _ => {}
    }
    if let Some(max_size) = &args.max_size {
        if let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) = &max_size.value
        {
            if int.base10_parse::<u64>().is_ok_and(|n| n == 0) {
                errors.at(int, "`max_size` must be at least 1");
            }
        }
    }
    let value = |given: &Option<Given<Expr>>| given.as_ref().map(|given| given.value.clone());
    let flag = |given: &Option<Given<bool>>| given.as_ref().is_some_and(|given| given.value);
    let bounds = Bounds {
        max_size: value(&args.max_size),
        ttl: value(&args.ttl),
        refresh_after: value(&args.refresh_after),
        keep_expired: flag(&args.result_fallback),
        idle: flag(&args.refresh),
        max_weight: value(&args.max_weight),
        weigher: value(&args.weigher),
        expires: flag(&args.expires),
    };
    let any = bounds.max_size.is_some()
        || bounds.ttl.is_some()
        || bounds.refresh_after.is_some()
        || bounds.max_weight.is_some();
    match (&args.async_store, &args.store) {
        (Some(store), _) => StoreKind::Async(store.value.clone()),
        (None, Some(store)) => StoreKind::Custom(store.value.clone()),
        (None, None) if any => StoreKind::Bounded(Box::new(bounds)),
        (None, None) => StoreKind::Unbounded {
            expires: bounds.expires,
        },
    }
}

/// The options that configure the built-in store, as given.
fn built_in_options(args: &Args) -> Vec<&Ident> {
    let exprs = [
        &args.max_size,
        &args.ttl,
        &args.refresh_after,
        &args.max_weight,
        &args.weigher,
    ];
    // A flag set to `false` configures nothing.
    let flags = [&args.refresh, &args.expires];
    exprs
        .into_iter()
        .flatten()
        .map(|given| &given.name)
        .chain(
            flags
                .into_iter()
                .flatten()
                .filter(|given| given.value)
                .map(|given| &given.name),
        )
        .collect()
}

/// Decides which results are cached from the return type's last path segment (`Result`,
/// `Option`) and the `cache_err` / `cache_none` options.
fn mode_of(ret: &Type, args: &Args, errors: &mut Errors) -> (Mode, Option<Type>) {
    let wrapper = wrapper_of(ret);
    let is = |name: &str| wrapper.as_ref().is_some_and(|(ident, _)| ident == name);
    let flag = |given: &Option<Given<bool>>| given.as_ref().is_some_and(|given| given.value);

    if flag(&args.cache_err) && !is("Result") {
        errors.at(
            span_of(&args.cache_err).map(|span| Ident::new("cache_err", span)),
            "`cache_err` applies to functions returning `Result<T, E>`",
        );
    }
    if flag(&args.cache_none) && !is("Option") {
        errors.at(
            span_of(&args.cache_none).map(|span| Ident::new("cache_none", span)),
            "`cache_none` applies to functions returning `Option<T>`",
        );
    }
    match wrapper {
        Some((ident, inner)) if ident == "Result" && !flag(&args.cache_err) => match inner {
            Some(inner) => (Mode::Ok, Some(inner)),
            None => {
                errors.at(
                    ret,
                    "cannot see the `Ok` type of this `Result`; write `Result<T, E>` or set \
                     `cache_err = true` to cache errors as well",
                );
                (Mode::Ok, None)
            }
        },
        Some((ident, Some(inner))) if ident == "Option" && !flag(&args.cache_none) => {
            (Mode::Some, Some(inner))
        }
        _ => (Mode::All, Some(ret.clone())),
    }
}

/// `Result<T, ..>` / `io::Result<T>` / `Option<T>` → (last segment, first type argument).
fn wrapper_of(ty: &Type) -> Option<(Ident, Option<Type>)> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" && last.ident != "Option" {
        return None;
    }
    let first = match &last.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        }),
        _ => None,
    };
    Some((last.ident.clone(), first))
}

/// `convert = id` or `convert = (id, name)`: a selection of arguments, which then form the key
/// exactly as all the arguments would (owned types spelled, lookups borrowed).
fn selected_args<'f>(convert: &Expr, function: &'f MemoFn) -> Option<Vec<&'f Arg>> {
    let find = |expr: &Expr| match expr {
        Expr::Path(path) if path.qself.is_none() => {
            let ident = path.path.get_ident()?;
            function.args.iter().find(|arg| arg.binding == *ident)
        }
        _ => None,
    };
    match convert {
        Expr::Paren(inner) => selected_args(&inner.expr, function),
        Expr::Tuple(tuple) if !tuple.elems.is_empty() => tuple.elems.iter().map(find).collect(),
        single => find(single).map(|arg| vec![arg]),
    }
}

fn key_parts(args: &[&Arg], errors: &mut Errors) -> Vec<KeyPart> {
    args.iter()
        .map(|arg| {
            if contains_impl_trait(&arg.ty) {
                errors.at(
                    &arg.ty,
                    "an `impl Trait` argument cannot be part of the key; leave it out with \
                     `convert = ..`",
                );
            }
            KeyPart {
                binding: arg.binding.clone(),
                ty: arg.ty.clone(),
                referent: match &arg.ty {
                    Type::Reference(reference) => Some((*reference.elem).clone()),
                    _ => None,
                },
                optional_referent: optional_referent(&arg.ty),
            }
        })
        .collect()
}

/// `T` of `Option<&T>` / `Option<&mut T>` (spelled `Option`, `std::option::Option` or
/// `core::option::Option`).
fn optional_referent(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    match arguments.args.first()? {
        GenericArgument::Type(Type::Reference(reference)) if arguments.args.len() == 1 => {
            Some((*reference.elem).clone())
        }
        _ => None,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}
