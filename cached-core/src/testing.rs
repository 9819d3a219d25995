//! Race regression tests for your own caches (feature `testing`, for dev-dependencies):
//! release many callers at the same instant and count what each got, and hammer a key with
//! readers while it is invalidated and count stale reads.
//!
//! - [`stampede`]: callers on threads, released by a barrier.
//! - [`stampede_async`]: futures polled in turn by one future, on any executor.
//! - [`stampede_tokio`] (feature `tokio`): each caller a tokio task, released by a barrier,
//!   running in parallel on a multi-thread runtime.
//! - [`invalidation_race`]: readers against a thread that changes the data and invalidates.
//!
//! Each stampede returns a [`Report`]: every caller's value and [`Origin`] (or its panic's
//! message), and the wall time.
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
//! # A fresh cache in a shared process
//!
//! The tests of one binary share each `#[cached]` function's cache. To start from an empty
//! cache, `clear()` it; to count only what one test did, take a [`Stats`](crate::Stats)
//! snapshot as a baseline and subtract it from a later one:
//!
//! ```
//! use memoflight::{cached, testing::stampede};
//! use std::time::Duration;
//!
//! #[cached]
//! fn price(item: u32) -> u64 {
//!     std::thread::sleep(Duration::from_millis(20));
//!     u64::from(item) * 100
//! }
//!
//! price(7); // another test's call: without `clear`, every caller below would hit
//!
//! price_cache().clear();
//! let before = price_cache().stats();
//! let report = stampede(4, |_| price_with_origin(7));
//! let delta = price_cache().stats() - before;
//! assert_eq!((delta.executions, delta.hits + delta.misses), (1, 4));
//! assert_eq!(delta.waits as usize, report.waited());
//! assert_eq!(report.computed(), 1);
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
//!     |_reader| config("db"),
//!     |round| {
//!         VERSION.store(round, Ordering::SeqCst);
//!         config_cache().invalidate("db");
//!     },
//! );
//! assert_eq!(race.stale_reads, 0);
//! assert!(race.reads >= 200, "a read between every two rounds");
//! ```

use crate::origin::Origin;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What each caller of a stampede ([`stampede`], [`stampede_async`], [`stampede_tokio`]) got,
/// in caller order, and how long the stampede took.
///
/// What the callers did, counted from their [`Origin`]s: [`computed`](Report::computed) (the
/// executions they ran), [`waited`](Report::waited), [`hits`](Report::hits),
/// [`fallbacks`](Report::fallbacks); and [`panics`](Report::panics), and
/// [`errors`](Report::errors) when the function returns a `Result`.
///
/// ```
/// use memoflight::{cached, testing::stampede};
/// use std::time::Duration;
///
/// #[cached]
/// fn parse(text: &'static str) -> Result<u32, String> {
///     std::thread::sleep(Duration::from_millis(20));
///     text.parse().map_err(|_| format!("not a number: {text}"))
/// }
///
/// let report = stampede(4, |_| parse_with_origin("12"));
/// assert_eq!(report.computed() + report.waited() + report.hits(), 4);
/// assert_eq!((report.computed(), report.errors(), report.panics()), (1, 0, 0));
/// // The stampede lasted at least as long as the one execution.
/// assert!(report.wall >= Duration::from_millis(20));
/// ```
#[derive(Debug)]
pub struct Report<T> {
    /// Each caller's value and [`Origin`], or its panic's message.
    pub results: Vec<Result<(T, Origin), String>>,
    /// From just before the callers are released to the return of the last one.
    pub wall: Duration,
}

impl<T> Report<T> {
    /// Callers whose call ran the function ([`Origin::Computed`]): the executions of the
    /// stampede.
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn slow_double(n: u32) -> u32 {
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     n * 2
    /// }
    ///
    /// assert_eq!(stampede(4, |_| slow_double_with_origin(4)).computed(), 1);
    /// // Four keys, four executions.
    /// assert_eq!(stampede(4, |i| slow_double_with_origin(10 + i as u32)).computed(), 4);
    /// ```
    pub fn computed(&self) -> usize {
        self.count(Origin::Computed)
    }

    /// Callers that waited for another caller's computation ([`Origin::Waited`]).
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn slow_double(n: u32) -> u32 {
    ///     std::thread::sleep(std::time::Duration::from_millis(50));
    ///     n * 2
    /// }
    ///
    /// let report = stampede(4, |_| slow_double_with_origin(4));
    /// // One computed; each other caller waited for it, or, released after it was done, hit.
    /// assert_eq!(report.waited() + report.hits(), 3);
    /// ```
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

impl<V, E> Report<Result<V, E>> {
    /// Callers that got an `Err`: the one that computed it, and those that shared it (waiters
    /// share their leader's `Err` when it is `Clone`). Panicked callers are counted by
    /// [`panics`](Report::panics), not here.
    ///
    /// ```
    /// use memoflight::{cached, testing::stampede};
    ///
    /// #[cached]
    /// fn parse(text: &'static str) -> Result<u32, String> {
    ///     text.parse().map_err(|_| format!("not a number: {text}"))
    /// }
    ///
    /// let report = stampede(4, |_| parse_with_origin("twelve"));
    /// assert_eq!((report.errors(), report.panics()), (4, 0));
    /// assert_eq!(stampede(4, |_| parse_with_origin("12")).errors(), 0);
    /// ```
    pub fn errors(&self) -> usize {
        self.values().filter(|value| value.is_err()).count()
    }
}

/// Runs `call(i)` for `i` in `0..callers`, each on its own thread, all released at the same
/// instant (a barrier), and reports each result. `call` returns the value and its [`Origin`]:
/// call the `_with_origin` twin that `#[cached]` generates (for a method,
/// `Type::method_with_origin` or `value.method_with_origin(..)`). A caller's panic is caught
/// and reported, not propagated.
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
                    catch_unwind(AssertUnwindSafe(|| call(i)))
                        .map_err(|payload| panic_message(payload.as_ref()))
                })
            })
            .collect();
        // Before the release: `wall` covers every call.
        let start = Instant::now();
        drop(opened);
        let results: Vec<_> = threads
            .into_iter()
            .map(|thread| thread.join().expect("the caller's panic was caught"))
            .collect();
        (results, start.elapsed())
    });
    Report { results, wall }
}

/// [`stampede`] for async functions, on any executor: the `callers` futures of `call(i)` are
/// polled in turn by the one future this returns, on the task that awaits it, from its first
/// poll on. All are released at the same instant, but they never run in parallel: a caller
/// runs while the others are suspended at an `.await`. For callers that run at once on
/// several threads, see [`stampede_tokio`].
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
///
/// # Panics
///
/// Never for a caller: a panic of `call(i)` (making the future) or of a poll of its future is
/// caught and reported as that caller's, and the other callers go on.
///
/// ```
/// use memoflight::{cached, testing::stampede_async};
///
/// #[cached]
/// async fn refused(n: u32) -> u32 {
///     panic!("{n} is refused")
/// }
///
/// let report = futures::executor::block_on(stampede_async(3, |i| {
///     assert!(i != 2, "no future for caller 2");
///     refused_with_origin(1)
/// }));
/// assert_eq!(report.panics(), 3);
/// assert!(report.results[0].as_ref().unwrap_err().contains("1 is refused"));
/// assert!(report.results[2].as_ref().unwrap_err().contains("no future for caller 2"));
/// ```
#[cfg(feature = "async")]
pub async fn stampede_async<T, F>(callers: usize, call: impl Fn(usize) -> F) -> Report<T>
where
    F: std::future::Future<Output = (T, Origin)>,
{
    use std::pin::Pin;
    use std::task::Poll;

    let (calls, mut results) = make_calls(callers, &call);
    // Each future is dropped once it has finished.
    let mut calls: Vec<Option<Pin<Box<F>>>> =
        calls.into_iter().map(|call| call.map(Box::pin)).collect();
    let start = Instant::now();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in calls.iter_mut().zip(results.iter_mut()) {
            let Some(call) = slot else { continue };
            match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
                Ok(Poll::Ready(out)) => *result = Some(Ok(out)),
                Ok(Poll::Pending) => pending = true,
                Err(payload) => *result = Some(Err(panic_message(payload.as_ref()))),
            }
            if result.is_some() {
                *slot = None;
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

/// [`stampede`] on tokio tasks (features `testing` and `tokio`): each caller's future, from
/// `call(i)`, is spawned on the current runtime with `tokio::spawn`, and all wait at a
/// `tokio::sync::Barrier` until every one has started, then run. On a multi-thread runtime
/// they run in parallel, on its worker threads, as the tasks of a server do; on a
/// current-thread runtime, in turn on its one thread.
///
/// `call(i)` runs on the task that awaits this, to make each future; a panic there, or in a
/// caller's task (from `JoinError::into_panic`), is caught and reported as that caller's. A
/// task cancelled by its runtime's shutdown is reported like a panic, with the reason.
/// Dropping the returned future aborts the callers' tasks.
///
/// ```
/// use memoflight::{cached, testing::stampede_tokio};
/// use std::time::Duration;
///
/// #[cached]
/// async fn page(n: u32) -> String {
///     tokio::time::sleep(Duration::from_millis(50)).await;
///     format!("page {n}")
/// }
///
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// let report = runtime.block_on(stampede_tokio(8, |_| page_with_origin(1)));
/// assert_eq!((report.computed(), report.panics()), (1, 0));
/// assert_eq!(report.waited() + report.hits(), 7);
/// ```
///
/// # Panics
///
/// If not awaited within a tokio runtime (before any caller is made).
#[cfg(feature = "tokio")]
pub async fn stampede_tokio<T, F>(callers: usize, call: impl Fn(usize) -> F) -> Report<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = (T, Origin)> + Send + 'static,
{
    use std::sync::Arc;

    let runtime = tokio::runtime::Handle::try_current()
        .expect("memoflight::testing::stampede_tokio must be awaited within a tokio runtime");
    let (calls, mut results) = make_calls(callers, &call);
    let spawned = calls.iter().flatten().count();
    // The callers and this task: the callers are released once every one has started.
    let barrier = Arc::new(tokio::sync::Barrier::new(spawned + 1));
    let mut tasks = AbortOnDrop(
        calls
            .into_iter()
            .enumerate()
            .filter_map(|(i, call)| Some((i, call?)))
            .map(|(i, call)| {
                let barrier = barrier.clone();
                let task = runtime.spawn(async move {
                    barrier.wait().await;
                    call.await
                });
                (i, task)
            })
            .collect(),
    );
    let start = Instant::now();
    barrier.wait().await;
    for (i, task) in &mut tasks.0 {
        results[*i] = Some(task.await.map_err(|error| {
            if error.is_panic() {
                panic_message(error.into_panic().as_ref())
            } else {
                format!("memoflight::testing: the caller's task ended without finishing: {error}")
            }
        }));
    }
    Report {
        results: results.into_iter().flatten().collect(),
        wall: start.elapsed(),
    }
}

/// A caller's outcome, once known: what [`Report::results`] holds.
#[cfg(feature = "async")]
type Outcome<T> = Option<Result<(T, Origin), String>>;

/// The future of each `call(i)`, or (in the second list) the panic that making it raised.
#[cfg(feature = "async")]
fn make_calls<T, F>(
    callers: usize,
    call: &impl Fn(usize) -> F,
) -> (Vec<Option<F>>, Vec<Outcome<T>>) {
    (0..callers)
        .map(|i| match catch_unwind(AssertUnwindSafe(|| call(i))) {
            Ok(future) => (Some(future), None),
            Err(payload) => (None, Some(Err(panic_message(payload.as_ref())))),
        })
        .unzip()
}

/// Aborts its tasks when dropped (a finished task is not affected).
#[cfg(feature = "tokio")]
struct AbortOnDrop<T>(Vec<(usize, tokio::task::JoinHandle<T>)>);

#[cfg(feature = "tokio")]
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for (_, task) in &self.0 {
            task.abort();
        }
    }
}

/// What an [`invalidation_race`] saw.
///
/// ```
/// use memoflight::testing::invalidation_race;
/// use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
///
/// // No cache at all: every read sees the current version, so none is stale.
/// static VERSION: AtomicU64 = AtomicU64::new(0);
/// let race = invalidation_race(2, 50, |_| VERSION.load(SeqCst), |round| {
///     VERSION.store(round, SeqCst)
/// });
/// assert_eq!(race.stale_reads, 0);
/// assert!(race.reads >= 50);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Race {
    /// Reads made by all the readers: at least one between every two rounds, so at least
    /// `rounds` if there are readers.
    pub reads: u64,
    /// Reads that started after round `r`'s invalidation returned and still saw a version
    /// older than `r`.
    pub stale_reads: u64,
}

/// How long [`invalidation_race`] waits for a read between two rounds before it calls the
/// race hung.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `rounds` rounds of `change(round)` (for `round` in `1..=rounds`: make `round` the
/// current version of the source of truth, then invalidate the cached value) on this thread,
/// while `readers` threads call `read(reader)` (`reader` in `0..readers`; it returns the
/// version it got, through the cache) until the rounds are done. A read that starts after
/// `change(r)` returned and returns a version below `r` is stale: the repopulation window this
/// crate closes.
///
/// Before each round, the rounds wait until a read has finished since the last one (readers
/// yield between reads, so this thread gets to run on a machine with fewer cores than
/// threads): reads and invalidations interleave however slow `read` is.
///
/// # Panics
///
/// If `change` or a reader panics (the readers are stopped and the rounds end first; the
/// reader's panic message is printed as it happens), or a thread cannot be spawned. If no
/// read finishes within a minute of a round (a `read` that blocks, or waits for a later
/// round, cannot be raced): the race panics saying so, and stops its readers (the message is
/// printed at once; a `read` that never returns still holds its thread).
///
/// See the [module docs](self) for an example.
pub fn invalidation_race(
    readers: usize,
    rounds: u64,
    read: impl Fn(usize) -> u64 + Sync,
    mut change: impl FnMut(u64),
) -> Race {
    let completed = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let (reads, stale) = (AtomicU64::new(0), AtomicU64::new(0));
    // Readers not yet stopped by a panic.
    let reading = AtomicUsize::new(readers);
    let gate = Gate::default();
    std::thread::scope(|scope| {
        // However the rounds end (a panic in `change` included), the readers stop.
        let _stop = SetOnDrop(&done);
        let opened = gate.opener();
        for reader in 0..readers {
            let (gate, read, done, completed) = (&gate, &read, &done, &completed);
            let (reads, stale, reading) = (&reads, &stale, &reading);
            scope.spawn(move || {
                let _panicked = DecrementOnUnwind(reading);
                gate.wait();
                while !done.load(SeqCst) {
                    let floor = completed.load(SeqCst);
                    let version = read(reader);
                    reads.fetch_add(1, SeqCst);
                    if version < floor {
                        stale.fetch_add(1, SeqCst);
                    }
                    std::thread::yield_now();
                }
            });
        }
        drop(opened);
        let mut seen = 0;
        for round in 1..=rounds {
            // Wait for a read finished since the last round; once a reader has panicked, stop
            // (the scope's end propagates its panic).
            let deadline = std::time::Instant::now() + READ_DEADLINE;
            loop {
                if reading.load(SeqCst) < readers {
                    return;
                }
                if readers == 0 || reads.load(SeqCst) != seen {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "memoflight::testing::invalidation_race: no read finished within {} s \
                     before round {round}: a `read` that blocks (or waits for a later round) \
                     cannot be raced",
                    READ_DEADLINE.as_secs()
                );
                std::thread::yield_now();
            }
            change(round);
            completed.store(round, SeqCst);
            seen = reads.load(SeqCst);
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

/// Decrements its counter if dropped while its thread panics.
struct DecrementOnUnwind<'c>(&'c AtomicUsize);

impl Drop for DecrementOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fetch_sub(1, SeqCst);
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}
