//! The one door of generated code: everything `#[cached]` expands to reaches the runtime
//! through this module, re-exported as `memoflight::__private` (free functions and types, no
//! hidden methods on public types). Not part of the public API: it may change in any release,
//! which is why the three crates pin each other's exact version.

use crate::cache::Cache;
use crate::origin::Origin;
use crate::store::Store;
use equivalent::Equivalent;
use std::hash::Hash;

pub use crate::key::{Borrowed, KeyView};
pub use crate::output::{
    CacheAll, CacheOk, CacheSome, DescribeDebug, DescribeOpaque, KeepFailure, KeyOf, ShareFailure,
    SharingOf,
};
pub use crate::output::{Mode, Sharing};

/// The hit path, inlined into the memoized function: a store read that counts a hit. A trait
/// (imported by generated code as `_`) rather than a free function, so that a key type that is
/// not `Hash + Eq + Clone` is reported once, where the cache's type is formed, and not again
/// at every call that uses it. Its methods (and those of the other traits generated code calls
/// by method syntax) start with `__memo_`, so that a user's blanket trait with a `lookup` or
/// `describe` method never makes a call ambiguous.
pub trait Lookup<Q: ?Sized> {
    /// The cached value.
    type Value;
    /// The stored value for `key`, counted as a hit; `None` on a miss (or when the value is due
    /// for a refresh: the miss path serves it or refreshes it).
    fn __memo_lookup(&self, key: &Q) -> Option<Self::Value>;
}

impl<S, Q> Lookup<Q> for Cache<S>
where
    S: Store,
    Q: ?Sized + Hash + Equivalent<S::Key>,
{
    type Value = S::Value;

    #[inline]
    fn __memo_lookup(&self, key: &Q) -> Option<S::Value> {
        Cache::lookup(self, key)
    }
}

/// What a key (or a part of one) must be. Generated code names a key part's type as
/// `<T as CacheKey>::Key`, spanned on the user's type: a type that is not `Hash + Eq + Clone +
/// Send + Sync` is reported there, once, and not again where the cache's type is formed.
pub trait CacheKey {
    /// The type itself.
    type Key;
}

impl<T: Hash + Eq + Clone + Send + Sync> CacheKey for T {
    type Key = T;
}

/// What a cached value must be: named `<T as CacheValue>::Value` by generated code, spanned on
/// the user's return type, for the same reason as [`CacheKey`].
pub trait CacheValue {
    /// The type itself.
    type Value;
}

impl<T: Clone + Send + Sync> CacheValue for T {
    type Value = T;
}

/// The miss path, after [`Lookup::__memo_lookup`] missed: a trait for the same reason as `Lookup`.
pub trait Compute {
    /// The cache's owned key.
    type Key;
    /// The cached value.
    type Value;

    /// The miss path of a blocking function.
    fn __memo_compute<R, M>(
        &self,
        key: Self::Key,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = Self::Value>;

    /// The miss path of an `async fn` over an in-memory store.
    #[cfg(feature = "async")]
    fn __memo_compute_async<R, M, F>(
        &self,
        key: Self::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> impl std::future::Future<Output = (R, Origin)>
    where
        M: Mode<R, Value = Self::Value>,
        F: std::future::Future<Output = R>;
}

impl<S: Store> Compute for Cache<S> {
    type Key = S::Key;
    type Value = S::Value;

    fn __memo_compute<R, M>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
    {
        Cache::compute::<R, M>(self, key, compute, sharing)
    }

    #[cfg(feature = "async")]
    fn __memo_compute_async<R, M, F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> impl std::future::Future<Output = (R, Origin)>
    where
        M: Mode<R, Value = S::Value>,
        F: std::future::Future<Output = R>,
    {
        Cache::compute_async::<R, M, F>(self, key, compute, sharing)
    }
}

/// The whole call of an `async fn` over an [`AsyncStore`](crate::AsyncStore): its store read
/// is I/O, so there is no separate inline hit path.
#[cfg(feature = "async")]
pub async fn compute_in_async_store<R, M, F, S>(
    cache: &crate::AsyncCache<S>,
    key: S::Key,
    compute: impl FnOnce() -> F,
    sharing: Option<Sharing<R>>,
) -> (R, Origin)
where
    S: crate::AsyncStore,
    M: Mode<R, Value = S::Value>,
    F: std::future::Future<Output = R>,
{
    cache.compute::<R, M, F>(key, compute, sharing).await
}

/// The whole call of a sync function over an [`AsyncStore`](crate::AsyncStore) (feature
/// `tokio`, see `blocking.rs`).
#[cfg(feature = "async")]
pub fn compute_in_async_store_blocking<R, M, S>(
    cache: &crate::AsyncCache<S>,
    key: S::Key,
    compute: impl FnOnce() -> R,
    sharing: Option<Sharing<R>>,
) -> (R, Origin)
where
    S: crate::AsyncStore + crate::blocking::Blocking,
    M: Mode<R, Value = S::Value>,
{
    cache.compute_blocking::<R, M>(key, compute, sharing)
}

pub use crate::cached_flag::MarkCached;

/// `with_cached_flag`: sets `was_cached` on a result this call did not compute.
#[inline]
pub fn flag_cached<R: MarkCached>((mut result, origin): (R, Origin)) -> (R, Origin) {
    if origin != Origin::Computed {
        result.__memo_mark_cached();
    }
    (result, origin)
}

/// `result_fallback`: a failed computation, with the expired value the store still held for
/// its key when it failed (`Stale`), or without one (`Error`). The miss path of a
/// `result_fallback` function computes `Result<T, Failed<T, E>>`, so that the callers waiting
/// for a computation that failed get its fallback too, whatever `E` is (the value is `Clone`).
#[derive(Clone)]
pub enum Failed<T, E> {
    /// The expired value held for the key when the computation failed.
    Stale(T),
    /// The computation's error, with no value to fall back on.
    Error(E),
}

/// `Result<T, E>` → `Result<T, Failed<T, E>>`, the miss path's type under `result_fallback`
/// (named from the user's return type, which may be an alias hiding `E`).
pub trait WithFallback {
    /// `Result<T, Failed<T, E>>`.
    type Fallible;
}

impl<T, E> WithFallback for Result<T, E> {
    type Fallible = Result<T, Failed<T, E>>;
}

/// `result_fallback`, in the leader right after its computation: on `Err`, looks up the value
/// the store still holds for `key`, expired or not. Read after the failure: a value invalidated
/// during the computation is gone, and so never returned.
pub fn with_fallback<S, T, E>(
    cache: &Cache<S>,
    key: &S::Key,
    result: Result<T, E>,
) -> Result<T, Failed<T, E>>
where
    S: Store<Value = T>,
{
    result.map_err(|error| match cache.store().get_stale(key) {
        Some(stale) => Failed::Stale(stale),
        None => Failed::Error(error),
    })
}

/// `result_fallback`, in every caller: a fallback value becomes `Ok` with
/// [`Origin::Fallback`].
#[inline]
pub fn unfail<T, E>((result, origin): (Result<T, Failed<T, E>>, Origin)) -> (Result<T, E>, Origin) {
    match result {
        Ok(value) => (Ok(value), origin),
        Err(Failed::Stale(stale)) => (Ok(stale), Origin::Fallback),
        Err(Failed::Error(error)) => (Err(error), origin),
    }
}

/// The receiver of the autoref-specialized `__memo_fallback_sharing()` call for return type
/// `R` under `result_fallback`.
pub struct FallbackSharingOf<R>(std::marker::PhantomData<fn() -> R>);

impl<R> FallbackSharingOf<R> {
    /// The marker for return type `R`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        FallbackSharingOf(std::marker::PhantomData)
    }
}

/// Chosen when the error is `Clone`: waiters get the fallback or the error.
pub trait ShareFallback<R: WithFallback> {
    /// Sharing of both failures.
    fn __memo_fallback_sharing(&self) -> Option<Sharing<R::Fallible>>;
}

/// Chosen otherwise: waiters get the fallback; with none, they retry one at a time.
pub trait KeepFallback<R: WithFallback> {
    /// Sharing of the fallback only.
    fn __memo_fallback_sharing(&self) -> Option<Sharing<R::Fallible>>;
}

impl<T, E> ShareFallback<Result<T, E>> for FallbackSharingOf<Result<T, E>>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    fn __memo_fallback_sharing(&self) -> Option<Sharing<Result<T, Failed<T, E>>>> {
        Some(Sharing {
            share: |result| {
                let failed = result.as_ref().err()?;
                Some(std::sync::Arc::new(failed.clone()))
            },
            unshare: |failure| failure.downcast_ref::<Failed<T, E>>().cloned().map(Err),
        })
    }
}

impl<T, E> KeepFallback<Result<T, E>> for &FallbackSharingOf<Result<T, E>>
where
    T: Clone + Send + Sync + 'static,
{
    fn __memo_fallback_sharing(&self) -> Option<Sharing<Result<T, Failed<T, E>>>> {
        Some(Sharing {
            share: |result| match result {
                Err(Failed::Stale(stale)) => Some(std::sync::Arc::new(stale.clone())),
                _ => None,
            },
            unshare: |failure| {
                let stale = failure.downcast_ref::<T>()?;
                Some(Err(Failed::Stale(stale.clone())))
            },
        })
    }
}

/// Sets how a cache shows its keys in panic messages and traces (their `Debug` form, when
/// they have one).
pub fn describing_keys<S: Store>(
    cache: Cache<S>,
    describe: fn(&S::Key) -> Option<String>,
) -> Cache<S> {
    cache.describe_keys_with(describe)
}

/// The cache of a function over an async store, its store bound to the function's path.
#[cfg(feature = "async")]
pub fn async_cache_in<S: crate::AsyncStore>(
    name: &'static str,
    path: &'static str,
    store: S,
) -> crate::AsyncCache<S> {
    crate::AsyncCache::bound(name, path, store)
}

/// [`describing_keys`] for an [`AsyncCache`](crate::AsyncCache).
#[cfg(feature = "async")]
pub fn describing_async_keys<S: crate::AsyncStore>(
    cache: crate::AsyncCache<S>,
    describe: fn(&S::Key) -> Option<String>,
) -> crate::AsyncCache<S> {
    cache.describe_keys_with(describe)
}

/// The `static` a memoized function keeps its cache in, created on first use.
pub struct Slot(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Slot {
    /// An empty slot, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Slot(std::sync::OnceLock::new())
    }

    /// The cache in this slot, created by `init` on first use: a [`Cache`], or an
    /// `AsyncCache`.
    ///
    /// # Panics
    ///
    /// If the slot already holds a cache of another type: each `#[cached]` function has a slot
    /// of its own and always asks it for the same type, so this cannot happen in generated code.
    #[inline]
    pub fn get_or_init<C: std::any::Any + Send + Sync>(
        &'static self,
        init: impl FnOnce() -> C,
    ) -> &'static C {
        let any = self.0.get_or_init(|| Box::new(init()));
        match any.downcast_ref() {
            Some(cache) => cache,
            None => unreachable!("memoflight: a cache slot was asked for two different types"),
        }
    }
}

/// The `static` a generic memoized function keeps its caches in: one per instantiation whose
/// cache type differs (`parse::<u32>` and `parse::<f64>` have a cache each; a function whose
/// `key` and value do not name its type parameters has one), found by the cache type's
/// `TypeId` in a list that only grows. A call walks the list with one atomic load per
/// instantiation before its own, and no lock: readers on many threads never contend.
pub struct GenericSlot(std::sync::OnceLock<&'static GenericNode>);

/// One instantiation's cache in a [`GenericSlot`]; leaked, as a `static` would be.
pub struct GenericNode {
    id: std::any::TypeId,
    cache: &'static (dyn std::any::Any + Send + Sync),
    next: std::sync::OnceLock<&'static GenericNode>,
}

impl GenericSlot {
    /// An empty slot, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        GenericSlot(std::sync::OnceLock::new())
    }

    /// The cache of type `C` in this slot, created by `init` on first use. `init` (which runs
    /// the user's store expression) runs with no lock held, so it may call other memoized
    /// functions; two first calls at once may both run it, and one cache is kept (the other is
    /// dropped).
    ///
    /// `I` tells instantiations apart beyond the cache's type: the generated marker generic over
    /// every type and const parameter (`size::<u8>()` and `size::<u64>()` have one cache type,
    /// `Cache<Unbounded<(), usize>>`), or `()` for one cache for all (`key` + `convert`).
    #[inline]
    pub fn get_or_init<I: ?Sized + 'static, C: std::any::Any + Send + Sync>(
        &'static self,
        init: impl FnOnce() -> C,
    ) -> &'static C {
        let id = std::any::TypeId::of::<(std::marker::PhantomData<I>, C)>();
        let mut link = &self.0;
        while let Some(node) = link.get() {
            if node.id == id {
                return Self::downcast(node.cache);
            }
            link = &node.next;
        }
        self.insert(id, init())
    }

    /// Appends `made` at the end of the list, unless another thread appended a cache of its
    /// type meanwhile (that one is returned, and `made` dropped).
    #[cold]
    fn insert<C: std::any::Any + Send + Sync>(
        &'static self,
        id: std::any::TypeId,
        made: C,
    ) -> &'static C {
        let mut made = Some(made);
        let mut link = &self.0;
        loop {
            // The closure only leaks what was made: no user code runs inside `get_or_init`.
            let node = link.get_or_init(|| {
                let cache: &'static C = Box::leak(Box::new(made.take().expect("made once")));
                Box::leak(Box::new(GenericNode {
                    id,
                    cache,
                    next: std::sync::OnceLock::new(),
                }))
            });
            if node.id == id {
                return Self::downcast(node.cache);
            }
            link = &node.next;
        }
    }

    fn downcast<C: std::any::Any>(found: &'static (dyn std::any::Any + Send + Sync)) -> &'static C {
        match found.downcast_ref() {
            Some(cache) => cache,
            None => unreachable!("memoflight: a cache found by its TypeId is of that type"),
        }
    }
}

/// Constrains a store expression to the key and value types of its cache, so that
/// `Unbounded::new()` needs no annotations in generated code.
#[inline]
pub fn typed_store<K, V, S: Store<Key = K, Value = V>>(
    _key: std::marker::PhantomData<K>,
    store: S,
) -> S {
    store
}

/// [`typed_store`] for an async store.
#[cfg(feature = "async")]
#[inline]
pub fn typed_async_store<K, V, S: crate::AsyncStore<Key = K, Value = V>>(
    _key: std::marker::PhantomData<K>,
    store: S,
) -> S {
    store
}

/// The key type of a key value, as a `PhantomData`.
#[inline]
pub fn key_hint<K>(_key: &K) -> std::marker::PhantomData<K> {
    std::marker::PhantomData
}

/// The key type a `convert` closure yields, as a `PhantomData`; the closure never runs.
pub fn key_of<A, K>(_convert: impl FnOnce(A) -> K) -> std::marker::PhantomData<K> {
    std::marker::PhantomData
}
