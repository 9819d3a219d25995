//! The bounded store: at most `max_size` entries, each optionally expiring after a `ttl`.
//!
//! # Design (numbers in `benches/README.md`)
//!
//! Entries live in the default store's concurrent table (`table.rs`): a hit is a read of it, no lock,
//! and at most one relaxed store into the entry's bookkeeping (its visit count, written only
//! while it is below its cap), so hot keys are read, not written, on every core.
//!
//! Eviction is S3-FIFO (Yang et al., SOSP 2023). Keys are split by hash into shards (one per
//! 4,096 entries of capacity, at most four per core), each with its share of the capacity and
//! its own queues under its own mutex, which only inserts take: inserts of different shards
//! never wait on each other. A new key enters its shard's small FIFO (a hundredth of the
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
//! # No user code under a lock, and O(1) work under it
//!
//! A queue entry holds no key: only a shared [`Meta`] with the map entry (the key's hash, its
//! visit count, and a `gone` flag, set once by whoever takes the entry out of the count: a
//! removal, a replacement, an eviction, an expiry). The queues therefore never look a key up in
//! the map under their lock, and an insert clones no key for them: a key's `Hash` runs before
//! the lock is taken, and the victims chosen under it are removed from the map after it is
//! released, each found by its hash and its `Meta` (pointer equality: not even the key's `Eq`
//! runs). The table frees removed keys and values by epochs, never under a lock. Removals,
//! `invalidate_if` and `clear` take no queue lock for their map work at all.
//!
//! Under the lock, each insert does O(1) work: its push, the evictions it needs (each popped
//! entry is looked at once per turn), at most [`RECLAIM_PER_WRITE`] expired entries, and a few
//! steps of an in-order sweep that drops stale queue entries (of keys replaced or removed since
//! they were queued) once they outnumber live ones: no O(n) pause. Removals step that sweep
//! too, so removed keys do not wait for later inserts to be freed.
//!
//! Expiry: with a `ttl`, every entry expires that long after it was written. A hit compares the
//! clock with the entry's deadline and treats an expired entry as absent. Each shard queues its
//! entries in deadline order (an insert that reaches the lock after one with a later deadline
//! takes that deadline, see `queue_for_expiry`); they are reclaimed from the head by later
//! inserts into their shard, a few per insert, and by [`len`](Store::len), which so counts
//! exactly the entries a read returns: no background thread.

use crate::clock::Clock;
use crate::store::hashed::KeyHasher;
use crate::store::table::Table;
use crate::store::Store;
use crate::sync::Padded;
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks a shard's queues, ignoring poison: no user code runs under this lock, so it cannot
/// panic while held but for an allocation failure. The std mutex, not `crate::sync`'s: this
/// store is not part of the loom model (its map is not loom-aware).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many visits an entry remembers: the main queue gives a read entry up to this many
/// extra rounds.
const MAX_VISITS: u8 = 3;

/// The small queue holds `capacity / SMALL_DIVISOR` entries (at least one).
const SMALL_DIVISOR: usize = 100;

/// How many ghosts are kept at most, in multiples of the capacity.
const GHOSTS_PER_ENTRY: usize = 2;

/// A ghost lets its key into the main queue if it is younger than this share of a turn of the
/// main queue's hand (`capacity / GHOST_TURN_DIVISOR` entries looked at by the hand).
const GHOST_TURN_DIVISOR: usize = 10;

/// A shard per this many entries of capacity (at least one shard, at most four per core):
/// small stores keep one S3-FIFO over all their keys.
const CAPACITY_PER_SHARD: usize = 4096;

/// Expired entries an insert reclaims at most, under its shard's lock.
const RECLAIM_PER_WRITE: usize = 4;

/// Queue entries an insert's or a removal's sweep looks at, per queue, while stale ones
/// outnumber live ones.
const SWEEP_PER_WRITE: usize = 4;

/// Stale queue entries a shard may keep beyond its live ones before its sweep starts.
const STALE_ALLOWED: isize = 16;

/// A concurrent store bounded in size, in age, or both: `#[cached(max_size = .., ttl = ..)]`.
///
/// - `max_size(n)`: [`len`](Store::len) never exceeds `n` (an insert makes room before it
///   counts its entry; a victim may still be read by a concurrent hit until it is removed from
///   the map, right after the insert releases its lock). Eviction is S3-FIFO, which keeps the frequently read keys and lets one-time
///   keys (a scan) pass through; its hit ratio beats LRU (see `benches/README.md`).
/// - `ttl(d)`: an entry is never returned once `d` has passed since it was written; expired
///   entries are reclaimed by later writes, without a background thread.
/// - `refresh_after(d)`: an entry older than `d` is recomputed by one caller while the others
///   keep getting it (see [`refresh_after`](Bounded::refresh_after)).
///
/// Hits take no lock. An insert takes the mutex of its key's shard (stores of more than 4,096
/// entries have several) for O(1) work, with no user code under it. Evictions and expirations
/// are counted in [`Stats::evictions`](crate::Stats::evictions).
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
    /// The entries, keys stored with their hash (`table.rs`): the map never runs a key's `Hash`.
    map: Table<K, Entry<V>>,
    /// Built on first use, once the capacity is known; by hash.
    shards: std::sync::OnceLock<Box<[Shard]>>,
    hasher: KeyHasher,
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
    meta: Arc<Meta>,
    /// Clock time from which reads report it due for a refresh (`u64::MAX`: never).
    refresh_at: u64,
}

/// What a map entry and its queue entries share, so that the queues never look a key up.
struct Meta {
    /// Reads since it entered (or went around) its queue, capped at [`MAX_VISITS`].
    visits: AtomicU8,
    /// Set, once, by whoever takes this entry out of its shard's count: its removal, its
    /// replacement, or its choice as an eviction or expiry victim. Queue entries of a gone
    /// entry are stale.
    gone: AtomicBool,
    /// The index of its shard.
    shard: u32,
    /// The key's hash: the map is probed with it (without running the key's `Hash`), and a
    /// ghost keeps 32 bits of it.
    hash: u64,
    /// Clock time at which the entry expires (`u64::MAX`: never). Set before the entry enters
    /// the map, and raised (never lowered, never past an expiry already reached) when its
    /// insert queues it for expiry, to keep the expiry queue in deadline order.
    expires: AtomicU64,
}

impl Meta {
    /// The part of the key's hash a ghost keeps. Two keys that share one can let each other
    /// into the main queue, which costs at most a little hit ratio, never correctness.
    fn fingerprint(&self) -> u32 {
        self.hash as u32
    }

    /// Claims the entry's removal from its shard's count: true for exactly one caller.
    fn claim(&self) -> bool {
        !self.gone.swap(true, Relaxed)
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Relaxed)
    }
}

/// A queue entry: the map entry with this `meta` (found again by its hash and its `Meta`, so
/// the queues hold no copy of the key).
struct Queued {
    meta: Arc<Meta>,
}

struct Shard {
    queues: Padded<Mutex<Queues>>,
    /// Its share of `max_size`.
    capacity: isize,
    /// Entries of this shard in the map: counted under the lock by their insert once it made
    /// room (so never above `capacity`), uncounted by the caller whose [`Meta::claim`]
    /// succeeds. Briefly negative if an entry is removed between its insertion into the map
    /// and its count.
    live: Padded<AtomicIsize>,
}

/// A shard's queues: eviction and expiry order.
struct Queues {
    small: Fifo<Queued>,
    main: Fifo<Queued>,
    /// Fingerprints (32 bits of the hash) of keys recently evicted from `small`, oldest first,
    /// each with the `hand` at its eviction.
    ghost: VecDeque<(u32, u32)>,
    /// The newest `hand` of each fingerprint in `ghost`.
    ghosts: hashbrown::HashMap<u32, u32, RandomState>,
    /// How many live entries the main queue's head has looked at (wrapping): the age of a ghost
    /// is measured in these, so it stands still while one-time keys stream through `small`.
    hand: u32,
    /// With a ttl: every entry in write order, with its deadline.
    by_age: Fifo<(Queued, u64)>,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            small: Fifo::default(),
            main: Fifo::default(),
            ghost: VecDeque::new(),
            ghosts: hashbrown::HashMap::with_hasher(RandomState::default()),
            hand: 0,
            by_age: Fifo::default(),
        }
    }
}

impl Queues {
    fn len(&self) -> usize {
        self.small.len() + self.main.len() + self.by_age.len()
    }

    /// A few steps of the incremental sweep, once the queues hold more stale entries than
    /// live ones (plus [`STALE_ALLOWED`]): stale entries go to `garbage`, to be dropped after
    /// the lock is released. Inserts and removals both step it, so stale entries (and their
    /// keys) never outnumber live ones for long, even with no insert after a removal.
    fn sweep(&mut self, live: isize, garbage: &mut Vec<Queued>) {
        if self.len() as isize <= 2 * live + STALE_ALLOWED {
            return;
        }
        let stale = |q: &Queued| q.meta.is_gone();
        self.small.sweep(SWEEP_PER_WRITE, stale, garbage);
        self.main.sweep(SWEEP_PER_WRITE, stale, garbage);
        let mut aged = Vec::new();
        self.by_age
            .sweep(SWEEP_PER_WRITE, |(q, _)| stale(q), &mut aged);
        garbage.extend(aged.into_iter().map(|(q, _)| q));
    }

    /// Every stale entry to `garbage`, the others kept in order: after `clear` and
    /// `invalidate_if`, which are O(n) anyway.
    fn sift(&mut self, garbage: &mut Vec<Queued>) {
        let stale = |q: &Queued| q.meta.is_gone();
        self.small.sift(stale, garbage);
        self.main.sift(stale, garbage);
        let mut aged = Vec::new();
        self.by_age.sift(|(q, _)| stale(q), &mut aged);
        garbage.extend(aged.into_iter().map(|(q, _)| q));
    }
}

/// A FIFO from which stale entries are swept a few at a time, in order, with O(1) work per
/// step: the queue is `done` followed by `rest`; a step moves `rest`'s head to `done`'s tail
/// (or out, if stale), and a sweep that emptied `rest` starts over on the whole queue.
struct Fifo<T> {
    done: VecDeque<T>,
    rest: VecDeque<T>,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            done: VecDeque::new(),
            rest: VecDeque::new(),
        }
    }
}

impl<T> Fifo<T> {
    fn push_back(&mut self, item: T) {
        self.rest.push_back(item);
    }

    fn pop_front(&mut self) -> Option<T> {
        self.done.pop_front().or_else(|| self.rest.pop_front())
    }

    fn front(&self) -> Option<&T> {
        self.done.front().or_else(|| self.rest.front())
    }

    fn back(&self) -> Option<&T> {
        self.rest.back().or_else(|| self.done.back())
    }

    fn len(&self) -> usize {
        self.done.len() + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every stale entry to `garbage`, keeping the others in order.
    fn sift(&mut self, stale: impl Fn(&T) -> bool, garbage: &mut Vec<T>) {
        let all = std::mem::take(&mut self.done)
            .into_iter()
            .chain(std::mem::take(&mut self.rest));
        for item in all {
            match stale(&item) {
                true => garbage.push(item),
                false => self.done.push_back(item),
            }
        }
    }

    /// Looks at up to `steps` entries, moving the stale ones to `garbage`.
    fn sweep(&mut self, steps: usize, stale: impl Fn(&T) -> bool, garbage: &mut Vec<T>) {
        for _ in 0..steps {
            match self.rest.pop_front() {
                Some(item) if stale(&item) => garbage.push(item),
                Some(item) => self.done.push_back(item),
                None => {
                    std::mem::swap(&mut self.done, &mut self.rest);
                    return;
                }
            }
        }
    }
}

/// What an insert takes out of the queues under the lock, to finish after releasing it: the
/// victims to remove from the map, and the stale queue entries to drop (freed outside the lock
/// so that it is held for the queue steps only).
#[derive(Default)]
struct Leftovers {
    victims: Vec<Queued>,
    garbage: Vec<Queued>,
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
            map: Table::new(),
            shards: std::sync::OnceLock::new(),
            hasher: KeyHasher::default(),
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
        self.ttl.is_some() && now >= entry.meta.expires.load(Relaxed)
    }

    /// The shards, built on first use: one per [`CAPACITY_PER_SHARD`] entries of capacity
    /// (a power of two, at most four per core), the capacity split among them.
    fn shards(&self) -> &[Shard] {
        self.shards.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            let wanted = (self.max_size / CAPACITY_PER_SHARD).clamp(1, 4 * cores);
            // A power of two no larger than wanted, so that no shard falls below the minimum.
            let count = 1usize << wanted.ilog2();
            (0..count)
                .map(|i| Shard {
                    queues: Padded(Mutex::new(Queues::default())),
                    live: Padded(AtomicIsize::new(0)),
                    capacity: match self.max_size {
                        usize::MAX => isize::MAX,
                        n => isize::try_from(n / count + usize::from(i < n % count))
                            .unwrap_or(isize::MAX),
                    },
                })
                .collect()
        })
    }

    /// The shard of a key hash: its top bits.
    fn shard_of(&self, hash: u64) -> u32 {
        let count = self.shards().len() as u64;
        (((hash >> 32) * count) >> 32) as u32
    }

    /// Takes `meta`'s entry out of its shard's count, unless someone else did.
    fn uncount(&self, meta: &Meta) {
        if meta.claim() {
            self.shards()[meta.shard as usize]
                .live
                .fetch_sub(1, Relaxed);
        }
    }

    /// Claims `queued`'s entry as a victim (eviction or expiry): counted out now, removed from
    /// the map after the lock is released. False if it was gone already.
    fn claim_victim(&self, shard: &Shard, queued: &Queued) -> bool {
        if !queued.meta.claim() {
            return false;
        }
        shard.live.fetch_sub(1, Relaxed);
        self.evictions.fetch_add(1, Relaxed);
        true
    }

    /// Claims up to `limit` entries whose deadline has passed; says whether it stopped at the
    /// limit (more may have expired).
    fn reclaim_expired(
        &self,
        shard: &Shard,
        queues: &mut Queues,
        now: u64,
        limit: usize,
        out: &mut Leftovers,
    ) -> bool {
        for _ in 0..limit {
            match queues.by_age.front() {
                Some((_, deadline)) if *deadline <= now => {}
                _ => return false,
            }
            let Some((queued, _)) = queues.by_age.pop_front() else {
                return false;
            };
            if self.claim_victim(shard, &queued) {
                out.victims.push(queued);
            } else {
                out.garbage.push(queued);
            }
        }
        true
    }

    /// Queues a new entry for expiry, keeping the queue in deadline order so that reclaiming
    /// from its head finds every expired entry. An insert slowed between its clock read and
    /// its lock (user code runs in between) may arrive after one with a later deadline: it
    /// takes that deadline (a few instants more of life, never less), or, if it expired on the
    /// way, is reclaimed at once rather than brought back.
    fn queue_for_expiry(
        &self,
        shard: &Shard,
        queues: &mut Queues,
        queued: Queued,
        out: &mut Leftovers,
    ) {
        let expires = queued.meta.expires.load(Relaxed);
        let last = queues.by_age.back().map_or(0, |(_, deadline)| *deadline);
        if last <= expires {
            queues.by_age.push_back((queued, expires));
        } else if self.clock.now() >= expires {
            match self.claim_victim(shard, &queued) {
                true => out.victims.push(queued),
                false => out.garbage.push(queued),
            }
        } else {
            queued.meta.expires.store(last, Relaxed);
            queues.by_age.push_back((queued, last));
        }
    }

    /// Claims one victim (S3-FIFO); returns false if there was nothing to evict.
    fn evict_one(&self, shard: &Shard, queues: &mut Queues, out: &mut Leftovers) -> bool {
        let small_target = (shard.capacity.unsigned_abs() / SMALL_DIVISOR).max(1);
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
            if queued.meta.is_gone() {
                out.garbage.push(queued); // stale: replaced or removed since it was queued
                continue;
            }
            if !from_small {
                queues.hand = queues.hand.wrapping_add(1);
            }
            let visits = queued.meta.visits.load(Relaxed);
            if visits > 0 {
                // Goes around: to the main queue from the small one (forgetting its visits),
                // or once more round the main queue with one less.
                let left = if from_small { 0 } else { visits - 1 };
                queued.meta.visits.store(left, Relaxed);
                queues.main.push_back(queued);
                continue;
            }
            if from_small {
                remember_ghost(shard, queues, queued.meta.fingerprint());
            }
            if self.claim_victim(shard, &queued) {
                out.victims.push(queued);
                return true;
            }
            out.garbage.push(queued);
        }
    }

    /// Drops the stale entries of every shard's queues (after `clear` and `invalidate_if`).
    /// Sorted out under each shard's lock, which must not be dropped wholesale: the entries of
    /// keys inserted while the map was walked must stay queued (or they could never be
    /// evicted), and no insert may find the queues empty and fail to make room. What is dropped
    /// is dropped after the lock is released.
    fn sift_queues(&self) {
        for shard in self.shards() {
            let mut garbage = Vec::new();
            lock(&shard.queues).sift(&mut garbage);
            drop(garbage);
        }
    }

    /// Removes the claimed victims from the map (each only if it is still the entry that was
    /// claimed), with no lock held.
    fn remove_victims(&self, victims: &[Queued]) {
        for victim in victims {
            // Found by its hash and its `Meta` alone: not even the key's `Eq` runs.
            let _ = self.map.remove(
                victim.meta.hash,
                |_, entry| Arc::ptr_eq(&entry.meta, &victim.meta),
                |_| (),
            );
        }
    }
}

/// Remembers a key evicted from the small queue, and forgets the ghosts that are past the
/// window or beyond the FIFO's length.
fn remember_ghost(shard: &Shard, queues: &mut Queues, fingerprint: u32) {
    let hand = queues.hand;
    queues.ghost.push_back((fingerprint, hand));
    queues.ghosts.insert(fingerprint, hand);
    let max_ghosts = shard
        .capacity
        .unsigned_abs()
        .saturating_mul(GHOSTS_PER_ENTRY);
    let window = ghost_window(shard);
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

/// How old (in `hand` steps) a ghost may be and still let its key into the main queue.
fn ghost_window(shard: &Shard) -> u32 {
    u32::try_from(shard.capacity.unsigned_abs() / GHOST_TURN_DIVISOR)
        .unwrap_or(u32::MAX)
        .max(1)
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
        let hash = self.hasher.hash_one(key);
        let read = |entry: &Entry<V>| {
            let now = if self.timed() { self.clock.now() } else { 0 };
            if self.expired(entry, now) {
                return None;
            }
            let visits = entry.meta.visits.load(Relaxed);
            if visits < MAX_VISITS {
                entry.meta.visits.store(visits + 1, Relaxed);
            }
            let due = self.refresh_after.is_some() && now >= entry.refresh_at;
            Some((entry.value.clone(), due))
        };
        self.map
            .get(hash, |stored| key.equivalent(stored), read)
            .flatten()
    }

    fn insert(&self, key: K, value: V) {
        // User code first, with no lock held: the key's `Hash`.
        let hash = self.hasher.hash_one(&key);
        let index = self.shard_of(hash);
        let shard = &self.shards()[index as usize];
        let now = if self.timed() { self.clock.now() } else { 0 };
        let expires = self.ttl.map_or(u64::MAX, |ttl| now.saturating_add(ttl));
        let meta = Arc::new(Meta {
            visits: AtomicU8::new(0),
            gone: AtomicBool::new(false),
            shard: index,
            hash,
            expires: AtomicU64::new(expires),
        });
        let refresh_at = self
            .refresh_after
            .map_or(u64::MAX, |age| now.saturating_add(age));
        let entry = Entry {
            value,
            meta: Arc::clone(&meta),
            refresh_at,
        };
        self.map
            .insert(hash, key, entry, |old| self.uncount(&old.meta));
        let mut out = Leftovers::default();
        {
            let mut queues = lock(&shard.queues);
            let queues = &mut *queues;
            if self.ttl.is_some() {
                self.reclaim_expired(shard, queues, now, RECLAIM_PER_WRITE, &mut out);
            }
            // Room first, then the count: the shard's count never exceeds its capacity, and
            // the new entry, queued after, is not a candidate.
            while shard.live.load(Relaxed) >= shard.capacity {
                if !self.evict_one(shard, queues, &mut out) {
                    break;
                }
            }
            shard.live.fetch_add(1, Relaxed);
            if self.sized() {
                let queued = Queued {
                    meta: Arc::clone(&meta),
                };
                let returning = queues
                    .ghosts
                    .remove(&meta.fingerprint())
                    .is_some_and(|at| queues.hand.wrapping_sub(at) < ghost_window(shard));
                if returning {
                    queues.main.push_back(queued);
                } else {
                    queues.small.push_back(queued);
                }
            }
            if self.ttl.is_some() {
                self.queue_for_expiry(shard, queues, Queued { meta }, &mut out);
            }
            queues.sweep(shard.live.load(Relaxed), &mut out.garbage);
        }
        self.remove_victims(&out.victims);
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let read = |entry: &Entry<V>| {
            self.uncount(&entry.meta);
            let now = if self.ttl.is_some() {
                self.clock.now()
            } else {
                0
            };
            // The value's `Clone` (user code) runs with no lock held.
            (
                (!self.expired(entry, now)).then(|| entry.value.clone()),
                entry.meta.shard,
            )
        };
        let (removed, shard) = self
            .map
            .remove(hash, |stored, _| key.equivalent(stored), read)?;
        // The removed entry's queue entries are stale now: a few sweep steps keep removals
        // without inserts from holding keys alive.
        let shard = &self.shards()[shard as usize];
        let mut garbage = Vec::new();
        lock(&shard.queues).sweep(shard.live.load(Relaxed), &mut garbage);
        drop(garbage);
        removed
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        // The predicate (user code) runs with no lock of this store held: it may call the cache.
        self.map.retain(
            &mut |key, entry| keep(key, &entry.value),
            &mut |_, entry| self.uncount(&entry.meta),
        );
        self.sift_queues();
    }

    fn clear(&self) {
        self.map.clear(&mut |_, entry| self.uncount(&entry.meta));
        self.sift_queues();
    }

    fn len(&self) -> usize {
        if self.ttl.is_some() {
            // Expired entries are reclaimed a few at a time, each batch under the lock.
            let now = self.clock.now();
            for shard in self.shards() {
                loop {
                    let mut out = Leftovers::default();
                    let more = {
                        let mut queues = lock(&shard.queues);
                        self.reclaim_expired(shard, &mut queues, now, 64, &mut out)
                    };
                    self.remove_victims(&out.victims);
                    if !more {
                        break;
                    }
                }
            }
        }
        let live: isize = self
            .shards()
            .iter()
            .map(|shard| shard.live.load(Relaxed))
            .sum();
        live.max(0).unsigned_abs()
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }
}
