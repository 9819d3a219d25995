//! [`AsyncCache`]: the cache of an `async fn` whose values live in an [`AsyncStore`], and the
//! handle `#[cached(async_store = ..)]` generates.
//!
//! Its driver of the caller protocol ([`crate::protocol`]) awaits the store's reads and
//! writes: a leader registers its flight first and then takes its look at the store
//! ([`Join::Unlooked`](crate::protocol::Join)), and once it has a value it keeps the flight
//! registered (`Storing`) while it writes, handing the value to its waiters before the write
//! starts. Waiting and running are the async driver's of `future.rs`.

use crate::async_store::{AsyncStore, Lead, Lease, Refresh};
use crate::engine::Engine;
use crate::flight::{Outcome, Revocation};
use crate::future::{run, wait};
use crate::origin::Origin;
use crate::output::{CacheAll, Mode, Sharing};
use crate::protocol::{Call, Join, Step};
use crate::stats::Stats;
use crate::sync::{lock, Mutex};
use crate::trace;
use std::future::Future;

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
/// their own computation, unless the store coordinates them through leases
/// ([`AsyncStore::lead`]; the `redis` feature's `RedisStore` does).
///
/// # Store failures
///
/// A store that fails does not fail the call: a failed read counts as a miss and the function
/// runs, a failed lease ([`AsyncStore::lead`]) has the function run here without writing its
/// value, a failed write leaves the value uncached; each is counted in
/// [`Stats::store_errors`] and traced (a `tracing` event with the `tracing` feature). [`invalidate`](AsyncCache::invalidate) and
/// [`clear`](AsyncCache::clear) return the store's error, since stale values may then remain.
///
/// # Panics and cancellation
///
/// As for [`Cache::get_or_compute_async`](crate::Cache::get_or_compute_async): a panic propagates to the task whose computation
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
    engine: Engine<S::Key, S::Value>,
    store: S,
    /// Spaces the warnings about the store's failures.
    failures: trace::Repeats,
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
        Self::bound(name, name, store)
    }

    /// [`new`](AsyncCache::new), with the store bound to `binding` instead of `name`: the
    /// macro binds a function's store to its path (`module::function`), so that functions of
    /// one name in two modules keep their values apart.
    pub(crate) fn bound(name: &'static str, binding: &'static str, store: S) -> Self {
        store.bind(binding);
        AsyncCache {
            engine: Engine::new(name),
            store,
            failures: trace::Repeats::new(),
        }
    }

    /// Sets how long a caller waits for another caller's computation of the same key before
    /// it computes on its own, as [`Cache::with_wait_timeout`](crate::Cache::with_wait_timeout) (needs the `tokio` feature for
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
        self.engine.wait_timeout = Some(timeout);
        self
    }

    /// Sets how keys are shown in panic messages (generated code passes their `Debug` form).
    pub(crate) fn describe_keys_with(mut self, describe: fn(&S::Key) -> Option<String>) -> Self {
        self.engine.set_describe_key(describe);
        self
    }

    /// The name given at creation: the memoized function's name under `#[cached]`.
    ///
    /// See [`new`](AsyncCache::new) for an example.
    pub fn name(&self) -> &'static str {
        self.engine.name
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
        self.compute::<S::Value, CacheAll, F>(key, compute, None)
            .await
            .0
    }

    /// Removes `key`'s value from the store. A computation of `key` in flight will not store
    /// its result (its waiters stop waiting and compute afresh); one already writing its value is waited for,
    /// then its value removed. Calls made after `invalidate` returned `Ok` compute afresh.
    /// Unlike [`Cache::invalidate`](crate::Cache::invalidate), it does not tell whether a value
    /// was there, and there is no `remove` returning it: an [`AsyncStore`]'s removal (a Redis
    /// `DEL`, a file deleted) does not read the value.
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
        trace::invalidated(self.engine.name);
        let flights = &self.engine.flights;
        // A value computed before this call and being written now must be written before it
        // is removed, or the write could land after the removal. The writing flight stays
        // registered meanwhile, so that a concurrent invalidation waits for it too.
        let _revoked = loop {
            match flights.revoke(key) {
                Revocation::Absent => break None,
                Revocation::Revoked(revoked) => break Some(revoked),
                Revocation::Writing(flight) => crate::future::wait_written(&flight).await,
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
        trace::cleared(self.engine.name);
        self.revoking_all(self.store.clear()).await
    }

    /// Runs `operation` (a store operation that removes values by no single key) with every
    /// flight revoked before and after it, as [`invalidate`](AsyncCache::invalidate) does
    /// for one key.
    async fn revoking_all<T>(&self, operation: impl Future<Output = T>) -> T {
        let flights = &self.engine.flights;
        let mut revoked = Vec::new();
        loop {
            let writing = flights.revoke_each(&mut revoked);
            if writing.is_empty() {
                break;
            }
            for flight in writing {
                crate::future::wait_written(&flight).await;
            }
        }
        let done = operation.await;
        // As for `invalidate`: flights registered during the operation may have read old
        // values.
        let _ = flights.revoke_each(&mut revoked);
        done
    }

    /// Runs `operation`, one of this cache's async methods, to its end on the current thread,
    /// for sync code (feature `tokio`): the cache of a sync function over an async store is
    /// invalidated, cleared and counted this way.
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
    /// cache.block_on(cache.get_or_compute(3, || async { 9 }));
    /// cache.block_on(cache.invalidate(&3)).unwrap();
    /// assert_eq!(cache.block_on(cache.len()).unwrap(), 0);
    /// ```
    #[cfg(feature = "tokio")]
    pub fn block_on<T>(&self, operation: impl Future<Output = T>) -> T {
        crate::blocking::block_on(operation)
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
    /// The store's, if it cannot count its entries (a remote store down or slow): the
    /// counters are then still read by [`counters`](AsyncCache::counters), which does not
    /// touch the store.
    ///
    /// See [`AsyncCache`] for an example.
    pub async fn stats(&self) -> Result<Stats, S::Error> {
        let entries = self.store.len().await?;
        Ok(self.counters_with(entries))
    }

    /// A snapshot of the counters that never touches the store, so it reads them while the
    /// store is down (when [`Stats::store_errors`] matters most) and costs no I/O: `entries`
    /// is 0, not counted (read it with [`stats`](AsyncCache::stats) or
    /// [`len`](AsyncCache::len)); every other field is as in `stats`.
    ///
    /// ```
    /// # use memoflight::{AsyncCache, AsyncStore};
    /// use std::io::{Error, ErrorKind};
    ///
    /// /// A remote store that is down: every operation fails.
    /// struct Down;
    /// impl AsyncStore for Down {
    ///     type Key = u32;
    ///     type Value = u32;
    ///     type Error = Error;
    ///     async fn get(&self, _: &u32) -> Result<Option<u32>, Error> { Err(ErrorKind::NotConnected.into()) }
    ///     async fn insert(&self, _: u32, _: u32) -> Result<(), Error> { Err(ErrorKind::NotConnected.into()) }
    ///     async fn remove(&self, _: &u32) -> Result<(), Error> { Err(ErrorKind::NotConnected.into()) }
    ///     async fn clear(&self) -> Result<(), Error> { Err(ErrorKind::NotConnected.into()) }
    ///     async fn len(&self) -> Result<usize, Error> { Err(ErrorKind::NotConnected.into()) }
    /// }
    ///
    /// let cache = AsyncCache::new("squares", Down);
    /// futures::executor::block_on(async {
    ///     // Computed without the store: its two looks and its write failed.
    ///     assert_eq!(cache.get_or_compute(3, || async { 9 }).await, 9);
    ///     assert!(cache.stats().await.is_err(), "the store cannot count its entries");
    ///     let counters = cache.counters();
    ///     assert_eq!((counters.executions, counters.store_errors), (1, 3));
    ///     assert_eq!(counters.entries, 0, "not counted");
    /// });
    /// ```
    pub fn counters(&self) -> Stats {
        self.counters_with(0)
    }

    fn counters_with(&self, entries: usize) -> Stats {
        self.engine
            .counters
            .snapshot(entries, self.engine.flights.len(), self.store.evictions())
    }

    /// Starts the counters of [`stats`](AsyncCache::stats) from zero again; the values stay
    /// (see [`Cache::reset_stats`](crate::Cache::reset_stats)).
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
    ///     cache.reset_stats();
    ///     assert_eq!(cache.stats().await.unwrap().misses, 0);
    /// });
    /// ```
    pub fn reset_stats(&self) {
        self.engine.counters.reset(self.store.evictions());
    }

    /// The whole call, from the first look at the store to the value (a store read is I/O, so
    /// there is no separate inline hit path): this store's driver of the caller protocol.
    pub(crate) async fn compute<R, M, F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        // A value due for a refresh: served at once to every caller of this process while one
        // of them refreshes it (they join with a look that finds it).
        let due: Mutex<Option<S::Value>> = Mutex::new(None);
        let serve_due = |_: &S::Key| lock(&due).clone().map(|value| (value, true));
        let mut call = Call::<_, _, R, M>::new(&self.engine, key, sharing, Join::Unlooked);
        match self.look(call.key(), call.subject()).await {
            Some((value, false)) => return call.hit(value),
            Some((value, true)) => {
                *lock(&due) = Some(value);
                call.serve_while_refreshing(Some(&serve_due));
            }
            None => {}
        }
        let mut step = call.join();
        loop {
            step = match step {
                Step::Done(result, origin) => return (result, origin),
                Step::Lead(leader) => 'lead: {
                    let refreshing = lock(&due).clone();
                    let (found, held) = match refreshing {
                        None => {
                            // A second look, now that the flight is registered: it finds a
                            // value stored by a leader that finished between the first look
                            // and the registration.
                            let found = self.look(leader.key(), call.subject()).await;
                            let found = found.map(|(value, _)| value);
                            if found.is_some() {
                                (found, self.unleased())
                            } else {
                                match self.lease(&mut call, leader.key()).await {
                                    Ok(held) => (None, held),
                                    Err(value) => {
                                        // Another process computed it: waited for.
                                        leader.finish_unstored(Outcome::Value(value.clone()));
                                        return (M::rebuild(value), Origin::Waited);
                                    }
                                }
                            }
                        }
                        Some(old) => match self.refresh_lease(&call, leader.key(), old).await {
                            Some((found, held)) => (found, held),
                            None => {
                                // Gone meanwhile (invalidated or expired): a miss like any
                                // other; this flight's waiters go around too.
                                leader.vacate();
                                *lock(&due) = None;
                                call.serve_while_refreshing(None);
                                break 'lead call.join();
                            }
                        },
                    };
                    // A value found (stored meanwhile, or served while another process
                    // refreshes it) is a hit; otherwise this call computes.
                    let mut leader = match call.looked(leader, found) {
                        Ok(leader) => leader,
                        Err(done) => return done,
                    };
                    let keep = async {
                        match &held.lease {
                            Some((key, lease)) => self.store.keep(key, lease).await,
                            None => std::future::pending().await,
                        }
                    };
                    let result = beside(run(&call, Some(leader.flight()), compute), keep).await;
                    let result = match M::split(result) {
                        Ok(value) => {
                            // Waiters get the value now; the flight stays registered while it
                            // is written, unless an invalidation revoked it meanwhile.
                            if leader.begin_storing(Outcome::Value(value.clone())) {
                                if let Some((key, lease)) = &held.lease {
                                    let written = self
                                        .store
                                        .insert_leased(key.clone(), value.clone(), lease)
                                        .await;
                                    if let Err(error) = written {
                                        self.failed("insert", &error, call.subject());
                                    }
                                }
                                held.end();
                                leader.stored();
                            } else {
                                self.release(held, call.subject()).await;
                            }
                            M::rebuild(value)
                        }
                        Err(result) => {
                            self.release(held, call.subject()).await;
                            call.fail(leader, result)
                        }
                    };
                    return (result, Origin::Computed);
                }
                Step::Wait(flight) => {
                    let waited = wait(&call, &flight, self.engine.wait_timeout).await;
                    call.waited(flight, waited)
                }
                Step::Alone(_) => {
                    // Returned, not stored: the flight it gave up on stores its own.
                    let result = run(&call, None, compute).await;
                    return call.alone(result, |_, _| {});
                }
            }
        }
    }

    /// The whole call of a sync function over this store: [`compute`](Self::compute) run to
    /// its end on the caller's thread (see `blocking.rs`); the computation runs inside the
    /// leader's poll, so that a call of its own key from inside it is caught.
    pub(crate) fn compute_blocking<R, M>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
    {
        if !crate::teardown::thread_alive() {
            // During the thread's teardown tokio's context is gone and cannot be entered: the
            // function runs uncached, counted as a miss that executed.
            self.engine.counters.miss();
            self.engine.counters.execution();
            return (compute(), Origin::Computed);
        }
        // The computation runs in the caller's runtime context, if it had one, not the I/O
        // runtime's (a task it spawns must not land on memoflight's I/O thread).
        #[cfg(feature = "tokio")]
        let outer = tokio::runtime::Handle::try_current().ok();
        let compute = || async {
            #[cfg(feature = "tokio")]
            let _outer = outer.as_ref().map(tokio::runtime::Handle::enter);
            compute()
        };
        crate::blocking::block_on(self.compute::<R, M, _>(key, compute, sharing))
    }

    /// Reads the store: the value and whether it is due for a refresh. A failure is counted,
    /// traced, and taken as a miss.
    async fn look(&self, key: &S::Key, subject: &trace::Subject) -> Option<(S::Value, bool)> {
        match self.store.look(key).await {
            Ok(found) => found,
            Err(error) => {
                self.failed("get", &error, subject);
                None
            }
        }
    }

    /// No lease: the value is not written.
    fn unleased(&self) -> Held<'_, S> {
        Held {
            store: &self.store,
            lease: None,
        }
    }

    /// Across processes, for this process's leader of a miss: waits for another process's
    /// computation and returns its value (`Err`), or takes the key's lease. A store that cannot
    /// be reached leaves no lease: the value is computed here and not written.
    async fn lease<R, M>(
        &self,
        call: &mut Call<'_, S::Key, S::Value, R, M>,
        key: &S::Key,
    ) -> Result<Held<'_, S>, S::Value>
    where
        M: Mode<R, Value = S::Value>,
    {
        match self.store.lead(key, self.engine.wait_timeout).await {
            Ok(Lead::Computed(value)) => {
                call.count_wait();
                Err(value)
            }
            Ok(Lead::Compute(lease)) => Ok(Held {
                store: &self.store,
                lease: Some((key.clone(), lease)),
            }),
            Err(error) => {
                self.failed("lead", &error, call.subject());
                Ok(self.unleased())
            }
        }
    }

    /// Across processes, for this process's leader of a refresh of `due`: the value to serve
    /// (`due` while another process refreshes it, or if the store cannot be reached; the new
    /// one if it was refreshed since), or the lease to refresh under; `None` if the value is
    /// gone.
    async fn refresh_lease<R, M>(
        &self,
        call: &Call<'_, S::Key, S::Value, R, M>,
        key: &S::Key,
        due: S::Value,
    ) -> Option<(Option<S::Value>, Held<'_, S>)>
    where
        M: Mode<R, Value = S::Value>,
    {
        let served = |value| Some((Some(value), self.unleased()));
        match self.store.lead_refresh(key).await {
            Ok(Refresh::Lead(lease)) => Some((
                None,
                Held {
                    store: &self.store,
                    lease: Some((key.clone(), lease)),
                },
            )),
            Ok(Refresh::Refreshing) => served(due),
            Ok(Refresh::Refreshed(value)) => served(value),
            Ok(Refresh::Gone) => None,
            Err(error) => {
                self.failed("lead", &error, call.subject());
                served(due)
            }
        }
    }

    /// Ends a lease without a value; a failure leaves it to expire. Ended once the release
    /// returned: a caller dropped while it waits leaves the lease to `abandon`.
    async fn release(&self, held: Held<'_, S>, subject: &trace::Subject) {
        if let Some((key, lease)) = &held.lease {
            if let Err(error) = self.store.release(key, lease).await {
                self.failed("release", &error, subject);
            }
        }
        held.end();
    }

    fn failed(&self, operation: &str, error: &S::Error, subject: &trace::Subject) {
        self.engine.counters.store_error();
        trace::store_failed(subject, operation, error, &self.failures);
    }
}

impl<S: AsyncStore> AsyncCache<S> {
    /// Removes the values for which `predicate(key, value)` is true, in every process sharing
    /// the store. Computations in flight when it is called, in this process and (for a store
    /// shared by processes) in the others, will not store their values (they have no value
    /// yet to test); calls made after it returns compute afresh. It takes O(entries) and runs
    /// `predicate` with no lock held. A store that cannot test values removes them all (see
    /// [`AsyncStore::retain`]).
    ///
    /// # Errors
    ///
    /// The store's: some of the values `predicate` picks may then remain.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use memoflight::{AsyncCache, DiskStore};
    ///
    /// let dir = std::env::temp_dir().join(format!("memoflight-doc-{}", std::process::id()));
    /// let cache = AsyncCache::new("queries", DiskStore::<String, u32>::new(&dir));
    /// cache.block_on(async {
    ///     cache.get_or_compute("users:1".to_string(), || async { 1 }).await;
    ///     cache.get_or_compute("orders:1".to_string(), || async { 2 }).await;
    ///     cache.invalidate_if(|key, _| key.starts_with("users:")).await.unwrap();
    ///     assert_eq!(cache.get(&"users:1".to_string()).await.unwrap(), None);
    ///     assert_eq!(cache.get(&"orders:1".to_string()).await.unwrap(), Some(2));
    /// });
    /// std::fs::remove_dir_all(dir).unwrap();
    /// # }
    /// ```
    pub async fn invalidate_if(
        &self,
        mut predicate: impl FnMut(&S::Key, &S::Value) -> bool + Send,
    ) -> Result<(), S::Error> {
        trace::invalidated(self.engine.name);
        let keep = move |key: &S::Key, value: &S::Value| !predicate(key, value);
        self.revoking_all(self.store.retain(keep)).await
    }
}

/// A lease this process's leader holds (none if the store could not be reached); one that is
/// dropped before it [`end`](Held::end)s (the computation panicked, or the caller's future was
/// dropped) is [`abandon`](AsyncStore::abandon)ed, so that another process may take over
/// before it expires.
struct Held<'s, S: AsyncStore> {
    store: &'s S,
    lease: Option<(S::Key, Lease)>,
}

impl<S: AsyncStore> Held<'_, S> {
    /// The lease was written under, or released: nothing left to abandon.
    fn end(mut self) {
        self.lease = None;
    }
}

impl<S: AsyncStore> Drop for Held<'_, S> {
    fn drop(&mut self) {
        if let Some((key, lease)) = self.lease.take() {
            self.store.abandon(&key, lease);
        }
    }
}

/// Polls `main` to its end, and `beside` next to it for as long as `main` runs (a lease kept
/// alive while the computation runs); `beside` ending first changes nothing.
async fn beside<T>(main: impl Future<Output = T>, beside: impl Future<Output = ()>) -> T {
    let mut main = std::pin::pin!(main);
    let mut beside = std::pin::pin!(beside);
    let mut beside_done = false;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = main.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        if !beside_done {
            beside_done = beside.as_mut().poll(cx).is_ready();
        }
        std::task::Poll::Pending
    })
    .await
}
