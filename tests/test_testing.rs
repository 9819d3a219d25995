//! `memoflight::testing` finds the bugs it is for: a hand-rolled cache's stampede and its
//! repopulation window are reported, the `#[cached]` versions report none; panics are caught
//! and reported.
#![cfg(feature = "testing")]

mod common;

use memoflight::testing::{invalidation_race, stampede};
use memoflight::{cached, Origin};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

static SOURCE: AtomicU64 = AtomicU64::new(0);

/// Reads the source of truth slowly: the window in which an invalidation can slip between the
/// read and the store.
fn read_source() -> u64 {
    let version = SOURCE.load(SeqCst);
    std::thread::sleep(Duration::from_micros(200));
    version
}

/// Check, then act, with no single-flight and no invalidation fence.
struct HandRolled(Mutex<HashMap<u32, u64>>);

impl HandRolled {
    fn get(&self, key: u32) -> (u64, Origin) {
        if let Some(version) = self.0.lock().unwrap().get(&key) {
            return (*version, Origin::Hit);
        }
        let version = read_source();
        self.0.lock().unwrap().insert(key, version);
        (version, Origin::Computed)
    }

    fn invalidate(&self, key: u32) {
        self.0.lock().unwrap().remove(&key);
    }
}

#[cached]
fn versioned(key: u32) -> u64 {
    let _ = key;
    read_source()
}

#[test]
fn the_kit_reports_a_hand_rolled_caches_races_and_none_with_cached() {
    let hand_rolled = HandRolled(Mutex::new(HashMap::new()));
    let by_hand = stampede(8, |_| hand_rolled.get(1));
    assert!(by_hand.computed() > 1, "{:?}", by_hand.results);
    let race = invalidation_race(
        4,
        300,
        || hand_rolled.get(2).0,
        |round| {
            SOURCE.store(round, SeqCst);
            hand_rolled.invalidate(2);
        },
    );
    assert!(race.stale_reads > 0, "{race:?}");

    let before = versioned_cache().stats();
    let memoized = stampede(8, |_| versioned_with_origin(1));
    // One computes; the others wait for it (or, if one is late, find its value).
    assert_eq!(memoized.computed(), 1, "{:?}", memoized.results);
    assert_eq!(memoized.waited() + memoized.hits(), 7);
    assert_eq!((versioned_cache().stats() - before).executions, 1);
    let race = invalidation_race(
        4,
        300,
        || versioned(2),
        |round| {
            SOURCE.store(1_000 + round, SeqCst);
            versioned_cache().invalidate(&2);
        },
    );
    assert_eq!(race.stale_reads, 0, "{race:?}");
    assert!(race.reads > 0);
}

#[cached]
fn flaky(key: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(20));
    if key == 0 {
        panic!("key 0 is refused");
    }
    key
}

#[test]
fn a_callers_panic_is_reported_not_propagated() {
    let report = stampede(4, |_| flaky_with_origin(0));
    assert_eq!(
        report.panics(),
        4,
        "the leader's panic, and each waiter's own attempt"
    );
    assert!(report
        .results
        .iter()
        .all(|result| result.as_ref().unwrap_err().contains("key 0 is refused")));
    let report = stampede(4, |i| flaky_with_origin(1 + i as u32 % 2));
    assert_eq!(report.panics(), 0);
    assert_eq!(report.computed(), 2, "one execution per key");
}

#[cached]
async fn fetched(key: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    key * 10
}

#[test]
fn the_async_stampede_runs_on_tokio() {
    let report = common::multi_thread().block_on(memoflight::testing::stampede_async(16, |_| {
        fetched_with_origin(3)
    }));
    assert_eq!(report.computed(), 1);
    assert_eq!(report.waited() + report.hits(), 15);
    assert!(report.values().all(|value| *value == 30));
}

#[test]
fn swapped_snapshots_panic_instead_of_reading_zero() {
    let earlier = versioned_cache().stats();
    versioned(99);
    let later = versioned_cache().stats();
    assert_eq!((later - earlier).misses, 1);
    let swapped = std::panic::catch_unwind(|| earlier - later);
    let message = common::panic_message(swapped.expect_err("swapped").as_ref());
    assert!(message.contains("swapped snapshots"), "{message}");
}

#[test]
fn a_panicking_change_stops_the_readers() {
    let outcome = common::run_bounded(|| {
        std::panic::catch_unwind(|| {
            invalidation_race(
                2,
                10,
                || versioned(3),
                |round| {
                    if round == 5 {
                        panic!("the source of truth is down");
                    }
                },
            )
        })
    });
    let panicked = outcome.expect("the readers stopped: no hang");
    assert!(panicked.is_err());
}
