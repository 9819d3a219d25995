//! What a cache has done: counters kept on the hot path without shared writes, and the
//! [`Stats`] snapshot users read.

use crate::sync::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Counters only grow; `entries` and `in_flight` are sizes at the moment of the snapshot. Each
/// field is read separately, so a snapshot taken while other threads call the function may mix
/// instants (for example a hit counted but its miss not yet).
///
/// ```
/// use memoflight::cached;
///
/// #[cached]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// square(3);
/// square(3);
/// let stats = square_cache().stats();
/// assert_eq!((stats.hits, stats.misses, stats.executions), (1, 1, 1));
/// assert_eq!(stats.entries, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the store. `hits + misses` is the number of calls.
    pub hits: u64,
    /// Calls that did not find their key in the store: each then waited for another caller's
    /// computation or ran the function.
    pub misses: u64,
    /// Times the function ran.
    pub executions: u64,
    /// Calls that waited for another caller's computation of their key instead of running the
    /// function (the stampede that single-flight prevents). Counted once per call, when it
    /// starts waiting: a call whose leader panicked or was cancelled may then run the function
    /// itself, and is counted in `executions` too.
    pub waits: u64,
    /// Executions whose result was not cached: an `Err`, or a `None` (see `cache_err`,
    /// `cache_none`).
    pub errors: u64,
    /// Executions that panicked.
    pub panics: u64,
    /// Async executions abandoned midway: the leader's future was dropped (a timeout, a
    /// `select!`, an aborted task). One waiter takes over, as after a panic.
    pub cancellations: u64,
    /// Calls that stopped waiting for another caller's computation after `wait_timeout` and
    /// computed on their own.
    pub timeouts: u64,
    /// Entries the store dropped on its own: evicted to stay within `max_size`, or expired
    /// after their `ttl`. Invalidations are not counted.
    pub evictions: u64,
    /// Operations of an [`AsyncStore`](crate::AsyncStore) that failed and that the cache
    /// worked around: a failed read ran the function, a failed lease had it run locally, a
    /// failed write left the value uncached.
    /// Always zero for an in-memory [`Store`](crate::Store).
    pub store_errors: u64,
    /// Values in the store now.
    pub entries: u64,
    /// Keys being computed now (for an [`AsyncStore`](crate::AsyncStore), also keys whose
    /// value is being written to it).
    pub in_flight: u64,
}

/// What happened between two snapshots: `later - earlier` subtracts every counter, and keeps
/// `later`'s sizes (`entries`, `in_flight`). A test that shares its cache with others asserts on
/// the delta of its own calls only.
///
/// ```
/// use memoflight::cached;
///
/// #[cached]
/// fn cube(n: u64) -> u64 {
///     n * n * n
/// }
///
/// cube(2); // another test's call, say
/// let before = cube_cache().stats();
/// cube(3);
/// cube(3);
/// let delta = cube_cache().stats() - before;
/// assert_eq!((delta.hits, delta.misses, delta.executions), (1, 1, 1));
/// assert_eq!(delta.entries, 2); // a size: the later snapshot's
/// ```
///
/// # Panics
///
/// If a counter of `earlier` exceeds the later one's: the snapshots are in the wrong order, of
/// two different caches, or [`reset_stats`](crate::Cache::reset_stats) ran between them (a
/// zero there would let an assertion pass untested). After a reset, take a new baseline.
impl std::ops::Sub for Stats {
    type Output = Stats;

    fn sub(self, earlier: Stats) -> Stats {
        let delta = |later: u64, earlier: u64, name: &str| {
            later.checked_sub(earlier).unwrap_or_else(|| {
                panic!(
                    "memoflight: `later - earlier` of two stats where `earlier.{name}` \
                     ({earlier}) exceeds `later.{name}` ({later}): swapped snapshots, \
                     snapshots of two caches, or `reset_stats` called between them (take the \
                     baseline after the reset)"
                )
            })
        };
        Stats {
            hits: delta(self.hits, earlier.hits, "hits"),
            misses: delta(self.misses, earlier.misses, "misses"),
            executions: delta(self.executions, earlier.executions, "executions"),
            waits: delta(self.waits, earlier.waits, "waits"),
            errors: delta(self.errors, earlier.errors, "errors"),
            panics: delta(self.panics, earlier.panics, "panics"),
            cancellations: delta(self.cancellations, earlier.cancellations, "cancellations"),
            timeouts: delta(self.timeouts, earlier.timeouts, "timeouts"),
            evictions: delta(self.evictions, earlier.evictions, "evictions"),
            store_errors: delta(self.store_errors, earlier.store_errors, "store_errors"),
            entries: self.entries,
            in_flight: self.in_flight,
        }
    }
}

/// Per-thread hit counters: a hit writes only its own thread's cache line, with a plain load and
/// store (no read-modify-write), so hits on two cores never contend. `stats()` sums them. A
/// thread that has ended keeps its counter (a few bytes) for the next thread that gets its id.
/// During a thread's teardown, when the counters' thread-local may be gone, hits go to a shared
/// counter (see `crate::teardown`).
#[cfg(not(memoflight_loom))]
#[derive(Default)]
struct HitCounter {
    local: thread_local::ThreadLocal<crate::sync::Padded<AtomicU64>>,
    shared: AtomicU64,
}

#[cfg(not(memoflight_loom))]
impl HitCounter {
    #[inline]
    fn add_one(&self) {
        if !crate::teardown::thread_alive() {
            self.shared.fetch_add(1, Relaxed);
            return;
        }
        let mine = self.local.get_or_default();
        // Only this thread writes this counter: load + store cannot lose an increment.
        mine.store(mine.load(Relaxed) + 1, Relaxed);
    }

    fn sum(&self) -> u64 {
        let local: u64 = self.local.iter().map(|counter| counter.load(Relaxed)).sum();
        local + self.shared.load(Relaxed)
    }
}

/// Under loom, a plain shared counter (loom does not model `thread_local`).
#[cfg(memoflight_loom)]
#[derive(Default)]
struct HitCounter(AtomicU64);

#[cfg(memoflight_loom)]
impl HitCounter {
    fn add_one(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The live counters of one cache. Everything but hits is counted on the miss path, where one
/// shared atomic add is noise next to the function call.
#[derive(Default)]
pub(crate) struct Counters {
    hits: HitCounter,
    misses: AtomicU64,
    executions: AtomicU64,
    waits: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
    cancellations: AtomicU64,
    timeouts: AtomicU64,
    store_errors: AtomicU64,
    /// The counts at the last [`reset`](Counters::reset), subtracted from every snapshot
    /// (counters only grow, so a reset never races an increment: it moves the baseline).
    baseline: std::sync::Mutex<Stats>,
}

impl Counters {
    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.add_one();
    }

    /// All hits counted so far.
    fn hits(&self) -> u64 {
        self.hits.sum()
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }

    pub(crate) fn execution(&self) {
        self.executions.fetch_add(1, Relaxed);
    }

    pub(crate) fn wait(&self) {
        self.waits.fetch_add(1, Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn timeout(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn panic(&self) {
        self.panics.fetch_add(1, Relaxed);
    }

    pub(crate) fn cancellation(&self) {
        self.cancellations.fetch_add(1, Relaxed);
    }

    #[cfg(feature = "async")]
    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self, entries: usize, in_flight: usize, evictions: u64) -> Stats {
        let now = self.raw(entries, in_flight, evictions);
        let baseline = *self
            .baseline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Stats {
            hits: now.hits.saturating_sub(baseline.hits),
            misses: now.misses.saturating_sub(baseline.misses),
            executions: now.executions.saturating_sub(baseline.executions),
            waits: now.waits.saturating_sub(baseline.waits),
            errors: now.errors.saturating_sub(baseline.errors),
            panics: now.panics.saturating_sub(baseline.panics),
            cancellations: now.cancellations.saturating_sub(baseline.cancellations),
            timeouts: now.timeouts.saturating_sub(baseline.timeouts),
            store_errors: now.store_errors.saturating_sub(baseline.store_errors),
            evictions: now.evictions.saturating_sub(baseline.evictions),
            ..now
        }
    }

    /// Starts every counter from zero again (the store's evictions included).
    pub(crate) fn reset(&self, evictions: u64) {
        // Read under the lock: two resets at once leave the later reading as the baseline.
        let mut baseline = self
            .baseline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *baseline = self.raw(0, 0, evictions);
    }

    /// The counts since the cache was made.
    fn raw(&self, entries: usize, in_flight: usize, evictions: u64) -> Stats {
        Stats {
            hits: self.hits(),
            misses: self.misses.load(Relaxed),
            executions: self.executions.load(Relaxed),
            waits: self.waits.load(Relaxed),
            errors: self.errors.load(Relaxed),
            panics: self.panics.load(Relaxed),
            cancellations: self.cancellations.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            evictions,
            entries: entries as u64,
            in_flight: in_flight as u64,
        }
    }
}
