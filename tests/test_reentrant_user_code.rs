//! User code that runs inside the cache's operations (a value's `Clone` and `Drop`, a key's
//! `Hash`, an `invalidate_if` predicate) may call memoized functions, and may panic. None of it
//! runs under a lock of the cache, so calling back in works (or, for a call that would wait for
//! itself, panics with a clear message) and never hangs; a panic loses no stored entry.
//!
//! Each call that hung on the store of earlier versions runs in `run_bounded`, which turns a
//! hang into a failure.

mod common;

use common::{run_bounded, wait_until};
use memoflight::cached;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

/// A value whose `Clone` calls the function for the next key, up to key 3.
#[derive(Debug, PartialEq)]
struct ClonesCall(u64);

impl Clone for ClonesCall {
    fn clone(&self) -> Self {
        if self.0 < 3 {
            assert_eq!(clones_call(self.0 + 1), ClonesCall(self.0 + 1));
        }
        ClonesCall(self.0)
    }
}

#[cached]
fn clones_call(n: u64) -> ClonesCall {
    ClonesCall(n)
}

#[test]
fn a_values_clone_may_call_the_function_on_a_just_computed_key() {
    let result = run_bounded(|| {
        // The miss clones the value for the store, which computes 1, whose clone computes 2...
        assert_eq!(clones_call(0), ClonesCall(0));
        // ...and hits clone it again: each clone hits the next key.
        assert_eq!(clones_call(0), ClonesCall(0));
        clones_call_cache().stats()
    });
    let stats = result.expect("a clone that calls the function panicked");
    assert_eq!(stats.executions, 4);
    assert_eq!(stats.entries, 4);
}

/// A value whose `Clone` calls the function with its own key while it is being stored.
#[derive(Debug)]
struct ClonesItself(u64);

static CLONE_ITSELF: AtomicBool = AtomicBool::new(false);

impl Clone for ClonesItself {
    fn clone(&self) -> Self {
        if CLONE_ITSELF.swap(false, SeqCst) {
            clones_itself(self.0);
        }
        ClonesItself(self.0)
    }
}

#[cached]
fn clones_itself(n: u64) -> ClonesItself {
    ClonesItself(n)
}

#[test]
fn a_values_clone_that_calls_its_own_key_while_stored_panics_instead_of_hanging() {
    CLONE_ITSELF.store(true, SeqCst);
    let result = run_bounded(|| clones_itself(7).0);
    let message = result.expect_err("a call waiting for its own store returned");
    assert!(message.contains("same-key recursion"), "{message}");
    // Nothing is left in flight and the function still works.
    assert_eq!(clones_itself_cache().stats().in_flight, 0);
    assert_eq!(run_bounded(|| clones_itself(7).0), Ok(7));
}

static DROPS_CALLING: AtomicU64 = AtomicU64::new(0);

/// A value whose `Drop` calls the function (for keys below 100, with a key above it).
#[derive(Clone)]
struct DropsCall(u64);

impl Drop for DropsCall {
    fn drop(&mut self) {
        if self.0 < 100 {
            assert_eq!(drops_call(self.0 + 100).0, self.0 + 100);
            DROPS_CALLING.fetch_add(1, SeqCst);
        }
    }
}

#[cached]
fn drops_call(n: u64) -> DropsCall {
    DropsCall(n)
}

#[test]
fn a_values_drop_may_call_the_function_during_clear_invalidate_if_and_invalidate() {
    let result = run_bounded(|| {
        for n in 0..10 {
            drop(drops_call(n)); // the caller's copy: its drop calls the function once
        }
        let before = DROPS_CALLING.load(SeqCst);
        assert_eq!(before, 10);
        drops_call_cache().invalidate(&0);
        drops_call_cache().invalidate_if(|n, _| *n < 5);
        drops_call_cache().clear();
        for n in 0..10 {
            drop(drops_call(n));
        }
        drops_call_cache().clear();
    });
    result.expect("a drop that calls the function panicked");
    // The stored copies are freed when no reader can still see them: all 20, by the end.
    wait_until("the stored values to be dropped", || {
        drops_call_cache().clear();
        DROPS_CALLING.load(SeqCst) >= 40
    });
}

#[cached]
fn predicated(n: u64) -> u64 {
    n * 2
}

/// Fills `cache` through `call`, then removes the even keys with a predicate that calls the
/// function for keys that are stored and keys that are not.
fn predicate_calls_the_function<S>(cache: &'static memoflight::Cache<S>, call: fn(u64) -> u64)
where
    S: memoflight::Store<Key = u64, Value = u64> + 'static,
{
    let result = run_bounded(move || {
        for n in 0..20 {
            call(n);
        }
        cache.invalidate_if(|n, value| call(*n + 1000) == value + 2000 && n % 2 == 0);
    });
    result.expect("a predicate that calls the function panicked");
    for n in 0..20 {
        let stored = cache.get(&n);
        assert_eq!(stored.is_some(), n % 2 == 1, "key {n}: {stored:?}");
    }
}

#[test]
fn an_invalidate_if_predicate_may_call_the_function() {
    predicate_calls_the_function(predicated_cache(), predicated);
}

/// A key whose `Hash` panics on the chosen call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fragile(u64);

static HASHES_LEFT: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Hash for Fragile {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.0 == 999 && HASHES_LEFT.fetch_sub(1, SeqCst) == 1 {
            panic!("hash of 999 failed");
        }
        self.0.hash(state);
    }
}

static FRAGILE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached]
fn fragile(key: Fragile) -> u64 {
    FRAGILE_RUNS.fetch_add(1, SeqCst);
    key.0
}

#[test]
fn a_panicking_hash_loses_no_stored_entry() {
    for n in 0..40 {
        fragile(Fragile(n));
    }
    // The key's hash panics at its first, second, ... call in turn: in the hit path, the
    // in-flight table, the store's write.
    for panic_at in 1..=6 {
        HASHES_LEFT.store(panic_at, SeqCst);
        // `run_bounded` fails the test if the call hangs; a panic is expected.
        let _ = run_bounded(|| fragile(Fragile(999)));
        HASHES_LEFT.store(usize::MAX, SeqCst);
        let stats = fragile_cache().stats();
        assert_eq!(stats.in_flight, 0, "panic at hash call {panic_at}");
        assert!(
            stats.entries >= 40,
            "panic at hash call {panic_at}: {stats:?}"
        );
    }
    let runs = FRAGILE_RUNS.load(SeqCst);
    for n in 0..40 {
        assert_eq!(fragile(Fragile(n)), n);
    }
    assert_eq!(FRAGILE_RUNS.load(SeqCst), runs, "a stored entry was lost");
}

#[cached]
fn kept(n: u64) -> u64 {
    n
}

#[test]
fn a_panicking_predicate_loses_no_entry_it_kept() {
    for n in 0..40 {
        kept(n);
    }
    let seen = AtomicUsize::new(0);
    let panicked = std::panic::catch_unwind(|| {
        kept_cache().invalidate_if(|_, _| {
            if seen.fetch_add(1, SeqCst) == 10 {
                panic!("predicate failed");
            }
            false
        })
    });
    assert!(panicked.is_err());
    assert_eq!(kept_cache().len(), 40);
    let executions = kept_cache().stats().executions;
    for n in 0..40 {
        assert_eq!(kept(n), n);
    }
    assert_eq!(kept_cache().stats().executions, executions);
}

static LIVE: AtomicU64 = AtomicU64::new(0);

/// A value that counts how many of it are alive.
struct Counted(#[allow(dead_code)] Vec<u8>);

impl Counted {
    fn new() -> Self {
        LIVE.fetch_add(1, SeqCst);
        Counted(vec![0; 1024])
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, SeqCst);
    }
}

#[cached]
fn per_thread(n: u64) -> Counted {
    let _ = n;
    Counted::new()
}

#[test]
fn threads_that_missed_once_and_exited_keep_nothing_alive_after_clear() {
    for round in 0..4 {
        let threads: Vec<_> = (0..32)
            .map(|t| std::thread::spawn(move || drop(per_thread(round * 100 + t))))
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    assert_eq!(per_thread_cache().len(), 128);
    assert_eq!(LIVE.load(SeqCst), 128, "one stored copy per key, no more");
    per_thread_cache().clear();
    wait_until("every value to be freed", || {
        per_thread_cache().clear();
        LIVE.load(SeqCst) == 0
    });
}

#[cached(max_size = 1_000)]
fn bounded_predicated(n: u64) -> u64 {
    n * 2
}

/// The bounded store runs the predicate without its queue lock, which every insert takes.
#[test]
fn a_bounded_invalidate_if_predicate_may_call_the_function() {
    predicate_calls_the_function(bounded_predicated_cache(), bounded_predicated);
}

static FRESH_KEYS: AtomicU64 = AtomicU64::new(1_000);

/// A key whose `Hash` calls the function on a key never seen before (a miss, whose insert
/// takes the bounded store's shard lock), for keys below 10.
#[derive(Clone, PartialEq, Eq, Debug)]
struct HashCalls(u64);

impl Hash for HashCalls {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.0 < 10 {
            let fresh = FRESH_KEYS.fetch_add(1, SeqCst);
            assert_eq!(hashes_call(HashCalls(fresh)), fresh + 1);
        }
        self.0.hash(state);
    }
}

#[cached(max_size = 4)]
fn hashes_call(key: HashCalls) -> u64 {
    key.0 + 1
}

/// A bounded store hashes, clones and compares keys before it takes its lock and removes its
/// victims after releasing it, so a key's `Hash` may call the function, which inserts and
/// evicts in the same store. (It hung: the insert hashed the key under the queue lock.)
#[test]
fn a_keys_hash_may_call_a_bounded_function_that_inserts_and_evicts() {
    let results = run_bounded(|| {
        (0..10)
            .map(|n| hashes_call(HashCalls(n)))
            .collect::<Vec<_>>()
    })
    .expect("no panic");
    assert_eq!(results, (1..=10).collect::<Vec<_>>());
    let stats = hashes_call_cache().stats();
    assert!(stats.entries <= 4, "{stats:?}");
    assert!(stats.evictions > 0, "the nested calls evicted: {stats:?}");
}

static UNBOUNDED_FRESH_KEYS: AtomicU64 = AtomicU64::new(1_000);

/// A key whose `Hash` calls its unbounded function (below 10).
#[derive(Clone, PartialEq, Eq, Debug)]
struct GrowingHash(u64);

std::thread_local! {
    static IN_GROWING_HASH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Hash for GrowingHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Calls the function on a new key (the table grows) and invalidates the next small key
        // (which may be the entry being copied), unless already inside such a `Hash`.
        if self.0 < 10 && !IN_GROWING_HASH.replace(true) {
            let fresh = UNBOUNDED_FRESH_KEYS.fetch_add(1, SeqCst);
            assert_eq!(grows(GrowingHash(fresh)), fresh + 1);
            grows_cache().invalidate(&GrowingHash((self.0 + 1) % 10));
            IN_GROWING_HASH.set(false);
        }
        self.0.hash(state);
    }
}

#[cached]
fn grows(key: GrowingHash) -> u64 {
    key.0 + 1
}

/// The stores hash a key once, before entering their map, and keep the hash: the map's copy
/// into a grown table never runs the key's `Hash`. (It did: a `Hash` that called the function
/// during the copy waited, inside the copy, for the copy to finish.)
#[test]
fn a_keys_hash_may_call_the_function_while_its_table_is_copied() {
    let calls = run_bounded(|| {
        let mut calls = 0;
        for _ in 0..300 {
            for n in 0..10 {
                assert_eq!(grows(GrowingHash(n)), n + 1);
                calls += 1;
            }
            for n in 0..10 {
                grows_cache().invalidate(&GrowingHash(n));
            }
        }
        calls
    })
    .expect("no panic");
    assert_eq!(calls, 3_000);
    assert!(
        grows_cache().len() > 10_000,
        "the table grew: {}",
        grows_cache().len()
    );
}

/// A value whose `Clone`, when armed, calls the cache it is stored in (`CALLS_BACK`) or panics
/// (`PANICS`).
#[derive(Debug, PartialEq)]
struct ClonedOnRemoval(u64);

static CALLS_BACK: AtomicBool = AtomicBool::new(false);
static PANICS: AtomicBool = AtomicBool::new(false);

fn weighted() -> &'static memoflight::Cache<memoflight::Bounded<u64, ClonedOnRemoval>> {
    static CACHE: std::sync::OnceLock<
        memoflight::Cache<memoflight::Bounded<u64, ClonedOnRemoval>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        memoflight::Cache::new(
            "weighted",
            memoflight::Bounded::new()
                .max_weight(1_000)
                .weigher(|_, value: &ClonedOnRemoval| value.0 + 1),
        )
    })
}

impl Clone for ClonedOnRemoval {
    fn clone(&self) -> Self {
        if CALLS_BACK.swap(false, SeqCst) {
            // Its own key (just removed: computed afresh) and another one (a hit).
            assert_eq!(
                weighted()
                    .get_or_compute(self.0, || ClonedOnRemoval(self.0))
                    .0,
                self.0
            );
            assert_eq!(weighted().get_or_compute(1, || unreachable!()).0, 1);
        }
        assert!(!PANICS.swap(false, SeqCst), "a value's Clone panicked");
        ClonedOnRemoval(self.0)
    }
}

/// `Cache::remove` clones the removed value after the removal, with no lock held: a `Clone`
/// that calls the cache works, and one that panics leaves the entry removed and the store's
/// count and weight right.
#[test]
fn a_values_clone_may_call_the_function_and_panic_during_remove() {
    let cache = weighted();
    for key in 1..=4 {
        cache.get_or_compute(key, || ClonedOnRemoval(key));
    }
    assert_eq!((cache.len(), cache.store().weight()), (4, 2 + 3 + 4 + 5));
    let removed = run_bounded(|| {
        CALLS_BACK.store(true, SeqCst);
        weighted().remove(&2)
    });
    assert_eq!(removed.expect("did not hang"), Some(ClonedOnRemoval(2)));
    // The clone stored key 2 again.
    assert_eq!((cache.len(), cache.store().weight()), (4, 2 + 3 + 4 + 5));
    PANICS.store(true, SeqCst);
    let panicked = std::panic::catch_unwind(|| weighted().remove(&3));
    assert!(panicked.is_err(), "the clone panicked");
    assert_eq!((cache.len(), cache.store().weight()), (3, 2 + 3 + 5));
    assert_eq!(cache.get(&3), None);
    assert!(cache.invalidate(&4));
    assert_eq!((cache.len(), cache.store().weight()), (2, 2 + 3));
    assert_eq!(cache.stats().in_flight, 0);
}
