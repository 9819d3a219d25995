//! `refresh_after`: once an entry is that old, one caller recomputes it while every other
//! caller gets the current value at once; a failed or panicked refresh keeps the old value.
//! Time is a manual clock: no test sleeps.

mod common;

use common::{run_bounded, wait_until};
use memoflight::{cached, Bounded, Cache, Clock, Origin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn refreshing_cache(clock: &Clock) -> Arc<Cache<Bounded<u8, u64>>> {
    let store = Bounded::new()
        .refresh_after(MINUTE)
        .ttl(MINUTE * 60)
        .clock(clock.clone());
    Arc::new(Cache::new("rates", store))
}

#[test]
fn callers_get_the_old_value_at_once_while_one_caller_refreshes() {
    let clock = Clock::manual();
    let cache = refreshing_cache(&clock);
    assert_eq!(cache.get_or_compute(1, || 100), 100);
    clock.advance(MINUTE);

    // The refresher blocks inside its computation until released.
    let (started, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let refresher = {
        let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
        std::thread::spawn(move || {
            cache.get_or_compute(1, || {
                started.store(true, SeqCst);
                wait_until("the release", || release.load(SeqCst));
                101
            })
        })
    };
    wait_until("the refresh to start", || started.load(SeqCst));

    // 20 callers while the refresh runs: each returns the old value without waiting (a wait
    // would hang here until the release, and fail the bounded run).
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                run_bounded(move || cache.get_or_compute(1, || unreachable!("one refresh")))
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), Ok(100));
    }
    let during = cache.stats();
    assert_eq!((during.waits, during.executions), (0, 2));

    release.store(true, SeqCst);
    assert_eq!(refresher.join().unwrap(), 101);
    assert_eq!(cache.get_or_compute(1, || unreachable!()), 101);
    assert_eq!(cache.stats().executions, 2);
}

#[test]
fn the_first_caller_after_the_age_refreshes_and_later_callers_hit_the_new_value() {
    let clock = Clock::manual();
    let cache = refreshing_cache(&clock);
    let runs = AtomicU64::new(0);
    let compute = || runs.fetch_add(1, SeqCst) + 1;
    assert_eq!(cache.get_or_compute(1, compute), 1);
    clock.advance(MINUTE - Duration::from_nanos(1));
    assert_eq!(cache.get_or_compute(1, compute), 1, "not due yet");
    clock.advance(Duration::from_nanos(1));
    assert_eq!(
        cache.get_or_compute(1, compute),
        2,
        "due: this caller refreshed"
    );
    assert_eq!(cache.get_or_compute(1, compute), 2);
    clock.advance(MINUTE);
    assert_eq!(cache.get_or_compute(1, compute), 3);
    assert_eq!(runs.load(SeqCst), 3);
}

static FLAKY_CLOCK: LazyLock<Clock> = LazyLock::new(Clock::manual);
/// What the next `quote` call returns.
static NEXT_QUOTE: std::sync::Mutex<Result<u64, &str>> = std::sync::Mutex::new(Ok(100));

#[cached(store = Bounded::new().refresh_after(MINUTE).clock(FLAKY_CLOCK.clone()))]
fn quote(symbol: &str) -> Result<u64, String> {
    let _ = symbol;
    NEXT_QUOTE.lock().unwrap().map_err(str::to_owned)
}

#[test]
fn a_failed_refresh_keeps_the_old_value_and_is_counted() {
    let next = |result| *NEXT_QUOTE.lock().unwrap() = result;
    assert_eq!(quote("ACME"), Ok(100));
    FLAKY_CLOCK.advance(MINUTE);
    next(Err("upstream down"));
    assert_eq!(
        quote_with_origin("ACME"),
        (Err("upstream down".to_string()), Origin::Computed)
    );
    assert_eq!(quote_cache().get("ACME"), Some(100), "the old value stays");
    assert_eq!(quote_cache().stats().errors, 1);
    // Still due: the next caller tries again, and succeeds.
    next(Ok(101));
    assert_eq!(quote("ACME"), Ok(101));
    assert_eq!(quote_cache().get("ACME"), Some(101));
    assert_eq!(quote_cache().stats().executions, 3);
}

#[test]
fn a_panicked_refresh_keeps_the_old_value_and_is_counted() {
    let clock = Clock::manual();
    let cache = refreshing_cache(&clock);
    assert_eq!(cache.get_or_compute(1, || 100), 100);
    clock.advance(MINUTE);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_compute(1, || panic!("refresh failed"))
    }));
    assert!(panicked.is_err());
    assert_eq!(cache.get(&1), Some(100));
    let stats = cache.stats();
    assert_eq!((stats.panics, stats.in_flight), (1, 0));
    assert_eq!(cache.get_or_compute(1, || 101), 101);
}

#[test]
fn an_entry_that_is_not_refreshed_still_expires_at_its_ttl() {
    let clock = Clock::manual();
    let cache = refreshing_cache(&clock);
    assert_eq!(cache.get_or_compute(1, || 100), 100);
    clock.advance(MINUTE * 60);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get_or_compute(1, || 101), 101);
}

static RATES_CLOCK: LazyLock<Clock> = LazyLock::new(Clock::manual);
static FETCHES: AtomicU64 = AtomicU64::new(0);

#[cached(store = Bounded::new().refresh_after(MINUTE).clock(RATES_CLOCK.clone()))]
fn exchange_rate(currency: &str) -> u64 {
    let _ = currency;
    FETCHES.fetch_add(1, SeqCst) + 100
}

#[test]
fn a_memoized_function_refreshes_through_its_store() {
    assert_eq!(exchange_rate_with_origin("EUR"), (100, Origin::Computed));
    assert_eq!(exchange_rate_with_origin("EUR"), (100, Origin::Hit));
    RATES_CLOCK.advance(MINUTE);
    assert_eq!(exchange_rate_with_origin("EUR"), (101, Origin::Computed));
    assert_eq!(exchange_rate("EUR"), 101);
    let stats = exchange_rate_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.executions), (2, 2, 2));
}
