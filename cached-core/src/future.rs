//! The async driver of the caller protocol ([`crate::protocol`]), feature `async`: how an
//! async caller waits (awaiting a notification, with a timer for `wait_timeout`) and runs its
//! computation (a future, polled as the flight's leader). [`Cache::get_or_compute_async`] and
//! [`AsyncCache`](crate::AsyncCache) both use it.
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

use crate::cache::Cache;
use crate::flight::{Enlisted, Flight, Waited};
use crate::origin::Origin;
use crate::output::{CacheAll, Mode, Sharing};
use crate::protocol::{Call, Join, Step};
use crate::store::Store;
use crate::trace;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

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
        F: Future<Output = S::Value>,
    {
        if let Some(value) = self.lookup(&key) {
            return value;
        }
        self.compute_async::<S::Value, CacheAll, F>(key, compute, None)
            .await
            .0
    }

    /// The miss path of an async caller, after [`lookup`](Cache::lookup) missed.
    pub(crate) async fn compute_async<R, M, F>(
        &self,
        key: S::Key,
        compute: impl FnOnce() -> F,
        sharing: Option<Sharing<R>>,
    ) -> (R, Origin)
    where
        M: Mode<R, Value = S::Value>,
        F: Future<Output = R>,
    {
        let look = |key: &S::Key| self.store.get_aged(key);
        let mut call = Call::<_, _, R, M>::new(&self.engine, key, sharing, Join::Task(&look));
        let mut step = call.join();
        loop {
            step = match step {
                Step::Done(result, origin) => return (result, origin),
                Step::Lead(leader) => {
                    let result = run(&call, Some(leader.flight()), compute).await;
                    return call.settle(leader, result, &self.store);
                }
                Step::Wait(flight) => {
                    let waited = wait(&call, &flight, self.engine.wait_timeout).await;
                    call.waited(flight, waited)
                }
                Step::Alone(flight) => {
                    let result = run(&call, None, compute).await;
                    return call.alone(result, |key, value| {
                        let flights = &self.engine.flights;
                        flights.store_if_current(&flight, key, value.clone(), &self.store);
                    });
                }
            }
        }
    }
}

/// Waits for `flight` without blocking the thread, for `timeout` at most (with the `tokio`
/// feature; without it, as long as the computation takes).
pub(crate) async fn wait<K, V, R, M>(
    call: &Call<'_, K, V, R, M>,
    flight: &Flight<K, V>,
    timeout: Option<Duration>,
) -> Waited<V>
where
    K: Hash + Eq + Clone,
    V: Clone,
    M: Mode<R, Value = V>,
{
    let clock = trace::Clock::start();
    #[cfg(feature = "tokio")]
    let waited = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, wait_outcome(flight))
            .await
            .unwrap_or(Waited::TimedOut),
        None => wait_outcome(flight).await,
    };
    #[cfg(not(feature = "tokio"))]
    let waited = {
        let _ = timeout;
        wait_outcome(flight).await
    };
    trace::waited(call.subject(), &clock);
    waited
}

/// Waits, without blocking the thread, until `flight` has an outcome for its waiters. A
/// caller whose own task leads this flight (it is being polled from inside the leader's
/// computation) gets `OwnThreadLeads`. Dropping the future mid-wait leaves nothing behind.
pub(crate) async fn wait_outcome<K, V: Clone>(flight: &Flight<K, V>) -> Waited<V> {
    loop {
        // Registered before the state is read, so a change in between is not missed.
        let mut changed = std::pin::pin!(flight.tasks().notified());
        changed.as_mut().enable();
        let counted = match flight.enlist(|| crate::polling::is_polled(flight)) {
            Enlisted::Done(waited) => return waited,
            Enlisted::Counted => Some(Counted(flight)),
            Enlisted::Writing => None,
        };
        changed.await;
        // Uncounted if the flight still runs (a spurious wake-up); once it has moved on, its
        // waiters are no longer counted.
        drop(counted);
    }
}

/// A task counted among a flight's waiters; uncounted when it wakes or is dropped (a
/// cancelled wait), if the flight still runs.
struct Counted<'a, K, V: Clone>(&'a Flight<K, V>);

impl<K, V: Clone> Drop for Counted<'_, K, V> {
    fn drop(&mut self) {
        self.0.uncount();
    }
}

/// Waits, without blocking the thread, until no write of `flight`'s value is in progress.
pub(crate) async fn wait_written<K, V: Clone>(flight: &Flight<K, V>) {
    loop {
        // Registered before the state is read, so a change in between is not missed.
        let mut changed = std::pin::pin!(flight.tasks().notified());
        changed.as_mut().enable();
        if !flight.is_writing() {
            return;
        }
        changed.await;
    }
}

/// Runs the computation: as the leader of `flight` (pushed on the polling stack while it is
/// polled, so that a future awaiting its own key is caught), or alone (`None`).
pub(crate) async fn run<K, V, R, M, F>(
    call: &Call<'_, K, V, R, M>,
    flight: Option<&Flight<K, V>>,
    compute: impl FnOnce() -> F,
) -> R
where
    K: Hash + Eq + Clone,
    V: Clone,
    M: Mode<R, Value = V>,
    F: Future<Output = R>,
{
    let computing = call.computing(flight.is_some());
    let result = match flight {
        Some(flight) => {
            let id = crate::polling::address(flight);
            let mut computation = std::pin::pin!(compute());
            std::future::poll_fn(|cx| {
                let _polling = crate::polling::Polling::enter(id);
                computation.as_mut().poll(cx)
            })
            .await
        }
        None => compute().await,
    };
    computing.ran();
    result
}
