//! [`AsyncCache`]: the cache of an `async fn` whose values live in an [`AsyncStore`], and the
//! handle `#[cached(async_store = ..)]` generates.
//!
//! It runs the single-flight protocol of [`crate::flight`] with the store's reads and writes
//! awaited: a leader registers its flight first and then takes its look at the store, and once
//! it has a value it keeps the flight registered (`Storing`) while it writes, handing the value
//! to its waiters before the write starts. Everything else (the in-flight table, waiting, hand-off after a panic or a
//! cancellation, counters) is the in-memory [`Cache`]'s, kept here over a store that holds
//! nothing.

use crate::async_store::AsyncStore;
use crate::cache::{AfterWait, Cache, Origin};
use crate::flight::{Leader, Outcome, Revocation, Role};
use crate::output::{CacheAll, Mode, Sharing};
use crate::stats::Stats;
use crate::store::Store;
use crate::trace;
use equivalent::Equivalent;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;

/// The cache of an `async fn` whose values live in an [`AsyncStore`] (a Redis server, a
/// database): `#[cached(async_store = ..)]` creates one and generates `f_cache()`, which returns
/// it. Usable on its own through [`get_or_compute`](AsyncCache::get_or_compute).
///
/// # Concurrent calls on the same key
///
/// Among the calls of this process, exactly one runs the computation of a key at a time; the
/// others wait for it without blocking their thread and receive a clone of its value (they do
/// not read the store again). Calls on different keys never wait on each other. A hit is one
/// store read: no lock of the cache is taken. Several processes sharing one store each run
/// their own computation.
///
/// # Store failures
///
/// A store that fails does not fail the call: a failed read counts as a miss and the function
/// runs, a failed write leaves the value uncached; both are counted in
/// [`Stats::store_errors`] and traced. [`invalidate`](AsyncCache::invalidate) and
/// [`clear`](AsyncCache::clear) return the store's error, since stale values may then remain.
///
/// # Panics and cancellation
///
/// As for [`Cache::get_or_compute_async`]: a panic propagates to the task whose computation
/// panicked; a leader whose future is dropped vacates its flight; in both cases one waiter takes
/// over and the rest wait for it. A future that awaits its own key panics at once instead of
/// waiting for itself. A leader dropped while it writes its value (its waiters already have
/// it) ends its flight at once; whether the write reached the store is then up to the store's
/// client, so a write still in transit may land after a later invalidation.
///
/// # Example
///
/// ```
/// # use memoflight::{AsyncCache, AsyncStore};
/// # use std::collections::HashMap;
/// # use std::sync::Mutex;
/// # #[derive(Default)]
/// # struct Remote(Mutex<HashMap<u32, String>>);
/// # impl AsyncStore for Remote {
/// #     type Key = u32;
/// #     type Value = String;
/// #     type Error = std::io::Error;
/// #     async fn get(&self, k: &u32) -> std::io::Result<Option<String>> { Ok(self.0.lock().unwrap().get(k).cloned()) }
/// #     async fn insert(&self, k: u32, v: String) -> std::io::Result<()> { self.0.lock().unwrap().insert(k, v); Ok(()) }
/// #     async fn remove(&self, k: &u32) -> std::io::Result<()> { self.0.lock().unwrap().remove(k); Ok(()) }
/// #     async fn clear(&self) -> std::io::Result<()> { self.0.lock().unwrap().clear(); Ok(()) }
/// #     async fn len(&self) -> std::io::Result<usize> { Ok(self.0.lock().unwrap().len()) }
/// # }
/// // `Remote` is an `AsyncStore` (see its trait docs for a whole one).
/// let cache = AsyncCache::new("pages", Remote::default());
/// futures::executor::block_on(async {
///     let page = cache.get_or_compute(7, || async { "page 7".to_string() }).await;
///     assert_eq!(page, "page 7");
///     assert_eq!(cache.get(&7).await.unwrap().as_deref(), Some("page 7"));
///     let stats = cache.stats().await.unwrap();
///     assert_eq!((stats.misses, stats.executions, stats.entries), (1, 1, 1));
/// });
/// ```
pub struct AsyncCache<S: AsyncStore> {
    /// The in-flight table, counters and hand-off logic, over a store that keeps nothing.
    engine: Cache<Nothing<S::Key, S::Value>>,
    store: S,
}

impl<S: AsyncStore> AsyncCache<S> {
    /// Creates a cache named `name` (used in panic messages and traces) that keeps values in
    /// `store`.
    ///
    /// ```
    /// # use memoflight::{AsyncCache, AsyncStore};
    /// # struct Remote;
    /// # impl AsyncStore for Remote {
    /// #     type Key = u32;
    /// #     type Value = String;
    /// #     type Error = std::io::Error;
    /// #     async fn get(&self, _: &u32) -> std::io::Result<Option<String>> { Ok(None) }
    /// #     async fn insert(&self, _: u32, _: String) -> std::io::Result<()> { Ok(()) }
    /// #     async fn remove(&self, _: &u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn clear(&self) -> std::io::Result<()> { Ok(()) }
    /// #     async fn len(&self) -> std::io::Result<usize> { Ok(0) }
    /// # }
    /// let cache = AsyncCache::new("pages", Remote);
    /// assert_eq!(cache.name(), "pages");
    /// ```
    pub fn new(name: &'static str, store: S) -> Self {
        AsyncCache {
            engine: Cache::new(name, Nothing(PhantomData)),
            store,
        }
    }

    /// Sets how long a caller waits for another caller's computation of the same key before
    /// it computes on its own, as [`Cache::with_wait_timeout`] (needs the `tokio` feature for
    /// its timer; without it callers wait as long as the computation takes). The result of a
    /// computation run alone is returned to its caller and not written to the store.
    ///
    /// ```
    /// # use memoflight::{AsyncCache, AsyncStore};
    /// # use std::time::Duration;
    /// # struct Remote;
    /// # impl AsyncStore for Remote {
    /// #     type Key = u32;
    /// #     type Value = String;
    /// #     type Error = std::io::Error;
    /// #     async fn get(&self, _: &u32) -> std::io::Result<Option<String>> { Ok(None) }
    /// #     async fn insert(&self, _: u32, _: String) -> std::io::Result<()> { Ok(()) }
    /// #     async fn remove(&self, _: &u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn clear(&self) -> std::io::Result<()> { Ok(()) }
    /// #     async fn len(&self) -> std::io::Result<usize> { Ok(0) }
    /// # }
    /// let cache = AsyncCache::new("pages", Remote).with_wait_timeout(Duration::from_secs(2));
    /// # let _ = cache;
    /// ```
    pub fn with_wait_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.engine = self.engine.with_wait_timeout(timeout);
        self
    }

    #[doc(hidden)]
    /// Sets how keys are shown in panic messages (generated code passes their `Debug` form).
    pub fn describe_keys_with(mut self, describe: fn(&S::Key) -> Option<String>) -> Self {
        self.engine = self.engine.describe_keys_with(describe);
        self
    }

    /// The name given at creation: the memoized function's name under `#[cached]`.
    ///
    /// See [`new`](AsyncCache::new) for an example.
    pub fn name(&self) -> &'static str {
        self.engine.name()
    }

    /// The store holding the finished values.
    ///
    /// See [`new`](AsyncCache::new) for how to make a cache; `cache.store()` then returns the
    /// store given there.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Reads the value stored for `key`, without computing it and without counting a hit.
    ///
    /// # Errors
    ///
    /// The store's, if its read fails.
    ///
    /// See [`AsyncCache`] for an example.
    pub async fn get(&self, key: &S::Key) -> Result<Option<S::Value>, S::Error> {
        self.store.get(key).await
    }

    /// Returns the value stored for `key`, or awaits `compute()`, stores its output and
    /// returns it.
    ///
    /// # Concurrent calls on the same key
    ///
    /// Exactly one caller awaits `compute`; the others wait (without blocking their thread)
    /// and get a clone of its value. See [`AsyncCache`] for store failures, panics and
    /// cancellation.
    ///
    /// See [`AsyncCache`] for an example.
    pub async fn get_or_compute<F>(&self, key: S::Key, compute: impl FnOnce() -> F) -> S::Value
    where
        F: Future<Output = S::Value>,
    {
        self.__compute::<S::Value, CacheAll, F>(key, compute, None)
            .await
            .0
    }

    /// Removes `key`'s value from the store. A computation of `key` in flight will not store
    /// its result (its waiters stop waiting and compute afresh); one already writing its value is waited for,
    /// then its value removed. Calls made after `invalidate` returned `Ok` compute afresh.
    ///
    /// # Errors
    ///
    /// The store's, if its removal fails: the old value may then still be stored.
    ///
    /// ```
    /// # use memoflight::{AsyncCache, AsyncStore};
    /// # use std::collections::HashMap;
    /// # use std::sync::Mutex;
    /// # #[derive(Default)]
    /// # struct Remote(Mutex<HashMap<u32, u32>>);
    /// # impl AsyncStore for Remote {
    /// #     type Key = u32;
    /// #     type Value = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn get(&self, k: &u32) -> std::io::Result<Option<u32>> { Ok(self.0.lock().unwrap().get(k).cloned()) }
    /// #     async fn insert(&self, k: u32, v: u32) -> std::io::Result<()> { self.0.lock().unwrap().insert(k, v); Ok(()) }
    /// #     async fn remove(&self, k: &u32) -> std::io::Result<()> { self.0.lock().unwrap().remove(k); Ok(()) }
    /// #     async fn clear(&self) -> std::io::Result<()> { self.0.lock().unwrap().clear(); Ok(()) }
    /// #     async fn len(&self) -> std::io::Result<usize> { Ok(self.0.lock().unwrap().len()) }
    /// # }
    /// let cache = AsyncCache::new("squares", Remote::default());
    /// futures::executor::block_on(async {
    ///     cache.get_or_compute(3, || async { 9 }).await;
    ///     cache.invalidate(&3).await.unwrap();
    ///     assert_eq!(cache.get(&3).await.unwrap(), None);
    /// });
    /// ```
    pub async fn invalidate(&self, key: &S::Key) -> Result<(), S::Error> {
        trace::invalidated(self.name());
        let flights = &self.engine.flights;
        // A value computed before this call and being written now must be written before it
        // is removed, or the write could land after the removal. The writing flight stays
        // registered meanwhile, so that a concurrent invalidation waits for it too.
        let _revoked = loop {
            match flights.revoke(key) {
                Revocation::Absent => break None,
                Revocation::Revoked(revoked) => break Some(revoked),
                Revocation::Writing(flight) => flight.wait_stored().await,
            }
        };
        let removed = self.store.remove(key).await;
        // A flight registered during the removal may have read the old value: revoked, so that
        // no caller arriving after this returns can join it. One writing now holds a value
        // computed after it registered, after this call began: it is left alone.
        let _ = flights.revoke(key);
        removed
        // The revoked flights' waiters are released (they compute afresh) when this returns, or
        // if this future is dropped.
    }

    /// Removes every value from the store; computations in flight will not store theirs (see
    /// [`invalidate`](AsyncCache::invalidate)). Counters are kept.
    ///
    /// # Errors
    ///
    /// The store's, if clearing it fails: old values may then still be stored.
    ///
    /// See [`invalidate`](AsyncCache::invalidate) for an example of a cache; `clear` is called
    /// the same way, without a key.
    pub async fn clear(&self) -> Result<(), S::Error> {
        trace::cleared(self.name());
        let flights = &self.engine.flights;
        let mut revoked = Vec::new();
        loop {
            let writing = flights.revoke_each(&mut revoked);
            if writing.is_empty() {
                break;
            }
            for flight in writing {
                flight.wait_stored().await;
            }
        }
        let cleared = self.store.clear().await;
        // As for `invalidate`: flights registered during the clear may have read old values.
        let _ = flights.revoke_each(&mut revoked);
        cleared
    }

    /// The number of values in the store.
    ///
    /// # Errors
    ///
    /// The store's, if it cannot count.
    ///
    /// See [`AsyncCache`] for a cache; `len` is awaited like [`get`](AsyncCache::get).
    pub async fn len(&self) -> Result<usize, S::Error> {
        self.store.len().await
    }

    /// Whether the store holds no value.
    ///
    /// # Errors
    ///
    /// The store's, if it cannot count.
    ///
    /// See [`AsyncCache`] for a cache; `is_empty` is awaited like [`get`](AsyncCache::get).
    pub async fn is_empty(&self) -> Result<bool, S::Error> {
        self.store.is_empty().await
    }

    /// A snapshot of the counters, with `entries` counted by the store; see [`Stats`].
    ///
    /// # Errors
    ///
    /// The store's, if it cannot count its entries.
    ///
    /// See [`AsyncCache`] for an example.
    pub async fn stats(&self) -> Result<Stats, S::Error> {
        let entries = self.store.len().await?;
        Ok(self.engine.counters.snapshot(
            entries,
            self.engine.flights.len(),
            self.store.evictions(),
        ))
    }

    /// The whole call, from the first look at the store to the value. For generated code: a
    /// store read is I/O, so there is no separate inline hit path.
    #[doc(hidden)]
    pub async fn __compute<R, M, F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        let engine = &self.engine;
        let subject = trace::Subject::new(engine.name(), || engine.key_text(&key));
        if let Some(value) = self.look(&key, &subject).await {
            engine.counters.hit();
            return (M::rebuild(value), Origin::Hit);
        }
        let mut counted = false;
        let mut key = key;
        loop {
            let lookup_key = key.clone();
            match engine.flights.join_or_lead_unlooked(key) {
                Role::Found(value) => return (M::rebuild(value), Origin::Hit),
                Role::Lead(leader) => {
                    return self
                        .lead::<R, M, F>(leader, lookup_key, compute, sharing, &subject, counted)
                        .await;
                }
                Role::Wait(flight, returned) => {
                    self.count_once(&mut counted, false, &subject);
                    let waited = engine.wait_counted(&flight, &subject).await;
                    match engine.after_wait::<R, M>(waited, &sharing, returned) {
                        AfterWait::Done(result) => return (result, Origin::Waited),
                        AfterWait::Retry(returned) => key = returned,
                        AfterWait::Alone(_) => {
                            // Returned, not stored: the flight it gave up on stores its own.
                            let result = match M::split(engine.run_alone(compute, &subject).await) {
                                Ok(value) => M::rebuild(value),
                                Err(result) => {
                                    engine.counters.error();
                                    result
                                }
                            };
                            return (result, Origin::Computed);
                        }
                    }
                }
            }
        }
    }

    /// Reads the store; a failure is counted, traced, and taken as a miss.
    async fn look(&self, key: &S::Key, subject: &trace::Subject) -> Option<S::Value> {
        match self.store.get(key).await {
            Ok(found) => found,
            Err(error) => {
                self.failed("get", &error, subject);
                None
            }
        }
    }

    fn failed(&self, operation: &str, error: &S::Error, subject: &trace::Subject) {
        self.engine.counters.store_error();
        trace::store_failed(subject, operation, error);
    }

    /// Counts a call once, as a hit or a miss, however many rounds it takes.
    fn count_once(&self, counted: &mut bool, hit: bool, subject: &trace::Subject) {
        if std::mem::replace(counted, true) {
            return;
        }
        if hit {
            self.engine.counters.hit();
        } else {
            self.engine.counters.miss();
            trace::miss(subject);
        }
    }

    /// The leader's part: a second look at the store, now that the flight is registered (it
    /// finds a value stored by a leader that finished between the first look and the
    /// registration); otherwise the computation, and the write of its value.
    async fn lead<R, M, F>(
        &self,
        mut leader: Leader<'_, S::Key, S::Value>,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
        subject: &trace::Subject,
        mut counted: bool,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        let engine = &self.engine;
        if let Some(value) = self.look(&key, subject).await {
            self.count_once(&mut counted, true, subject);
            leader.finish_unstored(Outcome::Value(value.clone()));
            return (M::rebuild(value), Origin::Hit);
        }
        self.count_once(&mut counted, false, subject);
        let result = engine
            .run_as_leader(leader.flight(), compute, subject)
            .await;
        let result = match M::split(result) {
            Ok(value) => {
                // Waiters get the value now; the flight stays registered while it is written,
                // unless an invalidation unregistered it meanwhile.
                if leader.begin_storing(Outcome::Value(value.clone())) {
                    if let Err(error) = self.store.insert(key, value.clone()).await {
                        self.failed("insert", &error, subject);
                    }
                    leader.stored();
                }
                M::rebuild(value)
            }
            Err(result) => engine.settle::<R, M>(leader, result, sharing, subject),
        };
        (result, Origin::Computed)
    }
}

/// The store of an [`AsyncCache`]'s inner engine: it keeps nothing, so that the engine's
/// in-flight table never finds a value under its lock; values live in the async store.
struct Nothing<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> Store for Nothing<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, _: &Q) -> Option<V> {
        None
    }
    fn insert(&self, _: K, _: V) {}
    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, _: &Q) -> Option<V> {
        None
    }
    fn retain(&self, _: &mut dyn FnMut(&K, &V) -> bool) {}
    fn clear(&self) {}
    fn len(&self) -> usize {
        0
    }
}
