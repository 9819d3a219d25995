//! The bounded store (`max_size`, `ttl`): its size bound under concurrency, its eviction
//! policy, expiry with a manual clock, and the scenarios of SCENARIOS.md §3 and §4.

mod common;

use memoflight::{cached, Bounded, Cache, Clock, Store};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// SCENARIOS.md §3, as the notes state it: an LRU of at most 10 decoded files, 10 threads x
/// 100 iterations over 5 keys; every get after a put finds a value and the size never exceeds
/// the bound.
#[test]
fn audio_lru_holds_its_bound_and_finds_what_was_put() {
    let store = Arc::new(Bounded::<String, Arc<Vec<u8>>>::new().max_size(10));
    let (missed, oversize) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for thread in 0..10 {
            let (store, missed, oversize) = (&store, &missed, &oversize);
            s.spawn(move || {
                for i in 0..100 {
                    let name = format!("song{}.mp3", (thread + i) % 5);
                    store.insert(name.clone(), Arc::new(vec![thread as u8; 64]));
                    missed.fetch_add(u64::from(store.get(&name).is_none()), SeqCst);
                    oversize.fetch_add(u64::from(store.len() > 10), SeqCst);
                }
            });
        }
    });
    assert_eq!(missed.load(SeqCst), 0);
    assert_eq!(oversize.load(SeqCst), 0);
    assert_eq!(store.len(), 5);
}

static DECODES: AtomicU64 = AtomicU64::new(0);

#[cached(max_size = 10)]
fn decode(name: &str) -> Arc<Vec<u8>> {
    DECODES.fetch_add(1, SeqCst);
    Arc::new(name.bytes().collect())
}

/// The same with eviction at work: 10 threads x 100 calls over 40 files through a memoized
/// `decode` with `max_size = 10`. Every call returns the right value, and the size observed
/// after every call stays within 10.
#[test]
fn memoized_decoder_never_exceeds_max_size_and_never_returns_a_wrong_value() {
    let (wrong, oversize, observations) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for thread in 0..10 {
            let (wrong, oversize, observations) = (&wrong, &oversize, &observations);
            s.spawn(move || {
                for i in 0..100 {
                    let name = format!("song{}.mp3", (thread * 7 + i * 3) % 40);
                    let decoded = decode(&name);
                    wrong.fetch_add(u64::from(*decoded != name.as_bytes()), SeqCst);
                    oversize.fetch_add(u64::from(decode_cache().len() > 10), SeqCst);
                    observations.fetch_add(1, SeqCst);
                }
            });
        }
    });
    assert_eq!(observations.load(SeqCst), 1000);
    assert_eq!(wrong.load(SeqCst), 0);
    assert_eq!(oversize.load(SeqCst), 0);
    let stats = decode_cache().stats();
    assert!(stats.entries <= 10);
    assert_eq!(stats.executions, DECODES.load(SeqCst));
    // 40 files through 10 slots: everything computed beyond the 10 that stay was evicted.
    assert_eq!(stats.evictions, stats.executions - stats.entries);
    assert_eq!(stats.in_flight, 0);
}

#[test]
fn evictions_are_counted_exactly() {
    let cache = Cache::new("sized", Bounded::<u32, u32>::new().max_size(100));
    for k in 0..250 {
        cache.get_or_compute(k, || k);
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.entries, stats.evictions, stats.executions),
        (100, 150, 250)
    );
}

/// A scan of one-time keys does not push out a working set that is being read: with LRU all
/// 50 hot keys would be gone after 1,000 new keys went through a 100-entry cache.
#[test]
fn a_scan_does_not_flush_the_working_set() {
    let store = Bounded::<u32, u32>::new().max_size(100);
    for k in 0..50 {
        store.insert(k, k);
    }
    for _ in 0..2 {
        for k in 0..50 {
            assert_eq!(store.get(&k), Some(k));
        }
    }
    for k in 1_000..2_000 {
        store.insert(k, k);
    }
    let kept = (0..50).filter(|k| store.get(k).is_some()).count();
    assert_eq!(kept, 50);
    assert_eq!(store.len(), 100);
}

/// A key evicted from the small queue that comes back is remembered (ghost) and kept.
#[test]
fn a_returning_key_is_admitted_to_the_main_queue() {
    let store = Bounded::<u32, u32>::new().max_size(10);
    for k in 0..30 {
        store.insert(k, k); // 0..20 pass through and are evicted; the last 10 leave a ghost
    }
    assert_eq!(store.get(&19), None);
    store.insert(19, 19); // a ghost: goes to the main queue
    store.insert(0, 0); // forgotten (the ghost queue holds 10): goes to the small queue
    for k in 100..200 {
        store.insert(k, k); // one-time keys
    }
    assert_eq!(store.get(&19), Some(19));
    assert_eq!(store.get(&0), None);
}

#[test]
fn an_entry_expires_at_its_ttl_exactly() {
    let clock = Clock::manual();
    let ttl = Duration::from_secs(90);
    let cache = Cache::new(
        "ttl",
        Bounded::<u8, u64>::new().ttl(ttl).clock(clock.clone()),
    );
    let runs = AtomicU64::new(0);
    let compute = || runs.fetch_add(1, SeqCst) + 1;
    assert_eq!(cache.get_or_compute(1, compute), 1);
    clock.advance(Duration::from_secs(89));
    assert_eq!(cache.get_or_compute(1, compute), 1);
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&1), None, "an expired entry is never returned");
    assert_eq!(cache.get_or_compute(1, compute), 2);
    assert_eq!(runs.load(SeqCst), 2);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.executions), (1, 2, 2));
}

#[test]
fn expired_entries_are_reclaimed_by_later_writes_without_a_background_thread() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .ttl(Duration::from_secs(10))
        .clock(clock.clone());
    for k in 0..1_000 {
        store.insert(k, k);
    }
    clock.advance(Duration::from_secs(5));
    store.insert(1_000, 0);
    assert_eq!(store.len(), 1_001);
    clock.advance(Duration::from_secs(5)); // the first 1,000 expire
    for k in 1_001..2_001 {
        // Each reclaims a few (up to 4, in its key's shard): never a pause of them all.
        store.insert(k, 0);
    }
    assert_eq!(store.evictions(), 1_000, "later writes reclaimed them all");
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.len(), 1_000, "len reclaims too");
    assert_eq!(store.evictions(), 1_001);
}

#[test]
fn max_size_and_ttl_together() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .max_size(3)
        .ttl(Duration::from_secs(1))
        .clock(clock.clone());
    for k in 0..5 {
        store.insert(k, k);
        assert!(store.len() <= 3);
    }
    assert_eq!(store.evictions(), 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!((0..5).filter(|k| store.get(k).is_some()).count(), 0);
    assert_eq!(store.len(), 0);
    assert_eq!(store.evictions(), 5);
}

#[test]
fn replacing_and_removing_without_evicting_keeps_memory_bounded() {
    // Every replacement leaves a stale queue entry; compaction must drop them.
    let store = Bounded::<u32, u32>::new()
        .max_size(1_000)
        .ttl(Duration::from_secs(60));
    for round in 0..100_000 {
        store.insert(round % 10, round);
        if round % 3 == 0 {
            store.remove(&(round % 10));
        }
    }
    assert!(store.len() <= 10);
    assert_eq!(store.evictions(), 0);
}

/// `invalidate_if` that removes a few entries leaves their queue entries to the incremental
/// sweep (it no longer walks every queue); one that removes most sifts the queues at once.
/// Either way the room freed is usable at once, and evictions start exactly at the bound.
#[test]
fn invalidate_if_frees_room_exactly_whether_it_removes_few_or_most() {
    for (removed_every, removed) in [(100u32, 20u32), (10, 200), (1, 2_000)] {
        let store = Bounded::<u32, u32>::new().max_size(2_000);
        for k in 0..2_000 {
            store.insert(k, k);
        }
        assert_eq!(store.evictions(), 0);
        store.retain(&mut |k, _| k % removed_every != 0);
        assert_eq!(store.len() as u32, 2_000 - removed);
        // New keys fill the room the removal made, evicting nothing...
        for k in 10_000..10_000 + removed {
            store.insert(k, k);
        }
        assert_eq!(store.evictions(), 0, "removing every {removed_every}th");
        assert_eq!(store.len(), 2_000);
        // ...and each key past the bound evicts exactly one.
        for k in 20_000..20_100 {
            store.insert(k, k);
        }
        assert_eq!(store.evictions(), 100, "removing every {removed_every}th");
        assert_eq!(store.len(), 2_000);
    }
}

/// SCENARIOS.md §4, on `memoflight::testing::stampede`.
#[cfg(feature = "testing")]
mod throttle {
    use memoflight::testing::stampede;
    use memoflight::{cached, Bounded, Clock};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::LazyLock;
    use std::time::Duration;

    static WINDOW_CLOCK: LazyLock<Clock> = LazyLock::new(Clock::manual);
    const WINDOW: Duration = Duration::from_secs(30);
    static PLAYS: AtomicUsize = AtomicUsize::new(0);

    /// The throttle of SCENARIOS.md §4: a value that lives one window.
    #[cached(store = Bounded::new().ttl(WINDOW).clock(WINDOW_CLOCK.clone()))]
    fn throttle(sound: &str) -> u64 {
        let _ = sound;
        PLAYS.fetch_add(1, SeqCst) as u64
    }

    /// SCENARIOS.md §4: 10 concurrent checks per window, exactly one learns that its call
    /// computed ("not throttled: play"), for 50 windows.
    #[test]
    fn throttle_lets_exactly_one_caller_per_window_play() {
        for window in 0..50 {
            let report = stampede(10, |_| throttle_with_origin("bell.wav"));
            assert_eq!(report.computed(), 1, "window {window}: {report:?}");
            WINDOW_CLOCK.advance(WINDOW);
        }
        assert_eq!(PLAYS.load(SeqCst), 50);
    }
}

#[cached(max_size = 2, ttl = Duration::from_secs(3600))]
fn small_and_timed(n: u32) -> u32 {
    n + 1
}

#[test]
fn macro_options_build_a_bounded_store() {
    for n in 0..5 {
        assert_eq!(small_and_timed(n), n + 1);
    }
    let stats = small_and_timed_cache().stats();
    assert_eq!((stats.entries, stats.evictions), (2, 3));
}

/// `clear` racing inserts leaves every entry it did not remove evictable: after the race, a
/// stream of new keys pushes every old one out and the size stays within `max_size`. (A clear
/// that dropped the queues wholesale also dropped the queue entries of keys inserted while it
/// ran, which then stayed in the store, counted and never evicted.)
#[test]
fn entries_inserted_during_a_clear_stay_evictable() {
    const MAX: usize = 20_000;
    let store = Bounded::<u64, u64>::new().max_size(MAX);
    let next = AtomicU64::new(0);
    let insert = |n: usize| {
        for _ in 0..n {
            let k = next.fetch_add(1, SeqCst);
            store.insert(k, k);
        }
    };
    for _ in 0..3 {
        insert(MAX); // a full store: each clear walks it for a while
        let inserting = std::sync::atomic::AtomicBool::new(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                while inserting.load(SeqCst) {
                    insert(100);
                }
            });
            s.spawn(|| {
                store.clear();
                store.clear();
                inserting.store(false, SeqCst);
            });
        });
    }
    let raced = next.load(SeqCst);
    insert(3 * MAX);
    assert!(store.len() <= MAX, "len {} over {MAX}", store.len());
    let stuck = (0..raced).filter(|k| store.get(k).is_some()).count();
    assert_eq!(stuck, 0, "keys from the race never evicted");
    assert_eq!(store.len(), MAX);
}

/// A key whose `Eq` can be held (on the thread that finds `HOLD_EQ` set), to slow an insert
/// between its clock read and its queue lock.
#[derive(Clone, Debug)]
struct SlowEq(u32);

static HOLD_EQ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static IN_EQ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl std::hash::Hash for SlowEq {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for SlowEq {
    fn eq(&self, other: &Self) -> bool {
        if HOLD_EQ.load(SeqCst) && std::thread::current().name() == Some("slowed") {
            IN_EQ.store(true, SeqCst);
            while HOLD_EQ.load(SeqCst) {
                std::thread::yield_now();
            }
        }
        self.0 == other.0
    }
}

impl Eq for SlowEq {}

/// An insert slowed by user code between reading the clock and queueing its entry for expiry
/// (here, a key's `Eq`), while a later write of another key goes first, still leaves `len()`
/// counting exactly the entries a read returns. (The expiry queue was in lock order, not
/// deadline order: `len()` stopped at the first live entry and counted an expired one behind.)
#[test]
fn len_counts_exactly_the_entries_a_read_returns_after_a_slowed_insert() {
    let clock = Clock::manual();
    let store = Arc::new(
        Bounded::<SlowEq, u32>::new()
            .max_size(1_000)
            .ttl(Duration::from_secs(10))
            .clock(clock.clone()),
    );
    store.insert(SlowEq(1), 1);
    clock.advance(Duration::from_secs(1));
    HOLD_EQ.store(true, SeqCst);
    let slowed = std::thread::Builder::new()
        .name("slowed".into())
        .spawn({
            let store = Arc::clone(&store);
            move || store.insert(SlowEq(1), 11) // reads the clock at 1 s, then waits in `Eq`
        })
        .unwrap();
    common::wait_until("the slowed insert to reach Eq", || IN_EQ.load(SeqCst));
    clock.advance(Duration::from_secs(5));
    store.insert(SlowEq(2), 2); // written at 6 s, queued first
    HOLD_EQ.store(false, SeqCst);
    slowed.join().unwrap();
    for second in 7..27 {
        clock.advance(Duration::from_secs(1));
        let readable = [1, 2]
            .iter()
            .filter(|&&k| store.get(&SlowEq(k)).is_some())
            .count();
        assert_eq!(store.len(), readable, "at {second} s");
    }
    assert_eq!(store.len(), 0);
}

static LIVE_KEYS: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

/// A key that counts its live copies.
#[derive(Debug)]
struct CountedKey(u64);

impl CountedKey {
    fn new(n: u64) -> Self {
        LIVE_KEYS.fetch_add(1, SeqCst);
        CountedKey(n)
    }
}

impl Clone for CountedKey {
    fn clone(&self) -> Self {
        CountedKey::new(self.0)
    }
}

impl Drop for CountedKey {
    fn drop(&mut self) {
        LIVE_KEYS.fetch_sub(1, SeqCst);
    }
}

impl std::hash::Hash for CountedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for CountedKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for CountedKey {}

/// Removing entries, one by one or with `invalidate_if`, frees their keys without waiting for
/// later inserts: at most a small constant of key copies stays behind (stale queue entries
/// below the sweep's threshold, and the map's batch of removals not yet reclaimed). (Removed
/// keys stayed in the eviction queues until enough later inserts swept them: 50,000 copies.)
#[test]
fn removed_entries_do_not_keep_their_keys_alive() {
    let store = Cache::new("keys", Bounded::<CountedKey, u64>::new().max_size(100_000));
    let baseline = LIVE_KEYS.load(SeqCst);
    for n in 0..50_000 {
        store.get_or_compute(CountedKey::new(n), || n);
    }
    for n in 0..50_000 {
        store.invalidate(&CountedKey::new(n));
    }
    assert_eq!(store.len(), 0);
    let left = LIVE_KEYS.load(SeqCst) - baseline;
    assert!(
        left < 1_000,
        "{left} key copies alive after 50,000 invalidations"
    );
    for n in 0..10_000 {
        store.get_or_compute(CountedKey::new(n), || n);
    }
    store.invalidate_if(|_, _| true);
    assert_eq!(store.len(), 0);
    let left = LIVE_KEYS.load(SeqCst) - baseline;
    assert!(
        left < 1_000,
        "{left} key copies alive after invalidate_if removed all"
    );
}

/// SCENARIOS.md §3 sized by bytes: decoded sounds of 1 to 4 KB under a 64 KB budget
/// (`max_weight` with a weigher of the samples' bytes), 10 threads x 500 plays over 64 sounds
/// (about 160 KB in all, so the cache evicts all along), and an observer reading the total
/// weight meanwhile. Every observation, the players' after each call and the observer's, is
/// within the budget, and every play returns the sound it asked for.
static WEIGHED_DECODES: AtomicUsize = AtomicUsize::new(0);
const AUDIO_BUDGET: u64 = 64 * 1024;

#[cached(
    max_weight = AUDIO_BUDGET,
    weigher = |_, samples: &Arc<Vec<i16>>| (samples.len() * std::mem::size_of::<i16>()) as u64
)]
fn decoded(sound: u32) -> Arc<Vec<i16>> {
    WEIGHED_DECODES.fetch_add(1, SeqCst);
    // 512 to 2,048 samples of 2 bytes, each holding the sound's number.
    Arc::new(vec![sound as i16; 512 * (1 + sound as usize % 4)])
}

#[test]
fn weighted_cache_never_exceeds_max_weight_under_ten_threads() {
    let (heaviest, observations, done) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while done.load(SeqCst) < 10 {
                let weight = decoded_cache().store().weight();
                heaviest.fetch_max(weight, SeqCst);
                observations.fetch_add(1, SeqCst);
            }
        });
        for thread in 0..10u32 {
            let (heaviest, done) = (&heaviest, &done);
            s.spawn(move || {
                for i in 0..500u32 {
                    let sound = (thread * 7 + i * 13) % 64;
                    let samples = decoded(sound);
                    assert!(samples.iter().all(|&s| s == sound as i16), "sound {sound}");
                    heaviest.fetch_max(decoded_cache().store().weight(), SeqCst);
                }
                done.fetch_add(1, SeqCst);
            });
        }
    });
    let heaviest = heaviest.load(SeqCst);
    assert!(
        heaviest <= AUDIO_BUDGET,
        "{heaviest} bytes held at one observation"
    );
    assert!(observations.load(SeqCst) > 0);
    let stats = decoded_cache().stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(
        DECODES.load(SeqCst) > 64,
        "the evicted sounds were decoded again"
    );
    assert!(decoded_cache().store().weight() <= AUDIO_BUDGET);
}
