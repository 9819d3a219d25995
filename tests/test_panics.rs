//! A panic in the leader stays in the leader's thread; one waiter takes over, the rest get its
//! value, nothing is poisoned, later calls work.

mod common;

use common::{panic_message, together, wait_until};
use memoflight::cached;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const CALLERS: usize = 8;
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn fragile(key: u32) -> u32 {
    if RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("every other caller to wait", || {
            fragile_cache().stats().waits == CALLERS as u64 - 1
        });
        panic!("leader failed on {key}");
    }
    key * 10
}

#[test]
fn a_panicking_leader_hands_over_to_exactly_one_waiter() {
    let results = together(CALLERS, || fragile(4));
    let panicked: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|p| panic_message(&**p))
        .collect();
    assert_eq!(panicked, vec!["leader failed on 4".to_string()]);
    assert!(results.iter().flatten().all(|&v| v == 40));
    // One execution that panicked, one take-over; the other six got the take-over's value.
    assert_eq!(RUNS.load(SeqCst), 2);
    let stats = fragile_cache().stats();
    assert_eq!((stats.executions, stats.panics, stats.in_flight), (2, 1, 0));
    // Every caller missed; each of the 7 that waited is counted as a wait once, although the
    // first leader's panic sent them around again (6 of them waited twice).
    assert_eq!((stats.misses, stats.waits, stats.hits), (8, 7, 0));
    // Nothing poisoned: the value is cached and new keys compute.
    assert_eq!(fragile(4), 40);
    assert_eq!(fragile(5), 50);
    assert_eq!(fragile_cache().stats().executions, 3);
}

#[cached]
fn panics_alone(key: u32) -> u32 {
    if key == 0 {
        panic!("zero");
    }
    key
}

#[test]
fn a_panic_without_waiters_leaves_the_key_computable() {
    assert!(std::panic::catch_unwind(|| panics_alone(0)).is_err());
    assert!(std::panic::catch_unwind(|| panics_alone(0)).is_err());
    assert_eq!(panics_alone(1), 1);
    let stats = panics_alone_cache().stats();
    assert_eq!((stats.panics, stats.in_flight, stats.entries), (2, 0, 1));
}
