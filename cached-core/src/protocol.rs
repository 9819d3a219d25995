//! The caller protocol, written once for every kind of caller and store.
//!
//! A call on a key that missed the store goes through [`Call`], a step machine over the
//! in-flight table of [`crate::flight`]:
//!
//! ```text
//!   join ──▶ Done(result)                      found in the store meanwhile
//!     │
//!     ├──▶ Lead(leader) ── run ──▶ settle      this call computes; its value is stored and
//!     │                                        handed to the waiters (or its failure shared)
//!     └──▶ Wait(flight) ── wait ──▶ waited ─┬─▶ Done(result)        the leader's outcome
//!                                           ├─▶ join again          vacated, revoked, or a
//!                                           │                       failure it cannot share
//!                                           └─▶ Alone ── run ──▶ alone   `wait_timeout` passed
//! ```
//!
//! The protocol decides every transition, counts every call once (a hit or a miss, however
//! many rounds it takes), and turns a wait that can never end into a panic. A *driver* does
//! only what differs between callers: how it waits (blocking a thread, awaiting a
//! notification), how it runs the computation (a closure, a future polled as a leader), and
//! how it reads and writes its store (in memory while joining; with I/O around the lead, see
//! [`Join::Unlooked`]). The drivers are [`Cache`](crate::Cache)'s blocking one
//! (`cache.rs`), its async one (`future.rs`) and [`AsyncCache`](crate::AsyncCache)'s
//! (`async_cache.rs`); a new backend is a new driver of a few lines per step.

use crate::engine::Engine;
use crate::flight::{Flight, Leader, Outcome, Role, Waited};
use crate::origin::Origin;
use crate::output::{Mode, Sharing};
use crate::stats::Counters;
use crate::store::Store;
use crate::sync::{current_thread, Arc};
use crate::trace;
use std::hash::Hash;
use std::marker::PhantomData;

/// A store read while joining: the value and whether it is due for a refresh.
pub(crate) type Look<'s, K, V> = &'s (dyn Fn(&K) -> Option<(V, bool)> + Sync);

/// How a caller joins a key's flight.
pub(crate) enum Join<'s, K, V> {
    /// A blocking caller: reads the store while joining; its thread is the leader (so that a
    /// wait for a flight that this thread leads, or a wait cycle, is caught).
    Thread(Look<'s, K, V>),
    /// An async task over an in-memory store: reads the store while joining; a task has no
    /// thread of its own (same-task re-entrance is caught by `polling.rs`).
    #[cfg(feature = "async")]
    Task(Look<'s, K, V>),
    /// An async task over a store with I/O, which cannot be read while joining: the leader
    /// reads it after registering and reports what it found through [`Call::looked`].
    #[cfg(feature = "async")]
    Unlooked,
    /// An async task over a store with I/O whose first look found a value due for a refresh:
    /// joins with a look that serves that value (a flight refreshing it is not waited for);
    /// as a leader it refreshes, and reports through [`Call::looked`] whether it did.
    #[cfg(feature = "async")]
    Refreshing(Look<'s, K, V>),
}

/// What the driver does next.
pub(crate) enum Step<'e, K, V: Clone, R> {
    /// The call's result.
    Done(R, Origin),
    /// Run the computation as the key's leader, then [`Call::settle`] (or, for a store with
    /// I/O, [`Call::looked`] first and the write after).
    Lead(Leader<'e, K, V>),
    /// Wait for this flight, then [`Call::waited`].
    Wait(Arc<Flight<K, V>>),
    /// The wait timed out: run the computation alone, then [`Call::alone`].
    Alone(Arc<Flight<K, V>>),
}

/// One call's way through the protocol: its key, whether it was counted, and how its
/// function's failures are shared.
pub(crate) struct Call<'e, K, V, R, M> {
    engine: &'e Engine<K, V>,
    join: Join<'e, K, V>,
    /// Held while the call waits or computes alone; handed to the table while it joins.
    key: Option<K>,
    /// Whether this call was counted yet, as a hit or a miss.
    counted: bool,
    /// Whether this call was counted as a wait (once, however many flights it waits for).
    waited: bool,
    sharing: Option<Sharing<R>>,
    subject: trace::Subject,
    mode: PhantomData<fn() -> M>,
}

impl<'e, K, V, R, M> Call<'e, K, V, R, M>
where
    K: Hash + Eq + Clone,
    V: Clone,
    M: Mode<R, Value = V>,
{
    pub(crate) fn new(
        engine: &'e Engine<K, V>,
        key: K,
        sharing: Option<Sharing<R>>,
        join: Join<'e, K, V>,
    ) -> Self {
        let subject = trace::Subject::new(engine.name, || engine.key_text(&key));
        Call {
            engine,
            join,
            key: Some(key),
            counted: false,
            waited: false,
            sharing,
            subject,
            mode: PhantomData,
        }
    }

    /// After a first look (a store with I/O) found a value due for a refresh: the call joins
    /// with `look`, which serves that value, so that a flight already refreshing it is not
    /// waited for, and otherwise this call leads the refresh ([`Join::Refreshing`]); `None`
    /// goes back to joining without a look (the value is gone).
    #[cfg(feature = "async")]
    pub(crate) fn serve_while_refreshing(&mut self, look: Option<Look<'e, K, V>>) {
        self.join = match look {
            Some(look) => Join::Refreshing(look),
            None => Join::Unlooked,
        };
    }

    /// For traces: the function and key.
    pub(crate) fn subject(&self) -> &trace::Subject {
        &self.subject
    }

    /// The call's key while it waits or computes alone (and before it first joins).
    pub(crate) fn key(&self) -> &K {
        self.key
            .as_ref()
            .expect("memoflight: the call holds its key between steps")
    }

    /// The computation this call waits for, as deadlock reports show it.
    pub(crate) fn describe(&self) -> String {
        self.engine.describe(self.key())
    }

    /// A value found by the driver's own look before joining (a store with I/O).
    #[cfg(feature = "async")]
    pub(crate) fn hit(&mut self, value: V) -> (R, Origin) {
        self.count(true);
        (M::rebuild(value), Origin::Hit)
    }

    /// Counts the call as a wait, once however many flights it waits for: in this process,
    /// or, for a leader, another process's computation (a shared store's
    /// [`lead`](crate::AsyncStore::lead)).
    pub(crate) fn count_wait(&mut self) {
        if !std::mem::replace(&mut self.waited, true) {
            self.engine.counters.wait();
        }
    }

    /// Joins the key's flight, or registers one led by this call.
    pub(crate) fn join(&mut self) -> Step<'e, K, V, R> {
        let key = self
            .key
            .take()
            .expect("memoflight: a call joins with its key");
        let flights = &self.engine.flights;
        let role = match &self.join {
            Join::Thread(look) => flights.join_or_lead(key, look, Some(current_thread())),
            #[cfg(feature = "async")]
            Join::Task(look) | Join::Refreshing(look) => flights.join_or_lead(key, look, None),
            #[cfg(feature = "async")]
            Join::Unlooked => flights.join_or_lead(key, |_: &K| None, None),
        };
        match role {
            Role::Found(value) => {
                self.count(true);
                Step::Done(M::rebuild(value), Origin::Hit)
            }
            Role::Lead(leader) => {
                #[cfg(feature = "async")]
                let looked = !matches!(self.join, Join::Unlooked | Join::Refreshing(_));
                #[cfg(not(feature = "async"))]
                let looked = true;
                if looked {
                    self.count(false);
                }
                Step::Lead(leader)
            }
            Role::Wait(flight, key) => {
                self.key = Some(key);
                self.count(false);
                self.count_wait();
                Step::Wait(flight)
            }
        }
    }

    /// What a waiter does once its wait on `flight` ended.
    pub(crate) fn waited(
        &mut self,
        flight: Arc<Flight<K, V>>,
        waited: Waited<V>,
    ) -> Step<'e, K, V, R> {
        match waited {
            Waited::Finished(Outcome::Value(value)) => {
                Step::Done(M::rebuild(value), Origin::Waited)
            }
            Waited::Finished(Outcome::Failure(failure)) => {
                match self.sharing.as_ref().and_then(|s| (s.unshare)(&failure)) {
                    Some(result) => Step::Done(result, Origin::Waited),
                    None => self.join(),
                }
            }
            Waited::Vacated => self.join(),
            Waited::OwnThreadLeads => self.same_key_recursion(),
            Waited::Deadlock(cycle) => deadlock(&cycle),
            Waited::TimedOut => {
                self.engine.counters.timeout();
                Step::Alone(flight)
            }
        }
    }

    /// For a leader that joined without looking ([`Join::Unlooked`]): what its look at the
    /// store found. A value ends the flight (its waiters get it) and the call; otherwise the
    /// leader computes.
    #[cfg(feature = "async")]
    pub(crate) fn looked(
        &mut self,
        leader: Leader<'e, K, V>,
        found: Option<V>,
    ) -> Result<Leader<'e, K, V>, (R, Origin)> {
        match found {
            Some(value) => {
                self.count(true);
                leader.finish_unstored(Outcome::Value(value.clone()));
                Err((M::rebuild(value), Origin::Hit))
            }
            None => {
                self.count(false);
                Ok(leader)
            }
        }
    }

    /// Counts a computation about to run, as the leader or alone; the guard counts a panic or
    /// a cancellation if it is dropped before [`Computing::ran`].
    pub(crate) fn computing(&self, leads: bool) -> Computing<'_> {
        self.engine.counters.execution();
        if leads {
            trace::computing(&self.subject);
        }
        Computing {
            counters: &self.engine.counters,
            subject: &self.subject,
            clock: leads.then(trace::Clock::start),
        }
    }

    /// The leader's result, over an in-memory store: a value is stored and handed to the
    /// waiters, a failure shared with them or left for them to retry.
    pub(crate) fn settle<S>(&self, leader: Leader<'e, K, V>, result: R, store: &S) -> (R, Origin)
    where
        S: Store<Key = K, Value = V>,
    {
        let result = match M::split(result) {
            Ok(value) => {
                let before = trace::evictions_before(|| store.evictions());
                let value = leader.finish_value(store, value);
                trace::evicted(&self.subject, before, || store.evictions());
                M::rebuild(value)
            }
            Err(result) => self.fail(leader, result),
        };
        (result, Origin::Computed)
    }

    /// A leader's result that is not a value to store (an `Err`, a `None`): counted, handed to
    /// the waiters if they can share it (a `Clone` error), otherwise they go around again.
    pub(crate) fn fail(&self, leader: Leader<'e, K, V>, result: R) -> R {
        self.engine.counters.error();
        match self.sharing.and_then(|s| (s.share)(&result)) {
            Some(failure) => leader.finish_unstored(Outcome::Failure(failure)),
            None => {
                trace::handed_off(&self.subject, "failed with an error that is not Clone");
                leader.vacate()
            }
        }
        result
    }

    /// The result of a computation run alone after the wait timed out. A value goes to `keep`
    /// with the key (an in-memory store keeps it only if the flight given up on still runs);
    /// a failure is counted.
    pub(crate) fn alone(&mut self, result: R, keep: impl FnOnce(K, &V)) -> (R, Origin) {
        let result = match M::split(result) {
            Ok(value) => {
                let key = self
                    .key
                    .take()
                    .expect("memoflight: a call computes alone with its key");
                keep(key, &value);
                M::rebuild(value)
            }
            Err(result) => {
                self.engine.counters.error();
                result
            }
        };
        (result, Origin::Computed)
    }

    /// Counts the call once, as a hit or a miss, however many rounds it takes.
    fn count(&mut self, hit: bool) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        if hit {
            self.engine.counters.hit();
        } else {
            self.engine.counters.miss();
            trace::miss(&self.subject);
        }
    }

    #[cold]
    #[inline(never)]
    fn same_key_recursion(&self) -> ! {
        panic!(
            "memoflight: `{name}` was called with key {key} while the same thread (or task) was \
             computing `{name}` for that key; waiting for its own result would never end \
             (same-key recursion)",
            name = self.engine.name,
            key = self.engine.key_text(self.key()),
        )
    }
}

impl<K, V, R, M> Drop for Call<'_, K, V, R, M> {
    /// A call dropped before it was counted (an async leader over a store with I/O, cancelled
    /// during its look after registering) had missed its first look: a miss.
    fn drop(&mut self) {
        if !self.counted {
            self.engine.counters.miss();
        }
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

/// A computation running; if it is dropped before [`ran`](Computing::ran), the computation
/// panicked (or, for a future, was dropped: a cancellation), and its flight is handed off.
pub(crate) struct Computing<'a> {
    counters: &'a Counters,
    subject: &'a trace::Subject,
    /// For a leader: when it started, for the trace of its end.
    clock: Option<trace::Clock>,
}

impl Computing<'_> {
    /// The computation returned.
    pub(crate) fn ran(self) {
        if let Some(clock) = &self.clock {
            trace::computed(self.subject, clock);
        }
        std::mem::forget(self);
    }
}

impl Drop for Computing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.counters.panic();
            trace::handed_off(self.subject, "panicked");
        } else {
            self.counters.cancellation();
            trace::handed_off(self.subject, "was cancelled");
        }
    }
}
