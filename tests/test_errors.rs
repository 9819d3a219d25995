//! `Result` caches only `Ok` and `Option` only `Some` unless opted in; a failure reaches the
//! callers waiting on it instead of each re-running the function.

mod common;

use common::{wait_until, Concurrency};
use memoflight::cached;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const CALLERS: usize = 8;

/// Starts `CALLERS` threads on `f` at once and returns their results.
fn together<T: Send + 'static>(f: fn() -> T) -> Vec<T> {
    common::together(CALLERS, f)
        .into_iter()
        .map(|outcome| outcome.expect("a caller panicked"))
        .collect()
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn shared_error(key: u32) -> Result<u32, String> {
    if SHARED_RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("every other caller to wait", || {
            shared_error_cache().stats().waits == CALLERS as u64 - 1
        });
        return Err(format!("no {key}"));
    }
    Ok(key)
}

#[test]
fn a_clone_error_reaches_every_waiter_from_one_execution() {
    let results = together(|| shared_error(1));
    assert!(
        results.iter().all(|r| r == &Err("no 1".to_string())),
        "{results:?}"
    );
    let stats = shared_error_cache().stats();
    assert_eq!((stats.executions, stats.errors, stats.entries), (1, 1, 0));
    // Not cached: the next call runs again, and its Ok is cached.
    assert_eq!(shared_error(1), Ok(1));
    assert_eq!(shared_error(1), Ok(1));
    assert_eq!(shared_error_cache().stats().executions, 2);
}

#[derive(Debug, PartialEq)]
struct Opaque;

static OPAQUE: Concurrency = Concurrency::new();
static OPAQUE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn opaque_error(key: u32) -> Result<u32, Opaque> {
    let _inside = OPAQUE.enter();
    if OPAQUE_RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("every other caller to wait", || {
            opaque_error_cache().stats().waits == CALLERS as u64 - 1
        });
    }
    let _ = key;
    Err(Opaque)
}

/// A non-`Clone` error cannot be handed to waiters: they take over one at a time, so a
/// persistent error costs one execution per caller but never two at once.
#[test]
fn a_non_clone_error_is_retried_by_waiters_one_at_a_time() {
    let results = together(|| opaque_error(1));
    assert!(results.iter().all(|r| r == &Err(Opaque)));
    assert_eq!(OPAQUE_RUNS.load(SeqCst), CALLERS);
    assert_eq!(OPAQUE.max(), 1, "two executions of one key ran at once");
    assert_eq!(opaque_error_cache().stats().in_flight, 0);
}

static NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn maybe_none(key: u32) -> Option<u32> {
    if NONE_RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("every other caller to wait", || {
            maybe_none_cache().stats().waits == CALLERS as u64 - 1
        });
        return None;
    }
    Some(key)
}

#[test]
fn none_reaches_every_waiter_and_is_not_cached() {
    assert!(together(|| maybe_none(2)).iter().all(Option::is_none));
    assert_eq!(maybe_none_cache().stats().executions, 1);
    assert_eq!(maybe_none(2), Some(2));
    assert_eq!(maybe_none(2), Some(2));
    assert_eq!(maybe_none_cache().stats().executions, 2);
}

static CACHE_ERR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_err = true)]
fn cached_error(key: u32) -> Result<u32, String> {
    CACHE_ERR_RUNS.fetch_add(1, SeqCst);
    Err(format!("bad {key}"))
}

#[test]
fn cache_err_caches_errors() {
    assert!(cached_error(1).is_err());
    assert_eq!(cached_error(1), Err("bad 1".to_string()));
    assert_eq!(CACHE_ERR_RUNS.load(SeqCst), 1);
    assert_eq!(cached_error_cache().stats().errors, 0);
}

static CACHE_NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_none)]
fn cached_none(key: u32) -> Option<u32> {
    CACHE_NONE_RUNS.fetch_add(1, SeqCst);
    (key > 10).then_some(key)
}

#[test]
fn cache_none_caches_none() {
    assert_eq!(cached_none(1), None);
    assert_eq!(cached_none(1), None);
    assert_eq!(CACHE_NONE_RUNS.load(SeqCst), 1);
}

#[cached]
fn io_alias(path: &str) -> std::io::Result<usize> {
    Ok(path.len())
}

#[test]
fn result_aliases_cache_their_ok_type() {
    assert_eq!(io_alias("abc").unwrap(), 3);
    assert_eq!(io_alias("abc").unwrap(), 3);
    assert_eq!(io_alias_cache().stats().hits, 1);
}
