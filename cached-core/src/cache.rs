//! [`Cache`]: one memoized function's store, in-flight table and counters, and the handle users
//! get from `#[cached]`.

use crate::flight::{InFlight, Leader, Outcome, Role, Waited};
use crate::output::{CacheAll, Mode, Sharing};
use crate::stats::{Counters, Stats};
use crate::store::Store;
use crate::trace;
use equivalent::Equivalent;
use std::hash::Hash;

/// How a call got its result: what `f_with_origin` (generated next to every `#[cached] fn f`)
/// returns next to the value, for callers that must know whether *their* call ran the function
/// (a throttle: "play the sound only if this call is the one that computed it").
///
/// ```
/// use memoflight::{cached, Origin};
///
/// #[cached]
/// fn announce(topic: &str) -> usize {
///     topic.len()
/// }
///
/// assert_eq!(announce_with_origin("news"), (4, Origin::Computed));
/// assert_eq!(announce_with_origin("news"), (4, Origin::Hit));
/// assert_eq!(announce("news"), 4); // the ordinary function is untouched
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Found in the store.
    Hit,
    /// Received from another caller's computation of the same key, which this call waited for.
    Waited,
    /// This call ran the function. Among concurrent calls on one key, exactly one computes.
    Computed,
}

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
    pub(crate) name: &'static str,
    pub(crate) store: S,
    pub(crate) flights: InFlight<S::Key, S::Value>,
    pub(crate) counters: Counters,
    describe_key: fn(&S::Key) -> Option<String>,
    pub(crate) wait_timeout: Option<std::time::Duration>,
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
            name,
            store,
            flights: InFlight::new(),
            counters: Counters::default(),
            describe_key: |_| None,
            wait_timeout: None,
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
        self.wait_timeout = Some(timeout);
        self
    }

    #[doc(hidden)]
    /// Sets how keys are shown in panic messages (generated code passes their `Debug` form).
    pub fn describe_keys_with(mut self, describe: fn(&S::Key) -> Option<String>) -> Self {
        self.describe_key = describe;
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
        self.name
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
    where
        S::Key: Clone,
    {
        if let Some(value) = self.__lookup(&key) {
            return value;
        }
        self.__compute::<S::Value, CacheAll>(key, compute, None).0
    }

    /// Removes `key`'s value. A computation of `key` in flight right now will not store its
    /// result, its waiters stop waiting for it and compute afresh (one leads, the others wait
    /// for it), and calls made after `invalidate` returns
    /// compute afresh. Returns the removed value.
    ///
    /// ```
    /// # use memoflight::{Cache, Unbounded};
    /// let cache = Cache::new("squares", Unbounded::<u64, u64>::new());
    /// cache.get_or_compute(3, || 9);
    /// assert_eq!(cache.invalidate(&3), Some(9));
    /// assert_eq!(cache.get(&3), None);
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> Option<S::Value>
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        trace::invalidated(self.name);
        self.flights.invalidate(key, &self.store)
    }

    /// Removes the values for which `predicate(key, value)` is true, as in "every query on
    /// table `users`". Computations in flight when it is called will not store their values
    /// (they have no value yet to test); their waiters compute afresh, and calls made
    /// after `invalidate_if` returns compute afresh. It takes O(entries).
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
        trace::invalidated(self.name);
        self.flights
            .retain(&self.store, &mut |key, value| !predicate(key, value));
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
        trace::cleared(self.name);
        self.flights.clear(&self.store);
    }

    /// The number of cached values.
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
        self.counters
            .snapshot(self.store.len(), self.flights.len(), self.store.evictions())
    }

    /// The hit path: a store read that counts a hit. For generated code.
    #[doc(hidden)]
    #[inline]
    pub fn __lookup<Q>(&self, key: &Q) -> Option<S::Value>
    where
        Q: ?Sized + Hash + Equivalent<S::Key>,
    {
        // A value due for a refresh goes to the miss path, which serves it or refreshes it.
        let (value, false) = self.store.get_aged(key)? else {
            return None;
        };
        self.counters.hit();
        Some(value)
    }

    /// The miss path: join the key's computation or lead it. For generated code, after
    /// [`__lookup`](Cache::__lookup) missed.
    #[doc(hidden)]
    #[inline(never)]
    pub fn __compute<R, M>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        S::Key: Clone,
        M: Mode<R, Value = S::Value>,
    {
        let subject = trace::Subject::new(self.name, || self.key_text(&key));
        let mut key = key;
        let mut counted = false;
        loop {
            let role = self.flights.join_or_lead(key, &self.store);
            self.count(&role, &mut counted, &subject);
            match role {
                Role::Found(value) => return (M::rebuild(value), Origin::Hit),
                Role::Lead(leader) => {
                    let result = self.lead::<R, M>(leader, compute, sharing, &subject);
                    return (result, Origin::Computed);
                }
                Role::Wait(flight, returned) => {
                    self.counters.wait();
                    let computation = || self.describe(&returned);
                    let clock = trace::Clock::start();
                    let waited = flight.wait(computation, self.wait_timeout);
                    trace::waited(&subject, &clock);
                    match self.after_wait::<R, M>(waited, &sharing, returned) {
                        AfterWait::Done(result) => return (result, Origin::Waited),
                        AfterWait::Retry(returned) => key = returned,
                        AfterWait::Alone(returned) => {
                            let result = self.compute_alone::<R, M>(&flight, returned, compute);
                            return (result, Origin::Computed);
                        }
                    }
                }
            }
        }
    }

    /// Counts a caller's first role as a hit (a value found on the second look, stored by a
    /// leader that finished between the fast path and here) or a miss: one per call, however
    /// many rounds it takes.
    pub(crate) fn count(
        &self,
        role: &Role<'_, S::Key, S::Value>,
        counted: &mut bool,
        subject: &trace::Subject,
    ) {
        match (role, *counted) {
            (Role::Found(_), false) => self.counters.hit(),
            (_, false) => {
                self.counters.miss();
                trace::miss(subject);
            }
            (_, true) => {}
        }
        *counted = true;
    }

    /// What a caller does once its wait on another caller's flight ended, sync or async.
    pub(crate) fn after_wait<R, M>(
        &self,
        waited: Waited<S::Value>,
        sharing: &Option<Sharing<R>>,
        key: S::Key,
    ) -> AfterWait<R, S::Key>
    where
        M: Mode<R, Value = S::Value>,
    {
        match waited {
            Waited::Finished(Outcome::Value(value)) => AfterWait::Done(M::rebuild(value)),
            Waited::Finished(Outcome::Failure(failure)) => {
                match sharing.as_ref().and_then(|s| (s.unshare)(&failure)) {
                    Some(result) => AfterWait::Done(result),
                    None => AfterWait::Retry(key),
                }
            }
            Waited::Vacated => AfterWait::Retry(key),
            Waited::OwnThreadLeads => self.same_key_recursion(&key),
            Waited::Deadlock(cycle) => deadlock(&cycle),
            Waited::TimedOut => {
                self.counters.timeout();
                AfterWait::Alone(key)
            }
        }
    }

    fn lead<R, M>(
        &self,
        leader: Leader<'_, S::Key, S::Value>,
        compute: impl FnOnce() -> R,
        sharing: Option<Sharing<R>>,
        subject: &trace::Subject,
    ) -> R
    where
        S::Key: Clone,
        M: Mode<R, Value = S::Value>,
    {
        self.counters.execution();
        trace::computing(subject);
        let clock = trace::Clock::start();
        let unwinding = CountPanic(&self.counters, subject);
        let result = compute();
        std::mem::forget(unwinding);
        trace::computed(subject, &clock);
        self.settle::<R, M>(leader, result, sharing, subject)
    }

    /// A leader's last step, sync or async: stores a cacheable result and hands it to the
    /// waiters, shares a failure with them, or vacates the flight when it cannot.
    pub(crate) fn settle<R, M>(
        &self,
        leader: Leader<'_, S::Key, S::Value>,
        result: R,
        sharing: Option<Sharing<R>>,
        subject: &trace::Subject,
    ) -> R
    where
        S::Key: Clone,
        M: Mode<R, Value = S::Value>,
    {
        match M::split(result) {
            Ok(value) => {
                let before = trace::evictions_before(|| self.store.evictions());
                let value = leader.finish_value(&self.store, value);
                trace::evicted(subject, before, || self.store.evictions());
                M::rebuild(value)
            }
            Err(result) => {
                self.counters.error();
                match sharing.and_then(|s| (s.share)(&result)) {
                    Some(failure) => leader.finish_unstored(Outcome::Failure(failure)),
                    None => {
                        trace::handed_off(subject, "failed with an error that is not Clone");
                        leader.vacate()
                    }
                }
                result
            }
        }
    }

    /// `function(key)`, for messages.
    pub(crate) fn describe(&self, key: &S::Key) -> String {
        format!("`{}`({})", self.name, self.key_text(key))
    }

    /// The key's `Debug` form, when it has one.
    pub(crate) fn key_text(&self, key: &S::Key) -> String {
        (self.describe_key)(key).unwrap_or_else(|| "(a key without Debug)".to_owned())
    }

    /// Runs the computation outside single-flight, for a caller whose wait timed out.
    #[cold]
    fn compute_alone<R, M>(
        &self,
        flight: &crate::sync::Arc<crate::flight::Flight<S::Key, S::Value>>,
        key: S::Key,
        compute: impl FnOnce() -> R,
    ) -> R
    where
        M: Mode<R, Value = S::Value>,
    {
        self.counters.execution();
        let unwinding = CountPanic(&self.counters, &trace::Subject::new(self.name, String::new));
        let result = compute();
        std::mem::forget(unwinding);
        self.keep_alone::<R, M>(flight, key, result)
    }

    /// The result of a computation run alone after a timed-out wait: stored only if the flight
    /// it gave up on is still current and nothing is stored yet.
    pub(crate) fn keep_alone<R, M>(
        &self,
        flight: &crate::sync::Arc<crate::flight::Flight<S::Key, S::Value>>,
        key: S::Key,
        result: R,
    ) -> R
    where
        M: Mode<R, Value = S::Value>,
    {
        match M::split(result) {
            Ok(value) => {
                self.flights
                    .store_if_current(flight, key, value.clone(), &self.store);
                M::rebuild(value)
            }
            Err(result) => {
                self.counters.error();
                result
            }
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn same_key_recursion(&self, key: &S::Key) -> ! {
        let key = (self.describe_key)(key).unwrap_or_else(|| "(a key without Debug)".to_owned());
        panic!(
            "memoflight: `{name}` was called with key {key} while the same thread (or task) was \
             computing `{name}` for that key; waiting for its own result would never end \
             (same-key recursion)",
            name = self.name,
        )
    }
}

#[cold]
#[inline(never)]
fn deadlock(cycle: &str) -> ! {
    panic!(
        "memoflight: waiting would deadlock: {cycle}; memoized functions that call each \
         other must not do so on the same keys"
    )
}

/// What a caller does after waiting on another caller's flight.
pub(crate) enum AfterWait<R, K> {
    /// Return this result: the flight's value, or its shared failure.
    Done(R),
    /// Go around again with the key: the flight was vacated, or its failure cannot be shared.
    Retry(K),
    /// The wait timed out: compute alone, outside single-flight.
    Alone(K),
}

/// Counts a panic of the computation it guards when dropped by unwinding; forgotten otherwise.
struct CountPanic<'a>(&'a Counters, &'a trace::Subject);

impl Drop for CountPanic<'_> {
    fn drop(&mut self) {
        self.0.panic();
        trace::handed_off(self.1, "panicked");
    }
}

impl<R> Clone for Sharing<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Sharing<R> {}

/// A lazily created cache whose type the compiler infers, for `#[cached]` functions whose key
/// or store type is not spelled out (`convert = ..` without `key = ..`, `store = ..`). A
/// `static` needs a named type; this one holds the cache as `dyn Any` and hands it back typed.
#[doc(hidden)]
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

/// Constrains a store expression to the key and value types of its cache, so that
/// `Unbounded::new()` needs no annotations in generated code.
#[doc(hidden)]
#[inline]
pub fn typed_store<K, V, S: Store<Key = K, Value = V>>(
    _key: std::marker::PhantomData<K>,
    store: S,
) -> S {
    store
}

/// [`typed_store`] for an async store.
#[cfg(feature = "async")]
#[doc(hidden)]
#[inline]
pub fn typed_async_store<K, V, S: crate::AsyncStore<Key = K, Value = V>>(
    _key: std::marker::PhantomData<K>,
    store: S,
) -> S {
    store
}

/// The key type of a key value, as a `PhantomData`.
#[doc(hidden)]
#[inline]
pub fn key_hint<K>(_key: &K) -> std::marker::PhantomData<K> {
    std::marker::PhantomData
}

/// The key type a `convert` closure yields, as a `PhantomData`; the closure never runs.
#[doc(hidden)]
pub fn key_of<A, K>(_convert: impl FnOnce(A) -> K) -> std::marker::PhantomData<K> {
    std::marker::PhantomData
}
