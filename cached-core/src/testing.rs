//! Race regression tests for your own caches (feature `testing`, for dev-dependencies):
//! release many callers at the same instant and count what each got, and hammer a key with
//! readers while it is invalidated and count stale reads.
//!
//! # A stampede, with and without single-flight
//!
//! The bug memoflight exists to end: a hand-rolled cache that checks, unlocks, loads and
//! stores runs the load once per concurrent caller. [`stampede`] shows it, and shows the
//! `#[cached]` version running it once:
//!
//! ```
//! use memoflight::testing::stampede;
//! use memoflight::{cached, Origin};
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//!
//! fn load(tenant: u32) -> Vec<String> {
//!     std::thread::sleep(Duration::from_millis(50));
//!     vec![format!("rules of {tenant}")]
//! }
//!
//! // Check, then act: every caller that checks before the first one stores also loads.
//! static HAND_ROLLED: Mutex<Option<HashMap<u32, Vec<String>>>> = Mutex::new(None);
//! fn rules_by_hand(tenant: u32) -> (Vec<String>, Origin) {
//!     if let Some(rules) = HAND_ROLLED.lock().unwrap().get_or_insert_with(HashMap::new).get(&tenant) {
//!         return (rules.clone(), Origin::Hit);
//!     }
//!     let rules = load(tenant);
//!     HAND_ROLLED.lock().unwrap().get_or_insert_with(HashMap::new).insert(tenant, rules.clone());
//!     (rules, Origin::Computed)
//! }
//!
//! #[cached]
//! fn rules(tenant: u32) -> Vec<String> {
//!     load(tenant)
//! }
//!
//! let by_hand = stampede(8, |_| rules_by_hand(1));
//! assert!(by_hand.computed() > 1, "several of the 8 callers loaded");
//!
//! let before = rules_cache().stats();
//! let memoized = stampede(8, |_| rules_with_origin(1));
//! assert_eq!((memoized.computed(), memoized.panics()), (1, 0));
//! // The others waited for it (a caller released late finds its value: a hit).
//! assert_eq!(memoized.waited() + memoized.hits(), 7);
//! assert_eq!((rules_cache().stats() - before).executions, 1);
//! ```
//!
//! # Invalidation racing readers
//!
//! [`invalidation_race`] changes the source of truth and invalidates, round after round, while
//! readers call the function; a read that starts after an invalidation returned must see that
//! round's version or a later one:
//!
//! ```
//! use memoflight::cached;
//! use memoflight::testing::invalidation_race;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! static VERSION: AtomicU64 = AtomicU64::new(0);
//!
//! #[cached]
//! fn config(name: &str) -> u64 {
//!     let _ = name;
//!     VERSION.load(Ordering::SeqCst)
//! }
//!
//! let race = invalidation_race(
//!     4,
//!     200,
//!     || config("db"),
//!     |round| {
//!         VERSION.store(round, Ordering::SeqCst);
//!         config_cache().invalidate("db");
//!     },
//! );
//! assert_eq!(race.stale_reads, 0);
//! assert!(race.reads > 0);
//! ```

use crate::origin::Origin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What each caller of a [`stampede`] got, in caller order, and how long the stampede took.
#[derive(Debug)]
pub struct Report<T> {
    /// Each caller's value and [`Origin`], or its panic's message.
    pub results: Vec<Result<(T, Origin), String>>,
    /// From the release of the callers to the return of the last.
    pub wall: Duration,
}

impl<T> Report<T> {
    /// Callers whose call ran the function ([`Origin::Computed`]).
    ///
    /// See the [module docs](self) for an example.
    pub fn computed(&self) -> usize {
        self.count(Origin::Computed)
    }

    /// Callers that waited for another caller's computation ([`Origin::Waited`]).
    ///
    /// See the [module docs](self) for an example.
    pub fn waited(&self) -> usize {
        self.count(Origin::Waited)
    }

    /// Callers answered from the store ([`Origin::Hit`]).
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn double(n: u32) -> u32 {
    ///     n * 2
    /// }
    ///
    /// double(4);
    /// assert_eq!(stampede(3, |_| double_with_origin(4)).hits(), 3);
    /// ```
    pub fn hits(&self) -> usize {
        self.count(Origin::Hit)
    }

    /// Callers that got an expired value because the computation failed
    /// ([`Origin::Fallback`], `#[cached(result_fallback)]`).
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn double(n: u32) -> u32 {
    ///     n * 2
    /// }
    ///
    /// assert_eq!(stampede(2, |_| double_with_origin(4)).fallbacks(), 0);
    /// ```
    pub fn fallbacks(&self) -> usize {
        self.count(Origin::Fallback)
    }

    /// Callers whose call panicked (their messages are in [`results`](Report::results)).
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn fails(n: u32) -> u32 {
    ///     panic!("no {n}")
    /// }
    ///
    /// let report = stampede(2, |_| fails_with_origin(1));
    /// assert_eq!(report.panics(), 2);
    /// assert!(report.results[0].as_ref().unwrap_err().contains("no 1"));
    /// ```
    pub fn panics(&self) -> usize {
        self.results.iter().filter(|result| result.is_err()).count()
    }

    /// The values returned, in caller order (panicked callers left out).
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn triple(n: u32) -> u32 {
    ///     n * 3
    /// }
    ///
    /// let report = stampede(4, |_| triple_with_origin(2));
    /// assert!(report.values().all(|value| *value == 6));
    /// ```
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.results
            .iter()
            .filter_map(|result| result.as_ref().ok().map(|(value, _)| value))
    }

    fn count(&self, origin: Origin) -> usize {
        self.results
            .iter()
            .filter(|result| matches!(result, Ok((_, o)) if *o == origin))
            .count()
    }
}

/// Runs `call(i)` for `i` in `0..callers`, each on its own thread, all released at the same
/// instant (a barrier), and reports each result. `call` returns the value and its [`Origin`]:
/// call the `_with_origin` twin that `#[cached]` generates. A caller's panic is caught and
/// reported, not propagated.
///
/// # Panics
///
/// If a thread cannot be spawned (the callers already started are released first).
///
/// See the [module docs](self) for an example.
pub fn stampede<T: Send>(callers: usize, call: impl Fn(usize) -> (T, Origin) + Sync) -> Report<T> {
    let gate = Gate::default();
    let (results, wall) = std::thread::scope(|scope| {
        // Opened however this scope ends: a failed spawn leaves no caller waiting for it.
        let opened = gate.opener();
        let threads: Vec<_> = (0..callers)
            .map(|i| {
                let (gate, call) = (&gate, &call);
                scope.spawn(move || {
                    gate.wait();
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(i)))
                        .map_err(|payload| panic_message(payload.as_ref()))
                })
            })
            .collect();
        drop(opened);
        let start = Instant::now();
        let results: Vec<_> = threads
            .into_iter()
            .map(|thread| thread.join().expect("the caller's panic was caught"))
            .collect();
        (results, start.elapsed())
    });
    Report { results, wall }
}

/// [`stampede`] for async functions: the `callers` futures of `call(i)` are polled together
/// from the first poll on (any executor), each panic caught and reported.
///
/// ```
/// use memoflight::{cached, testing::stampede_async};
///
/// #[cached]
/// async fn page(n: u32) -> String {
///     // I/O would go here; yielding once lets the other callers arrive meanwhile.
///     let mut yielded = false;
///     std::future::poll_fn(|cx| {
///         if std::mem::replace(&mut yielded, true) {
///             return std::task::Poll::Ready(());
///         }
///         cx.waker().wake_by_ref();
///         std::task::Poll::Pending
///     })
///     .await;
///     format!("page {n}")
/// }
///
/// let report = futures::executor::block_on(stampede_async(8, |_| page_with_origin(1)));
/// assert_eq!((report.computed(), report.waited()), (1, 7));
/// ```
#[cfg(feature = "async")]
pub async fn stampede_async<T, F>(callers: usize, call: impl Fn(usize) -> F) -> Report<T>
where
    F: std::future::Future<Output = (T, Origin)>,
{
    use std::pin::Pin;
    use std::task::Poll;

    let mut calls: Vec<Pin<Box<F>>> = (0..callers).map(|i| Box::pin(call(i))).collect();
    let mut results: Vec<Option<Result<(T, Origin), String>>> =
        (0..callers).map(|_| None).collect();
    let start = Instant::now();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (call, result) in calls.iter_mut().zip(results.iter_mut()) {
            if result.is_some() {
                continue;
            }
            let polled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.as_mut().poll(cx)));
            match polled {
                Ok(Poll::Ready(out)) => *result = Some(Ok(out)),
                Ok(Poll::Pending) => pending = true,
                Err(payload) => *result = Some(Err(panic_message(payload.as_ref()))),
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    Report {
        results: results.into_iter().flatten().collect(),
        wall: start.elapsed(),
    }
}

/// What an [`invalidation_race`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Race {
    /// Reads made by all the readers.
    pub reads: u64,
    /// Reads that started after round `r`'s invalidation returned and still saw a version
    /// older than `r`.
    pub stale_reads: u64,
}

/// Runs `rounds` rounds of `change(round)` (for `round` in `1..=rounds`: make `round` the
/// current version of the source of truth, then invalidate the cached value) on this thread,
/// while `readers` threads call `read()` (which returns the version it got, through the
/// cache) until the rounds are done. A read that starts after `change(r)` returned and returns
/// a version below `r` is stale: the repopulation window this crate closes.
///
/// # Panics
///
/// If `change` or a reader panics, or a thread cannot be spawned (the readers are stopped
/// first).
///
/// See the [module docs](self) for an example.
pub fn invalidation_race(
    readers: usize,
    rounds: u64,
    read: impl Fn() -> u64 + Sync,
    mut change: impl FnMut(u64),
) -> Race {
    let completed = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let (reads, stale) = (AtomicU64::new(0), AtomicU64::new(0));
    let gate = Gate::default();
    std::thread::scope(|scope| {
        // However the rounds end (a panic in `change` included), the readers stop.
        let _stop = SetOnDrop(&done);
        let opened = gate.opener();
        for _ in 0..readers {
            scope.spawn(|| {
                gate.wait();
                while !done.load(SeqCst) {
                    let floor = completed.load(SeqCst);
                    let version = read();
                    reads.fetch_add(1, SeqCst);
                    if version < floor {
                        stale.fetch_add(1, SeqCst);
                    }
                }
            });
        }
        drop(opened);
        for round in 1..=rounds {
            change(round);
            completed.store(round, SeqCst);
            std::thread::yield_now();
        }
    });
    Race {
        reads: reads.into_inner(),
        stale_reads: stale.into_inner(),
    }
}

/// Holds threads until it is opened (by dropping its [`Opener`], however the opener's scope
/// ends).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*open {
            open = self
                .opened
                .wait(open)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn opener(&self) -> Opener<'_> {
        Opener(self)
    }
}

struct Opener<'g>(&'g Gate);

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        *self
            .0
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.0.opened.notify_all();
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'f>(&'f AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}
