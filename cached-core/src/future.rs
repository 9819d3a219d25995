//! The async path (feature `async`): the same single-flight protocol as [`crate::flight`], with
//! callers that await instead of blocking.
//!
//! # Cancellation
//!
//! A leader's computation is a future the leader's caller polls. If that caller's future is
//! dropped before the computation finishes (a timeout, a `select!` that took another branch,
//! an aborted task), its [`Leader`] guard is dropped with it and vacates the flight, exactly as
//! a panic does: the flight is unregistered, one waiting task leads the next attempt, the others
//! wait for it, and nothing is left in the in-flight table. A dropped *waiter* only uncounts
//! itself. Abandoned computations are counted in [`Stats::cancellations`](crate::Stats).
//!
//! # Same-task re-entrance
//!
//! A task cannot be told by its thread (it may move between threads). Instead, while a leader
//! polls its computation, the flight is pushed on a thread-local stack; a waiter that finds the
//! flight it would wait for on that stack is being polled from inside that very computation
//! (the future awaits its own key) and panics instead of waiting forever.
//!
//! Waiting needs no particular runtime: it uses tokio's `sync::Notify`, which works on any
//! executor. Only `wait_timeout` needs a timer, and is honoured for async callers with the
//! `tokio` feature.

use crate::cache::{AfterWait, Cache, Origin};
use crate::flight::{Flight, Leader, Role, Waited};
use crate::output::{CacheAll, Mode, Sharing};
use crate::stats::Counters;
use crate::store::Store;
use crate::trace;
use std::future::Future;

/// Counts what ends a computation early when dropped: a panic if unwinding, else a
/// cancellation (its future was dropped). Forgotten when the computation completes.
struct CountAbandoned<'a>(&'a Counters, &'a trace::Subject);

impl Drop for CountAbandoned<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panic();
            trace::handed_off(self.1, "panicked");
        } else {
            self.0.cancellation();
            trace::handed_off(self.1, "was cancelled");
        }
    }
}

impl<S: Store> Cache<S> {
    /// The async [`get_or_compute`](Cache::get_or_compute): returns the value cached for
    /// `key`, or awaits `compute()`, caches its output and returns it.
    ///
    /// # Concurrent calls on the same key
    ///
    /// Exactly one caller awaits `compute`; the others wait (without blocking their thread)
    /// and get a clone of its value. If the computing caller is dropped midway, one waiter
    /// takes over (see [`Stats::cancellations`](crate::Stats::cancellations)).
    ///
    /// # Panics
    ///
    /// If `compute` panics, the panic propagates to this caller only. Panics at once if
    /// `compute` awaits the same key on this cache.
    ///
    /// ```
    /// use memoflight::{Cache, Unbounded};
    ///
    /// let cache = Cache::new("pages", Unbounded::<u32, String>::new());
    /// let page = futures::executor::block_on(
    ///     cache.get_or_compute_async(7, || async { "page 7".to_string() }),
    /// );
    /// assert_eq!(page, "page 7");
    /// assert_eq!(cache.stats().executions, 1);
    /// ```
    pub async fn get_or_compute_async<F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
    ) -> S::Value
    where
        S::Key: Clone,
        F: Future<Output = S::Value>,
    {
        if let Some(value) = self.__lookup(&key) {
            return value;
        }
        self.__compute_async::<S::Value, CacheAll, F>(key, compute, None)
            .await
            .0
    }

    /// The async miss path: join the key's computation or lead it. For generated code, after
    /// [`__lookup`](Cache::__lookup) missed.
    #[doc(hidden)]
    pub async fn __compute_async<R, M, F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        S::Key: Clone,
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        let subject = trace::Subject::new(self.name, || self.key_text(&key));
        let mut key = key;
        let mut counted = false;
        loop {
            let role = self.flights.join_or_lead_async(key, &self.store);
            self.count(&role, &mut counted, &subject);
            match role {
                Role::Found(value) => return (M::rebuild(value), Origin::Hit),
                Role::Lead(leader) => {
                    let result = self
                        .lead_async::<R, M, F>(leader, compute, sharing, &subject)
                        .await;
                    return (result, Origin::Computed);
                }
                Role::Wait(flight, returned) => {
                    let waited = self.wait_counted(&flight, &subject).await;
                    match self.after_wait::<R, M>(waited, &sharing, returned) {
                        AfterWait::Done(result) => return (result, Origin::Waited),
                        AfterWait::Retry(returned) => key = returned,
                        AfterWait::Alone(returned) => {
                            let result = self.run_alone(compute, &subject).await;
                            let result = self.keep_alone::<R, M>(&flight, returned, result);
                            return (result, Origin::Computed);
                        }
                    }
                }
            }
        }
    }

    /// A caller's wait for another caller's `flight`: counted, timed for the trace.
    pub(crate) async fn wait_counted(
        &self,
        flight: &Flight<S::Key, S::Value>,
        subject: &trace::Subject,
    ) -> Waited<S::Value> {
        self.counters.wait();
        let clock = trace::Clock::start();
        let waited = self.wait_async(flight).await;
        trace::waited(subject, &clock);
        waited
    }

    /// Waits for `flight`, up to the cache's `wait_timeout` when a timer is available.
    async fn wait_async(&self, flight: &Flight<S::Key, S::Value>) -> Waited<S::Value> {
        #[cfg(feature = "tokio")]
        if let Some(timeout) = self.wait_timeout {
            return tokio::time::timeout(timeout, flight.wait_async())
                .await
                .unwrap_or(Waited::TimedOut);
        }
        flight.wait_async().await
    }

    async fn lead_async<R, M, F>(
        &self,
        leader: Leader<'_, S::Key, S::Value>,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
        subject: &trace::Subject,
    ) -> R
    where
        S::Key: Clone,
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        let result = self.run_as_leader(leader.flight(), compute, subject).await;
        self.settle::<R, M>(leader, result, sharing, subject)
    }

    /// Runs a leader's computation of `flight`: counted, traced, and polled with the flight
    /// marked as being polled on this thread, which is how a same-task re-entrance is caught.
    pub(crate) async fn run_as_leader<R, F>(
        &self,
        flight: &Flight<S::Key, S::Value>,
        compute: impl FnOnce() -> F,
        subject: &trace::Subject,
    ) -> R
    where
        F: Future<Output = R>,
    {
        self.counters.execution();
        trace::computing(subject);
        let clock = trace::Clock::start();
        let abandoned = CountAbandoned(&self.counters, subject);
        let id = crate::polling::address(flight);
        let mut computation = std::pin::pin!(compute());
        let result = std::future::poll_fn(|cx| {
            let _polling = crate::polling::Polling::enter(id);
            computation.as_mut().poll(cx)
        })
        .await;
        std::mem::forget(abandoned);
        trace::computed(subject, &clock);
        result
    }

    /// Runs the computation outside single-flight, for a caller whose wait timed out.
    pub(crate) async fn run_alone<R, F>(
        &self,
        compute: impl FnOnce() -> F,
        subject: &trace::Subject,
    ) -> R
    where
        F: Future<Output = R>,
    {
        self.counters.execution();
        let abandoned = CountAbandoned(&self.counters, subject);
        let result = compute().await;
        std::mem::forget(abandoned);
        result
    }
}
