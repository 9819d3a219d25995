//! Concurrent misses on one key run the function once; distinct keys run concurrently; the
//! in-flight table holds only keys being computed.

mod common;

use common::wait_until;
use memoflight::cached;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

const THREADS: usize = 64;

static STAMPEDE_RUNS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[cached]
fn stampede(round: usize) -> usize {
    STAMPEDE_RUNS.lock().unwrap()[round] += 1;
    // Give the other threads time to pile up behind the leader.
    for _ in 0..50 {
        std::thread::yield_now();
    }
    round * 3 + 1
}

#[test]
fn concurrent_misses_on_one_key_execute_once_per_round() {
    const ROUNDS: usize = 200;
    *STAMPEDE_RUNS.lock().unwrap() = vec![0; ROUNDS];
    let barrier = Arc::new(Barrier::new(THREADS));
    let wrong = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (barrier, wrong) = (barrier.clone(), wrong.clone());
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    barrier.wait();
                    if stampede(round) != round * 3 + 1 {
                        wrong.fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let runs = STAMPEDE_RUNS.lock().unwrap();
    let extra: Vec<_> = runs.iter().enumerate().filter(|(_, &n)| n != 1).collect();
    assert!(
        extra.is_empty(),
        "rounds not executed exactly once: {extra:?}"
    );
    assert_eq!(wrong.load(SeqCst), 0, "a caller got a wrong value");
    let stats = stampede_cache().stats();
    assert_eq!(stats.executions, ROUNDS as u64);
    assert_eq!(stats.hits + stats.misses, (ROUNDS * THREADS) as u64);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.entries, ROUNDS as u64);
}

/// Distinct keys on `memoflight::testing::stampede`.
#[cfg(feature = "testing")]
mod distinct_keys {
    use super::common::{wait_until, Concurrency};
    use super::THREADS;
    use memoflight::cached;
    use memoflight::testing::stampede;

    static DISTINCT: Concurrency = Concurrency::new();

    #[cached]
    fn distinct(key: u64) -> u64 {
        let _inside = DISTINCT.enter();
        // Every key's execution waits here until all of them are inside at once. A lock shared
        // by distinct keys (a global lock, a stripe held across the call) would make this a
        // deadlock, which wait_until turns into a failure.
        wait_until("all 64 distinct keys to run at once", || {
            DISTINCT.max() == THREADS
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        key + 1
    }

    #[test]
    fn distinct_keys_run_concurrently() {
        let report = stampede(THREADS, |key| distinct_with_origin(key as u64));
        assert_eq!(report.panics(), 0, "{:?}", report.results);
        let values: Vec<u64> = report.values().copied().collect();
        assert_eq!(values, (1..=THREADS as u64).collect::<Vec<_>>());
        assert_eq!(report.computed(), THREADS);
        assert_eq!(DISTINCT.max(), THREADS, "peak simultaneous executions");
        let stats = distinct_cache().stats();
        assert_eq!((stats.executions, stats.waits, stats.in_flight), (64, 0, 0));
    }
}

static HELD: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn held(key: u64) -> u64 {
    HELD.fetch_add(1, SeqCst);
    wait_until("the test to release the computation", || {
        RELEASE.load(SeqCst) > 0
    });
    key
}

#[test]
fn in_flight_table_holds_only_keys_being_computed() {
    let callers: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || held(i % 2)))
        .collect();
    // Two keys computing, two callers waiting on them.
    wait_until("two leaders and two waiters", || {
        HELD.load(SeqCst) == 2 && held_cache().stats().waits == 2
    });
    assert_eq!(held_cache().stats().in_flight, 2);
    RELEASE.store(1, SeqCst);
    for caller in callers {
        caller.join().unwrap();
    }
    let stats = held_cache().stats();
    assert_eq!(
        (stats.in_flight, stats.executions, stats.entries),
        (0, 2, 2)
    );
}
