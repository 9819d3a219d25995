//! The bounded store: at most `max_size` entries (or a total `max_weight` of them), each
//! optionally expiring after a `ttl`, after a `time_to_idle` without a read, or both.
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
//! # Weights
//!
//! With `max_weight`, the bound is the total weight of the entries instead of their number: a
//! weigher gives each entry its weight when it is inserted (without one, each weighs 1; a weight
//! of 0 counts as 0). Each shard counts the weight of its entries (and, next to it, their
//! number) and has its share of `max_weight`; an insert of weight `w` evicts, in S3-FIFO order,
//! until its shard's weight plus `w` fits, then counts `w`: the same "room first, then the
//! count" as with `max_size`, so the counted weight never exceeds `max_weight`. The sizes
//! S3-FIFO derives from the capacity (the small queue's hundredth, the number of ghosts and
//! their window) are then derived from the number of entries the shard holds, not from its
//! weight. Shards are chosen by the number of cores only (at most one per core and at most
//! [`MAX_WEIGHTED_SHARDS`], a power of two, and no more than `max_weight`), since a weight says
//! nothing of how many entries there will be; an entry heavier than its shard's share
//! (`max_weight / shards`: a quarter of it at least, on any machine) is not stored: its insert
//! removes the key's previous value and counts an eviction.
//!
//! `cached-core/tests/loom_bounded.rs` model-checks that counting: racing inserts into a full
//! store, a replacement against a removal, an eviction against a removal of its victim.
//!
//! # No user code under a lock, and O(1) work under it
//!
//! A queue entry holds no key: only a shared [`Meta`] with the map entry (the key's hash, its
//! visit count, its weight, its deadline, and a `gone` flag, set once by whoever takes the
//! entry out of the count: a removal, a replacement, an eviction, an expiry). The queues
//! therefore never look a key up in the map under their lock, and an insert clones no key for
//! them: a key's `Hash` and the weigher run before the lock is taken, and the victims chosen
//! under it are removed from the map after it is released, each found by its hash and its
//! `Meta` (pointer equality: not even the key's `Eq` runs). The table frees removed keys and
//! values by epochs, never under a lock. Removals, `invalidate_if` and `clear` take no queue
//! lock for their map work at all.
//!
//! Under the lock, each insert does O(1) work: its push, the evictions it needs (each popped
//! entry is looked at once per turn; with weights, as many victims as its weight needs, each
//! entry evicted once, so O(1) amortized), at most [`RECLAIM_PER_WRITE`] expiry steps, and a
//! few steps of an in-order sweep that drops stale queue entries (of keys replaced or removed
//! since they were queued) once they outnumber live ones: no O(n) pause. Removals step that
//! sweep too, so removed keys do not wait for later inserts to be freed.
//!
//! # Expiry
//!
//! With a `ttl`, every entry expires that long after it was written; with a `time_to_idle`,
//! that long after it was last written or read; with both, at whichever comes first (a read
//! never extends an entry past its ttl, counted from [`Entry::written`]). A hit compares the clock
//! with the entry's deadline ([`Meta::expires`]) and treats an expired entry as absent. Each
//! shard queues its entries in `by_age` at their deadline in write order, which is deadline
//! order (an insert that reaches the lock after one with a later deadline goes to `renewed`
//! below, see `queue_for_expiry`); they are reclaimed from the head by later inserts into their
//! shard, a few per insert, and by [`len`](Store::len) and
//! [`evict_expired`](Bounded::evict_expired), which so count exactly the entries a read
//! returns: no background thread. With [`keep_expired_for`](Bounded::keep_expired_for),
//! reclaiming waits that much longer (reads still treat the entry as absent, `get_stale`
//! returns it), `len` counts the kept entries, and an insert that needs room reclaims kept
//! entries before it evicts a live one.
//!
//! A hit renews its entry without a lock and without touching the queues: it raises
//! `Meta::expires` to `now + idle` with an atomic `fetch_max` (never lowering it), and writes
//! nothing when the deadline is already within `idle / 64` of that, so a key read on every
//! core is written about 64 times per idle period (a few more when hits race), not on every
//! hit. A renewed entry may therefore expire up to `idle / 64` early, never late. (A hit that
//! races with the reclaiming of its entry at the old deadline may also lose its renewal: the
//! entry then expires at that deadline, as if the read had come a moment later.)
//!
//! A renewed entry outlives its place in `by_age`: every queued deadline is at most the entry's
//! real one, never later. Reclaiming pops an entry whose queued deadline has passed and reads
//! its real deadline: if a read moved it on, it has not expired, and is queued again at its
//! real deadline, not raised to keep order (that would give it life it was not granted). As
//! that deadline may fall before those of entries written after it, it goes to a second
//! structure, `renewed`, a binary heap by deadline, and reclaiming takes from whichever head
//! is earlier: it still finds every expired entry before any live one. An entry is queued
//! again only once its queued deadline has passed and a renewal moved it by more than
//! `idle / 64` since: once per idle period for a key read steadily (about 64 times at most),
//! each O(log n) under the shard's lock, paid by the write or `len` that reclaims: O(log n)
//! amortized per renewal. Entries replaced or removed while in `renewed` stay there (their
//! `Meta`: no key, no value) until their deadline, at most `idle` after they were queued;
//! `clear` and `invalidate_if` drop them at once when they leave a shard's queues holding more
//! stale entries than live ones (see `Bounded::sift_queues`).

use crate::clock::Clock;
use crate::store::hashed::KeyHasher;
use crate::store::table::Table;
use crate::store::Store;
use crate::sync::{lock, Arc, AtomicBool, AtomicIsize, AtomicU64, AtomicU8, Mutex, Padded};
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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

/// Shards of a store bounded by weight at most: a value up to a quarter of `max_weight` is
/// kept on any machine (an entry heavier than its shard's share is not).
const MAX_WEIGHTED_SHARDS: usize = 4;

/// Shards of any store at most (a shard index fits in a `u16`).
const MAX_SHARDS: usize = 1 << 15;

/// Expiry steps (an entry reclaimed, or queued again at its renewed deadline) an insert takes
/// at most, under its shard's lock.
const RECLAIM_PER_WRITE: usize = 4;

/// Expiry steps [`evict_expired`](Bounded::evict_expired) (and so `len`) takes per lock
/// acquisition: the lock is released between batches, so inserts are not held up for long.
const RECLAIM_PER_LOCK: usize = 64;

/// A hit renews its entry only if that moves the deadline by more than
/// `idle / RENEW_SLACK_DIVISOR`: a hot key is not written on every hit.
const RENEW_SLACK_DIVISOR: u64 = 64;

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
/// - `max_weight(w)` with a [`weigher`](Bounded::weigher): the total weight of the entries
///   ([`weight`](Bounded::weight)) never exceeds `w`, instead of their number.
/// - `ttl(d)`: an entry is never returned once `d` has passed since it was written.
/// - `time_to_idle(d)`: an entry is never returned once `d` has passed since it was last
///   written or read (a read renews it); with a `ttl` too, it expires at whichever comes first.
/// - `refresh_after(d)`: an entry older than `d` is recomputed by one caller while the others
///   keep getting it (see [`refresh_after`](Bounded::refresh_after)).
///
/// Expired entries are reclaimed by later writes, by [`len`](Store::len) and by
/// [`evict_expired`](Bounded::evict_expired), without a background thread.
///
/// Hits take no lock. An insert takes the mutex of its key's shard (stores of more than 4,096
/// entries have several) for O(1) amortized work (a heavy weighted value may evict many light
/// ones at once, each entry evicted once), with no user code under it. Evictions and
/// expirations are counted in [`Stats::evictions`](crate::Stats::evictions).
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
    /// What the shards' capacities share: nothing, a number of entries, or a total weight.
    bound: Bound,
    /// Weighs an entry under `max_weight` (`None`: each weighs 1). User code: it runs before
    /// the lock is taken.
    weigher: Option<Weigher<K, V>>,
    /// Nanoseconds; `None` when entries never expire after they were written.
    ttl: Option<u64>,
    /// Nanoseconds; `None` when entries never expire for lack of reads.
    idle: Option<u64>,
    /// Nanoseconds; `None` when entries are never refreshed ahead of time.
    refresh_after: Option<u64>,
    /// Nanoseconds an expired entry is kept before it is reclaimed (`keep_expired_for`).
    keep_expired: u64,
    clock: Clock,
    evictions: AtomicU64,
}

/// A [`Bounded::weigher`].
type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// What bounds a store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    None,
    /// [`Bounded::max_size`]: every entry counts 1.
    Entries(usize),
    /// [`Bounded::max_weight`]: every entry counts its weight.
    Weight(u64),
}

struct Entry<V> {
    value: V,
    meta: Arc<Meta>,
    /// Clock time at which it was written (0 when the store reads no clock): it is due for a
    /// refresh `refresh_after` later, and no read renews it past `ttl` later.
    written: u64,
}

/// What a map entry and its queue entries share, so that the queues never look a key up.
struct Meta {
    /// Reads since it entered (or went around) its queue, capped at [`MAX_VISITS`].
    visits: AtomicU8,
    /// Set, once, by whoever takes this entry out of its shard's count: its removal, its
    /// replacement, or its choice as an eviction or expiry victim. Queue entries of a gone
    /// entry are stale.
    gone: AtomicBool,
    /// The index of its shard (at most [`MAX_SHARDS`]).
    shard: u16,
    /// The key's hash: the map is probed with it (without running the key's `Hash`), and a
    /// ghost keeps 32 bits of it.
    hash: u64,
    /// What it counts in its shard's [`Live::weight`]: 1, or its weight under `max_weight` (at
    /// most `u32::MAX`: a heavier entry is not stored). Together with `visits`, `gone` and
    /// `shard`, one word.
    weight: u32,
    /// Clock time at which the entry expires (`u64::MAX`: never). Set before the entry enters
    /// the map; raised (never lowered) by the hits that renew it under `time_to_idle`, never
    /// past its write plus the ttl, and by its insert when it queues it for expiry behind a
    /// later deadline (see `queue_for_expiry`), never past an expiry already reached.
    expires: AtomicU64,
}

// A `Meta` stays 24 bytes, as before weights and idle deadlines (`benches/README.md`, memory
// per entry): its `Arc` is one 40-byte allocation. (Loom's atomics are larger.)
#[cfg(not(memoflight_loom))]
const _: () = assert!(std::mem::size_of::<Meta>() == 24);

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

    /// A hit's renewal under `time_to_idle`: raises the deadline to `now + idle` (not past
    /// `hard`, the write plus the ttl), unless `expires`, the deadline the hit read, is within
    /// `idle / RENEW_SLACK_DIVISOR` of that already. `fetch_max`: a slower hit never lowers
    /// what a later one wrote.
    #[inline]
    fn renew(&self, expires: u64, now: u64, idle: u64, hard: u64) {
        let renewed = now.saturating_add(idle).min(hard);
        if renewed.saturating_sub(idle / RENEW_SLACK_DIVISOR) > expires {
            self.expires.fetch_max(renewed, Relaxed);
        }
    }
}

/// A queue entry: the map entry with this `meta` (found again by its hash and its `Meta`, so
/// the queues hold no copy of the key).
struct Queued {
    meta: Arc<Meta>,
}

/// An entry queued again for expiry, at the later deadline reads renewed it to: in
/// [`Queues::renewed`], soonest deadline first (entries of equal deadlines in any order).
struct Renewed {
    deadline: u64,
    queued: Queued,
}

impl PartialEq for Renewed {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Renewed {}

impl PartialOrd for Renewed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Renewed {
    /// Reversed: `BinaryHeap` pops its greatest element, and the soonest deadline must come
    /// first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

struct Shard {
    queues: Padded<Mutex<Queues>>,
    /// Its share of `max_size` (or of `max_weight`).
    capacity: isize,
    live: Padded<Live>,
}

/// A shard's counts, on one cache line: counted under the lock by an insert once it made room
/// (so `weight` never exceeds the capacity), uncounted by the caller whose [`Meta::claim`]
/// succeeds. Briefly negative if an entry is removed between its insertion into the map and
/// its count.
struct Live {
    /// The weight of the shard's entries in the map (their number unless weighted).
    weight: AtomicIsize,
    /// Their number, kept only under `max_weight` (`weight` is the number otherwise).
    entries: AtomicIsize,
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
    /// With a ttl or a time to idle: every entry in write order, with its deadline when it was
    /// written (at most its real one).
    by_age: Fifo<(Queued, u64)>,
    /// With a time to idle: the entries that outlived their deadline in `by_age` (or in here)
    /// because reads renewed them, each at its renewed deadline.
    renewed: BinaryHeap<Renewed>,
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
            renewed: BinaryHeap::new(),
        }
    }
}

impl Queues {
    /// The length of the queues the sweep walks (`renewed` is not among them: its stale
    /// entries leave at their deadline).
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
        if self.renewed.iter().any(|r| stale(&r.queued)) {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.renewed)
                .into_vec()
                .into_iter()
                .partition(|r| stale(&r.queued));
            self.renewed = BinaryHeap::from(kept);
            garbage.extend(gone.into_iter().map(|r| r.queued));
        }
    }

    /// Takes the entry with the soonest queued deadline, of `by_age` and `renewed`, if that
    /// deadline has passed at `now`.
    fn pop_due(&mut self, now: u64) -> Option<Queued> {
        let aged = self.by_age.front().map(|(_, deadline)| *deadline);
        let renewed = self.renewed.peek().map(|r| r.deadline);
        match (aged, renewed) {
            (Some(aged), Some(renewed)) if renewed < aged && renewed <= now => {
                self.renewed.pop().map(|r| r.queued)
            }
            (Some(aged), _) if aged <= now => self.by_age.pop_front().map(|(q, _)| q),
            (_, Some(renewed)) if renewed <= now => self.renewed.pop().map(|r| r.queued),
            _ => None,
        }
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
    /// A store with no bound yet: set one with [`max_size`](Bounded::max_size) (or
    /// [`max_weight`](Bounded::max_weight)) and/or [`ttl`](Bounded::ttl) and
    /// [`time_to_idle`](Bounded::time_to_idle).
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
            bound: Bound::None,
            weigher: None,
            ttl: None,
            idle: None,
            refresh_after: None,
            keep_expired: 0,
            clock: Clock::system(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Holds at most `max_size` entries.
    ///
    /// # Panics
    ///
    /// If `max_size` is zero (`#[cached(max_size = 0)]` is a compile error instead), or if the
    /// store is bounded by [`max_weight`](Bounded::max_weight) or has a
    /// [`weigher`](Bounded::weigher) already: a store is bounded in entries or in weight, not
    /// both.
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
        assert!(
            !matches!(self.bound, Bound::Weight(_)),
            "memoflight: max_size and max_weight are exclusive: this store is bounded by \
             max_weight already"
        );
        assert!(
            self.weigher.is_none(),
            "memoflight: a weigher weighs entries for max_weight, not max_size: bound the store \
             with max_weight"
        );
        self.bound = Bound::Entries(max_size);
        self
    }

    /// Holds entries of at most `max_weight` in total, each weighed by the
    /// [`weigher`](Bounded::weigher) when it is inserted (each weighs 1 without one; a weight
    /// of 0 counts as 0). An insert evicts (S3-FIFO, as with [`max_size`](Bounded::max_size))
    /// until its entry's weight fits; [`weight`](Bounded::weight) never exceeds `max_weight`.
    ///
    /// The store is split into at most one shard per core (a power of two, no more than
    /// `max_weight`), each with its share of `max_weight`: an entry heavier than
    /// `max_weight / shards` is not stored. Its insert removes the key's previous value (a
    /// later read returns nothing, not the old value) and counts as an eviction.
    ///
    /// # Panics
    ///
    /// If `max_weight` is zero, or if the store is bounded by
    /// [`max_size`](Bounded::max_size) already: a store is bounded in entries or in weight, not
    /// both.
    ///
    /// ```
    /// # use memoflight::{Bounded, Store};
    /// let store = Bounded::<u32, Vec<u8>>::new()
    ///     .max_weight(64 << 20) // 64 MiB of values
    ///     .weigher(|_, bytes| bytes.len() as u64);
    /// store.insert(1, vec![0; 1_000]);
    /// store.insert(2, vec![0; 2_000]);
    /// assert_eq!(store.weight(), 3_000);
    /// store.insert(1, vec![0; 65 << 20]); // heavier than the whole store: not kept,
    /// assert_eq!(store.get(&1), None); // and the key's previous value is gone
    /// assert_eq!((store.len(), store.weight()), (1, 2_000));
    /// ```
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        assert!(max_weight > 0, "memoflight: max_weight must be at least 1");
        assert!(
            !matches!(self.bound, Bound::Entries(_)),
            "memoflight: max_size and max_weight are exclusive: this store is bounded by \
             max_size already"
        );
        self.bound = Bound::Weight(max_weight);
        self
    }

    /// Weighs each entry for [`max_weight`](Bounded::max_weight), from its key and value, when
    /// it is inserted (not when it is read: values are immutable once stored). Without
    /// `max_weight`, the weigher is never called.
    ///
    /// It runs with no lock of the store held, before the entry is stored: it may read the
    /// store, or call memoized functions. An entry weighing more than its shard's share of
    /// `max_weight`, or more than `u32::MAX`, is not stored.
    ///
    /// # Panics
    ///
    /// If the store is bounded by [`max_size`](Bounded::max_size): set
    /// [`max_weight`](Bounded::max_weight) instead. A panic of the weigher itself propagates
    /// to the insert that called it, which then stores nothing.
    ///
    /// ```
    /// # use memoflight::{Bounded, Store};
    /// let store = Bounded::<String, String>::new()
    ///     .max_weight(1 << 20)
    ///     .weigher(|key, value| (key.len() + value.len()) as u64);
    /// store.insert("ab".into(), "cde".into());
    /// assert_eq!(store.weight(), 5);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        assert!(
            !matches!(self.bound, Bound::Entries(_)),
            "memoflight: a weigher weighs entries for max_weight, not max_size: bound the store \
             with max_weight"
        );
        self.weigher = Some(Box::new(weigher));
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
    ///
    /// # Panics
    ///
    /// If `ttl` is zero: every value would expire as it is stored, and no read would ever
    /// return one (the `cached` crate refuses it too). `#[cached(ttl = ..)]` refuses a literal
    /// zero at compile time; a zero computed at run time panics here, when the cache is made
    /// (its first call).
    ///
    /// ```should_panic
    /// # use memoflight::Bounded;
    /// # use std::time::Duration;
    /// let store = Bounded::<u32, u32>::new().ttl(Duration::ZERO); // panics
    /// # let _ = store;
    /// ```
    #[track_caller]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        refuse_zero("ttl", ttl);
        self.ttl = Some(crate::clock::nanos(ttl));
        self
    }

    /// Keeps an expired entry `keep` longer before reclaiming it: reads never return it, but
    /// [`Store::get_stale`] does, so `#[cached(result_fallback)]` can return it when computing
    /// a fresh value fails (it keeps them for one more `ttl`). [`len`](Store::len), the size or
    /// weight bound and [`evict_expired`](Bounded::evict_expired) count a kept entry as
    /// present until that time has passed too.
    ///
    /// ```
    /// # use memoflight::{Bounded, Clock, Store};
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, u8>::new()
    ///     .ttl(Duration::from_secs(60))
    ///     .keep_expired_for(Duration::from_secs(60))
    ///     .clock(clock.clone());
    /// store.insert(1, 10);
    /// clock.advance(Duration::from_secs(90));
    /// assert_eq!(store.get(&1), None); // expired
    /// assert_eq!(store.get_stale(&1), Some(10)); // kept
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(store.evict_expired(), 1);
    /// assert_eq!(store.get_stale(&1), None);
    /// ```
    pub fn keep_expired_for(mut self, keep: Duration) -> Self {
        self.keep_expired = crate::clock::nanos(keep);
        self
    }

    /// Entries expire `idle` after they were last written or read: each hit renews its entry
    /// (the `cached` crate's `refresh = true`). With a [`ttl`](Bounded::ttl) too, an entry
    /// expires at whichever comes first: reads never keep it past its ttl.
    ///
    /// A hit renews its entry without a lock, and only if that moves its deadline by more than
    /// `idle / 64` (so a hot key is not written on every hit): an entry read steadily may expire
    /// up to `idle / 64` early, never late. (A hit racing the entry's reclaim at its old deadline,
    /// within nanoseconds of it, may lose its renewal: the entry then expires at the old
    /// deadline, early again.)
    ///
    /// ```
    /// # use memoflight::{Bounded, Clock, Store};
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, u8>::new()
    ///     .time_to_idle(Duration::from_secs(60))
    ///     .clock(clock.clone());
    /// store.insert(1, 10);
    /// clock.advance(Duration::from_secs(50));
    /// assert_eq!(store.get(&1), Some(10)); // renewed until 110 s
    /// clock.advance(Duration::from_secs(50));
    /// assert_eq!(store.get(&1), Some(10)); // renewed until 160 s
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(store.get(&1), None); // 60 s unread
    /// ```
    ///
    /// # Panics
    ///
    /// If `idle` is zero: every value would expire as it is stored (see [`ttl`](Bounded::ttl)).
    ///
    /// ```should_panic
    /// # use memoflight::Bounded;
    /// # use std::time::Duration;
    /// let store = Bounded::<u32, u32>::new().time_to_idle(Duration::ZERO); // panics
    /// # let _ = store;
    /// ```
    #[track_caller]
    pub fn time_to_idle(mut self, idle: Duration) -> Self {
        refuse_zero("time_to_idle", idle);
        self.idle = Some(crate::clock::nanos(idle));
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

    /// The total weight of the entries a read returns (and of the expired ones kept by
    /// [`keep_expired_for`](Bounded::keep_expired_for)): under
    /// [`max_weight`](Bounded::max_weight), the sum of their weights (never above
    /// `max_weight`); otherwise their number, as [`len`](Store::len). Like `len`, it first
    /// reclaims the expired entries, and it is a snapshot: it may be stale when it returns.
    ///
    /// ```
    /// # use memoflight::{Bounded, Store};
    /// let store = Bounded::<u32, String>::new()
    ///     .max_weight(1 << 20)
    ///     .weigher(|_, value| value.len() as u64);
    /// store.insert(1, "four".into());
    /// store.insert(2, "sixsix".into());
    /// assert_eq!((store.len(), store.weight()), (2, 10));
    ///
    /// let counted = Bounded::<u32, String>::new().max_size(100);
    /// counted.insert(1, "four".into());
    /// assert_eq!(counted.weight(), 1);
    /// ```
    pub fn weight(&self) -> u64 {
        self.evict_expired();
        let weight: isize = self
            .shards()
            .iter()
            .map(|shard| shard.live.weight.load(Relaxed))
            .sum();
        weight.max(0).unsigned_abs() as u64
    }

    /// Removes every entry whose deadline ([`ttl`](Bounded::ttl),
    /// [`time_to_idle`](Bounded::time_to_idle)) has passed (by more than
    /// [`keep_expired_for`](Bounded::keep_expired_for), if set), and returns how many it
    /// removed.
    ///
    /// Reads never return an expired entry; later inserts into its shard reclaim a few each,
    /// and [`len`](Store::len) reclaims them all, so calling this is never needed for
    /// correctness: it frees their memory now, at a time of your choosing (from a timer, say:
    /// the store has no thread of its own). It takes each shard's lock for a batch of 64
    /// entries at a time, with no user code under it; the keys and values are dropped after
    /// the lock is released.
    ///
    /// ```
    /// # use memoflight::{Bounded, Clock, Store};
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let store = Bounded::<u32, u32>::new()
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone());
    /// store.insert(1, 1);
    /// store.insert(2, 2);
    /// clock.advance(Duration::from_secs(5));
    /// store.insert(3, 3);
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(store.evict_expired(), 2);
    /// assert_eq!(store.evict_expired(), 0);
    /// assert_eq!(store.len(), 1);
    /// ```
    pub fn evict_expired(&self) -> usize {
        if !self.expiring() {
            return 0;
        }
        let now = self.reclaim_time(self.clock.now());
        let mut reclaimed = 0;
        for shard in self.shards() {
            loop {
                let mut out = Leftovers::default();
                let more = {
                    let mut queues = lock(&shard.queues);
                    self.reclaim_expired(shard, &mut queues, now, RECLAIM_PER_LOCK, &mut out)
                };
                reclaimed += out.victims.len();
                self.remove_victims(&out.victims);
                if !more {
                    break;
                }
            }
        }
        reclaimed
    }

    fn sized(&self) -> bool {
        self.bound != Bound::None
    }

    fn weighted(&self) -> bool {
        matches!(self.bound, Bound::Weight(_))
    }

    /// Whether entries expire: with a ttl, a time to idle, or both.
    fn expiring(&self) -> bool {
        self.ttl.is_some() || self.idle.is_some()
    }

    /// Whether entries carry times: reads and writes then consult the clock.
    fn timed(&self) -> bool {
        self.expiring() || self.refresh_after.is_some()
    }

    /// The clock time up to which expired entries are reclaimed at `now`: `now`, less the time
    /// expired entries are kept ([`keep_expired_for`](Bounded::keep_expired_for)).
    fn reclaim_time(&self, now: u64) -> u64 {
        now.saturating_sub(self.keep_expired)
    }

    /// Whether `entry` has expired at `now`.
    fn expired(&self, entry: &Entry<V>, now: u64) -> bool {
        self.expiring() && now >= entry.meta.expires.load(Relaxed)
    }

    /// What an entry counts in its shard: its weight under `max_weight` (the weigher runs
    /// here, user code, so never under a lock), 1 otherwise.
    fn weigh(&self, key: &K, value: &V) -> isize {
        match (&self.weigher, self.bound) {
            (Some(weigher), Bound::Weight(_)) => {
                isize::try_from(weigher(key, value)).unwrap_or(isize::MAX)
            }
            _ => 1,
        }
    }

    /// The number of entries `shard` counts.
    fn entries(&self, shard: &Shard) -> isize {
        match self.weighted() {
            true => shard.live.entries.load(Relaxed),
            false => shard.live.weight.load(Relaxed),
        }
    }

    /// The number of entries S3-FIFO's sizes (small queue, ghosts, ghost window) are derived
    /// from: the shard's capacity, or under `max_weight` the number of entries it holds.
    fn scale(&self, shard: &Shard) -> usize {
        match self.weighted() {
            true => shard.live.entries.load(Relaxed).max(0).unsigned_abs(),
            false => shard.capacity.unsigned_abs(),
        }
    }

    /// The shards, built on first use: with `max_size` (or no bound), one per
    /// [`CAPACITY_PER_SHARD`] entries of capacity (a power of two, at most four per core);
    /// with `max_weight`, one per core (a power of two, at most `max_weight`). The capacity is
    /// split among them.
    fn shards(&self) -> &[Shard] {
        self.shards.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            let (total, wanted) = match self.bound {
                Bound::None => (None, (usize::MAX / CAPACITY_PER_SHARD).clamp(1, 4 * cores)),
                Bound::Entries(n) => (Some(n as u64), (n / CAPACITY_PER_SHARD).clamp(1, 4 * cores)),
                Bound::Weight(w) => (
                    Some(w),
                    cores
                        .min(MAX_WEIGHTED_SHARDS)
                        .min(usize::try_from(w).unwrap_or(usize::MAX))
                        .max(1),
                ),
            };
            // A power of two no larger than wanted, so that no shard falls below the minimum.
            let count = 1usize << wanted.min(MAX_SHARDS).ilog2();
            (0..count)
                .map(|i| Shard {
                    queues: Padded(Mutex::new(Queues::default())),
                    live: Padded(Live {
                        weight: AtomicIsize::new(0),
                        entries: AtomicIsize::new(0),
                    }),
                    capacity: match total {
                        None => isize::MAX,
                        Some(n) => {
                            let (count, i) = (count as u64, i as u64);
                            isize::try_from(n / count + u64::from(i < n % count))
                                .unwrap_or(isize::MAX)
                        }
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

    /// Counts a new entry of `weight` in `shard`, under its lock, once it made room.
    fn count(&self, shard: &Shard, weight: isize) {
        shard.live.weight.fetch_add(weight, Relaxed);
        if self.weighted() {
            shard.live.entries.fetch_add(1, Relaxed);
        }
    }

    /// Takes an entry of `meta`, whose claim succeeded, out of its shard's counts.
    fn uncount_claimed(&self, shard: &Shard, meta: &Meta) {
        shard.live.weight.fetch_sub(meta.weight as isize, Relaxed);
        if self.weighted() {
            shard.live.entries.fetch_sub(1, Relaxed);
        }
    }

    /// Takes `meta`'s entry out of its shard's count, unless someone else did.
    fn uncount(&self, meta: &Meta) {
        if meta.claim() {
            self.uncount_claimed(&self.shards()[meta.shard as usize], meta);
        }
    }

    /// Claims `queued`'s entry as a victim (eviction or expiry): counted out now, removed from
    /// the map after the lock is released. False if it was gone already.
    fn claim_victim(&self, shard: &Shard, queued: &Queued) -> bool {
        if !queued.meta.claim() {
            return false;
        }
        self.uncount_claimed(shard, &queued.meta);
        self.evictions.fetch_add(1, Relaxed);
        true
    }

    /// Takes up to `limit` expiry steps at `now`: each takes the entry of the soonest queued
    /// deadline, if it has passed, and claims it, or queues it again in `renewed` if reads
    /// renewed it past `now` (so every queued deadline stays at most the entry's real one).
    /// Says whether it stopped at the limit (more may have expired).
    fn reclaim_expired(
        &self,
        shard: &Shard,
        queues: &mut Queues,
        now: u64,
        limit: usize,
        out: &mut Leftovers,
    ) -> bool {
        for _ in 0..limit {
            let Some(queued) = queues.pop_due(now) else {
                return false;
            };
            if queued.meta.is_gone() {
                out.garbage.push(queued); // replaced or removed since it was queued
                continue;
            }
            let deadline = queued.meta.expires.load(Relaxed);
            if deadline > now {
                // Renewed by reads: queued at its real deadline, which may come before those
                // of entries written after it, hence the heap.
                queues.renewed.push(Renewed { deadline, queued });
                continue;
            }
            if self.claim_victim(shard, &queued) {
                out.victims.push(queued);
            } else {
                out.garbage.push(queued);
            }
        }
        true
    }

    /// Queues a new entry for expiry at `deadline`, its deadline when it was written, keeping
    /// `by_age` in deadline order so that reclaiming from its head finds every expired entry.
    /// An insert slowed between its clock read and its lock (user code runs in between) may
    /// arrive after one with a later deadline: it goes to the `renewed` heap at its own
    /// deadline (its life is neither lengthened nor shortened), or, if it is past the time
    /// expired entries are kept, is reclaimed at once.
    fn queue_for_expiry(
        &self,
        shard: &Shard,
        queues: &mut Queues,
        queued: Queued,
        deadline: u64,
        out: &mut Leftovers,
    ) {
        let last = queues.by_age.back().map_or(0, |(_, deadline)| *deadline);
        if last <= deadline {
            queues.by_age.push_back((queued, deadline));
        } else if self.reclaim_time(self.clock.now()) >= queued.meta.expires.load(Relaxed) {
            match self.claim_victim(shard, &queued) {
                true => out.victims.push(queued),
                false => out.garbage.push(queued),
            }
        } else {
            // Its real deadline (a hit may have renewed it since: `reclaim_expired` queues it
            // again then), never raised: an entry already expired for reads stays expired.
            let deadline = queued.meta.expires.load(Relaxed);
            queues.renewed.push(Renewed { deadline, queued });
        }
    }

    /// Claims one victim (S3-FIFO); returns false if there was nothing to evict.
    fn evict_one(&self, shard: &Shard, queues: &mut Queues, out: &mut Leftovers) -> bool {
        let small_target = (self.scale(shard) / SMALL_DIVISOR).max(1);
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
                remember_ghost(self.scale(shard), queues, queued.meta.fingerprint());
            }
            if self.claim_victim(shard, &queued) {
                out.victims.push(queued);
                return true;
            }
            out.garbage.push(queued);
        }
    }

    /// An insert of an entry heavier than its shard's capacity: not stored, and counted as an
    /// eviction; the key's previous value is removed, so that no later read returns it. The
    /// key's `Eq` runs here, with no lock of ours held.
    fn reject(&self, hash: u64, key: &K) {
        self.evictions.fetch_add(1, Relaxed);
        let removed = self.map.remove(
            hash,
            |stored, _| stored == key,
            |entry| {
                self.uncount(&entry.meta);
                entry.meta.shard
            },
        );
        if let Some(shard) = removed {
            self.sweep_after_removal(shard);
        }
    }

    /// A few sweep steps after a removal from shard `index`: the removed entry's queue entries
    /// are stale now, and removals without inserts must not hold keys alive.
    fn sweep_after_removal(&self, index: u16) {
        let shard = &self.shards()[index as usize];
        let mut garbage = Vec::new();
        lock(&shard.queues).sweep(self.entries(shard), &mut garbage);
        drop(garbage);
    }

    /// Drops the stale entries of the shards whose queues hold more of them than live ones
    /// (plus [`STALE_ALLOWED`]), after `clear` and `invalidate_if`: the bound the incremental
    /// sweep keeps, restored at once. `renewed` counts here (the sweep cannot walk a heap, so
    /// this is the only place its removed entries leave before their deadline). A shard within
    /// the bound is left to its sweep, so an `invalidate_if` that removes a few entries does
    /// not walk every queue (it took as long as the map's walk).
    ///
    /// Sorted out under each shard's lock (no user code runs under it), which must not be
    /// dropped wholesale: the entries of keys inserted while the map was walked must stay
    /// queued (or they could never be evicted), and no insert may find the queues empty and
    /// fail to make room. What is dropped is dropped after the lock is released.
    fn sift_queues(&self) {
        for shard in self.shards() {
            let mut garbage = Vec::new();
            let mut queues = lock(&shard.queues);
            // A live entry sits in at most two of them (small or main, and by_age or
            // renewed): more than twice the live entries means stale ones outnumber them.
            let queued = queues.len() + queues.renewed.len();
            if queued as isize > 2 * self.entries(shard) + STALE_ALLOWED {
                queues.sift(&mut garbage);
            }
            drop(queues);
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
/// window or beyond the FIFO's length. `scale`: see [`Bounded::scale`].
fn remember_ghost(scale: usize, queues: &mut Queues, fingerprint: u32) {
    let hand = queues.hand;
    queues.ghost.push_back((fingerprint, hand));
    queues.ghosts.insert(fingerprint, hand);
    let max_ghosts = scale.saturating_mul(GHOSTS_PER_ENTRY);
    let window = ghost_window(scale);
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
fn ghost_window(scale: usize) -> u32 {
    u32::try_from(scale / GHOST_TURN_DIVISOR)
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
            if self.expiring() {
                let expires = entry.meta.expires.load(Relaxed);
                if now >= expires {
                    return None;
                }
                if let Some(idle) = self.idle {
                    let hard = self
                        .ttl
                        .map_or(u64::MAX, |ttl| entry.written.saturating_add(ttl));
                    entry.meta.renew(expires, now, idle, hard);
                }
            }
            let visits = entry.meta.visits.load(Relaxed);
            if visits < MAX_VISITS {
                entry.meta.visits.store(visits + 1, Relaxed);
            }
            let due = self
                .refresh_after
                .is_some_and(|age| now >= entry.written.saturating_add(age));
            Some((entry.value.clone(), due))
        };
        self.map
            .get(hash, |stored| key.equivalent(stored), read)
            .flatten()
    }

    /// The value held under `key`, expired or not (until a later write reclaims it): what
    /// `result_fallback` returns when recomputing an expired value fails. Neither renews it
    /// nor counts as a read for eviction.
    fn get_stale<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        self.map.get(
            hash,
            |stored| key.equivalent(stored),
            |entry| entry.value.clone(),
        )
    }

    fn insert(&self, key: K, value: V) {
        // User code first, with no lock held: the key's `Hash`, the weigher.
        let hash = self.hasher.hash_one(&key);
        let weight = self.weigh(&key, &value);
        let index = self.shard_of(hash);
        let shard = &self.shards()[index as usize];
        if weight > shard.capacity || u32::try_from(weight).is_err() {
            self.reject(hash, &key);
            return; // the key and value are dropped here, with no lock held
        }
        let now = if self.timed() { self.clock.now() } else { 0 };
        let hard = self.ttl.map_or(u64::MAX, |ttl| now.saturating_add(ttl));
        let expires = self
            .idle
            .map_or(hard, |idle| now.saturating_add(idle).min(hard));
        let meta = Arc::new(Meta {
            visits: AtomicU8::new(0),
            gone: AtomicBool::new(false),
            shard: index as u16,
            hash,
            weight: weight as u32,
            expires: AtomicU64::new(expires),
        });
        let entry = Entry {
            value,
            meta: Arc::clone(&meta),
            written: now,
        };
        self.map
            .insert(hash, key, entry, |old| self.uncount(&old.meta));
        let mut out = Leftovers::default();
        {
            let mut queues = lock(&shard.queues);
            let queues = &mut *queues;
            if self.expiring() {
                let reclaim_time = self.reclaim_time(now);
                self.reclaim_expired(shard, queues, reclaim_time, RECLAIM_PER_WRITE, &mut out);
            }
            // Room first, then the count: the shard's count never exceeds its capacity, and
            // the new entry, queued after, is not a candidate. (`capacity - weight` cannot
            // overflow: heavier entries were rejected.) Expired entries kept as fallbacks
            // (`keep_expired_for`) make room before any live one is evicted.
            while shard.live.weight.load(Relaxed) > shard.capacity - weight {
                let kept =
                    self.keep_expired > 0 && self.reclaim_expired(shard, queues, now, 1, &mut out);
                if !kept && !self.evict_one(shard, queues, &mut out) {
                    break;
                }
            }
            self.count(shard, weight);
            if self.sized() {
                let queued = Queued {
                    meta: Arc::clone(&meta),
                };
                let returning = queues.ghosts.remove(&meta.fingerprint()).is_some_and(|at| {
                    queues.hand.wrapping_sub(at) < ghost_window(self.scale(shard))
                });
                if returning {
                    queues.main.push_back(queued);
                } else {
                    queues.small.push_back(queued);
                }
            }
            if self.expiring() {
                self.queue_for_expiry(shard, queues, Queued { meta }, expires, &mut out);
            }
            queues.sweep(self.entries(shard), &mut out.garbage);
        }
        self.remove_victims(&out.victims);
    }

    /// Clones nothing; `read` is not called for a value that had expired.
    fn remove_with<Q: ?Sized + Hash + Equivalent<K>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        let read = |entry: &Entry<V>| {
            self.uncount(&entry.meta);
            let now = if self.expiring() { self.clock.now() } else { 0 };
            // `read` (user code, such as the value's `Clone`) runs with no lock held.
            (
                (!self.expired(entry, now)).then(|| read(&entry.value)),
                entry.meta.shard,
            )
        };
        let (removed, shard) = self
            .map
            .remove(hash, |stored, _| key.equivalent(stored), read)?;
        self.sweep_after_removal(shard);
        removed
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        // The predicate (user code) runs with no lock of this store held: it may call the cache.
        let mut removed = false;
        self.map.retain(
            &mut |key, entry| keep(key, &entry.value),
            &mut |_, entry| {
                removed = true;
                self.uncount(&entry.meta);
            },
        );
        // The queues are walked only if entries left them stale (`evict_expired` of an
        // `Expiring` store walks the map often, mostly removing nothing).
        if removed {
            self.sift_queues();
        }
    }

    fn clear(&self) {
        self.map.clear(&mut |_, entry| self.uncount(&entry.meta));
        self.sift_queues();
    }

    fn len(&self) -> usize {
        // Expired entries are reclaimed first, a few at a time, each batch under the lock.
        self.evict_expired();
        let entries: isize = self.shards().iter().map(|shard| self.entries(shard)).sum();
        entries.max(0).unsigned_abs()
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    fn evict_expired(&self) -> usize {
        Bounded::evict_expired(self)
    }
}

/// A zero `ttl` or `time_to_idle` is a mistake, not a way to disable the cache: refused with
/// the option's name, at construction rather than by never hitting.
#[track_caller]
fn refuse_zero(option: &str, duration: Duration) {
    assert!(
        !duration.is_zero(),
        "memoflight: a {option} of zero: every value would expire as it is stored, and no call \
         would hit; leave the {option} out to keep values until they are invalidated"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::time::Duration;

    /// The queue entries of every shard, `renewed` included.
    fn queued(store: &Bounded<u32, u32>) -> usize {
        store
            .shards()
            .iter()
            .map(|shard| {
                let queues = lock(&shard.queues);
                queues.len() + queues.renewed.len()
            })
            .sum()
    }

    /// Entries removed while they sit in `renewed` (an idle store, no size bound: no other
    /// queue holds them) leave it when `invalidate_if` or `clear` leaves stale entries
    /// outnumbering live ones, with no write after: `renewed` is not swept.
    #[test]
    fn removed_entries_leave_the_renewed_heap_without_later_writes() {
        let clock = Clock::manual();
        let store = Bounded::<u32, u32>::new()
            .time_to_idle(Duration::from_secs(60))
            .clock(clock.clone());
        for k in 0..1_000 {
            store.insert(k, k);
        }
        clock.advance(Duration::from_secs(59));
        for k in 0..1_000 {
            assert_eq!(store.get(&k), Some(k));
        }
        clock.advance(Duration::from_secs(2));
        // Reclaiming finds every queued deadline passed and the real ones moved on: all go to
        // `renewed`.
        assert_eq!(store.len(), 1_000);
        let shards = store.shards().len();
        store.retain(&mut |k, _| k % 10 == 0);
        assert_eq!(store.len(), 100);
        let bound = 2 * 100 + STALE_ALLOWED as usize * shards;
        assert!(queued(&store) <= bound, "{} queued", queued(&store));
        Store::clear(&store);
        let bound = STALE_ALLOWED as usize * shards;
        assert!(queued(&store) <= bound, "{} queued", queued(&store));
    }
}
