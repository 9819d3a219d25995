//! The single-flight state machine and the table of computations in flight.
//!
//! # Contract
//!
//! For one cache, at any instant, each key has at most one registered computation (a
//! *flight*), and a key is in the in-flight table exactly while its flight is registered.
//!
//! A caller that misses the store calls [`InFlight::join_or_lead`], which either joins the
//! key's flight (after a look at the store: a value stored meanwhile, or due for a refresh, is
//! returned at once) or registers a new flight with the caller as its leader and then looks at
//! the store once more (a leader that finished between the caller's first look and its
//! registration stored its value first: found, and the new flight vacated). The leader runs
//! the function *without any lock held*, then [`Leader::finish_value`] stores the value,
//! unregisters the flight, and hands the waiters a copy of the value (they do not re-read the
//! store, which may already have evicted it); a leader that nobody waited for keeps no copy,
//! and a caller that joins while it stores waits for the write and then finds the value.
//!
//! Because a finishing leader stores the value before it unregisters, a caller either joins
//! the flight, or registers after the value was stored and finds it: it never starts a second
//! execution of a computation that succeeded.
//!
//! # No user code under a lock
//!
//! A key's `Hash` runs before any lock is taken, its `Eq` after the shard lock is released (on
//! the flights of the same hash, held by `Arc`); the store is never read or written under a
//! lock of this module; a value's `Clone` runs with no lock held; the key's `Debug` for the
//! wait graph is formatted before it is locked. So user code may call any memoized function:
//! a call that would wait for a flight its own thread leads panics instead (same-key
//! recursion), and nothing else can block on a lock it holds.
//!
//! # Invalidation
//!
//! [`InFlight::invalidate`] *revokes* the key's flight and unregisters it, then removes the
//! stored value. A revoked leader does not store its value; its waiters are released and go
//! around again (so a leader that never finishes, such as an async leader whose future was
//! forgotten, holds nobody once its key is invalidated). A leader that is already writing its
//! value (`Storing`) is waited for before the removal, so its write cannot land after it; it
//! stays registered while it writes, so that every invalidation running at the same time
//! finds it and waits for it too.
//! `clear` and `invalidate_if` do the same for every flight at once with an epoch (see
//! [`InFlight`]). A caller arriving after the invalidation returned finds neither value nor
//! flight and starts a fresh computation: no repopulation window.
//!
//! A value the store reports due for a refresh (`refresh_after`) counts as found for every
//! caller while a flight of its key runs, and as missing for the caller that registers one:
//! that caller leads a refresh, whose value replaces the old one on success; a failed or
//! panicked refresh stores nothing, so the old value stays until its ttl.
//!
//! A leader that panics (or returns a failure its waiters cannot share) *vacates* its flight:
//! it unregisters it and wakes the waiters, who go around again. The first of them to register
//! leads the next attempt and the rest join it, so a panic costs one extra execution, not one
//! per waiter, and no lock is ever poisoned by user code.
//!
//! A store with async I/O ([`AsyncStore`](crate::AsyncStore)) is written the same way, with
//! the write awaited while the flight is `Storing` (see [`crate::AsyncCache::invalidate`]).
//!
//! States of a flight (an explicit enum, model-checked in `tests/loom_flight.rs`):
//!
//! ```text
//!             finish (revoked, or a failure to share)
//!  Running ───────────────────────────────────▶ Finished(kept)  waiters take the kept copy,
//!     │  │                                         ▲             or find the value stored
//!     │  │ begin_storing (not revoked)             │ written, or the leader is dropped
//!     │  └──────────────────────▶ Storing(kept) ───┘             waiters take the kept copy,
//!     │                                                          or wait for the write
//!     │ vacate (panic, unshareable failure, cancellation), or revoked by an invalidation
//!     ▼
//!  Vacated                                                       waiters go around again
//! ```
//!
//! Lock order: the clear lock, then a shard lock, then a flight's state lock, then the wait
//! graph's lock. No lock is held while the user's function runs, so distinct keys never wait
//! on each other and a memoized function may call itself recursively on other keys.

use crate::store::Store;
use crate::sync::{current_thread, lock, Arc, AtomicU64, Condvar, Mutex, Padded, ThreadId};
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
use std::sync::atomic::Ordering::SeqCst;

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

/// An outcome as a flight keeps it: behind an `Arc`, so that a waiter clones the `Arc` under
/// the flight's lock and the value (user code) after releasing it. `None` when the leader kept
/// no copy because nobody waited when it finished: a waiter that joins after that finds the
/// value in the store.
type Kept<V> = Option<std::sync::Arc<Outcome<V>>>;

enum State<V> {
    /// The leader is running the function; `waiters` callers are blocked on it (the leader
    /// wakes them only if there are any: a wake-up is a system call).
    Running { waiters: usize },
    /// The leader has its value and is writing it to the store; the flight stays registered
    /// until the write ends, so that an invalidation waits for it. Waiters take the outcome at
    /// once if one was kept, and otherwise wait for the write to end.
    Storing(Kept<V>),
    /// The leader finished; each waiter clones the outcome, or finds the value in the store.
    Finished(Kept<V>),
    /// The leader left without an outcome to share: waiters go around again.
    Vacated,
}

struct Inner<V> {
    state: State<V>,
    /// Set by an invalidation (or a clear) that unregistered this flight while it was running:
    /// its leader then does not store.
    revoked: bool,
    /// Callers that gave up waiting and are writing their own value while this flight runs
    /// ([`InFlight::store_if_current`]); an invalidation waits for them as for `Storing`.
    side_writers: usize,
    /// Threads blocked on `Flight::changed` now: a notification is a system call even with
    /// nobody to wake, so it is made only when this is not zero.
    blocked: usize,
}

/// One computation in flight, shared by its leader, its waiters and the in-flight table.
pub(crate) struct Flight<K, V> {
    /// The key, compared by callers of the same hash *outside* the table's lock (it is user
    /// code), which is why a flight owns it.
    key: K,
    hash: u64,
    /// The leading thread, or `None` for an async task, which may move between threads.
    leader: Option<ThreadId>,
    /// The cache's clear count when this flight was registered (see [`Epochs`]).
    epoch: u32,
    inner: Mutex<Inner<V>>,
    /// Wakes blocked threads.
    changed: Condvar,
    /// Wakes waiting tasks (runtime-agnostic: tokio's `sync` module needs no tokio runtime).
    #[cfg(feature = "async")]
    settled: tokio::sync::Notify,
}

/// How a wait on a flight ended.
pub(crate) enum Waited<V> {
    Finished(Outcome<V>),
    /// The leader left without an outcome (a panic, a cancellation), or finished without
    /// keeping a copy (its value is in the store): go around again.
    Vacated,
    /// The caller's own thread leads this flight: waiting would never end.
    OwnThreadLeads,
    /// The flight's leader is (transitively) waiting for a flight the caller leads; the text
    /// describes the cycle.
    Deadlock(String),
    /// The caller's `wait_timeout` passed first.
    TimedOut,
}

/// What a thread blocked on a flight waits for its leader to end: its computation or its
/// write. Each is an edge of the wait graph while it lasts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Computing,
    Writing,
}

impl Phase {
    fn of<V>(state: &State<V>) -> Option<Phase> {
        match state {
            State::Running { .. } => Some(Phase::Computing),
            State::Storing(_) => Some(Phase::Writing),
            State::Finished(_) | State::Vacated => None,
        }
    }
}

/// What [`Flight::enlist`] made of a waiting task.
#[cfg(feature = "async")]
pub(crate) enum Enlisted<V> {
    /// The wait is over.
    Done(Waited<V>),
    /// Counted among the waiters of the running flight: uncount it when it wakes.
    Counted,
    /// Not counted: it waits for the end of a write.
    Writing,
}

/// What a waiter does with the state it found.
enum Look<V> {
    Done(Kept<V>),
    Vacated,
    Block,
}

impl<V> Inner<V> {
    /// Whether the leader's write (or a side writer's) is in progress.
    fn is_writing(&self) -> bool {
        matches!(self.state, State::Storing(_)) || self.side_writers > 0
    }

    fn look(&self) -> Look<V> {
        match &self.state {
            State::Running { .. } if self.revoked => Look::Vacated,
            State::Storing(Some(kept)) | State::Finished(Some(kept)) => {
                Look::Done(Some(std::sync::Arc::clone(kept)))
            }
            State::Finished(None) | State::Vacated => Look::Vacated,
            State::Running { .. } | State::Storing(None) => Look::Block,
        }
    }
}

/// How a waiter's wait ends if the flight it found need not be waited for: with the kept
/// outcome (its value cloned after the lock is released) or with a retry; otherwise the lock
/// back, to block.
fn done_waiting<V: Clone>(
    inner: crate::sync::MutexGuard<'_, Inner<V>>,
) -> Result<Waited<V>, crate::sync::MutexGuard<'_, Inner<V>>> {
    match inner.look() {
        Look::Done(kept) => {
            drop(inner);
            Ok(match kept {
                Some(outcome) => Waited::Finished(Outcome::clone(&outcome)),
                None => Waited::Vacated,
            })
        }
        Look::Vacated => Ok(Waited::Vacated),
        Look::Block => Err(inner),
    }
}

impl<K, V: Clone> Flight<K, V> {
    fn new(key: K, hash: u64, epoch: u32, leader: Option<ThreadId>) -> Self {
        Flight {
            key,
            hash,
            leader,
            epoch,
            inner: Mutex::new(Inner {
                state: State::Running { waiters: 0 },
                revoked: false,
                side_writers: 0,
                blocked: 0,
            }),
            changed: Condvar::new(),
            #[cfg(feature = "async")]
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Blocks until the flight has an outcome for its waiters, or until `timeout` has passed.
    /// `computation` describes this flight (`function(key)`) for deadlock reports; it is called
    /// only when the caller must block.
    pub(crate) fn wait(
        &self,
        computation: impl Fn() -> String,
        timeout: Option<std::time::Duration>,
    ) -> Waited<V> {
        let deadline = timeout.map(|timeout| std::time::Instant::now() + timeout);
        let mut me = None;
        // This thread's edge in the wait graph, and the phase of the leader it waits for.
        let mut blocked: Option<(wait_graph::Blocked, Phase)> = None;
        // The flight as `function(key)`, described (user code: the key's `Debug`) with no lock
        // held, the first time the caller must block.
        let mut described: Option<String> = None;
        let mut inner = lock(&self.inner);
        loop {
            inner = match done_waiting(inner) {
                Ok(waited) => return waited,
                Err(inner) => inner,
            };
            // Blocking on a flight this thread leads (from user code its leader runs: the
            // function, or a `Clone`, `Hash` or `Eq` while it stores) would never end.
            let me = *me.get_or_insert_with(current_thread);
            if self.leader == Some(me) {
                return Waited::OwnThreadLeads;
            }
            // The caller blocks on the leader's computation, or on its write (a flight that
            // kept no copy for its waiters: the write runs the key's `Hash` and `Eq`). Either
            // is an edge, recorded under the flight's lock so that the transition ending that
            // phase drops it (`wait_graph::settled`) before this thread wakes. Cycles through
            // async tasks are not tracked: a task has no thread.
            let phase = Phase::of(&inner.state);
            if let (Some(phase), Some(leader)) = (phase, self.leader) {
                if blocked.as_ref().map(|(_, was)| *was) != Some(phase) {
                    blocked = None; // an edge of an earlier phase, already settled
                    let Some(text) = described.clone() else {
                        drop(inner);
                        described = Some(computation());
                        inner = lock(&self.inner);
                        continue;
                    };
                    let text = match phase {
                        Phase::Computing => text,
                        Phase::Writing => format!("the write of {text}"),
                    };
                    match wait_graph::block_on(me, leader, self.address(), text) {
                        Ok(record) => blocked = Some((record, phase)),
                        Err(cycle) => return Waited::Deadlock(cycle),
                    }
                }
            }
            if let State::Running { waiters, .. } = &mut inner.state {
                *waiters += 1;
            }
            let timed_out;
            (inner, timed_out) = self.block(inner, deadline);
            if let State::Running { waiters, .. } = &mut inner.state {
                // Counted once per block: a spurious wake-up counts again below.
                *waiters -= 1;
            }
            // Past the deadline with still no outcome (the computation, or a write with no
            // copy kept for waiters, goes on): stop waiting; otherwise wait again, or take the
            // outcome at the top of the loop.
            if timed_out && matches!(inner.look(), Look::Block) {
                return Waited::TimedOut;
            }
        }
    }

    /// Waits for a change of state, until `deadline` if there is one; says whether it passed.
    fn block<'a>(
        &self,
        mut inner: crate::sync::MutexGuard<'a, Inner<V>>,
        deadline: Option<std::time::Instant>,
    ) -> (crate::sync::MutexGuard<'a, Inner<V>>, bool) {
        inner.blocked += 1;
        let (mut inner, timed_out) = self.block_counted(inner, deadline);
        inner.blocked -= 1;
        (inner, timed_out)
    }

    fn block_counted<'a>(
        &self,
        inner: crate::sync::MutexGuard<'a, Inner<V>>,
        deadline: Option<std::time::Instant>,
    ) -> (crate::sync::MutexGuard<'a, Inner<V>>, bool) {
        #[cfg(not(memoflight_loom))]
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (inner, result) = self
                .changed
                .wait_timeout(inner, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return (inner, result.timed_out());
        }
        // Under loom, timeouts are not modelled: a waiter waits for the outcome.
        #[cfg(memoflight_loom)]
        let _ = deadline;
        let inner = self
            .changed
            .wait(inner)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (inner, false)
    }

    /// Moves the flight to the state `next` makes of the current one (and its `revoked` flag),
    /// and wakes whoever waits for a change: counted waiters of a running flight, and
    /// (uncounted) invalidations that wait for a write to end.
    fn transition<T>(&self, next: impl FnOnce(State<V>, bool) -> (State<V>, T)) -> T {
        let (threads, tasks, out) = {
            let mut inner = lock(&self.inner);
            let previous = std::mem::replace(&mut inner.state, State::Vacated);
            let tasks = match &previous {
                State::Running { waiters, .. } => *waiters > 0,
                State::Storing(_) => true,
                State::Finished(_) | State::Vacated => false,
            };
            let was = Phase::of(&previous);
            let (state, out) = next(previous, inner.revoked);
            // The leader stopped computing, or stopped writing: the edges of the threads
            // waiting for it through this flight are stale from now on.
            let settled = was.is_some() && Phase::of(&state) != was;
            inner.state = state;
            let threads = inner.blocked > 0;
            if settled && threads {
                // Under the flight's lock (then the graph's, the documented order): an edge a
                // thread records on the new state after this is not dropped with the old ones.
                wait_graph::settled(self.address());
            }
            (threads, tasks, out)
        };
        self.wake(threads, tasks);
        out
    }

    /// This flight's address: its identity in the wait graph.
    fn address(&self) -> usize {
        self as *const Self as usize
    }

    /// Wakes the blocked threads, if any, and the waiting tasks, if there may be any.
    fn wake(&self, threads: bool, tasks: bool) {
        if threads {
            self.changed.notify_all();
        }
        #[cfg(feature = "async")]
        if tasks {
            self.settled.notify_waiters();
        }
        #[cfg(not(feature = "async"))]
        let _ = tasks;
    }

    /// How many callers wait for this flight now.
    fn waiters(&self) -> usize {
        match lock(&self.inner).state {
            State::Running { waiters, .. } => waiters,
            _ => 0,
        }
    }

    /// A running flight that was not revoked moves to `Storing(kept)` and says so (the caller
    /// then writes the value and calls [`end_storing`](Self::end_storing)); any other ends as
    /// `Finished(kept)`.
    fn begin_storing(&self, kept: Kept<V>) -> bool {
        self.transition(|previous, revoked| match previous {
            State::Running { .. } if !revoked => (State::Storing(kept), true),
            _ => (State::Finished(kept), false),
        })
    }

    /// Ends a write begun by [`begin_storing`](Self::begin_storing).
    fn end_storing(&self) {
        self.transition(|previous, _| match previous {
            State::Storing(kept) => (State::Finished(kept), ()),
            other => (other, ()),
        });
    }

    /// Marks the flight so that its leader will not store, unless it is writing already (or a
    /// caller that gave up waiting on it is): returns `false` then, and the caller waits for the
    /// write with [`wait_written`](Self::wait_written) and asks again.
    fn revoke(&self) -> bool {
        let mut inner = lock(&self.inner);
        if inner.is_writing() {
            return false;
        }
        inner.revoked = true;
        true
    }

    /// Releases the waiters of a revoked flight that is still running: they go around again
    /// and compute afresh (one leads, the others wait for it), rather than wait for a value
    /// that will not be stored, from a leader that may never finish (an async leader whose
    /// future was forgotten). Called once the invalidation has removed the stored value, so
    /// that what they compute is not removed by it.
    fn release(&self) {
        let (threads, tasks) = {
            let mut inner = lock(&self.inner);
            inner.revoked = true;
            let (threads, tasks) = match inner.state {
                State::Running { waiters } => (inner.blocked > 0, waiters > 0),
                _ => (false, false),
            };
            if threads {
                // Under the flight's lock, as in `transition`.
                wait_graph::settled(self.address());
            }
            (threads, tasks)
        };
        self.wake(threads, tasks);
    }

    /// Whether a write of this flight's value (or of a side writer's) is in progress.
    #[cfg(feature = "async")]
    pub(crate) fn is_writing(&self) -> bool {
        let inner = lock(&self.inner);
        inner.is_writing()
    }

    /// Blocks until no write of this flight's value is in progress. The wait is an edge of the
    /// wait graph, like a waiter's: if the writing leader (transitively) waits for this thread
    /// (its key's `Hash` waits on a computation that is invalidating this cache), waiting would
    /// never end, and the cycle is returned instead. `describe` names the flight
    /// (`function(key)`, user code: called with no lock held, only if the wait blocks).
    fn wait_written(&self, describe: &dyn Fn() -> String) -> Result<(), String> {
        let mut blocked = None;
        let mut described = None;
        let mut inner = lock(&self.inner);
        while inner.is_writing() {
            if let (None, State::Storing(_), Some(leader)) = (&blocked, &inner.state, self.leader) {
                // Described with no lock held (user code), then recorded under the flight's
                // lock, as a waiter's edge is: the end of the write drops it before this
                // thread wakes, so a leader that wrote and moved on is not taken for one
                // still waited for.
                let Some(text) = described.take() else {
                    drop(inner);
                    described = Some(format!("the write of {}", describe()));
                    inner = lock(&self.inner);
                    continue;
                };
                match wait_graph::block_on(current_thread(), leader, self.address(), text) {
                    Ok(record) => blocked = Some(record),
                    Err(cycle) => return Err(cycle),
                }
            }
            (inner, _) = self.block(inner, None);
        }
        Ok(())
    }

    /// The notifier of waiting tasks: notified (to every task listening then) whenever the
    /// flight's state changes in a way its waiters must see. A task registers with it before
    /// it reads the state (see `future.rs`), so that a change in between is not missed.
    #[cfg(feature = "async")]
    pub(crate) fn tasks(&self) -> &tokio::sync::Notify {
        &self.settled
    }

    /// For a waiting task: the outcome, if the flight has one to take (or the task must go
    /// around again); otherwise, if the flight is still running, the task is counted among its
    /// waiters (uncounted by [`uncount`](Self::uncount) unless the flight has moved on).
    /// `own_leader` says whether the task is the flight's own leader polling it (asked only of
    /// a running flight): it then gets `OwnThreadLeads`.
    #[cfg(feature = "async")]
    pub(crate) fn enlist(&self, own_leader: impl FnOnce() -> bool) -> Enlisted<V> {
        let mut inner = match done_waiting(lock(&self.inner)) {
            Ok(waited) => return Enlisted::Done(waited),
            Err(inner) => inner,
        };
        match &mut inner.state {
            State::Running { waiters } => {
                if own_leader() {
                    return Enlisted::Done(Waited::OwnThreadLeads);
                }
                *waiters += 1;
                Enlisted::Counted
            }
            _ => Enlisted::Writing,
        }
    }

    /// Withdraws a task counted by [`enlist`](Self::enlist) if the flight still runs (once it
    /// has moved on, its waiters are no longer counted).
    #[cfg(feature = "async")]
    pub(crate) fn uncount(&self) {
        if let State::Running { waiters } = &mut lock(&self.inner).state {
            *waiters -= 1;
        }
    }
}

/// The role [`InFlight::join_or_lead`] gives a caller that missed the store.
pub(crate) enum Role<'a, K, V: Clone> {
    /// The value was stored meanwhile.
    Found(V),
    /// Another caller leads the key's flight; the caller's key is handed back for a retry.
    Wait(Arc<Flight<K, V>>, K),
    /// The caller leads a new flight and must finish or vacate it.
    Lead(Leader<'a, K, V>),
}

/// One shard of the in-flight table: its flights, found by their stored hash (the table never
/// hashes a key: that is user code, run before the lock is taken).
type Table<K, V> = HashTable<Arc<Flight<K, V>>>;

type Shard<K, V> = Padded<Mutex<Table<K, V>>>;

/// The table of flights, sharded by key hash.
///
/// # No user code under a lock
///
/// A shard lock is held only for table operations on stored hashes and `Arc`s; a key's `Hash`
/// runs before it is taken, its `Eq` after it is released (on the flights of the same hash,
/// which the caller holds by `Arc`), and a flight's last `Arc` (whose key's `Drop` is user
/// code) is always dropped outside it. The store is never touched under a shard lock either.
/// So a key's `Hash`/`Eq`/`Drop` or a value's `Clone`/`Drop` may call any memoized function.
///
/// # How a leader's write and an invalidation exclude each other without a shared lock
///
/// - One key: a leader moves its flight from `Running` to `Storing` before it writes, unless
///   the flight was revoked; an invalidation revokes the flight if it is running, or waits
///   for the write to end if it is storing, both under the flight's own lock; then it removes
///   the value. Either the leader sees the revocation and does not write, or the invalidation
///   removes what it wrote.
/// - Every key (`clear`, `invalidate_if`): each flight records the cache's *epoch* when it is
///   registered. A writer announces itself in one compare-and-swap that also checks the epoch
///   is still its own; a clear bumps the epoch, revokes every flight of an older epoch and
///   unregisters those not writing, waits for those that are writing (which stay registered
///   meanwhile, so that a key's invalidation finds them too; as a waiter waits: an edge of the wait
///   graph, so a write whose user code waits for the clearing thread is a reported cycle, not a
///   hang), then waits until no writer of the old epoch is announced (those left are between
///   their announcement and their look at the revoked flight: no user code), and clears the
///   store. Both sides act on one atomic word ([`Epochs`]): either the writer's swap comes
///   first and the clear waits for its write to end, or the bump comes first and the writer
///   does not write. Clears are serialized, so the count of the old epoch's parity holds no
///   newer writer.
pub(crate) struct InFlight<K, V> {
    hasher: ShardHasher,
    shift: u32,
    shards: Box<[Shard<K, V>]>,
    /// The epoch and its writers in progress.
    epochs: Epochs,
    /// Serializes clears.
    clearing: Clearing,
}

/// The lock that serializes clears (and `invalidate_if`s) of one cache. A clear holds it while
/// it waits for writes in progress, whose user code (a key's `Hash`, a value's `Drop`) may
/// itself clear a cache, and while it describes them (a key's `Debug`). So a thread that finds
/// it held waits as a caller waits for a computation: with an edge of the wait graph to the
/// holder, and a cycle through it is reported instead of hanging. Its holder asking for it
/// again (a key's `Debug` that clears the cache clearing it) panics.
struct Clearing {
    holder: Mutex<Option<ThreadId>>,
    released: Condvar,
}

/// A held [`Clearing`]; released when dropped (also by a panic).
struct ClearingGuard<'a>(&'a Clearing);

impl Clearing {
    fn new() -> Self {
        Clearing {
            holder: Mutex::new(None),
            released: Condvar::new(),
        }
    }

    /// This lock's identity in the wait graph.
    fn address(&self) -> usize {
        self as *const Self as usize
    }

    fn acquire(&self) -> ClearingGuard<'_> {
        let me = current_thread();
        let mut holder = lock(&self.holder);
        loop {
            let Some(other) = *holder else {
                *holder = Some(me);
                return ClearingGuard(self);
            };
            if other == me {
                drop(holder);
                panic!(
                    "memoflight: a cache was cleared (or `invalidate_if` ran on it) from user code \
                     run by a clear of that same cache (a key's `Debug`, `Hash` or `Eq`, a \
                     value's `Clone` or `Drop`); the second clear would wait for the first, \
                     which waits for it"
                );
            }
            // Recorded under the lock: the release drops it before this thread wakes.
            let text = String::from("a clear of the same cache");
            let _blocked = match wait_graph::block_on(me, other, self.address(), text) {
                Ok(record) => record,
                Err(cycle) => {
                    drop(holder);
                    would_deadlock(&cycle);
                }
            };
            holder = self
                .released
                .wait(holder)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for ClearingGuard<'_> {
    fn drop(&mut self) {
        let mut holder = lock(&self.0.holder);
        *holder = None;
        // Under the holder's lock: an edge recorded to the next holder is not dropped.
        wait_graph::settled(self.0.address());
        drop(holder);
        self.0.released.notify_all();
    }
}

impl<K, V> InFlight<K, V> {
    fn shard(&self, hash: u64) -> &Mutex<Table<K, V>> {
        &self.shards[hash.checked_shr(self.shift).unwrap_or(0) as usize]
    }

    /// Removes `flight` from its shard if it is still there; its `Arc` is dropped after the lock.
    fn unregister(&self, flight: &Arc<Flight<K, V>>) {
        let removed = {
            let mut table = lock(self.shard(flight.hash));
            match table.find_entry(flight.hash, |f| Arc::ptr_eq(f, flight)) {
                Ok(entry) => Some(entry.remove().0),
                Err(_) => None,
            }
        };
        drop(removed);
    }
}

/// The epoch (how many clears and `invalidate_if`s have begun) and the writers in progress, by
/// their flight's epoch parity, in one atomic word: bits 32..64 the epoch, bits 0..16 the
/// writers of even epochs, bits 16..32 those of odd ones. One word, so that a writer's check
/// of the epoch and its announcement are one compare-and-swap, and a clear's bump and its view
/// of the writers are ordered by that word's modification order (no reasoning across two
/// locations, which a model checker need not order).
struct Epochs(Padded<AtomicU64>);

impl Epochs {
    const EPOCH: u32 = 32;

    fn writer_unit(epoch: u32) -> u64 {
        1 << (16 * (epoch & 1))
    }

    fn writers(word: u64, epoch: u32) -> u64 {
        (word >> (16 * (epoch & 1))) & 0xffff
    }

    /// The current epoch.
    fn current(&self) -> u32 {
        (self.0.load(SeqCst) >> Self::EPOCH) as u32
    }

    /// Announces a writer of a flight registered at `epoch`, if `epoch` is still current.
    fn announce(&self, epoch: u32) -> Option<Announced<'_>> {
        let unit = Self::writer_unit(epoch);
        let mut word = self.0.load(SeqCst);
        loop {
            if (word >> Self::EPOCH) as u32 != epoch {
                return None;
            }
            match self.0.compare_exchange(word, word + unit, SeqCst, SeqCst) {
                Ok(_) => return Some(Announced { epochs: self, unit }),
                Err(now) => word = now,
            }
        }
    }

    /// Starts a new epoch: no writer of an older one can announce itself from now on. Returns
    /// the old epoch.
    fn advance(&self) -> u32 {
        let old = self.0.fetch_add(1 << Self::EPOCH, SeqCst);
        (old >> Self::EPOCH) as u32
    }

    /// Waits until no writer of epoch `old` is announced. Called once every flight of that
    /// epoch is revoked and none is writing: the writers left are between their announcement
    /// and their look at the flight's state, which runs no user code, so this spin is short.
    fn wait_writers(&self, old: u32) {
        while Self::writers(self.0.load(SeqCst), old) != 0 {
            crate::sync::yield_now();
        }
    }
}

/// A writer announced in [`Epochs`]; withdrawn when dropped (also by a panic in the store's
/// user code).
struct Announced<'a> {
    epochs: &'a Epochs,
    unit: u64,
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        self.epochs.0.fetch_sub(self.unit, SeqCst);
    }
}

/// What [`InFlight::revoke`] did to a key's flight.
pub(crate) enum Revocation<K, V: Clone> {
    /// No flight of the key was registered.
    Absent,
    /// The flight was revoked and unregistered; its waiters are released when this is dropped,
    /// which the invalidation does after removing the stored value.
    Revoked(Released<K, V>),
    /// The flight is writing its value and stays registered: wait for the write, then revoke
    /// again.
    Writing(Arc<Flight<K, V>>),
}

/// A revoked flight whose waiters are released (they go around again) when this is dropped:
/// after the invalidation removed the value, or when it is abandoned (a panic, an async
/// invalidation whose future was dropped), so that they are never left waiting for a leader
/// that will not store.
pub(crate) struct Released<K, V: Clone>(Arc<Flight<K, V>>);

impl<K, V: Clone> Drop for Released<K, V> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Describes a key's computation (`function(key)`) for a deadlock report.
pub(crate) type Describe<'a, K> = &'a dyn Fn(&K) -> String;

/// An invalidation (or clear) that would wait forever for a write whose leader waits for it.
#[cold]
#[inline(never)]
fn would_deadlock(cycle: &str) -> ! {
    panic!(
        "memoflight: invalidating would deadlock: {cycle}; user code run while a value is \
         stored (a key's `Hash`, `Eq` or `Clone`) must not wait for a computation that \
         invalidates or clears the same cache"
    )
}

/// Flights with the same hash as a key: almost always none or one.
type Candidates<K, V> = Vec<Arc<Flight<K, V>>>;

impl<K: Hash + Eq, V: Clone> InFlight<K, V> {
    pub(crate) fn new() -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (parallelism * 4).next_power_of_two();
        InFlight {
            hasher: ShardHasher::default(),
            shift: u64::BITS - shards.trailing_zeros(),
            shards: (0..shards).map(|_| Padded(Mutex::default())).collect(),
            epochs: Epochs(Padded(AtomicU64::new(0))),
            clearing: Clearing::new(),
        }
    }

    /// The flights whose stored hash is `hash`, cloned out of the shard.
    fn candidates(&self, hash: u64) -> Candidates<K, V> {
        let table = lock(self.shard(hash));
        table
            .iter_hash(hash)
            .filter(|flight| flight.hash == hash)
            .map(Arc::clone)
            .collect()
    }

    /// The flight of `key`, if one is registered: its hash's flights are taken under the lock,
    /// their keys compared after it.
    fn find<Q>(&self, key: &Q) -> Option<Arc<Flight<K, V>>>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        let hash = self.hasher.hash_one(key);
        self.candidates(hash)
            .into_iter()
            .find(|flight| key.equivalent(&flight.key))
    }

    /// Joins the key's flight, or registers a new one led by `leader` (a thread, or `None` for
    /// an async task). `look` reads the store (no lock held): the value and whether it is due.
    ///
    /// A joiner looks after finding the flight (a value due for a refresh that another caller
    /// is computing is served at once; a value stored by a leader that has not unregistered
    /// yet is found), a leader after registering its flight (a value stored by a leader that
    /// finished between the caller's first look and the registration is found, and the new
    /// flight vacated).
    pub(crate) fn join_or_lead(
        &self,
        key: K,
        look: impl Fn(&K) -> Option<(V, bool)>,
        leader: Option<ThreadId>,
    ) -> Role<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        let mut key = Some(key);
        let flight = loop {
            let register = |table: &mut Table<K, V>, key: K| {
                let epoch = self.epochs.current();
                let flight = Arc::new(Flight::new(key, hash, epoch, leader));
                table.insert_unique(hash, Arc::clone(&flight), |f| f.hash);
                flight
            };
            let seen: Candidates<K, V> = {
                let mut table = lock(self.shard(hash));
                if !table.iter_hash(hash).any(|flight| flight.hash == hash) {
                    // No flight of this hash: no key to compare, register at once.
                    break register(&mut table, key.take().expect("the key is ours"));
                }
                table
                    .iter_hash(hash)
                    .filter(|flight| flight.hash == hash)
                    .map(Arc::clone)
                    .collect()
            };
            let mine = key.as_ref().expect("the key is ours");
            if let Some(flight) = seen.iter().find(|flight| flight.key == *mine) {
                let key = key.take().expect("the key is ours");
                return match look(&key) {
                    Some((value, _)) => Role::Found(value),
                    None => Role::Wait(Arc::clone(flight), key),
                };
            }
            // No flight of this key among those of its hash: register one, unless the flights
            // of this hash changed since they were compared (another caller may have
            // registered this key).
            let mut table = lock(self.shard(hash));
            let mut now = table.iter_hash(hash).filter(|flight| flight.hash == hash);
            let unchanged = seen
                .iter()
                .all(|before| now.next().is_some_and(|f| Arc::ptr_eq(f, before)))
                && now.next().is_none();
            if unchanged {
                break register(&mut table, key.take().expect("the key is ours"));
            }
        };
        let leader = Leader {
            table: self,
            flight,
            settled: false,
        };
        match look(&leader.flight.key) {
            Some((value, false)) => {
                leader.vacate();
                Role::Found(value)
            }
            // Due for a refresh: this caller refreshes it.
            Some((_, true)) | None => Role::Lead(leader),
        }
    }

    /// Unregisters the key's flight (whose leader will then not store, or, if it is writing,
    /// is waited for), then runs `remove` (the removal of the stored value, with no lock of
    /// this table held), then releases the flight's waiters.
    pub(crate) fn invalidate<Q, R>(
        &self,
        key: &Q,
        describe: Describe<'_, K>,
        remove: impl FnOnce() -> R,
    ) -> R
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        let _revoked = loop {
            match self.revoke(key) {
                Revocation::Absent => break None,
                Revocation::Revoked(revoked) => break Some(revoked),
                Revocation::Writing(flight) => {
                    writing::refuse_self_wait(self);
                    if let Err(cycle) = flight.wait_written(&|| describe(&flight.key)) {
                        would_deadlock(&cycle);
                    }
                }
            }
        };
        remove()
        // `_revoked` releases the flight's waiters now that the value is gone.
    }

    /// Revokes and unregisters the key's flight, unless it is writing a value: that one stays
    /// registered (so that any other invalidation finds it and waits for it too) and is
    /// returned to be waited for.
    ///
    /// The check and the unregistration happen under the shard lock (then the flight's lock,
    /// the documented order): a writing flight is never unregistered by an invalidation, and a
    /// caller that finds the flight in the table afterwards finds it unrevoked.
    pub(crate) fn revoke<Q>(&self, key: &Q) -> Revocation<K, V>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        match self.find(key) {
            None => Revocation::Absent,
            Some(flight) => self.revoke_flight(flight),
        }
    }

    fn revoke_flight(&self, flight: Arc<Flight<K, V>>) -> Revocation<K, V> {
        let removed = {
            let mut table = lock(self.shard(flight.hash));
            if !flight.revoke() {
                return Revocation::Writing(flight);
            }
            match table.find_entry(flight.hash, |f| Arc::ptr_eq(f, &flight)) {
                Ok(entry) => Some(entry.remove().0),
                Err(_) => None,
            }
        };
        drop(removed);
        Revocation::Revoked(Released(flight))
    }

    /// [`revoke`](Self::revoke) for every flight registered now: the revoked ones are added to
    /// `revoked`, the ones writing their values (left registered) returned to be waited for.
    #[cfg(feature = "async")]
    pub(crate) fn revoke_each(&self, revoked: &mut Vec<Released<K, V>>) -> Vec<Arc<Flight<K, V>>> {
        let mut writing = Vec::new();
        for flight in self.all() {
            match self.revoke_flight(flight) {
                Revocation::Revoked(flight) => revoked.push(flight),
                Revocation::Writing(flight) => writing.push(flight),
                Revocation::Absent => {}
            }
        }
        writing
    }

    /// Every registered flight, cloned out of the shards one at a time.
    #[cfg(feature = "async")]
    fn all(&self) -> Vec<Arc<Flight<K, V>>> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            all.extend(lock(shard).iter().map(Arc::clone));
        }
        all
    }

    /// For a caller that gave up waiting on `flight` and computed `value` itself: stores it
    /// only if `flight` is still running unrevoked (no invalidation or clear happened since,
    /// and its leader has not finished) and no value is stored yet. Says whether it stored.
    pub(crate) fn store_if_current<S>(
        &self,
        flight: &Arc<Flight<K, V>>,
        key: K,
        value: V,
        store: &S,
    ) -> bool
    where
        S: Store<Key = K, Value = V>,
    {
        let Some(_announced) = self.epochs.announce(flight.epoch) else {
            return false;
        };
        {
            let mut inner = lock(&flight.inner);
            if inner.revoked || !matches!(inner.state, State::Running { .. }) {
                return false;
            }
            inner.side_writers += 1;
        }
        /// Withdraws the side writer, and wakes an invalidation waiting for it.
        struct SideWriter<'a, K, V: Clone>(&'a Flight<K, V>);
        impl<K, V: Clone> Drop for SideWriter<'_, K, V> {
            fn drop(&mut self) {
                let threads = {
                    let mut inner = lock(&self.0.inner);
                    inner.side_writers -= 1;
                    inner.blocked > 0
                };
                self.0.wake(threads, true);
            }
        }
        let _side = SideWriter(flight);
        let _writing = writing::Writing::enter(self);
        let vacant = store.get(&key).is_none();
        if vacant {
            store.insert(key, value);
        }
        vacant
    }

    /// Unregisters every flight and clears the store: no computation in flight when this is
    /// called stores its value afterwards.
    pub(crate) fn clear<S>(&self, store: &S, describe: Describe<'_, K>)
    where
        S: Store<Key = K, Value = V>,
    {
        let _revoked = self.revoke_all(describe);
        store.clear();
        // `_revoked` releases the flights' waiters now that the store is cleared.
    }

    /// Unregisters every flight (a flight has no value yet to test, so none may store) and
    /// removes the stored entries `keep` rejects.
    pub(crate) fn retain<S>(
        &self,
        store: &S,
        keep: &mut dyn FnMut(&K, &V) -> bool,
        describe: Describe<'_, K>,
    ) where
        S: Store<Key = K, Value = V>,
    {
        let _revoked = self.revoke_all(describe);
        store.retain(keep);
    }

    /// Starts a new epoch, unregisters and revokes every flight registered before it, and
    /// waits until none of them, and no writer of the old epoch, is writing (see the type's
    /// docs). The waits for writing leaders are edges of the wait graph: one that would close a
    /// cycle panics (see [`Flight::wait_written`]), and the revoked flights' waiters are then
    /// released by the unwinding. No user code runs here but `describe` (with no lock held)
    /// and the `Drop` of the unregistered flights' keys, after every lock is released.
    fn revoke_all(&self, describe: Describe<'_, K>) -> Vec<Released<K, V>> {
        writing::refuse_self_wait(self);
        let _clearing = self.clearing.acquire();
        let old = self.epochs.advance();
        let new = old.wrapping_add(1);
        let mut revoked = Vec::new();
        let mut writing = Vec::new();
        for shard in self.shards.iter() {
            let mut table = lock(shard);
            // Every old flight is revoked (none may begin a write from now on); the ones not
            // writing are unregistered now, the ones writing stay registered until their write
            // ends, so that an invalidation of their key running meanwhile finds them and
            // waits for them too.
            let idle = table.extract_if(|flight| {
                flight.epoch != new && {
                    let mut inner = lock(&flight.inner);
                    inner.revoked = true;
                    !inner.is_writing()
                }
            });
            revoked.extend(idle.map(Released));
            writing.extend(
                table
                    .iter()
                    .filter(|flight| flight.epoch != new)
                    .map(Arc::clone),
            );
        }
        for flight in writing {
            if let Err(cycle) = flight.wait_written(&|| describe(&flight.key)) {
                would_deadlock(&cycle);
            }
            self.unregister(&flight);
            revoked.push(Released(flight));
        }
        self.epochs.wait_writers(old);
        revoked
    }

    /// The number of flights registered now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

/// Which cache this thread is writing a value into right now, so that user code run by that
/// write (a key's `Hash`, a value's `Drop`) that invalidates or clears the same cache panics
/// instead of waiting for its own write forever.
mod writing {
    use std::cell::Cell;

    #[cfg(not(memoflight_loom))]
    std::thread_local! {
        static WRITING: Cell<usize> = const { Cell::new(0) };
    }
    #[cfg(memoflight_loom)]
    loom::thread_local! {
        static WRITING: Cell<usize> = Cell::new(0);
    }

    /// This thread writes into the cache of `table` until dropped.
    pub(super) struct Writing(usize);

    impl Writing {
        pub(super) fn enter<T>(table: &T) -> Self {
            let previous = WRITING.with(|writing| writing.replace(table as *const T as usize));
            Writing(previous)
        }
    }

    impl Drop for Writing {
        fn drop(&mut self) {
            WRITING.with(|writing| writing.set(self.0));
        }
    }

    /// Panics if this thread is writing into the cache of `table`.
    pub(super) fn refuse_self_wait<T>(table: &T) {
        if WRITING.with(Cell::get) == table as *const T as usize {
            panic!(
                "memoflight: a cache was invalidated or cleared from user code (a key's `Hash` \
                 or `Eq`, a value's `Clone` or `Drop`) run while this thread writes a value into \
                 that same cache; the invalidation would wait for that write, which waits for it"
            );
        }
    }
}

/// The leader's obligation: a flight it registered must end in a `finish_*` or be vacated;
/// dropping a `Leader` (a panic unwinding through it) vacates the flight.
pub(crate) struct Leader<'a, K, V: Clone> {
    table: &'a InFlight<K, V>,
    flight: Arc<Flight<K, V>>,
    settled: bool,
}

impl<K: Hash + Eq + Clone, V: Clone> Leader<'_, K, V> {
    /// The flight this leader runs, for same-task re-entrance checks.
    #[cfg(feature = "async")]
    pub(crate) fn flight(&self) -> &Flight<K, V> {
        &self.flight
    }

    /// The key this leader computes.
    #[cfg(feature = "async")]
    pub(crate) fn key(&self) -> &K {
        &self.flight.key
    }

    /// Stores `value` unless the flight was revoked meanwhile, hands it to the waiters,
    /// unregisters the flight, and gives `value` back. The value is cloned once for the store,
    /// and once more only if callers are waiting. No lock is held while user code runs (the
    /// clones, the key's `Hash` and `Eq` in the store, an old value's `Drop`).
    pub(crate) fn finish_value<S>(mut self, store: &S, value: V) -> V
    where
        S: Store<Key = K, Value = V>,
    {
        // Cloned while the flight still runs: a `Clone` that calls the function with this very
        // key is then caught as same-key recursion instead of waiting for this write.
        let kept = match self.flight.waiters() {
            0 => None,
            _ => Some(std::sync::Arc::new(Outcome::Value(value.clone()))),
        };
        let copy = value.clone();
        let key = self.flight.key.clone();
        let announced = self.table.epochs.announce(self.flight.epoch);
        if announced.is_none() {
            // A clear began since the flight was registered: its value must not be stored.
            self.flight.transition(|_, _| (State::Finished(kept), ()));
        } else if self.flight.begin_storing(kept) {
            let writing = writing::Writing::enter(self.table);
            store.insert(key, copy);
            drop(writing);
            self.flight.end_storing();
        }
        drop(announced);
        self.settled = true;
        self.table.unregister(&self.flight);
        value
    }

    /// Hands `outcome` to the waiters without storing anything (a failure to share, or a value
    /// found in the store), and unregisters the flight.
    pub(crate) fn finish_unstored(mut self, outcome: Outcome<V>) {
        let kept = Some(std::sync::Arc::new(outcome));
        self.flight.transition(|_, _| (State::Finished(kept), ()));
        self.settled = true;
        self.table.unregister(&self.flight);
    }

    /// For a leader whose store has async I/O, once it has a value: hands `outcome` to the
    /// waiters now and, unless the flight was revoked, keeps it registered as `Storing` and
    /// returns true: the leader then writes the value and calls [`stored`](Leader::stored).
    /// Returns false, with the flight finished, if it was revoked: the value must not be
    /// written.
    #[cfg(feature = "async")]
    pub(crate) fn begin_storing(&mut self, outcome: Outcome<V>) -> bool {
        let kept = Some(std::sync::Arc::new(outcome));
        if self.flight.begin_storing(kept) {
            return true;
        }
        self.settled = true;
        self.table.unregister(&self.flight);
        false
    }

    /// Ends a write begun by [`begin_storing`](Leader::begin_storing): unregisters the flight,
    /// which wakes an invalidation waiting for the write.
    #[cfg(feature = "async")]
    pub(crate) fn stored(mut self) {
        self.vacate_now();
    }
}

impl<K, V: Clone> Leader<'_, K, V> {
    /// Unregisters the flight and sends its waiters around again.
    pub(crate) fn vacate(mut self) {
        self.vacate_now();
    }

    /// Unregisters the flight; a running one is vacated, a storing one (whose waiters already
    /// have the value, or will find it in the store) is finished.
    fn vacate_now(&mut self) {
        self.settled = true;
        self.table.unregister(&self.flight);
        self.flight.transition(|previous, _| match previous {
            State::Storing(kept) => (State::Finished(kept), ()),
            _ => (State::Vacated, ()),
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
