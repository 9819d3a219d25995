//! [`Cache`]: the handle of one memoized function with an in-memory store (what `#[cached]`
//! generates), and the blocking driver of the caller protocol ([`crate::protocol`]).

use crate::engine::Engine;
use crate::origin::Origin;
use crate::output::{CacheAll, Mode, Sharing};
use crate::protocol::{Call, Join, Step};
use crate::stats::Stats;
use crate::store::Store;
use crate::trace;
use equivalent::Equivalent;
use std::hash::Hash;

/// The cache of one memoized function: its store of finished values, its table of
/// computations in flight, and its counters.
///
/// `#[cached] fn f(..)` creates one and generates `f_cache()`, which returns it; it is also
/// usable on its own, without the macro, through [`get_or_compute`](Cache::get_or_compute).
///
/// # Concurrent calls on the same key
///
/// The first caller to miss a key runs the computation; callers arriving while it runs wait
/// for it and receive a clone of its value (they do not read the store, which may already have
/// dropped it). Calls on different keys never wait on each other. Hits take no lock that other
/// readers take and never wait.
///
/// A store that reports a value due for a refresh (see
/// [`Bounded::refresh_after`](crate::Bounded::refresh_after)) gets it recomputed by the first
/// caller to read it, while callers arriving during that refresh get the current value at once
/// without waiting. A refresh that fails or panics stores nothing: the current value stays
/// (until its ttl), and the next caller tries again.
///
/// # Panics
///
/// A panic in the computation propagates to the thread that ran it and to no other. The key is
/// left uncached, no lock is poisoned, one of the waiting callers runs the computation again
/// and the others receive its result.
///
/// A computation that calls its own cache with the *same key* (directly or through other
/// memoized functions on the same thread) would wait for itself forever; instead that call
/// panics at once, naming the function and the key (its `Debug` form when it has one).
/// Recursion on other keys is fine. Likewise across threads: when thread 1 computes `f(a)` and
/// waits for `g(b)` while thread 2 computes `g(b)` and waits for `f(a)`, the call that would
/// close the cycle panics, naming every function and key in it, instead of deadlocking. This
/// check runs only when a caller is about to block, never on a hit.
///
/// # Example
///
/// ```
/// use memoflight::{Cache, Unbounded};
///
/// let cache = Cache::new("lengths", Unbounded::<String, usize>::new());
/// assert_eq!(cache.get_or_compute("memo".to_string(), || 4), 4);
/// assert_eq!(cache.get_or_compute("memo".to_string(), || unreachable!()), 4);
/// assert_eq!(cache.get("memo"), Some(4));
/// assert_eq!(cache.stats().executions, 1);
/// ```
pub struct Cache<S: Store> {
    pub(crate) engine: Engine<S::Key, S::Value>,
    pub(crate) store: S,
}

impl<S: Store> Cache<S> {
    /// Creates a cache named `name` (used in panic messages) that keeps values in `store`.
    ///
    /// ```
    /// use memoflight::{Cache, Unbounded};
    ///
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// assert_eq!(cache.name(), "squares");
    /// assert!(cache.is_empty());
    /// ```
    pub fn new(name: &'static str, store: S) -> Self {
        Cache {
            engine: Engine::new(name),
            store,
        }
    }

    /// Sets how long a caller waits for another caller's computation of the same key before
    /// it stops waiting and computes on its own (`#[cached(wait_timeout = "2s")]`). Its result
    /// is returned to it, and stored only if the computation it gave up on is still running
    /// (no invalidation happened since) and no value is stored yet. Counted in
    /// [`Stats::timeouts`]. Without it, a caller waits as long as the computation takes.
    ///
    /// ```
    /// use memoflight::{Cache, Unbounded};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::new("slow", Unbounded::<u8, u8>::new())
    ///     .with_wait_timeout(Duration::from_secs(2));
    /// assert_eq!(cache.get_or_compute(1, || 2), 2);
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
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// assert_eq!(cache.name(), "squares");
    /// ```
    pub fn name(&self) -> &'static str {
        self.engine.name
    }

    /// The store holding the finished values.
    ///
    /// ```
    /// # use memoflight::{Cache, Store, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// assert_eq!(cache.store().len(), 1);
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns the value cached for `key` without computing it and without counting a hit.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// assert_eq!(cache.get(&3), None);
    /// cache.get_or_compute(3, || 9);
    /// assert_eq!(cache.get(&3), Some(9));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<S::Value>
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        self.store.get(key)
    }

    /// Returns the value cached for `key`, or computes it with `compute`, caches it and
    /// returns it.
    ///
    /// # Concurrent calls on the same key
    ///
    /// Exactly one caller runs `compute`; the others block until it finishes and return a clone
    /// of its value. See [`Cache`] for panics and re-entrancy.
    ///
    /// # Panics
    ///
    /// If `compute` panics, the panic propagates to this caller only (one waiter takes over).
    /// Panics at once if `compute` itself asks for the same key on this cache.
    ///
    /// ```
    /// use memoflight::{Cache, Unbounded};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// let cache = Cache::new("slow", Unbounded::<u32, u32>::new());
    /// let runs = AtomicU32::new(0);
    /// std::thread::scope(|s| {
    ///     for _ in 0..8 {
    ///         s.spawn(|| cache.get_or_compute(7, || { runs.fetch_add(1, Ordering::SeqCst); 49 }));
    ///     }
    /// });
    /// assert_eq!(runs.load(Ordering::SeqCst), 1);
    /// ```
    pub fn get_or_compute(&self, key: S::Key, compute: impl FnOnce() -> S::Value) -> S::Value
where {
        if let Some(value) = self.lookup(&key) {
            return value;
        }
        self.compute::<S::Value, CacheAll>(key, compute, None).0
    }

    /// Removes `key`'s value. A computation of `key` in flight right now will not store its
    /// result, its waiters stop waiting for it and compute afresh (one leads, the others wait
    /// for it), and calls made after `invalidate` returns compute afresh. Returns whether a
    /// value that a read would have returned was removed (one that had expired is removed
    /// too, and not counted). The value is not copied: [`remove`](Cache::remove) returns it.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// assert!(cache.invalidate(&3));
    /// assert!(!cache.invalidate(&3));
    /// assert_eq!(cache.get(&3), None);
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        self.revoking(key, || self.store.remove_with(key, |_| ()).is_some())
    }

    /// Removes `key`'s value as [`invalidate`](Cache::invalidate) does, and returns it (as
    /// `cached`'s `cache_remove` does) through [`Store::remove`]. The stores of this crate
    /// may still be read by other callers while a value is removed, so they return a clone of
    /// it: when the value is not needed, `invalidate` saves that copy. The clone (the
    /// value's `Clone`) runs after the removal, with no lock held, and before the callers
    /// waiting for a computation of `key` are released.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// assert_eq!(cache.remove(&3), Some(9));
    /// assert_eq!(cache.remove(&3), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<S::Value>
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        self.revoking(key, || self.store.remove(key))
    }

    /// Runs `remove` with `key`'s flight revoked (`InFlight::invalidate`).
    fn revoking<Q, R>(&self, key: &Q, remove: impl FnOnce() -> R) -> R
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        trace::invalidated(self.engine.name);
        let describe = |key: &S::Key| self.engine.describe(key);
        self.engine.flights.invalidate(key, &describe, remove)
    }

    /// Removes the values for which `predicate(key, value)` is true, as in "every query on
    /// table `users`". Computations in flight when it is called will not store their values
    /// (they have no value yet to test); their waiters compute afresh, and calls made
    /// after `invalidate_if` returns compute afresh. It takes O(entries). The predicate sees
    /// every value stored before the call and still stored when it reaches it; a value stored
    /// while it runs may or may not be shown to it, and a key whose value is replaced while it
    /// runs may be shown with both values.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("queries", Unbounded::<String, u32>::new());
    /// cache.get_or_compute("users:1".to_string(), || 1);
    /// cache.get_or_compute("orders:1".to_string(), || 2);
    /// cache.invalidate_if(|key, _| key.starts_with("users:"));
    /// assert_eq!(cache.get("users:1"), None);
    /// assert_eq!(cache.get("orders:1"), Some(2));
    /// ```
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&S::Key, &S::Value) -> bool) {
        trace::invalidated(self.engine.name);
        let describe = |key: &S::Key| self.engine.describe(key);
        let mut keep = |key: &S::Key, value: &S::Value| !predicate(key, value);
        self.engine
            .flights
            .retain(&self.store, &mut keep, &describe);
    }

    /// Removes every value; computations in flight will not store theirs (see
    /// [`invalidate`](Cache::invalidate)). Counters are kept.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        trace::cleared(self.engine.name);
        let describe = |key: &S::Key| self.engine.describe(key);
        self.engine.flights.clear(&self.store, &describe);
    }

    /// The number of values the store holds ([`Store::len`]): with `expires`, values that
    /// have expired but were not swept yet are counted; with `result_fallback` over a `ttl`,
    /// expired values kept as fallbacks are.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no value is cached.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// assert!(cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Removes the entries that have expired (`cached`'s `evict`) and returns how many. Reads
    /// never return an expired entry; this frees their memory now rather than when later
    /// writes reclaim them. See [`Store::evict_expired`].
    ///
    /// ```
    /// # use memoflight::{Bounded, Cache, Clock};
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, u8>::new().ttl(Duration::from_secs(1)).clock(clock.clone());
    /// let cache = Cache::new("short", store);
    /// cache.get_or_compute(1, || 1);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.evict_expired(), 1);
    /// ```
    pub fn evict_expired(&self) -> usize {
        self.store.evict_expired()
    }

    /// A snapshot of the counters; see [`Stats`].
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// cache.get_or_compute(3, || 9);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.executions, stats.in_flight), (1, 1, 1, 0));
    /// ```
    pub fn stats(&self) -> Stats {
        let engine = &self.engine;
        let in_flight = engine.flights.len();
        engine
            .counters
            .snapshot(self.store.len(), in_flight, self.store.evictions())
    }

    /// Starts the counters of [`stats`](Cache::stats) from zero again (`cached`'s
    /// `cache_reset_metrics`); the values stay. Counts of calls running across the reset land
    /// on either side of it.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// cache.reset_stats();
    /// cache.get_or_compute(3, || 9);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.entries), (1, 0, 1));
    /// ```
    pub fn reset_stats(&self) {
        self.engine.counters.reset(self.store.evictions());
    }

    /// The hit path (inlined into generated code): a store read that counts a hit.
    #[inline]
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Option<S::Value>
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        // A value due for a refresh goes to the miss path, which serves it or refreshes it.
        let (value, false) = self.store.get_aged(key)? else {
            return None;
        };
        self.engine.counters.hit();
        Some(value)
    }

    /// The miss path, after [`lookup`](Cache::lookup) missed: the blocking driver of the
    /// caller protocol. It waits by blocking its thread and runs `compute` as a closure.
    #[inline(never)]
    pub(crate) fn compute<R, M>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
    {
        let look = |key: &S::Key| self.store.get_aged(key);
        let mut call = Call::<_, _, R, M>::new(&self.engine, key, sharing, Join::Thread(&look));
        let mut step = call.join();
        loop {
            step = match step {
                Step::Done(result, origin) => return (result, origin),
                Step::Lead(leader) => {
                    let computing = call.computing(true);
                    let result = compute();
                    computing.ran();
                    return call.settle(leader, result, &self.store);
                }
                Step::Wait(flight) => {
                    let clock = trace::Clock::start();
                    let waited = flight.wait(|| call.describe(), self.engine.wait_timeout);
                    trace::waited(call.subject(), &clock);
                    call.waited(flight, waited)
                }
                Step::Alone(flight) => {
                    let computing = call.computing(false);
                    let result = compute();
                    computing.ran();
                    return call.alone(result, |key, value| {
                        let flights = &self.engine.flights;
                        flights.store_if_current(&flight, key, value.clone(), &self.store);
                    });
                }
            }
        }
    }
}
