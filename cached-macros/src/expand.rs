//! Code generation from a validated [`Plan`]. For `#[cached] fn f(a: A, b: &B) -> R { body }`
//! it emits six items:
//!
//! ```text
//! static __MEMO_CACHE_f: ..;               the cache, created on first use
//! fn f(a: A, b: &B) -> R                   calls f_with_origin and drops the origin
//!                                          (for an `async fn`, all three functions are async)
//! fn f_with_origin(a, b) -> (R, Origin)    hit path inline, miss path in __private::compute
//! fn f_no_cache(a: A, b: &B) -> R { body } the original function, bypassing the cache
//! fn f_prime_cache(a, b) -> R              invalidates the key, then calls f
//! fn f_cache() -> &'static Cache<..>       the handle: stats, invalidate, clear, len
//! ```
//!
//! Generated code names everything by absolute path (`::memoflight::__private::..`, or the
//! path given by `crate = ..`), its locals start with `__memo_` so they never clash with user
//! names, and conversions that involve a user type are spanned on that type so that rustc's
//! errors point at the user's code.

use crate::item::MemoFn;
use crate::validate::{Bounds, Key, KeyPart, Mode, Plan, StoreKind};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, PatIdent, Type};

/// The largest key made of borrowed argument parts: `__private::Borrowed` is implemented for
/// tuples of up to 8 parts (`cached-core/src/key.rs`); change both together.
const MAX_BORROWED_PARTS: usize = 8;

pub(crate) fn expand(function: &MemoFn, plan: &Plan) -> TokenStream {
    let name = &function.sig.ident;
    let names = Names {
        cache_static: format_ident!("__MEMO_CACHE_{}", name),
        no_cache: format_ident!("{}_no_cache", name),
        with_origin: format_ident!("{}_with_origin", name),
        handle: format_ident!("{}_cache", name),
        instance: format_ident!("__MemoInstance_{}", name),
    };
    let cfgs: Vec<_> = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();

    let cache = CacheDecl::new(function, plan, &names);
    if function.boxed_output.is_some() {
        return boxed_method(function, plan, &names, &cache);
    }
    // A method's cache cannot be an item of the `impl` block: it lives in its handle.
    let static_item = match plan.method {
        true => &TokenStream::new(),
        false => &cache.static_item,
    };
    let memoized = memoized_fn(function, plan, &names, &cache);
    let no_cache = no_cache_fn(function, plan, &names);
    let handle = handle_fn(function, plan, &names, &cache);
    quote! {
        #(#cfgs)*
        #[allow(non_upper_case_globals, clippy::type_complexity)]
        #static_item
        #memoized
        #no_cache
        #(#cfgs)*
        #handle
    }
}

struct Names {
    cache_static: Ident,
    no_cache: Ident,
    with_origin: Ident,
    /// A generic function's instantiation marker (see [`instance_marker`]).
    instance: Ident,
    handle: Ident,
}

/// How the cache is declared and reached.
///
/// When the key and store types can be spelled, the cache is a typed `LazyLock` static. When
/// they cannot (`convert` without `key`, or a `store` expression), it lives in a `Slot` whose
/// type the compiler infers from the key and store expressions.
struct CacheDecl {
    static_item: TokenStream,
    /// The key type, when it can be spelled.
    key_ty: Option<TokenStream>,
    /// The store type, when it can be spelled.
    store_ty: Option<TokenStream>,
}

impl CacheDecl {
    fn new(function: &MemoFn, plan: &Plan, names: &Names) -> Self {
        let krate = &plan.krate;
        let key_ty = match &plan.key {
            Key::Args(parts) => Some(owned_key_type(krate, parts)),
            Key::Convert { ty, .. } => ty.as_ref().map(|ty| checked_key(krate, ty, quote!(#ty))),
        };
        let value = &plan.value;
        let value = quote_spanned!(value.span()=> <#value as #krate::__private::CacheValue>::Value);
        let store_ty = match (&plan.store, &key_ty) {
            (StoreKind::Unbounded { expires }, Some(key_ty)) => Some(expiring(
                krate,
                *expires,
                quote!(#krate::Unbounded<#key_ty, #value>),
            )),
            (StoreKind::Bounded(bounds), Some(key_ty)) => Some(expiring(
                krate,
                bounds.expires,
                quote!(#krate::Bounded<#key_ty, #value>),
            )),
            _ => None,
        };
        let cache_static = &names.cache_static;
        let static_item = match &store_ty {
            // A generic function's caches: one per instantiation, found at each call.
            _ if !plan.generics.is_empty() => {
                let marker = instance_marker(function, names);
                quote! {
                    static #cache_static: #krate::__private::GenericSlot =
                        #krate::__private::GenericSlot::new();
                    #marker
                }
            }
            Some(store_ty) => {
                // Spanned on the return type: a value that is not `Clone + Send + Sync` is
                // reported there (by `CacheValue`, as a key that is not one is on its own
                // tokens by `CacheKey`).
                let span = plan.value.span();
                let init = init_cache(plan, built_in_store(plan, span));
                quote_spanned! {span=>
                    static #cache_static: ::std::sync::LazyLock<#krate::Cache<#store_ty>> =
                        ::std::sync::LazyLock::new(|| #init);
                }
            }
            None => quote! {
                static #cache_static: #krate::__private::Slot =
                    #krate::__private::Slot::new();
            },
        };
        CacheDecl {
            static_item,
            key_ty,
            store_ty,
        }
    }

    /// An expression of type `&'static Cache<..>`; `hint` is a `PhantomData<Key>` expression
    /// that lets the compiler infer the key type where it is not spelled.
    fn reach(&self, plan: &Plan, names: &Names, hint: TokenStream) -> TokenStream {
        let krate = &plan.krate;
        let cache_static = &names.cache_static;
        if self.store_ty.is_some() && plan.generics.is_empty() {
            return quote!(&*#cache_static);
        }
        let value = &plan.value;
        let store = match &plan.store {
            // A braced store (`store = { .. }`) is bound first: as a call's argument it would
            // be an argument in braces, which `unused_braces` warns about in the user's crate.
            StoreKind::Async(store @ syn::Expr::Block(_))
            | StoreKind::Custom(store @ syn::Expr::Block(_)) => quote_spanned!(store.span()=> {
                #[allow(unused_braces)]
                let __memo_store = #store;
                __memo_store
            }),
            StoreKind::Async(store) | StoreKind::Custom(store) => {
                quote_spanned!(store.span()=> #store)
            }
            StoreKind::Unbounded { .. } | StoreKind::Bounded(_) => {
                built_in_store(plan, Span::call_site())
            }
        };
        let typed = match plan.store.is_async() {
            true => {
                quote!(#krate::__private::typed_async_store::<_, #value, _>(#hint, #store))
            }
            false => quote!(#krate::__private::typed_store::<_, #value, _>(#hint, #store)),
        };
        let init = init_cache(plan, typed);
        if plan.generics.is_empty() {
            return quote!(#cache_static.get_or_init(|| #init));
        }
        // A cache per instantiation; one for all when `key` and `convert` say the key.
        let instance = match &plan.key {
            Key::Convert { ty: Some(_), .. } => quote!(()),
            _ => {
                let (marker, generics) = (&names.instance, &plan.generics);
                quote!(#marker<#(#generics),*>)
            }
        };
        quote!(#cache_static.get_or_init::< #instance, _>(|| #init))
    }
}

/// `store`, or `Expiring<store>` when values say when they expire (`expires`).
fn expiring(krate: &syn::Path, expires: bool, store: TokenStream) -> TokenStream {
    match expires {
        true => quote!(#krate::Expiring<#store>),
        false => store,
    }
}

/// The store when none is given: `Unbounded`, or `Bounded` with the `max_size`, `ttl`,
/// `refresh`, `refresh_after`, `max_weight` and `weigher` options, each spanned on its
/// expression so that a value of the wrong type is reported there; in an `Expiring` with
/// `expires`.
fn built_in_store(plan: &Plan, span: Span) -> TokenStream {
    let krate = &plan.krate;
    let bounds = match &plan.store {
        StoreKind::Bounded(bounds) => bounds,
        StoreKind::Unbounded { expires: true } => {
            return quote_spanned!(span=> #krate::Expiring::new(#krate::Unbounded::new()));
        }
        _ => return quote_spanned!(span=> #krate::Unbounded::new()),
    };
    let Bounds {
        max_size,
        ttl,
        refresh_after,
        idle,
        keep_expired,
        max_weight,
        weigher,
        expires,
    } = &**bounds;
    let max_size = max_size
        .iter()
        .map(|n| quote_spanned!(n.span()=> .max_size(#n)));
    // `refresh`: the TTL counts from the last read.
    // `result_fallback`: an expired value stays a fallback for one more TTL.
    let keep_expired = ttl
        .iter()
        .filter(|_| *keep_expired)
        .map(|d| quote_spanned!(d.span()=> .keep_expired_for(#d)));
    let ttl = ttl.iter().map(|d| match idle {
        true => quote_spanned!(d.span()=> .time_to_idle(#d)),
        false => quote_spanned!(d.span()=> .ttl(#d)),
    });
    let refresh_after = refresh_after
        .iter()
        .map(|d| quote_spanned!(d.span()=> .refresh_after(#d)));
    let max_weight = max_weight
        .iter()
        .map(|n| quote_spanned!(n.span()=> .max_weight(#n)));
    let weigher = weigher
        .iter()
        .map(|w| quote_spanned!(w.span()=> .weigher(#w)));
    let store = quote_spanned!(span=>
        #krate::Bounded::new()
            #(#max_size)* #(#max_weight)* #(#weigher)* #(#ttl)* #(#keep_expired)* #(#refresh_after)*);
    match expires {
        true => quote_spanned!(span=> #krate::Expiring::new(#store)),
        false => store,
    }
}

/// `Cache::new(name, store)` (`AsyncCache::new` for an async store) with keys described by
/// their `Debug` form when they have one.
fn init_cache(plan: &Plan, store: TokenStream) -> TokenStream {
    let krate = &plan.krate;
    let (cache, describing) = match plan.store.is_async() {
        true => (
            quote!(#krate::AsyncCache),
            quote!(#krate::__private::describing_async_keys),
        ),
        false => (
            quote!(#krate::Cache),
            quote!(#krate::__private::describing_keys),
        ),
    };
    let name = &plan.name;
    let wait_timeout = plan
        .wait_timeout
        .as_ref()
        .map(|timeout| quote!(.with_wait_timeout(#timeout)));
    let create = match plan.store.is_async() {
        // The store is bound to the function's path: two functions of one name in two modules
        // keep their values apart in a store shared by processes.
        true => quote!(#krate::__private::async_cache_in(
            #name,
            ::core::concat!(::core::module_path!(), "::", #name),
            #store
        )),
        false => quote!(#cache::new(#name, #store)),
    };
    quote! {
        #describing(#create #wait_timeout, |__memo_key| {
            #[allow(unused_imports)]
            use #krate::__private::{DescribeDebug as _, DescribeOpaque as _};
            (&#krate::__private::KeyOf(__memo_key)).__memo_describe()
        })
    }
}

/// The memoized function: same signature, hit path inline, miss path in `__private::compute`.
fn memoized_fn(function: &MemoFn, plan: &Plan, names: &Names, cache: &CacheDecl) -> TokenStream {
    let krate = &plan.krate;
    // `#[expect(..)]` goes to the twin alone: the body its lint is about is there, and an
    // expectation the wrapper cannot meet would warn.
    let attrs: Vec<_> = function
        .attrs
        .iter()
        .filter(|attr| !attr.path().is_ident("expect"))
        .collect();
    let vis = &function.vis;
    let companions_vis = plan.companions_vis.as_ref().unwrap_or(vis);
    let hidden = plan.hidden_companions.then(|| quote!(#[doc(hidden)]));
    let mut sig = function.sig.clone();
    let mut bindings = function.args.iter().map(|arg| &arg.binding);
    for input in &mut sig.inputs {
        if let FnArg::Typed(typed) = input {
            if let Some(binding) = bindings.next() {
                *typed.pat = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: binding.clone(),
                    subpat: None,
                });
            }
        }
    }
    let ret = &plan.ret;
    let mode = mode_path(krate, plan.mode);
    let no_cache = &names.no_cache;
    let call_args = function.args.iter().map(|arg| &arg.binding);

    let (prelude, view, owned) = key_code(plan);
    let hint = match (&cache.key_ty, &plan.key) {
        (Some(key_ty), _) => quote!(::core::marker::PhantomData::< #key_ty>),
        (None, _) => quote!(#krate::__private::key_hint(&__memo_key)),
    };
    let reach = match plan.method {
        true => {
            let handle = &names.handle;
            let turbofish = turbofish(plan);
            quote!(Self::#handle #turbofish ())
        }
        false => cache.reach(plan, names, hint),
    };
    // Spanned on the return type: one taken for std's `Result`/`Option` by its name but not
    // std's is reported there.
    // The mode and the path to memoflight too: rustc reports an unmet bound of a qualified
    // path on its `<Self as ..>` part, and a call's on its callee.
    let mode = spanned_at(mode, ret.span());
    let krate_at_ret = spanned_at(quote!(#krate), ret.span());
    let rebuild =
        quote_spanned!(ret.span()=> <#mode as #krate_at_ret::__private::Mode<#ret>>::rebuild);
    // The hit's value, rebound under a name on the return type's span and used by it: the
    // name carries the return type's hygiene at both ends (a return type written by another
    // macro's caller would not see the attribute's `__memo_value`).
    let value_at_ret = Ident::new("__memo_value_at_ret", ret.span());
    let value = quote!(__memo_value);
    let rebuilt = quote_spanned!(ret.span()=> {
        let #value_at_ret = #value;
        #rebuild(#value_at_ret)
    });
    let return_hit = finish(plan, quote!((#rebuilt, #krate::Origin::Hit)), false);
    let return_hit = quote!(return #return_hit;);
    // `(lookup, after_a_miss)`: the hit path, and what the miss path needs that it did not do.
    let reach_cache = quote!(let __memo_cache = #reach;);
    // The key's value removed (`force_refresh`, `_prime_cache`): the call then computes, and
    // no value computed before it is stored (an invalidation's guarantee).
    let invalidate = match (plan.store.is_async(), &function.sig.asyncness) {
        (false, _) => quote!(let _ = __memo_cache.invalidate(#view);),
        (true, Some(_)) => quote!(let _ = __memo_cache.invalidate(&#owned).await;),
        (true, None) => {
            quote!(let _ = __memo_cache.block_on(__memo_cache.invalidate(&#owned));)
        }
    };
    // Bound first: `cached`'s users write it in braces (`force_refresh = { refresh }`), which
    // as an `if` condition would be linted in their crate.
    let force = plan.force_refresh.as_ref().map(|force| {
        let condition = quote_spanned!(force.span()=>
            #[allow(unused_braces)]
            let __memo_force: bool = #force;
        );
        quote!(#condition if __memo_force { #invalidate })
    });
    let (lookup, after_a_miss) = match plan.store.is_async() {
        // An async store is read by the miss path (its read is I/O): no inline hit path.
        true => (
            quote!(#reach_cache #force let __memo_hit = ::core::option::Option::None;),
            quote!(),
        ),
        false => (
            quote!(#reach_cache #force let __memo_hit = __memo_cache.__memo_lookup(#view);),
            quote!(),
        ),
    };
    let with_origin = &names.with_origin;
    let forwarded = function.args.iter().map(|arg| &arg.binding);
    let forwarded_again = function.args.iter().map(|arg| &arg.binding);
    // A method calls its twins as `Self::twin(self, ..)`, whatever its receiver's form; a
    // generic function names its type and const parameters (they may be in the return type
    // alone).
    let turbofish = turbofish(plan);
    let (with_origin_path, no_cache_path, receiver) = match plan.method {
        true => (
            quote!(Self::#with_origin #turbofish),
            quote!(Self::#no_cache #turbofish),
            quote!(self,),
        ),
        false => (
            quote!(#with_origin #turbofish),
            quote!(#no_cache #turbofish),
            quote!(),
        ),
    };
    let mut prime_sig = sig.clone();
    prime_sig.ident = format_ident!("{}_prime_cache", function.sig.ident);
    let prime_doc = format!(
        "Computes [`{}`] afresh and stores the value, replacing the one stored: an \
         invalidation of the key, then a call.",
        function.sig.ident
    );
    let mut origin_sig = sig.clone();
    origin_sig.ident = with_origin.clone();
    origin_sig.output = syn::parse_quote!(-> (#ret, #krate::Origin));
    let doc = format!(
        "Calls [`{}`] and also tells how this call got its result: \
         [`Origin::Computed`]({}::Origin::Computed) if it ran the function.",
        function.sig.ident,
        doc_path(krate),
    );
    // The origin twin takes the function's `cfg`s, and its target features, which its call of
    // the uncached twin (whose body needs them) requires.
    let cfgs = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg") || attr.path().is_ident("target_feature"));
    let cfgs_again = cfgs.clone();
    // An `async fn` awaits its origin twin and the async miss path; the hit path is the same.
    let (keep_key, owned) = fallback_key(plan, owned);
    let call = quote!(#no_cache_path(#receiver #(#call_args),*));
    let (computed, closure, sharing) = miss_path(plan, call, function.sig.asyncness.is_some());
    let args = quote!(#owned, #closure, #sharing);
    // The computing call is named on the return type's span: a return type taken for std's
    // `Result`/`Option` by its name fails its `Mode` bound, which rustc reports on the name.
    let ret_span = ret.span();
    // Rebound, as the hit's value is, so that its hygiene is the return type's at both ends.
    let receiver_at_ret = Ident::new("__memo_cache_at_ret", ret_span);
    // The call's parentheses too: its span runs from the receiver to them.
    let mut args_at_ret =
        proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args.clone());
    args_at_ret.set_span(ret_span);
    let compute_sync = Ident::new("__memo_compute", ret_span);
    let compute_async = Ident::new("__memo_compute_async", ret_span);
    let (dot_await, compute) = match (function.sig.asyncness, plan.store.is_async()) {
        (Some(_), true) => (
            quote!(.await),
            quote!(#krate_at_ret::__private::compute_in_async_store::< #ret, #mode, _, _>(
                __memo_cache, #args
            )),
        ),
        (Some(_), false) => (
            quote!(.await),
            quote!({
                let #receiver_at_ret = __memo_cache;
                #receiver_at_ret.#compute_async::< #computed, #mode, _> #args_at_ret
            }),
        ),
        (None, true) => (
            quote!(),
            quote!(#krate_at_ret::__private::compute_in_async_store_blocking::< #ret, #mode, _>(
                __memo_cache, #args
            )),
        ),
        (None, false) => (
            quote!(),
            quote!({
                let #receiver_at_ret = __memo_cache;
                #receiver_at_ret.#compute_sync::< #computed, #mode> #args_at_ret
            }),
        ),
    };
    let finished = finish(plan, quote!(#compute #dot_await), true);
    // The user's own `#[inline(..)]`, if any, decides; otherwise the thin wrapper is inlined.
    let inline =
        (!attrs.iter().any(|attr| attr.path().is_ident("inline"))).then(|| quote!(#[inline]));
    quote! {
        #(#attrs)*
        #inline
        #vis #sig {
            #with_origin_path(#receiver #(#forwarded),*) #dot_await .0
        }

        #[doc = #doc]
        #(#cfgs)*
        #[inline]
        #[allow(deprecated)] // it calls the twin, deprecated with the function
        #hidden
        #companions_vis #origin_sig {
            #[allow(unused_imports)]
            use #krate::__private::{Compute as _, KeepFailure as _, KeepFallback as _, Lookup as _, ShareFailure as _, ShareFallback as _};
            #prelude
            #lookup
            if let ::core::option::Option::Some(__memo_value) = __memo_hit {
                #return_hit
            }
            #after_a_miss
            #keep_key
            #finished
        }

        #[doc = #prime_doc]
        #(#cfgs_again)*
        #[allow(deprecated, dead_code)]
        #hidden
        #companions_vis #prime_sig {
            #prelude
            #reach_cache
            #invalidate
            #with_origin_path(#receiver #(#forwarded_again),*) #dot_await .0
        }
    }
}

/// How the key is made: statements to run first, the borrowed view a lookup uses, and the
/// owned key a miss stores.
fn key_code(plan: &Plan) -> (TokenStream, TokenStream, TokenStream) {
    match &plan.key {
        Key::Args(parts) if parts.len() <= MAX_BORROWED_PARTS => (
            quote!(),
            borrowed_view(&plan.krate, parts),
            owned_key(parts),
        ),
        Key::Args(parts) => {
            let owned = owned_key(parts);
            (
                quote!(let __memo_key = #owned;),
                quote!(&__memo_key),
                quote!(__memo_key),
            )
        }
        // With `key = Type`, the key is declared of that type: a `convert` of another type is
        // one error, on the `convert` expression.
        Key::Convert { expr, ty: Some(ty) } => (
            quote_spanned!(expr.span()=> let __memo_key: #ty = #expr;),
            quote!(&__memo_key),
            quote!(__memo_key),
        ),
        Key::Convert { expr, .. } => (
            quote_spanned!(expr.span()=> let __memo_key = #expr;),
            quote!(&__memo_key),
            quote!(__memo_key),
        ),
    }
}

/// A method rewritten by `#[async_trait]` (a plain `fn` returning its body's future, boxed).
/// It sits in a trait impl, which takes no other items, so everything lives in its body: the
/// cache is a `static` there (no handle, no twins), and the boxed future it returns looks the
/// key up and otherwise awaits the original boxed future under single-flight.
fn boxed_method(function: &MemoFn, plan: &Plan, names: &Names, cache: &CacheDecl) -> TokenStream {
    let krate = &plan.krate;
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    let body = &function.body;
    let ret = &plan.ret;
    let mode = mode_path(krate, plan.mode);
    let static_item = &cache.static_item;
    let cache_static = &names.cache_static;
    let (prelude, view, owned) = key_code(plan);
    let (keep_key, owned) = fallback_key(plan, owned);
    let (computed, closure, sharing) = miss_path(plan, quote!(#body), true);
    let finished = finish(
        plan,
        quote! {
            __memo_cache
                .__memo_compute_async::< #computed, #mode, _>(#owned, #closure, #sharing)
                .await
        },
        true,
    );
    let hit = finish(
        plan,
        quote!((<#mode as #krate::__private::Mode<#ret>>::rebuild(__memo_value), #krate::Origin::Hit)),
        false,
    );
    quote! {
        #(#attrs)*
        #vis #sig {
            ::std::boxed::Box::pin(async move {
                #[allow(unused_imports)]
                use #krate::__private::{Compute as _, KeepFailure as _, KeepFallback as _, Lookup as _, ShareFailure as _, ShareFallback as _};
                #[allow(non_upper_case_globals, clippy::type_complexity)]
                #static_item
                let __memo_cache = &*#cache_static;
                #prelude
                if let ::core::option::Option::Some(__memo_value) = __memo_cache.__memo_lookup(#view) {
                    return #hit.0;
                }
                #keep_key
                #finished.0
            })
        }
    }
}

/// With `result_fallback`, the miss path keeps a copy of the owned key, to look the expired
/// value up after a failure: the statement binding it, and the key to hand to the engine.
fn fallback_key(plan: &Plan, owned: TokenStream) -> (TokenStream, TokenStream) {
    match plan.fallback {
        true => (
            quote!(let __memo_fallback_key = #owned;),
            quote!(::core::clone::Clone::clone(&__memo_fallback_key)),
        ),
        false => (quote!(), owned),
    }
}

/// What the miss path computes, from `call` (the uncached twin's call, or a boxed body; a
/// future when `is_async`): the computed type, the closure, and how a failure is shared with
/// waiters. With `result_fallback`, the leader looks up the expired value right after a
/// failure (`Result<T, Failed<T, E>>`), and waiters get that fallback too.
fn miss_path(
    plan: &Plan,
    call: TokenStream,
    is_async: bool,
) -> (TokenStream, TokenStream, TokenStream) {
    let krate = &plan.krate;
    let ret = &plan.ret;
    if !plan.fallback {
        return (
            quote!(#ret),
            quote!(move || #call),
            quote!((&#krate::__private::SharingOf::< #ret>::new()).__memo_sharing()),
        );
    }
    let fall_back =
        quote!(#krate::__private::with_fallback(__memo_cache, &__memo_fallback_key, __memo_result));
    let closure = match is_async {
        true => quote!(move || {
            let __memo_future = #call;
            async move {
                let __memo_result = __memo_future.await;
                #fall_back
            }
        }),
        false => quote!(move || {
            let __memo_result = #call;
            #fall_back
        }),
    };
    (
        quote!(<#ret as #krate::__private::WithFallback>::Fallible),
        closure,
        quote!((&#krate::__private::FallbackSharingOf::< #ret>::new()).__memo_fallback_sharing()),
    )
}

/// A call's `(result, origin)` as returned: with `result_fallback`, a fallback value (of the
/// miss path, `computed`) becomes `Ok` with `Origin::Fallback`; with `with_cached_flag`, a result this call did not compute is
/// flagged `was_cached`.
fn finish(plan: &Plan, returned: TokenStream, computed: bool) -> TokenStream {
    let krate = &plan.krate;
    let returned = match plan.fallback && computed {
        true => quote!(#krate::__private::unfail(#returned)),
        false => returned,
    };
    // Spanned on the return type, the path to memoflight included (rustc reports a call's
    // unmet bound on the path's first token): one that is not a `Return<T>` is reported there.
    let span = plan.ret.span();
    let krate = spanned_at(quote!(#krate), span);
    // The argument is bound first and named on the return type's span: rustc puts the error
    // on the argument.
    let argument = Ident::new("__memo_returned", span);
    match plan.cached_flag {
        // Declared with the name it is used by: both carry the return type's hygiene, so a
        // return type written by another macro's caller still finds it.
        true => quote! {{
            let #argument = #returned;
            #krate::__private::flag_cached(#argument)
        }},
        false => returned,
    }
}

/// `tokens` with every token (and group) spanned at `span`: for paths interpolated into a
/// `quote_spanned!` (`krate`), whose own tokens keep the attribute's span otherwise.
fn spanned_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            proc_macro2::TokenTree::Group(group) => {
                let mut respanned =
                    proc_macro2::Group::new(group.delimiter(), spanned_at(group.stream(), span));
                respanned.set_span(span);
                respanned.into()
            }
            // `$crate` (in a `crate = $crate::..` path) resolves by its own span's context:
            // moved, not re-resolved.
            proc_macro2::TokenTree::Ident(mut ident) if ident == "$crate" => {
                ident.set_span(ident.span().located_at(span));
                ident.into()
            }
            mut token => {
                token.set_span(span);
                token
            }
        })
        .collect()
}

/// The attributes the uncached twin takes from the user's function: those about its body
/// (lints fire there) and its use. Every other attribute stays on the memoized function alone:
/// an attribute macro (`#[tracing::instrument]`) must not run twice, nor a symbol attribute
/// (`#[no_mangle]`, `#[export_name]`) name two functions.
const TWIN_ATTRIBUTES: &[&str] = &[
    "cfg",
    "target_feature",
    "allow",
    "expect",
    "warn",
    "deny",
    "forbid",
    "deprecated",
    "must_use",
    "inline",
    "cold",
    "track_caller",
];

/// The original function under `<name>_no_cache`.
fn no_cache_fn(function: &MemoFn, plan: &Plan, names: &Names) -> TokenStream {
    let attrs = function.attrs.iter().filter(|attr| {
        TWIN_ATTRIBUTES
            .iter()
            .any(|name| attr.path().is_ident(name))
    });
    let vis = plan.companions_vis.as_ref().unwrap_or(&function.vis);
    let hidden = plan.hidden_companions.then(|| quote!(#[doc(hidden)]));
    let mut sig = function.sig.clone();
    sig.ident = names.no_cache.clone();
    let body = &function.body;
    let doc = format!(
        "Runs [`{}`] without its cache: no lookup, no store, no single-flight.",
        function.sig.ident
    );
    quote! {
        #[doc = #doc]
        #hidden
        #(#attrs)*
        #vis #sig #body
    }
}

/// `<name>_cache()`: the handle.
fn handle_fn(function: &MemoFn, plan: &Plan, names: &Names, cache: &CacheDecl) -> TokenStream {
    let krate = &plan.krate;
    let vis = &function.vis;
    let handle = &names.handle;
    let value = &plan.value;
    let cache_ty = match plan.store.is_async() {
        true => "AsyncCache",
        false => "Cache",
    };
    let doc = format!(
        "The cache of [`{0}`]: [`stats`]({2}::{1}::stats), \
         [`invalidate`]({2}::{1}::invalidate), [`clear`]({2}::{1}::clear), \
         [`len`]({2}::{1}::len). Bypass it with [`{0}_no_cache`].",
        function.sig.ident,
        cache_ty,
        doc_path(krate),
    );
    let store_trait = match plan.store.is_async() {
        true => quote!(#krate::AsyncStore),
        false => quote!(#krate::Store),
    };
    let (store_ty, hint) = match (&cache.store_ty, &cache.key_ty, &plan.key) {
        // The hint is used by a generic function's handle, which makes its cache.
        (Some(store_ty), Some(key_ty), _) => (
            store_ty.clone(),
            quote!(::core::marker::PhantomData::< #key_ty >),
        ),
        (Some(store_ty), None, _) => (store_ty.clone(), quote!()),
        (None, Some(key_ty), _) => (
            quote!(impl #store_trait<Key = #key_ty, Value = #value>),
            quote!(::core::marker::PhantomData::< #key_ty>),
        ),
        (None, None, Key::Convert { expr, .. }) => {
            // The function's lifetimes are not in scope in the handle: elided in the hint.
            let (patterns, types): (Vec<_>, Vec<_>) = function
                .args
                .iter()
                .map(|arg| (&arg.binding, elide_lifetimes(&arg.ty)))
                .unzip();
            (
                quote!(impl #store_trait<Value = #value>),
                quote! {
                    #krate::__private::key_of(
                        #[allow(unused_variables)]
                        |(#(#patterns,)*): (#(#types,)*)| #expr
                    )
                },
            )
        }
        (None, None, Key::Args(_)) => unreachable!("an argument key type is always spelled"),
    };
    let reach = match plan.method {
        true => {
            let static_item = &cache.static_item;
            let cache_static = &names.cache_static;
            let reach = match plan.generics.is_empty() {
                true => quote!(&*#cache_static),
                false => cache.reach(plan, names, hint),
            };
            quote! {
                #[allow(non_upper_case_globals)]
                #static_item
                #reach
            }
        }
        false => cache.reach(plan, names, hint),
    };
    // A generic function's handle takes its parameters: `parse_cache::<u32>()`.
    let (generics, _, where_clause) = function.sig.generics.split_for_impl();
    // The key and value types inside are checked on their own tokens (`CacheKey`,
    // `CacheValue`); the cache type itself is spanned on the attribute, where the same errors
    // repeat without pointing at a wrong argument. (Spanned on the key's tokens, the repeated
    // key error would be shown once, but a value that is not `Clone` would then be reported on
    // the key: rustc reports both on the whole type.)
    let returns = match plan.store.is_async() {
        true => quote!(&'static #krate::AsyncCache<#store_ty>),
        false => quote!(&'static #krate::Cache<#store_ty>),
    };
    quote! {
        #[doc = #doc]
        #[allow(clippy::type_complexity)]
        #vis fn #handle #generics () -> #returns #where_clause {
            #reach
        }
    }
}

/// `ty` with every named lifetime replaced by `'_`.
fn elide_lifetimes(ty: &Type) -> Type {
    struct Elide;
    impl syn::visit_mut::VisitMut for Elide {
        fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
            if lifetime.ident != "static" {
                *lifetime = syn::Lifetime::new("'_", lifetime.span());
            }
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Elide, &mut ty);
    ty
}

/// `struct __MemoInstance_f<T: ?Sized, const N: usize>(..)`: a type per instantiation of a
/// generic function, whose `TypeId` keys its cache (a type parameter may appear in neither the
/// key nor the value: `fn size<T>() -> usize`).
fn instance_marker(function: &MemoFn, names: &Names) -> TokenStream {
    let marker = &names.instance;
    let mut params = Vec::new();
    let mut types = Vec::new();
    for param in &function.sig.generics.params {
        match param {
            syn::GenericParam::Type(param) => {
                let ident = &param.ident;
                params.push(quote!(#ident: ?::core::marker::Sized));
                types.push(ident);
            }
            syn::GenericParam::Const(param) => {
                let (ident, ty) = (&param.ident, &param.ty);
                params.push(quote!(const #ident: #ty));
            }
            syn::GenericParam::Lifetime(_) => {}
        }
    }
    quote! {
        #[allow(dead_code, non_camel_case_types)]
        #[doc(hidden)]
        struct #marker<#(#params),*>(
            ::core::marker::PhantomData<(#(fn() -> *const #types,)*)>,
        );
    }
}

/// `::<T, N>` for a function with type or const parameters; nothing otherwise.
fn turbofish(plan: &Plan) -> TokenStream {
    let generics = &plan.generics;
    match generics.is_empty() {
        true => quote!(),
        false => quote!(::< #(#generics),*>),
    }
}

fn mode_path(krate: &syn::Path, mode: Mode) -> TokenStream {
    match mode {
        Mode::All => quote!(#krate::__private::CacheAll),
        Mode::Ok => quote!(#krate::__private::CacheOk),
        Mode::Some => quote!(#krate::__private::CacheSome),
    }
}

/// The owned type of one key part: `T` for `T`, `<T as ToOwned>::Owned` for `&T`, and
/// `Option<<T as ToOwned>::Owned>` for `Option<&T>`, named through `CacheKey` on the argument's
/// type so that a part that cannot be a key is reported there.
fn part_type(krate: &syn::Path, part: &KeyPart) -> TokenStream {
    let owned = if let Some(referent) = &part.optional_referent {
        quote_spanned!(referent.span()=>
            ::core::option::Option<<#referent as ::std::borrow::ToOwned>::Owned>)
    } else {
        match &part.referent {
            Some(referent) => {
                quote_spanned!(referent.span()=> <#referent as ::std::borrow::ToOwned>::Owned)
            }
            None => {
                let ty = &part.ty;
                quote!(#ty)
            }
        }
    };
    checked_key(krate, &part.ty, owned)
}

/// `<owned as CacheKey>::Key`, spanned on `user`: the key type, reported on the user's tokens
/// if it is not one.
fn checked_key(krate: &syn::Path, user: &Type, owned: TokenStream) -> TokenStream {
    quote_spanned!(user.span()=> <#owned as #krate::__private::CacheKey>::Key)
}

fn owned_key_type(krate: &syn::Path, parts: &[KeyPart]) -> TokenStream {
    let types = parts.iter().map(|part| part_type(krate, part));
    match parts {
        [single] => part_type(krate, single),
        _ => quote!((#(#types,)*)),
    }
}

/// The owned key, built only on a miss: clones of by-value arguments, `to_owned` of borrowed.
fn owned_key(parts: &[KeyPart]) -> TokenStream {
    let owned = parts.iter().map(|part| {
        let binding = &part.binding;
        if let Some(referent) = &part.optional_referent {
            return quote_spanned!(referent.span()=>
            ::core::option::Option::map(
                ::core::option::Option::as_ref(&#binding),
                |__memo_part| ::std::borrow::ToOwned::to_owned(&**__memo_part),
            ));
        }
        match &part.referent {
            Some(referent) => quote_spanned!(referent.span()=>
                ::std::borrow::ToOwned::to_owned(&*#binding)),
            None => quote_spanned!(type_span(&part.ty)=>
                ::core::clone::Clone::clone(&#binding)),
        }
    });
    match parts {
        [_] => quote!(#(#owned)*),
        _ => quote!((#(#owned,)*)),
    }
}

/// The lookup key, borrowing the arguments: `&arg`, `&*arg`, `&Borrowed(arg.as_deref())` for
/// an `Option<&T>`, or `&Borrowed((&a, &*b, c.as_deref(), ..))`.
fn borrowed_view(krate: &syn::Path, parts: &[KeyPart]) -> TokenStream {
    let refs = parts.iter().map(|part| {
        let binding = &part.binding;
        match (&part.referent, &part.optional_referent) {
            (_, Some(_)) => quote!(::core::option::Option::as_deref(&#binding)),
            (Some(_), None) => quote!(&*#binding),
            (None, None) => quote!(&#binding),
        }
    });
    match parts {
        [] => quote!(&()),
        [single] if single.optional_referent.is_some() => {
            quote!(&#krate::__private::Borrowed(#(#refs)*))
        }
        [_] => quote!(#(#refs)*),
        _ => quote!(&#krate::__private::Borrowed((#(#refs,)*))),
    }
}

/// `krate` as an intra-doc link path (`::memoflight`, `my_crate::memo`).
fn doc_path(krate: &syn::Path) -> String {
    quote!(#krate).to_string().replace(' ', "")
}

fn type_span(ty: &Type) -> Span {
    ty.span()
}
