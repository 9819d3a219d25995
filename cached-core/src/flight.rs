//! The single-flight state machine and the table of computations in flight.
//!
//! # Contract
//!
//! For one cache, at any instant, each key has at most one computation in flight (a *flight*),
//! and a key is in the in-flight table exactly while its flight is running.
//!
//! A caller that misses the store calls [`InFlight::join_or_lead`], which, under the lock of the
//! key's shard, (1) looks in the store again, (2) joins the key's flight if there is one, or (3)
//! registers a new flight with the caller as its leader. The leader runs the function *without
//! any lock held*, then [`Leader::finish`] stores the value and unregisters the flight under the
//! same shard lock, and only then wakes the waiters, handing each a clone of the outcome: waiters
//! never re-read the store (a bounded store may already have evicted the value).
//!
//! Because a finishing leader stores the value before it unregisters, and both happen under the
//! shard lock that a new caller also takes, a caller either sees the value in the store, or sees
//! the flight, or registers a flight after the value was stored and finds it in step (1): it can
//! never start a second execution of a computation that succeeded.
//!
//! A value the store reports due for a refresh (`refresh_after`) counts as found for every
//! caller while a flight of its key runs, and as missing for the caller that finds no flight:
//! that caller leads a refresh, whose value replaces the old one on success; a failed or
//! panicked refresh stores nothing, so the old value stays until its ttl.
//!
//! Invalidation ([`InFlight::invalidate`], [`InFlight::clear`]) unregisters the key's flight and
//! removes the stored value under the same shard lock. A leader whose flight was unregistered
//! does not store its value (its waiters still receive it), and a caller arriving after the
//! invalidation returned finds neither value nor flight and starts a fresh computation: no
//! repopulation window.
//!
//! A leader that panics (or returns a failure its waiters cannot share) *vacates* its flight:
//! it unregisters it and wakes the waiters, who go around again. The first of them to reach
//! the table leads the next attempt and the rest join it, so a panic costs one extra execution,
//! not one per waiter, and no lock is ever poisoned by user code.
//!
//! A store with async I/O ([`AsyncStore`](crate::AsyncStore)) cannot be written under the
//! shard lock. Its leader hands its value to the waiters first and keeps the flight registered
//! while it writes (`Storing`): callers arriving then join and get the value at once, and an
//! invalidation that finds the flight storing waits for the write to end before it removes the
//! value, so a write cannot land after the removal (see [`crate::AsyncCache::invalidate`]).
//!
//! States of a flight (an explicit enum, model-checked in `tests/loom_flight.rs`):
//!
//! ```text
//!             finish(outcome)
//!  Running ───────────────────▶ Finished(outcome)     waiters return a clone
//!     │  │                          ▲
//!     │  │ begin_storing(outcome)   │ stored, or the leader is dropped
//!     │  └─────────────▶ Storing(outcome) ──┘          waiters return a clone
//!     │
//!     │ vacate (panic, unshareable failure, cancellation)
//!     ▼
//!  Vacated                                            waiters go around again
//! ```
//!
//! Lock order: shard lock, then the store's internal locks, then a flight's state lock. No lock
//! is held while the user's function runs, so distinct keys never wait on each other and a
//! memoized function may call itself recursively on other keys.

use crate::store::Store;
use crate::sync::{current_thread, lock, Arc, Condvar, Mutex, Padded, ThreadId};
use crate::wait_graph;
use equivalent::Equivalent;
/// The shard hasher. Loom replays each execution and needs every choice to repeat: under it the
/// seed is fixed, so that a key falls in the same shard in every replay.
#[cfg(not(memoflight_loom))]
type ShardHasher = foldhash::fast::RandomState;
#[cfg(memoflight_loom)]
type ShardHasher = foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::any::Any;
use std::hash::{BuildHasher, Hash};

/// A failure (an `Err` or a `None`) that a leader hands to its waiters instead of a value.
///
/// Type-erased so that a cache's type does not depend on its function's error type; built and
/// read back only by [`crate::output::Sharing`].
pub(crate) type SharedFailure = std::sync::Arc<dyn Any + Send + Sync>;

/// What a finished flight hands to each of its waiters.
#[derive(Clone)]
pub(crate) enum Outcome<V> {
    Value(V),
    Failure(SharedFailure),
}

enum State<V> {
    /// The leader is running the function; `waiters` callers are blocked on it (the leader
    /// wakes them only if there are any: a wake-up is a system call). `leader` is the leading
    /// thread, or `None` for an async task, which may move between threads.
    Running {
        leader: Option<ThreadId>,
        waiters: usize,
    },
    /// The leader has its value and is writing it to an async store; the flight stays
    /// registered until the write ends, so that an invalidation waits for it. Waiters clone
    /// the outcome at once, as from `Finished`.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Storing(Outcome<V>),
    /// The leader finished; each waiter clones the outcome.
    Finished(Outcome<V>),
    /// The leader left without an outcome to share: waiters go around again.
    Vacated,
}

/// One computation in flight, shared by its leader and its waiters.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    /// Wakes blocked threads.
    changed: Condvar,
    /// Wakes waiting tasks (runtime-agnostic: tokio's `sync` module needs no tokio runtime).
    #[cfg(feature = "async")]
    settled: tokio::sync::Notify,
}

/// How a wait on a flight ended.
pub(crate) enum Waited<V> {
    Finished(Outcome<V>),
    Vacated,
    /// The caller's own thread leads this flight: waiting would never end.
    OwnThreadLeads,
    /// The flight's leader is (transitively) waiting for a flight the caller leads; the text
    /// describes the cycle.
    Deadlock(String),
    /// The caller's `wait_timeout` passed first.
    TimedOut,
}

impl<V: Clone> Flight<V> {
    fn new(leader: Option<ThreadId>) -> Self {
        Flight {
            state: Mutex::new(State::Running { leader, waiters: 0 }),
            changed: Condvar::new(),
            #[cfg(feature = "async")]
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Blocks until the flight leaves `Running`, or until `timeout` has passed. `computation`
    /// describes this flight (`function(key)`) for deadlock reports; it is called only when the
    /// caller must block.
    pub(crate) fn wait(
        &self,
        computation: impl Fn() -> String,
        timeout: Option<std::time::Duration>,
    ) -> Waited<V> {
        let deadline = timeout.map(|timeout| std::time::Instant::now() + timeout);
        let mut me = None;
        let mut blocked = None;
        let mut state = lock(&self.state);
        loop {
            match &mut *state {
                State::Finished(outcome) | State::Storing(outcome) => {
                    return Waited::Finished(outcome.clone())
                }
                State::Vacated => return Waited::Vacated,
                State::Running { leader, waiters } => {
                    let me = *me.get_or_insert_with(current_thread);
                    if *leader == Some(me) {
                        return Waited::OwnThreadLeads;
                    }
                    // Cycles through async tasks are not tracked: a task has no thread.
                    if let (None, Some(leader)) = (&blocked, *leader) {
                        match wait_graph::block_on(me, leader, &computation) {
                            Ok(record) => blocked = Some(record),
                            Err(cycle) => return Waited::Deadlock(cycle),
                        }
                    }
                    *waiters += 1;
                    let timed_out;
                    (state, timed_out) = self.block(state, deadline);
                    if let State::Running { waiters, .. } = &mut *state {
                        // A spurious wake-up or a timeout: counted once, waits again if
                        // time is left.
                        *waiters -= 1;
                        if timed_out {
                            return Waited::TimedOut;
                        }
                    }
                }
            }
        }
    }

    /// Waits for a change of state, until `deadline` if there is one; says whether it passed.
    fn block<'a>(
        &self,
        state: crate::sync::MutexGuard<'a, State<V>>,
        deadline: Option<std::time::Instant>,
    ) -> (crate::sync::MutexGuard<'a, State<V>>, bool) {
        #[cfg(not(memoflight_loom))]
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (state, result) = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return (state, result.timed_out());
        }
        // Under loom, timeouts are not modelled: a waiter waits for the outcome.
        #[cfg(memoflight_loom)]
        let _ = deadline;
        let state = self
            .changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (state, false)
    }

    fn settle(&self, next: State<V>) {
        self.transition(|_| next);
    }

    /// Moves the flight to the state `next` makes of the current one, and wakes whoever waits
    /// for a change: counted waiters of a running flight, and (uncounted) invalidations that
    /// wait for a write to end.
    fn transition(&self, next: impl FnOnce(State<V>) -> State<V>) {
        let wake = {
            let mut state = lock(&self.state);
            let previous = std::mem::replace(&mut *state, State::Vacated);
            let wake = match &previous {
                State::Running { waiters, .. } => *waiters > 0,
                State::Storing(_) => true,
                State::Finished(_) | State::Vacated => false,
            };
            *state = next(previous);
            wake
        };
        if wake {
            self.changed.notify_all();
            #[cfg(feature = "async")]
            self.settled.notify_waiters();
        }
    }

    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn is_storing(&self) -> bool {
        matches!(*lock(&self.state), State::Storing(_))
    }

    /// Waits until the flight is no longer writing its value (`Storing`).
    #[cfg(feature = "async")]
    pub(crate) async fn wait_stored(&self) {
        loop {
            // Registered before the state is read, so a transition in between is not missed.
            let mut changed = std::pin::pin!(self.settled.notified());
            changed.as_mut().enable();
            if !self.is_storing() {
                return;
            }
            changed.await;
        }
    }

    /// Waits, without blocking the thread, until the flight leaves `Running`. A caller whose
    /// own task leads this flight (it is being polled from inside the leader's computation)
    /// gets `OwnThreadLeads`. Dropping the future mid-wait leaves nothing behind.
    #[cfg(feature = "async")]
    pub(crate) async fn wait_async(&self) -> Waited<V> {
        loop {
            // Registered before the state is read, so a settle in between is not missed.
            let mut settled = std::pin::pin!(self.settled.notified());
            settled.as_mut().enable();
            {
                let mut state = lock(&self.state);
                match &mut *state {
                    State::Finished(outcome) | State::Storing(outcome) => {
                        return Waited::Finished(outcome.clone())
                    }
                    State::Vacated => return Waited::Vacated,
                    State::Running { waiters, .. } => {
                        if crate::future::polling_leader_of(self) {
                            return Waited::OwnThreadLeads;
                        }
                        *waiters += 1;
                    }
                }
            }
            let counted = CountedWaiter(self);
            settled.await;
            // Only `transition` notifies, after the state left `Running`: one lock reads the end.
            let ended = match &*lock(&self.state) {
                State::Finished(outcome) | State::Storing(outcome) => {
                    Some(Waited::Finished(outcome.clone()))
                }
                State::Vacated => Some(Waited::Vacated),
                State::Running { .. } => None,
            };
            if let Some(waited) = ended {
                std::mem::forget(counted); // nothing to uncount once the flight has settled
                return waited;
            }
        }
    }
}

/// A task counted among a flight's waiters; uncounted when it wakes or is dropped.
#[cfg(feature = "async")]
struct CountedWaiter<'a, V>(&'a Flight<V>);

#[cfg(feature = "async")]
impl<V> Drop for CountedWaiter<'_, V> {
    fn drop(&mut self) {
        if let State::Running { waiters, .. } = &mut *lock(&self.0.state) {
            *waiters -= 1;
        }
    }
}

/// The role [`InFlight::join_or_lead`] gives a caller that missed the store.
pub(crate) enum Role<'a, K, V: Clone> {
    /// The value was stored meanwhile.
    Found(V),
    /// Another caller leads the key's flight; the caller's key is handed back for a retry.
    Wait(Arc<Flight<V>>, K),
    /// The caller leads a new flight and must finish or vacate it.
    Lead(Leader<'a, K, V>),
}

/// One shard of the in-flight table: key → its flight.
type Table<K, V> = HashTable<(K, Arc<Flight<V>>)>;

type Shard<K, V> = Padded<Mutex<Table<K, V>>>;

/// The table of flights, sharded by key hash; a shard lock is held only for table and store
/// bookkeeping, never while a function runs.
pub(crate) struct InFlight<K, V> {
    hasher: ShardHasher,
    shift: u32,
    shards: Box<[Shard<K, V>]>,
}

impl<K, V> InFlight<K, V> {
    fn shard(&self, hash: u64) -> &Mutex<Table<K, V>> {
        &self.shards[hash.checked_shr(self.shift).unwrap_or(0) as usize]
    }
}

impl<K: Hash + Eq, V: Clone> InFlight<K, V> {
    pub(crate) fn new() -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (parallelism * 4).next_power_of_two();
        InFlight {
            hasher: ShardHasher::default(),
            shift: u64::BITS - shards.trailing_zeros(),
            shards: (0..shards).map(|_| Padded(Mutex::default())).collect(),
        }
    }

    /// Finds the stored value, joins the key's flight, or registers a new one led by the caller.
    pub(crate) fn join_or_lead<S>(&self, key: K, store: &S) -> Role<'_, K, V>
    where
        S: Store<Key = K, Value = V>,
    {
        self.join_or_lead_as(key, |key| store.get_aged(key), Some(current_thread()))
    }

    /// [`join_or_lead`](Self::join_or_lead) for an async task, which has no thread of its own.
    #[cfg(feature = "async")]
    pub(crate) fn join_or_lead_async<S>(&self, key: K, store: &S) -> Role<'_, K, V>
    where
        S: Store<Key = K, Value = V>,
    {
        self.join_or_lead_as(key, |key| store.get_aged(key), None)
    }

    /// Joins the key's flight or registers a new one led by the calling task, without a look
    /// at the store: an async store cannot be read under the shard lock, so its leader looks
    /// after registering (see [`crate::AsyncCache`]).
    #[cfg(feature = "async")]
    pub(crate) fn join_or_lead_unlooked(&self, key: K) -> Role<'_, K, V> {
        self.join_or_lead_as(key, |_| None, None)
    }

    /// `look` reads the store under the shard lock: the value and whether it is due.
    fn join_or_lead_as(
        &self,
        key: K,
        look: impl FnOnce(&K) -> Option<(V, bool)>,
        leader: Option<ThreadId>,
    ) -> Role<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        let mut table = lock(self.shard(hash));
        let due = match look(&key) {
            Some((value, false)) => return Role::Found(value),
            Some((value, true)) => Some(value),
            None => None,
        };
        if let Some((_, flight)) = table.find(hash, |(k, _)| *k == key) {
            // A value due for a refresh that another caller is computing: served at once.
            if let Some(value) = due {
                return Role::Found(value);
            }
            return Role::Wait(Arc::clone(flight), key);
        }
        let flight = Arc::new(Flight::new(leader));
        let registered = Arc::clone(&flight);
        table.insert_unique(hash, (key, registered), |(k, _)| self.hasher.hash_one(k));
        Role::Lead(Leader {
            table: self,
            hash,
            flight,
            settled: false,
        })
    }

    /// Unregisters the key's flight (whose leader will then not store) and removes its value.
    pub(crate) fn invalidate<Q, S>(&self, key: &Q, store: &S) -> Option<V>
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: Store<Key = K, Value = V>,
    {
        let hash = self.hasher.hash_one(key);
        let mut table = lock(self.shard(hash));
        if let Ok(entry) = table.find_entry(hash, |(k, _)| key.equivalent(k)) {
            entry.remove();
        }
        store.remove(key)
    }

    /// Invalidation over an async store: unregisters the key's flight if it is running (its
    /// leader will then not store), and returns it instead if it is writing its value
    /// (`Storing`): the caller waits for the write to end ([`Flight::wait_stored`]) and calls
    /// again, before it removes the value.
    #[cfg(feature = "async")]
    pub(crate) fn unregister_unless_storing<Q>(&self, key: &Q) -> Option<Arc<Flight<V>>>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        let hash = self.hasher.hash_one(key);
        let mut table = lock(self.shard(hash));
        let entry = table.find_entry(hash, |(k, _)| key.equivalent(k)).ok()?;
        let (_, flight) = entry.get();
        if flight.is_storing() {
            return Some(Arc::clone(flight));
        }
        entry.remove();
        None
    }

    /// [`unregister_unless_storing`](Self::unregister_unless_storing) for every key at once:
    /// returns the flights that are writing their values.
    #[cfg(feature = "async")]
    pub(crate) fn unregister_all_unless_storing(&self) -> Vec<Arc<Flight<V>>> {
        let mut tables: Vec<_> = self.shards.iter().map(|shard| lock(shard)).collect();
        let mut storing = Vec::new();
        for table in &mut tables {
            table.retain(|(_, flight)| {
                let keep = flight.is_storing();
                if keep {
                    storing.push(Arc::clone(flight));
                }
                keep
            });
        }
        storing
    }

    /// For a caller that gave up waiting on `flight` and computed `value` itself: stores it
    /// only if `flight` is still registered (no invalidation or clear happened since, and its
    /// leader has not finished) and no value is stored yet. Says whether it stored.
    pub(crate) fn store_if_current<S>(
        &self,
        flight: &Arc<Flight<V>>,
        key: K,
        value: V,
        store: &S,
    ) -> bool
    where
        S: Store<Key = K, Value = V>,
    {
        let hash = self.hasher.hash_one(&key);
        let table = lock(self.shard(hash));
        let current = table.find(hash, |(_, f)| Arc::ptr_eq(f, flight)).is_some();
        if current && store.get(&key).is_none() {
            store.insert(key, value);
            return true;
        }
        false
    }

    /// Unregisters every flight and clears the store, as one atomic step: every shard lock is
    /// held while the store is cleared.
    pub(crate) fn clear<S>(&self, store: &S)
    where
        S: Store<Key = K, Value = V>,
    {
        self.unregister_all_then(|| store.clear());
    }

    /// Unregisters every flight (a flight has no value yet to test, so none may store) and
    /// removes the stored entries `keep` rejects, as one atomic step.
    pub(crate) fn retain<S>(&self, store: &S, keep: &mut dyn FnMut(&K, &V) -> bool)
    where
        S: Store<Key = K, Value = V>,
    {
        self.unregister_all_then(|| store.retain(keep));
    }

    /// Runs `then` with every shard locked and emptied.
    fn unregister_all_then(&self, then: impl FnOnce()) {
        let mut tables: Vec<_> = self.shards.iter().map(|shard| lock(shard)).collect();
        for table in &mut tables {
            table.clear();
        }
        then();
    }

    /// The number of flights registered now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

/// The leader's obligation: a flight it registered must end in [`Leader::finish`] or be
/// vacated; dropping a `Leader` (a panic unwinding through it) vacates the flight.
pub(crate) struct Leader<'a, K, V: Clone> {
    table: &'a InFlight<K, V>,
    hash: u64,
    flight: Arc<Flight<V>>,
    settled: bool,
}

impl<K, V: Clone> Leader<'_, K, V> {
    /// The flight this leader runs, for same-task re-entrance checks.
    #[cfg(feature = "async")]
    pub(crate) fn flight(&self) -> &Flight<V> {
        &self.flight
    }

    /// Stores `value` if the flight is still registered (not invalidated meanwhile), unregisters
    /// the flight and hands `outcome` to its waiters.
    pub(crate) fn finish<S>(mut self, store: Option<&S>, outcome: Outcome<V>)
    where
        S: Store<Key = K, Value = V>,
    {
        {
            let mut table = lock(self.table.shard(self.hash));
            let registered = table.find_entry(self.hash, |(_, f)| Arc::ptr_eq(f, &self.flight));
            if let Ok(entry) = registered {
                let ((key, _), _) = entry.remove();
                if let (Some(store), Outcome::Value(value)) = (store, &outcome) {
                    store.insert(key, value.clone());
                }
            }
        }
        self.settled = true;
        self.flight.settle(State::Finished(outcome));
    }

    /// For a leader whose store has async I/O, once it has a value: hands `outcome` to the
    /// waiters now and, if the flight is still registered (no invalidation since), keeps it
    /// registered as `Storing` and returns true: the leader then writes the value and calls
    /// [`stored`](Leader::stored). Returns false, with the flight finished, if it was
    /// invalidated: the value must not be written.
    #[cfg(feature = "async")]
    pub(crate) fn begin_storing(&mut self, outcome: Outcome<V>) -> bool {
        {
            let table = lock(self.table.shard(self.hash));
            let registered = table.find(self.hash, |(_, f)| Arc::ptr_eq(f, &self.flight));
            if registered.is_some() {
                // Under the shard lock, so that an invalidation sees either a running flight
                // (which will not store) or a storing one (which it waits for).
                self.flight.settle(State::Storing(outcome));
                return true;
            }
        }
        self.settled = true;
        self.flight.settle(State::Finished(outcome));
        false
    }

    /// Ends a write begun by [`begin_storing`](Leader::begin_storing): unregisters the flight,
    /// which wakes an invalidation waiting for the write.
    #[cfg(feature = "async")]
    pub(crate) fn stored(mut self) {
        self.vacate_now();
    }

    /// Unregisters the flight and sends its waiters around again.
    pub(crate) fn vacate(mut self) {
        self.vacate_now();
    }

    /// Unregisters the flight; a running one is vacated, a storing one (whose waiters already
    /// have the value) is finished.
    fn vacate_now(&mut self) {
        self.settled = true;
        {
            let mut table = lock(self.table.shard(self.hash));
            if let Ok(entry) = table.find_entry(self.hash, |(_, f)| Arc::ptr_eq(f, &self.flight)) {
                entry.remove();
            }
        }
        self.flight.transition(|previous| match previous {
            State::Storing(outcome) => State::Finished(outcome),
            _ => State::Vacated,
        });
    }
}

impl<K, V: Clone> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.settled {
            self.vacate_now();
        }
    }
}
