//! The bounded store's policies beyond `max_size` and `ttl`: `time_to_idle` (reads renew an
//! entry), weights (`max_weight` with a `weigher`), and `evict_expired`. Time moves by a
//! manual clock; every assertion counts entries, weights or evictions, never durations.

mod common;

use memoflight::{Bounded, Clock, Store};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

/// A small deterministic generator (splitmix64): the tests need varied, repeatable numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// How many entries the map holds, seen without reading them (a read would renew them).
fn held<K, V>(store: &Bounded<K, V>) -> usize
where
    K: std::hash::Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    let mut count = 0;
    store.retain(&mut |_, _| {
        count += 1;
        true
    });
    count
}

// time_to_idle

#[test]
fn an_entry_read_every_half_idle_stays_alive_past_several_idles() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .time_to_idle(10 * SECOND)
        .clock(clock.clone());
    store.insert(1, 10);
    for half in 1..=20 {
        clock.advance(5 * SECOND);
        assert_eq!(store.get(&1), Some(10), "after {half} half idles");
        assert_eq!(store.len(), 1);
    }
    // 100 s, ten idle periods, then no more reads.
    clock.advance(10 * SECOND - Duration::from_nanos(1));
    assert_eq!(store.len(), 1);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(store.get(&1), None);
    assert_eq!(store.len(), 0);
    assert_eq!(store.evictions(), 1);
}

#[test]
fn an_entry_not_read_expires_exactly_at_its_idle_time() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .max_size(100)
        .time_to_idle(10 * SECOND)
        .clock(clock.clone());
    store.insert(1, 10);
    clock.advance(10 * SECOND - Duration::from_nanos(1));
    assert_eq!(store.len(), 1, "len does not renew");
    clock.advance(Duration::from_nanos(1));
    assert_eq!(store.get(&1), None);
    assert_eq!(store.len(), 0);
    // A write renews like a read: rewritten at 10 s, it lives until 20 s.
    store.insert(1, 11);
    clock.advance(9 * SECOND);
    store.insert(1, 12);
    clock.advance(9 * SECOND);
    assert_eq!(store.len(), 1);
    assert_eq!(store.get(&1), Some(12));
}

#[test]
fn with_ttl_and_idle_a_read_entry_still_expires_at_its_ttl() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .ttl(30 * SECOND)
        .time_to_idle(10 * SECOND)
        .clock(clock.clone());
    store.insert(1, 10);
    store.insert(2, 20); // never read: expires at its idle time, before its ttl
    for _ in 0..5 {
        clock.advance(5 * SECOND);
        assert_eq!(store.get(&1), Some(10));
    }
    assert_eq!(store.get(&2), None);
    // 25 s: read every 5 s, but its ttl ends at 30 s.
    clock.advance(5 * SECOND - Duration::from_nanos(1));
    assert_eq!(store.get(&1), Some(10));
    assert_eq!(store.len(), 1);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(store.get(&1), None);
    assert_eq!(store.len(), 0);
    assert_eq!(store.evictions(), 2);
}

/// An entry renewed by a read leaves the write-order expiry queue later than its place there;
/// it is queued again at its renewed deadline, before an entry written after it, and must be
/// reclaimed at that deadline (not when the later entry expires). (`max_size` below 4,096:
/// one shard, so both keys share their queues.)
#[test]
fn a_renewed_entry_is_reclaimed_at_its_renewed_deadline_before_later_writes() {
    let clock = Clock::manual();
    let store = Bounded::<u32, u32>::new()
        .max_size(100)
        .time_to_idle(10 * SECOND)
        .clock(clock.clone());
    store.insert(1, 1); // deadline 10 s
    clock.advance(9 * SECOND);
    assert_eq!(store.get(&1), Some(1)); // renewed to 19 s
    clock.advance(SECOND / 2);
    store.insert(2, 2); // deadline 19.5 s
    clock.advance(SECOND / 2);
    assert_eq!(
        store.len(),
        2,
        "at 10 s, key 1 was renewed: queued again at 19 s"
    );
    assert_eq!(store.evictions(), 0);
    clock.advance(9 * SECOND);
    assert_eq!(held(&store), 2, "not reclaimed yet: nothing ran");
    assert_eq!(store.len(), 1, "at 19 s, key 1 has expired");
    assert_eq!(held(&store), 1);
    assert_eq!(store.evictions(), 1);
    assert_eq!(store.get(&1), None);
    assert_eq!(store.get(&2), Some(2));
}

/// Many keys written at different times, subsets renewed at random, time moving at random:
/// `len()` always counts exactly the entries a read returns (and the map holds nothing else
/// once `len` has reclaimed), with idle alone and with a ttl as well.
#[test]
fn len_counts_exactly_the_entries_a_read_returns_after_renewals() {
    for (seed, ttl) in [(1, None), (2, Some(45 * SECOND)), (3, Some(5 * SECOND))] {
        let clock = Clock::manual();
        let mut store = Bounded::<u32, u32>::new()
            .time_to_idle(16 * SECOND)
            .clock(clock.clone());
        if let Some(ttl) = ttl {
            store = store.ttl(ttl);
        }
        let mut rng = Rng(seed);
        let mut next_key = 0;
        for step in 0..200 {
            for _ in 0..rng.below(40) {
                store.insert(next_key, next_key);
                next_key += 1;
            }
            for _ in 0..rng.below(60) {
                store.get(&(rng.below(u64::from(next_key) + 1) as u32));
            }
            clock.advance(Duration::from_millis(rng.below(6_000)));
            let len = store.len();
            assert_eq!(
                len,
                held(&store),
                "seed {seed}, step {step}: the map holds more"
            );
            if step % 5 == 0 {
                let readable = (0..next_key).filter(|k| store.get(k).is_some()).count();
                assert_eq!(len, readable, "seed {seed}, step {step}");
            }
        }
        assert!(store.evictions() > 0);
    }
}

#[test]
fn evict_expired_returns_the_number_removed() {
    let clock = Clock::manual();
    let store = Arc::new(
        Bounded::<u32, u32>::new()
            .max_size(1_000)
            .time_to_idle(10 * SECOND)
            .clock(clock.clone()),
    );
    for k in 0..10 {
        store.insert(k, k);
    }
    assert_eq!(store.evict_expired(), 0);
    clock.advance(5 * SECOND);
    for k in 0..3 {
        assert_eq!(store.get(&k), Some(k)); // renewed to 15 s
    }
    clock.advance(5 * SECOND);
    assert_eq!(held(&store), 10, "expired but not reclaimed yet");
    assert_eq!(store.evict_expired(), 7);
    assert_eq!(store.evict_expired(), 0);
    assert_eq!(held(&store), 3);
    assert_eq!(store.len(), 3);
    assert_eq!(store.evictions(), 7);
    clock.advance(5 * SECOND);
    // Through the `Store` trait (here `Arc`'s forwarding impl): the same method.
    assert_eq!(Store::evict_expired(&store), 3);
    assert_eq!(store.len(), 0);
    assert_eq!(store.evictions(), 10);
}

#[test]
fn evict_expired_on_a_store_that_never_expires_removes_nothing() {
    let store = Bounded::<u32, u32>::new().max_size(10);
    for k in 0..20 {
        store.insert(k, k);
    }
    assert_eq!(store.evict_expired(), 0);
    assert_eq!(store.len(), 10);
}

// Weights

fn by_length() -> Bounded<u32, String> {
    Bounded::new()
        .max_weight(100)
        .weigher(|_, value: &String| value.len() as u64)
}

/// The readable entries of keys `0..keys`: how many, and their total weight (length).
fn readable(store: &Bounded<u32, String>, keys: u32) -> (usize, u64) {
    (0..keys)
        .filter_map(|k| store.get(&k))
        .fold((0, 0), |(n, w), v| (n + 1, w + v.len() as u64))
}

#[test]
fn random_weights_keep_the_weight_within_max_weight_and_len_consistent() {
    let store = by_length();
    let mut rng = Rng(7);
    for i in 0..5_000 {
        let key = rng.below(200) as u32;
        let value = "x".repeat(rng.below(21) as usize);
        store.insert(key, value);
        assert!(store.weight() <= 100, "insert {i}: {}", store.weight());
        if i % 50 == 0 {
            let (count, weight) = readable(&store, 200);
            assert_eq!(store.len(), count, "insert {i}");
            assert_eq!(store.weight(), weight, "insert {i}");
        }
    }
    assert!(store.evictions() > 0);
}

/// (The weight is the value itself, and the bound far above the light ones: a light entry fits
/// in a shard's share whatever the number of cores.)
#[test]
fn an_overweight_value_is_not_stored_and_its_keys_previous_value_is_gone() {
    const MAX: u64 = 1 << 40;
    let store = Bounded::<u32, u64>::new()
        .max_weight(MAX)
        .weigher(|_, weight| *weight);
    store.insert(1, 3);
    store.insert(2, 2);
    assert_eq!((store.len(), store.weight()), (2, 5));
    store.insert(1, MAX + 1);
    assert_eq!(
        store.get(&1),
        None,
        "neither the heavy value nor the previous one"
    );
    assert_eq!(store.get(&2), Some(2));
    assert_eq!((store.len(), store.weight()), (1, 2));
    assert_eq!(store.evictions(), 1);
    store.insert(3, u64::MAX); // a new key: nothing to remove
    assert_eq!(store.get(&3), None);
    assert_eq!(store.evictions(), 2);
    assert_eq!((store.len(), store.weight()), (1, 2));
    store.insert(1, 4); // the key can be stored again
    assert_eq!((store.len(), store.weight()), (2, 6));
}

#[test]
fn without_a_weigher_each_entry_weighs_one() {
    let store = Bounded::<u32, u32>::new().max_weight(100);
    for k in 0..1_000 {
        store.insert(k, k);
        assert!(store.len() <= 100);
    }
    assert_eq!(store.weight(), store.len() as u64);
    let readable = (0..1_000).filter(|k| store.get(k).is_some()).count();
    assert_eq!(store.len(), readable);
}

#[test]
fn entries_of_weight_zero_count_nothing() {
    let store = Bounded::<u32, u32>::new().max_weight(10).weigher(|_, _| 0);
    for k in 0..1_000 {
        store.insert(k, k);
    }
    assert_eq!((store.len(), store.weight()), (1_000, 0));
    assert_eq!(store.evictions(), 0);
}

#[test]
fn a_weighted_store_expires_and_evicts_together() {
    let clock = Clock::manual();
    let store = Bounded::<u32, String>::new()
        .max_weight(100)
        .weigher(|_, value: &String| value.len() as u64)
        .time_to_idle(10 * SECOND)
        .clock(clock.clone());
    let mut rng = Rng(11);
    for i in 0..2_000 {
        store.insert(rng.below(300) as u32, "x".repeat(rng.below(11) as usize));
        if i % 100 == 0 {
            clock.advance(3 * SECOND);
            let (count, weight) = readable(&store, 300);
            assert_eq!(store.len(), count, "insert {i}");
            assert_eq!(store.weight(), weight, "insert {i}");
            assert!(weight <= 100);
        }
    }
}

/// 8 threads insert random keys and weights while a checker reads `weight()` over and over:
/// it never exceeds `max_weight`, and once they are done, what reads return weighs exactly
/// what the store counts.
#[test]
fn concurrent_inserts_never_exceed_max_weight() {
    const MAX: u64 = 100;
    let store = Bounded::<u32, Vec<u8>>::new()
        .max_weight(MAX)
        .weigher(|_, value: &Vec<u8>| value.len() as u64);
    let done = AtomicBool::new(false);
    let (checks, violations) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(SeqCst) {
                violations.fetch_add(u64::from(store.weight() > MAX), SeqCst);
                checks.fetch_add(1, SeqCst);
            }
        });
        let writers: Vec<_> = (0..8)
            .map(|thread| {
                let store = &store;
                s.spawn(move || {
                    let mut rng = Rng(100 + thread);
                    for _ in 0..20_000 {
                        let key = rng.below(1_000) as u32;
                        store.insert(key, vec![0; rng.below(21) as usize]);
                        if rng.below(8) == 0 {
                            store.remove(&(rng.below(1_000) as u32));
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, SeqCst);
    });
    assert!(checks.load(SeqCst) > 0);
    assert_eq!(violations.load(SeqCst), 0);
    let (count, weight) = (0..1_000)
        .filter_map(|k| store.get(&k))
        .fold((0, 0), |(n, w), v| (n + 1, w + v.len() as u64));
    assert!(weight <= MAX);
    assert_eq!(store.weight(), weight);
    assert_eq!(store.len(), count);
}

/// The weigher runs with no lock of the store held: one that reads the store (here its length,
/// which takes every shard's lock to reclaim expired entries, and a get) cannot deadlock it.
#[test]
fn a_weigher_that_reads_the_store_does_not_deadlock() {
    let result = common::run_bounded(|| {
        let store = Arc::new_cyclic(|this: &Weak<Bounded<u32, String>>| {
            let this = this.clone();
            Bounded::new()
                .max_weight(50)
                .ttl(Duration::from_secs(3_600))
                .weigher(move |key, value: &String| {
                    if let Some(store) = this.upgrade() {
                        let _ = store.len();
                        let _ = store.get(key);
                        let _ = store.weight();
                    }
                    value.len() as u64
                })
        });
        std::thread::scope(|s| {
            for thread in 0..4u32 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..500 {
                        store.insert((thread * 7 + i) % 100, "x".repeat((i % 10) as usize));
                    }
                });
            }
        });
        store.weight()
    });
    assert!(result.expect("the inserts finished") <= 50);
}

// Exclusive options

#[test]
#[should_panic(expected = "max_size and max_weight are exclusive")]
fn max_weight_after_max_size_panics() {
    let _ = Bounded::<u32, u32>::new().max_size(10).max_weight(10);
}

#[test]
#[should_panic(expected = "max_size and max_weight are exclusive")]
fn max_size_after_max_weight_panics() {
    let _ = Bounded::<u32, u32>::new().max_weight(10).max_size(10);
}

#[test]
#[should_panic(expected = "a weigher weighs entries for max_weight, not max_size")]
fn a_weigher_with_max_size_panics() {
    let _ = Bounded::<u32, u32>::new().max_size(10).weigher(|_, _| 1);
}

#[test]
#[should_panic(expected = "a weigher weighs entries for max_weight, not max_size")]
fn max_size_after_a_weigher_panics() {
    let _ = Bounded::<u32, u32>::new().weigher(|_, _| 1).max_size(10);
}

#[test]
#[should_panic(expected = "max_weight must be at least 1")]
fn max_weight_of_zero_panics() {
    let _ = Bounded::<u32, u32>::new().max_weight(0);
}

mod kept_expired {
    //! `keep_expired_for`: expired entries kept as fallbacks are never read, and never crowd
    //! out live ones.
    use memoflight::{Bounded, Clock, Store};
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::OnceLock;
    use std::time::Duration;

    static HOOK: AtomicBool = AtomicBool::new(false);
    static STORE: OnceLock<Bounded<Key, u32>> = OnceLock::new();
    static CLOCK: OnceLock<Clock> = OnceLock::new();

    /// Every key hashes alike (one shard); its `Eq`, when hooked, runs between an insert's
    /// clock read and its shard lock: it moves the clock past the ttl and inserts another key.
    #[derive(Clone, Debug)]
    struct Key(u32);

    impl Hash for Key {
        fn hash<H: Hasher>(&self, hasher: &mut H) {
            0u8.hash(hasher)
        }
    }

    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            if HOOK.swap(false, SeqCst) {
                CLOCK.get().unwrap().advance(Duration::from_secs(15));
                STORE.get().unwrap().insert(Key(2), 0);
            }
            self.0 == other.0
        }
    }

    impl Eq for Key {}

    #[test]
    fn an_insert_that_expired_on_its_way_to_the_lock_is_never_read() {
        let clock = CLOCK.get_or_init(Clock::manual).clone();
        let store = STORE.get_or_init(|| {
            Bounded::new()
                .ttl(Duration::from_secs(10))
                .keep_expired_for(Duration::from_secs(10))
                .clock(clock.clone())
        });
        store.insert(Key(1), 1);
        HOOK.store(true, SeqCst);
        store.insert(Key(1), 2); // written at 0 s, queued at 15 s behind a deadline of 25 s
        assert_eq!(store.get(&Key(1)), None, "past its ttl");
        assert_eq!(store.get_stale(&Key(1)), Some(2), "kept");
        clock.advance(Duration::from_secs(9));
        assert_eq!(store.get(&Key(1)), None);
        clock.advance(Duration::from_secs(2)); // 26 s: past the time it is kept
        assert_eq!(store.get_stale(&Key(1)), Some(2), "until reclaimed");
        assert_eq!(store.evict_expired(), 1);
        assert_eq!(store.get_stale(&Key(1)), None);
    }

    #[test]
    fn kept_expired_entries_make_room_before_live_ones_are_evicted() {
        let clock = Clock::manual();
        let store = Bounded::<u32, u32>::new()
            .max_size(4)
            .ttl(Duration::from_secs(10))
            .keep_expired_for(Duration::from_secs(10))
            .clock(clock.clone());
        for key in 0..4 {
            store.insert(key, key);
            store.get(&key);
        }
        clock.advance(Duration::from_secs(11));
        for key in 100..104 {
            store.insert(key, key);
        }
        let live: Vec<u32> = (100..104).filter(|key| store.get(key).is_some()).collect();
        assert_eq!(live, vec![100, 101, 102, 103]);
    }

    #[test]
    fn an_entry_weighing_more_than_u32_max_is_not_stored() {
        let store = Bounded::<u32, u64>::new()
            .max_weight(u64::MAX)
            .weigher(|_, weight| *weight);
        store.insert(1, u64::from(u32::MAX));
        store.insert(2, u64::from(u32::MAX) + 1);
        assert_eq!(store.get(&1), Some(u64::from(u32::MAX)));
        assert_eq!(store.get(&2), None);
    }
}
