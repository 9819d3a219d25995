//! Exact `stats()` values, the handle's operations, and the bypass, in deterministic scenarios.

use memoflight::{cached, Stats};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn double(n: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    n * 2
}

#[test]
fn stats_count_each_kind_of_call_exactly() {
    assert_eq!(double(1), 2); // miss, execution
    assert_eq!(double(1), 2); // hit
    assert_eq!(double(2), 4); // miss, execution
    assert_eq!(double_cache().remove(&1), Some(2));
    assert_eq!(double_cache().remove(&1), None);
    assert_eq!(double(1), 2); // miss again
    assert_eq!(double_no_cache(1), 2); // bypass: counted nowhere
    let Stats {
        hits,
        misses,
        executions,
        waits,
        errors,
        panics,
        entries,
        in_flight,
        ..
    } = double_cache().stats();
    assert_eq!(
        (hits, misses, executions, waits, errors, panics, entries, in_flight),
        (1, 3, 3, 0, 0, 0, 2, 0)
    );
    assert_eq!(RUNS.load(SeqCst), 4);
    assert_eq!(double_cache().len(), 2);
    double_cache().clear();
    assert!(double_cache().is_empty());
    assert_eq!(double_cache().stats().entries, 0);
    assert_eq!(
        double_cache().stats().executions,
        3,
        "clear keeps the counters"
    );
    assert_eq!(double_cache().name(), "double");
}
