//! The bounded store: at most `max_size` entries, each optionally expiring after a `ttl`.
//!
//! # Design (numbers in `benches/README.md`)
//!
//! Entries live in a lock-free concurrent map (papaya): a hit is a read of that map, no lock,
//! and at most one relaxed store into the entry (its visit count, written only while it is
//! below its cap), so hot keys are read, not written, on every core.
//!
//! Eviction is S3-FIFO (Yang et al., SOSP 2023), whose queues live under one mutex that only
//! writers (inserts, removals) take. A new key enters a small FIFO (a hundredth of the
//! capacity); when it reaches the small queue's head, it moves to the main FIFO if it was read
//! since it came in, and is evicted otherwise, 32 bits of its hash kept in a *ghost* FIFO. The
//! main queue is a CLOCK: an entry at its head that was read goes around again with one visit
//! less. One-hit wonders (a scan) therefore leave through the small queue without pushing out
//! the working set, which LRU cannot do.
//!
//! A key that comes back while its ghost remains goes straight to the main queue if the ghost is
//! *young*: evicted less than a tenth of a turn of the main queue's hand ago (`max_size / 10`
//! main-queue entries looked at since). Older ghosts are dropped, and the key starts again in the
//! small queue. Age is counted in the main queue's hand, not in evictions, because a scan moves
//! only the small queue: keys pushed out by one keep their age until the working set comes back.
//! At most `2 * max_size` ghosts are kept, 16 bytes each (FIFO and index): up to 32 bytes per
//! unit of capacity, against 24 for the `max_size` 64-bit hashes with counts kept before.
//!
//! Why these numbers (`benches/hit_ratio.rs`, Zipf(0.99) over 100,000 keys and the same with
//! scans, capacities 100 to 50,000): the paper's small queue of a tenth, with a ghost of
//! `max_size` hashes admitted at any age, lost to moka's TinyLFU by 0.34 pp on Zipf at 10,000
//! (76.74% against 77.08%) and by 0.24 pp with scans at 50,000. A hundredth keeps more of the
//! capacity for keys already read twice (+0.3 to +0.7 pp on Zipf). A ghost admitted at any age
//! is then a trade-off by its length: half the capacity was best on Zipf (77.37% at 10,000) but
//! lost 0.3 pp with scans, twice the capacity was best with scans (27.66% at 50,000) but lost
//! 0.7 pp on Zipf, because old ghosts let lukewarm keys displace the main queue. Aging ghosts by
//! the hand keeps both: 77.45% and 27.66%, ahead of moka and quick_cache in every row. The cost is
//! slower adaptation when the hot set moves: on a Zipf whose keys shift by 10,000 every 50,000
//! requests, the hit ratio at capacity 10,000 drops from 64.6% to 60.5% (quick_cache: 61.9%,
//! moka: 55.5%).
//!
//! Queue entries carry the stamp of the map entry they were made for: an entry replaced or
//! removed since leaves a stale queue entry, skipped when it reaches a head and compacted away
//! when stale entries outnumber live ones.
//!
//! Expiry: with a `ttl`, every entry expires that long after it was written. A hit compares the
//! clock with the entry's deadline and treats an expired entry as absent. Entries are reclaimed
//! in write order (which, with one `ttl` for all, is deadline order) by the writer that next
//! takes the queue lock: no background thread, O(1) amortized per write.

use crate::clock::Clock;
use crate::store::Store;
use crate::teardown::pinned;
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks the queues, ignoring poison: only keys' `Hash`/`Eq`/`Clone` run under this lock, and
/// a panic in one can at worst leave a stale queue entry, which is skipped. The std mutex, not
/// `crate::sync`'s: this store is not part of the loom model (its map is not loom-aware).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many visits an entry remembers: the main queue gives a read entry up to this many
/// extra rounds.
const MAX_VISITS: u8 = 3;

/// The small queue holds `max_size / SMALL_DIVISOR` entries (at least one).
const SMALL_DIVISOR: usize = 100;

/// How many ghosts are kept at most, in multiples of the capacity.
const GHOSTS_PER_ENTRY: usize = 2;

/// A ghost lets its key into the main queue if it is younger than this share of a turn of the
/// main queue's hand (`max_size / GHOST_TURN_DIVISOR` entries looked at by the hand).
const GHOST_TURN_DIVISOR: usize = 10;

/// A concurrent store bounded in size, in age, or both: `#[cached(max_size = .., ttl = ..)]`.
///
/// - `max_size(n)`: never more than `n` entries. Eviction is S3-FIFO, which keeps the
///   frequently read keys and lets one-time keys (a scan) pass through; its hit ratio beats LRU
///   (see `benches/README.md`).
/// - `ttl(d)`: an entry is never returned once `d` has passed since it was written; expired
///   entries are reclaimed by later writes, without a background thread.
/// - `refresh_after(d)`: an entry older than `d` is recomputed by one caller while the others
///   keep getting it (see [`refresh_after`](Bounded::refresh_after)).
///
/// Hits take no lock. Writes take one mutex (the eviction queues), held for O(1) amortized.
/// Evictions and expirations are counted in [`Stats::evictions`](crate::Stats::evictions).
///
/// ```
/// use memoflight::{Bounded, Store};
///
/// let store = Bounded::<u32, String>::new().max_size(2);
/// store.insert(1, "one".to_string());
/// store.insert(2, "two".to_string());
/// store.get(&1); // read: 1 is kept
/// store.insert(3, "three".to_string());
/// assert_eq!(store.len(), 2);
/// assert_eq!(store.get(&1).as_deref(), Some("one"));
/// ```
pub struct Bounded<K, V> {
    map: papaya::HashMap<K, Entry<V>, RandomState>,
    queues: Mutex<Queues<K>>,
    hasher: RandomState,
    max_size: usize,
    /// Nanoseconds; `None` when entries never expire.
    ttl: Option<u64>,
    /// Nanoseconds; `None` when entries are never refreshed ahead of time.
    refresh_after: Option<u64>,
    clock: Clock,
    evictions: AtomicU64,
}

struct Entry<V> {
    value: V,
    /// Tells this entry from an earlier or later one of the same key, for queue entries.
    stamp: u64,
    /// Clock time at which the entry expires (`u64::MAX`: never).
    expires: u64,
    /// Clock time from which reads report it due for a refresh (`u64::MAX`: never).
    refresh_at: u64,
    /// Reads since it entered (or went around) its queue, capped at [`MAX_VISITS`].
    visits: AtomicU8,
}

/// A queue entry: the key of the map entry with this stamp.
struct Queued<K> {
    key: K,
    stamp: u64,
}

/// The writers' side: eviction queues and the expiry order.
struct Queues<K> {
    small: VecDeque<Queued<K>>,
    main: VecDeque<Queued<K>>,
    /// Fingerprints (32 bits of the hash) of keys recently evicted from `small`, oldest first,
    /// each with the `hand` at its eviction.
    ghost: VecDeque<(u32, u32)>,
    /// The newest `hand` of each fingerprint in `ghost`.
    ghosts: hashbrown::HashMap<u32, u32, RandomState>,
    /// How many live entries the main queue's head has looked at (wrapping): the age of a ghost
    /// is measured in these, so it stands still while one-time keys stream through `small`.
    hand: u32,
    /// With a ttl: every entry in write order, with its deadline.
    by_age: VecDeque<(Queued<K>, u64)>,
    next_stamp: u64,
    /// Entries in the map.
    live: usize,
}

impl<K, V> Bounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// A store with no bound yet: set one with [`max_size`](Bounded::max_size) and/or
    /// [`ttl`](Bounded::ttl).
    ///
    /// ```
    /// # use memoflight::Bounded;
    /// let store = Bounded::<String, u64>::new().max_size(10_000);
    /// # let _ = store;
    /// ```
    pub fn new() -> Self {
        Bounded {
            map: papaya::HashMap::builder()
                .hasher(RandomState::default())
                .build(),
            queues: Mutex::new(Queues {
                small: VecDeque::new(),
                main: VecDeque::new(),
                ghost: VecDeque::new(),
                ghosts: hashbrown::HashMap::with_hasher(RandomState::default()),
                hand: 0,
                by_age: VecDeque::new(),
                next_stamp: 0,
                live: 0,
            }),
            hasher: RandomState::default(),
            max_size: usize::MAX,
            ttl: None,
            refresh_after: None,
            clock: Clock::system(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Holds at most `max_size` entries.
    ///
    /// # Panics
    ///
    /// If `max_size` is zero (`#[cached(max_size = 0)]` is a compile error instead).
    ///
    /// ```
    /// # use memoflight::{Bounded, Store};
    /// let store = Bounded::<u32, u32>::new().max_size(1);
    /// store.insert(1, 1);
    /// store.insert(2, 2);
    /// assert_eq!(store.len(), 1);
    /// ```
    pub fn max_size(mut self, max_size: usize) -> Self {
        assert!(max_size > 0, "memoflight: max_size must be at least 1");
        self.max_size = max_size;
        self
    }

    /// Entries expire `ttl` after they were written.
    ///
    /// ```
    /// # use memoflight::Bounded;
    /// # use std::time::Duration;
    /// let store = Bounded::<u32, u32>::new().ttl(Duration::from_secs(90));
    /// # let _ = store;
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(crate::clock::nanos(ttl));
        self
    }

    /// Entries become due for a refresh `age` after they were written: a cache reading a due
    /// entry lets one caller recompute it while every other caller still gets the current value
    /// at once (see [`Cache`](crate::Cache)). With a [`ttl`](Bounded::ttl), an entry that was
    /// not refreshed still expires at its ttl.
    ///
    /// ```
    /// # use memoflight::{Bounded, Cache, Clock};
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, u32>::new()
    ///     .refresh_after(Duration::from_secs(60))
    ///     .clock(clock.clone());
    /// let cache = Cache::new("rates", store);
    /// assert_eq!(cache.get_or_compute(1, || 100), 100);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(cache.get_or_compute(1, || 101), 101); // this caller refreshed it
    /// assert_eq!(cache.get_or_compute(1, || unreachable!()), 101);
    /// ```
    pub fn refresh_after(mut self, age: Duration) -> Self {
        self.refresh_after = Some(crate::clock::nanos(age));
        self
    }

    /// Reads time from `clock` instead of the system clock (tests move a [`Clock::manual`]).
    ///
    /// ```
    /// # use memoflight::{Bounded, Clock};
    /// let store = Bounded::<u32, u32>::new().clock(Clock::manual());
    /// # let _ = store;
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn sized(&self) -> bool {
        self.max_size != usize::MAX
    }

    /// Whether entries carry times: reads and writes then consult the clock.
    fn timed(&self) -> bool {
        self.ttl.is_some() || self.refresh_after.is_some()
    }

    /// Whether `entry` has expired at `now`.
    fn expired(&self, entry: &Entry<V>, now: u64) -> bool {
        self.ttl.is_some() && now >= entry.expires
    }

    /// Removes the map entry `queued` was made for, if it is still that entry.
    fn remove_queued(&self, queues: &mut Queues<K>, queued: &Queued<K>) -> bool {
        let removed = pinned!(self.map, |map| matches!(
            map.remove_if(&queued.key, |_, entry| entry.stamp == queued.stamp),
            Ok(Some(_))
        ));
        if removed {
            queues.live -= 1;
            self.evictions.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    /// Reclaims the entries whose deadline has passed.
    fn reclaim_expired(&self, queues: &mut Queues<K>, now: u64) {
        while let Some((_, deadline)) = queues.by_age.front() {
            if *deadline > now {
                break;
            }
            if let Some((queued, _)) = queues.by_age.pop_front() {
                self.remove_queued(queues, &queued);
            }
        }
    }

    /// Evicts one entry (S3-FIFO); returns false if there was nothing to evict.
    fn evict_one(&self, queues: &mut Queues<K>) -> bool {
        let small_target = (self.max_size / SMALL_DIVISOR).max(1);
        loop {
            let from_small = queues.small.len() >= small_target || queues.main.is_empty();
            let popped = if from_small {
                queues.small.pop_front()
            } else {
                queues.main.pop_front()
            };
            let Some(queued) = popped else {
                return false;
            };
            let visits = pinned!(self.map, |map| match map.get(&queued.key) {
                Some(entry) if entry.stamp == queued.stamp => {
                    let visits = entry.visits.load(Relaxed);
                    if visits > 0 {
                        // Goes around: to the main queue from the small one (forgetting
                        // its visits), or once more round the main queue with one less.
                        let left = if from_small { 0 } else { visits - 1 };
                        entry.visits.store(left, Relaxed);
                    }
                    Some(visits)
                }
                _ => None, // stale: replaced or removed since it was queued
            });
            let Some(visits) = visits else {
                continue;
            };
            if !from_small {
                queues.hand = queues.hand.wrapping_add(1);
            }
            if visits > 0 {
                queues.main.push_back(queued);
                continue;
            }
            if from_small {
                let fingerprint = self.fingerprint(&queued.key);
                self.remember_ghost(queues, fingerprint);
            }
            if self.remove_queued(queues, &queued) {
                return true;
            }
        }
    }

    /// The part of `key`'s hash a ghost keeps. Two keys that share one can let each other into
    /// the main queue, which costs at most a little hit ratio, never correctness.
    fn fingerprint(&self, key: &K) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    /// How old (in `hand` steps) a ghost may be and still let its key into the main queue.
    fn ghost_window(&self) -> u32 {
        u32::try_from(self.max_size / GHOST_TURN_DIVISOR)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Remembers a key evicted from the small queue, and forgets the ghosts that are past the
    /// window or beyond the FIFO's length.
    fn remember_ghost(&self, queues: &mut Queues<K>, fingerprint: u32) {
        let hand = queues.hand;
        queues.ghost.push_back((fingerprint, hand));
        queues.ghosts.insert(fingerprint, hand);
        let max_ghosts = self.max_size.saturating_mul(GHOSTS_PER_ENTRY);
        let window = self.ghost_window();
        while let Some(&(oldest, at)) = queues.ghost.front() {
            if queues.ghost.len() <= max_ghosts && hand.wrapping_sub(at) < window {
                break;
            }
            queues.ghost.pop_front();
            // Unless the same fingerprint was remembered again since.
            if queues.ghosts.get(&oldest) == Some(&at) {
                queues.ghosts.remove(&oldest);
            }
        }
    }

    /// Drops stale queue entries once they outnumber live ones, so that replacing and removing
    /// keys without evicting cannot grow the queues without bound.
    fn compact(&self, queues: &mut Queues<K>) {
        let queued = queues.small.len() + queues.main.len() + queues.by_age.len();
        if queued <= 4 * queues.live + 64 {
            return;
        }
        pinned!(self.map, |map| {
            let current = |q: &Queued<K>| map.get(&q.key).is_some_and(|e| e.stamp == q.stamp);
            queues.small.retain(current);
            queues.main.retain(current);
            queues.by_age.retain(|(q, _)| current(q));
        })
    }
}

impl<K, V> Default for Bounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Store for Bounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    #[inline]
    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        self.get_aged(key).map(|(value, _)| value)
    }

    #[inline]
    fn get_aged<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<(V, bool)> {
        pinned!(self.map, |map| {
            let entry = map.get(key)?;
            let now = if self.timed() { self.clock.now() } else { 0 };
            if self.expired(entry, now) {
                return None;
            }
            let visits = entry.visits.load(Relaxed);
            if visits < MAX_VISITS {
                entry.visits.store(visits + 1, Relaxed);
            }
            let due = self.refresh_after.is_some() && now >= entry.refresh_at;
            Some((entry.value.clone(), due))
        })
    }

    fn insert(&self, key: K, value: V) {
        // papaya's writes read a thread-local of seize's even through an owned guard: while
        // the thread is torn down, a value is returned to its caller and not stored.
        if !crate::teardown::thread_alive() {
            return;
        }
        let mut queues = lock(&self.queues);
        let queues = &mut *queues;
        let now = if self.timed() { self.clock.now() } else { 0 };
        if self.ttl.is_some() {
            self.reclaim_expired(queues, now);
        }
        let stamp = queues.next_stamp;
        queues.next_stamp += 1;
        let replaces = pinned!(self.map, |map| map.contains_key(&key));
        if !replaces {
            while queues.live >= self.max_size {
                if !self.evict_one(queues) {
                    break;
                }
            }
        }
        if self.sized() {
            let fingerprint = self.fingerprint(&key);
            let queued = Queued {
                key: key.clone(),
                stamp,
            };
            let returning = queues
                .ghosts
                .remove(&fingerprint)
                .is_some_and(|at| queues.hand.wrapping_sub(at) < self.ghost_window());
            if returning {
                queues.main.push_back(queued);
            } else {
                queues.small.push_back(queued);
            }
        }
        let expires = match self.ttl {
            Some(ttl) => {
                let deadline = now.saturating_add(ttl);
                let queued = Queued {
                    key: key.clone(),
                    stamp,
                };
                queues.by_age.push_back((queued, deadline));
                deadline
            }
            None => u64::MAX,
        };
        let refresh_at = self
            .refresh_after
            .map_or(u64::MAX, |age| now.saturating_add(age));
        let entry = Entry {
            value,
            stamp,
            expires,
            refresh_at,
            visits: AtomicU8::new(0),
        };
        pinned!(self.map, |map| {
            map.insert(key, entry);
        });
        if !replaces {
            queues.live += 1;
        }
        self.compact(queues);
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        pinned!(self.map, |map| {
            let entry = {
                let mut queues = lock(&self.queues);
                let entry = map.remove(key)?;
                queues.live -= 1;
                entry
            };
            // The value's `Clone` (user code) runs after the queue lock is released.
            let now = if self.ttl.is_some() {
                self.clock.now()
            } else {
                0
            };
            (!self.expired(entry, now)).then(|| entry.value.clone())
        })
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        // The predicate (user code) runs without the queue lock: it may call the cache.
        let mut removed = 0;
        pinned!(self.map, |map| map.retain(|key, entry| {
            let kept = keep(key, &entry.value);
            removed += usize::from(!kept);
            kept
        }));
        let mut queues = lock(&self.queues);
        queues.live -= removed;
    }

    fn clear(&self) {
        let mut queues = lock(&self.queues);
        pinned!(self.map, |map| map.clear());
        queues.small.clear();
        queues.main.clear();
        queues.by_age.clear();
        queues.live = 0;
    }

    fn len(&self) -> usize {
        let mut queues = lock(&self.queues);
        if self.ttl.is_some() {
            self.reclaim_expired(&mut queues, self.clock.now());
        }
        queues.live
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }
}
