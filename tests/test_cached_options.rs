//! The options of the `cached` crate that change what a call returns or how long a value
//! lives, each with memoflight's guarantees: `with_cached_flag`, `expires`, `result_fallback`,
//! `refresh`, `max_weight` + `weigher`, `crate = ..` and `companions = false`. Each is checked
//! in a stampede (one execution) and against an invalidation (no old value comes back).

// The tests that stampede need the `testing` feature; without it, what only they use is unused.
#![cfg_attr(not(feature = "testing"), allow(dead_code, unused_imports))]

#[cfg(feature = "testing")]
use memoflight::testing::{invalidation_race, stampede};
use memoflight::{cached, Bounded, Clock, Expires, Origin, Return};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::sync::LazyLock;
use std::time::Duration;

// ---- with_cached_flag ---------------------------------------------------------------------

static FLAG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(with_cached_flag)]
fn flagged(n: u64) -> Return<u64> {
    FLAG_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    Return::new(n * 10)
}

#[cached(with_cached_flag = true)]
fn flagged_result(n: u64) -> Result<Return<u64>, String> {
    match n {
        0 => Err("zero".to_string()),
        n => Ok(Return::new(n)),
    }
}

#[cached(with_cached_flag)]
fn flagged_option(n: u64) -> Option<Return<u64>> {
    (n > 0).then(|| Return::new(n))
}

#[cfg(feature = "testing")]
#[test]
fn with_cached_flag_marks_every_call_that_did_not_run_the_function() {
    let report = stampede(8, |_| flagged_with_origin(7));
    assert_eq!(report.computed(), 1);
    assert_eq!(FLAG_RUNS.load(SeqCst), 1);
    for (returned, origin) in report.results.iter().map(|result| result.as_ref().unwrap()) {
        assert_eq!(returned.value, 70);
        assert_eq!(returned.was_cached(), *origin != Origin::Computed);
    }
    assert!(flagged(7).was_cached());
    // After an invalidation, the next call computes again and says so.
    flagged_cache().invalidate(&7);
    assert!(!flagged(7).was_cached());
    assert_eq!(FLAG_RUNS.load(SeqCst), 2);
}

#[test]
fn with_cached_flag_sees_through_result_and_option() {
    assert!(!flagged_result(3).unwrap().was_cached());
    assert!(flagged_result(3).unwrap().was_cached());
    assert_eq!(flagged_result(0), Err("zero".to_string()));
    assert!(!flagged_option(4).unwrap().was_cached());
    assert!(flagged_option(4).unwrap().was_cached());
    assert_eq!(flagged_option(0), None);
}

// ---- expires ------------------------------------------------------------------------------

/// The current key epoch: a token issued in an earlier one has expired (a key rotation).
static EPOCH: AtomicUsize = AtomicUsize::new(0);
static TOKEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
struct Token {
    user: usize,
    epoch: usize,
}

impl Expires for Token {
    fn is_expired(&self) -> bool {
        self.epoch < EPOCH.load(SeqCst)
    }
}

#[cached(expires)]
fn token(user: usize) -> Token {
    TOKEN_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    Token {
        user,
        epoch: EPOCH.load(SeqCst),
    }
}

#[cfg(feature = "testing")]
#[test]
fn expires_lets_each_value_decide_when_it_is_stale() {
    assert_eq!(token(1).epoch, 0);
    assert_eq!(token_with_origin(1).1, Origin::Hit);
    assert_eq!(TOKEN_RUNS.load(SeqCst), 1);

    // The stored token expires: the next stampede computes one new token, once.
    EPOCH.store(1, SeqCst);
    let report = stampede(8, |_| {
        let (token, origin) = token_with_origin(1);
        (token.epoch, origin)
    });
    assert_eq!((report.computed(), report.waited()), (1, 7));
    assert!(report.values().all(|epoch| *epoch == 1));
    assert_eq!(TOKEN_RUNS.load(SeqCst), 2);
    assert_eq!(token_with_origin(1).1, Origin::Hit);

    // Invalidation: the next call computes, even though the token has not expired.
    assert_eq!(token_cache().remove(&1).map(|t| t.user), Some(1));
    assert_eq!(token_with_origin(1).1, Origin::Computed);

    // `evict_expired` sweeps what has expired and keeps the rest.
    token(2);
    token(3);
    EPOCH.store(2, SeqCst);
    token(3); // renewed: live again
    assert_eq!(token_cache().evict_expired(), 2); // users 1 and 2
    assert_eq!(token_cache().len(), 1);
    assert_eq!(token_with_origin(3).1, Origin::Hit);
}

// ---- result_fallback ----------------------------------------------------------------------

static QUOTE_RUNS: AtomicUsize = AtomicUsize::new(0);
static QUOTE_EPOCH: AtomicUsize = AtomicUsize::new(0);
static UPSTREAM_DOWN: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug, PartialEq)]
struct Quote {
    price: u64,
    epoch: usize,
}

impl Expires for Quote {
    fn is_expired(&self) -> bool {
        self.epoch < QUOTE_EPOCH.load(SeqCst)
    }
}

#[cached(expires, result_fallback)]
fn quote(item: u64) -> Result<Quote, String> {
    QUOTE_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    match UPSTREAM_DOWN.load(SeqCst) {
        true => Err(format!("upstream down for {item}")),
        false => Ok(Quote {
            price: item * 100 + QUOTE_EPOCH.load(SeqCst) as u64,
            epoch: QUOTE_EPOCH.load(SeqCst),
        }),
    }
}

#[cfg(feature = "testing")]
#[test]
fn result_fallback_returns_the_expired_value_when_recomputing_fails() {
    let first = quote(5).unwrap();
    assert_eq!(first.price, 500);

    // Expired, and the upstream fails: one execution, and every caller gets the old quote.
    QUOTE_EPOCH.store(1, SeqCst);
    UPSTREAM_DOWN.store(true, SeqCst);
    let runs = QUOTE_RUNS.load(SeqCst);
    let report = stampede(8, |_| quote_with_origin(5));
    assert_eq!(QUOTE_RUNS.load(SeqCst), runs + 1, "one execution");
    assert_eq!(report.fallbacks(), 8);
    assert!(report.values().all(|quote| quote.as_ref() == Ok(&first)));
    // The old value is not renewed: the next call tries again.
    assert_eq!(quote_with_origin(5).1, Origin::Fallback);
    assert_eq!(QUOTE_RUNS.load(SeqCst), runs + 2);

    // Upstream back: a fresh value replaces it.
    UPSTREAM_DOWN.store(false, SeqCst);
    assert_eq!(
        quote_with_origin(5),
        (
            Ok(Quote {
                price: 501,
                epoch: 1
            }),
            Origin::Computed
        )
    );

    // Invalidated, then failing: the invalidated value never comes back.
    QUOTE_EPOCH.store(2, SeqCst);
    UPSTREAM_DOWN.store(true, SeqCst);
    quote_cache().invalidate(&5);
    assert_eq!(
        quote_with_origin(5),
        (Err("upstream down for 5".to_string()), Origin::Computed)
    );
    // A key never computed has nothing to fall back on.
    assert!(quote(6).is_err());
    UPSTREAM_DOWN.store(false, SeqCst);
}

/// An invalidation racing the failing computation: the value it removed is not returned.
static RACE_STARTED: Barrier = Barrier::new(2);
static RACE_EPOCH: AtomicUsize = AtomicUsize::new(0);
static RACE_FAIL: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug, PartialEq)]
struct Stamp(usize);

impl Expires for Stamp {
    fn is_expired(&self) -> bool {
        self.0 < RACE_EPOCH.load(SeqCst)
    }
}

#[cached(expires, result_fallback)]
fn stamp(n: u64) -> Result<Stamp, &'static str> {
    if RACE_FAIL.load(SeqCst) {
        RACE_STARTED.wait(); // the invalidation runs now
        RACE_STARTED.wait();
        return Err("failed");
    }
    let _ = n;
    Ok(Stamp(RACE_EPOCH.load(SeqCst)))
}

#[test]
fn result_fallback_does_not_return_a_value_invalidated_during_the_computation() {
    assert_eq!(stamp(1), Ok(Stamp(0)));
    RACE_EPOCH.store(1, SeqCst);
    RACE_FAIL.store(true, SeqCst);
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| stamp_with_origin(1));
        RACE_STARTED.wait();
        stamp_cache().invalidate(&1);
        RACE_STARTED.wait();
        assert_eq!(caller.join().unwrap(), (Err("failed"), Origin::Computed));
    });
}

// ---- crate = path, companions = false ------------------------------------------------------

mod facade {
    pub use memoflight as memo;
}

#[facade::memo::cached(crate = crate::facade::memo, companions = false)]
fn through_a_facade(n: u64) -> u64 {
    n + 1
}

#[test]
fn crate_path_reaches_memoflight_through_a_reexport() {
    assert_eq!(through_a_facade(1), 2);
    assert_eq!(through_a_facade_with_origin(1), (2, Origin::Hit));
    assert_eq!(through_a_facade_cache().stats().executions, 1);
}

// ---- result_fallback over a TTL -------------------------------------------------------------

static CLOCK: LazyLock<Clock> = LazyLock::new(Clock::manual);
static RATE_DOWN: AtomicBool = AtomicBool::new(false);
static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(
    result_fallback,
    store = Bounded::new()
        .ttl(Duration::from_secs(60))
        .keep_expired_for(Duration::from_secs(60))
        .clock(CLOCK.clone())
)]
fn rate(currency: &'static str) -> Result<u64, String> {
    let run = RATE_RUNS.fetch_add(1, SeqCst);
    match RATE_DOWN.load(SeqCst) {
        true => Err(format!("no rate for {currency}")),
        false => Ok(100 + run as u64),
    }
}

#[test]
fn result_fallback_returns_a_value_past_its_ttl_while_the_store_holds_it() {
    assert_eq!(rate_with_origin("EUR"), (Ok(100), Origin::Computed));
    CLOCK.advance(Duration::from_secs(60));
    RATE_DOWN.store(true, SeqCst);
    // Counting the entries (a metrics poller) reclaims expired ones, but not those kept.
    assert_eq!((rate_cache().stats().entries, rate_cache().len()), (1, 1));
    assert_eq!(rate_with_origin("EUR"), (Ok(100), Origin::Fallback));
    assert_eq!(rate_with_origin("EUR"), (Ok(100), Origin::Fallback));
    assert_eq!(
        RATE_RUNS.load(SeqCst),
        3,
        "each call past the TTL tries again"
    );
    RATE_DOWN.store(false, SeqCst);
    assert_eq!(rate_with_origin("EUR"), (Ok(103), Origin::Computed));
    assert_eq!(rate_with_origin("EUR"), (Ok(103), Origin::Hit));
    // Past the time it is kept, there is nothing to fall back on.
    CLOCK.advance(Duration::from_secs(120));
    RATE_DOWN.store(true, SeqCst);
    assert_eq!(rate_cache().len(), 0);
    assert!(rate("EUR").is_err());
    RATE_DOWN.store(false, SeqCst);
}

/// `result_fallback` with `ttl` keeps expired values as fallbacks for one more TTL, whatever
/// reclaims expired entries meanwhile (`stats`, `len`).
static BRIEF_DOWN: AtomicBool = AtomicBool::new(false);

#[cached(ttl_secs = 2, result_fallback)]
fn brief(n: u64) -> Result<u64, String> {
    match BRIEF_DOWN.load(SeqCst) {
        true => Err("down".to_string()),
        false => Ok(n),
    }
}

#[test]
fn result_fallback_over_a_ttl_keeps_the_expired_value_for_one_more_ttl() {
    assert_eq!(brief(1), Ok(1));
    // Past the 2 s TTL, well inside the 2 s it is kept after.
    std::thread::sleep(Duration::from_millis(2200));
    let _ = (brief_cache().stats(), brief_cache().len());
    BRIEF_DOWN.store(true, SeqCst);
    assert_eq!(brief_with_origin(1), (Ok(1), Origin::Fallback));
}

/// An error that cannot be cloned cannot be shared with the callers waiting for the failed
/// computation, but its fallback can: still one execution.
#[derive(Debug)]
struct Unclonable;

static OPAQUE_RUNS: AtomicUsize = AtomicUsize::new(0);
static OPAQUE_EPOCH: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, PartialEq)]
struct Versioned(usize);

impl Expires for Versioned {
    fn is_expired(&self) -> bool {
        self.0 < OPAQUE_EPOCH.load(SeqCst)
    }
}

#[cached(expires, result_fallback)]
fn opaque(n: u64) -> Result<Versioned, Unclonable> {
    OPAQUE_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    match OPAQUE_EPOCH.load(SeqCst) {
        0 => Ok(Versioned(n as usize)),
        _ => Err(Unclonable),
    }
}

#[cfg(feature = "testing")]
#[test]
fn result_fallback_reaches_waiters_even_when_the_error_is_not_clone() {
    assert_eq!(opaque(0).unwrap(), Versioned(0));
    OPAQUE_EPOCH.store(1, SeqCst);
    let report = stampede(8, |_| {
        let (result, origin) = opaque_with_origin(0);
        (result.ok(), origin)
    });
    assert_eq!(
        OPAQUE_RUNS.load(SeqCst),
        2,
        "one execution for the stampede"
    );
    assert_eq!(report.fallbacks(), 8);
    assert!(report.values().all(|value| *value == Some(Versioned(0))));
    // With nothing to fall back on, the unshareable error makes each waiter try in turn.
    opaque_cache().invalidate(&0);
    assert!(opaque(0).is_err());
}

// ---- refresh = true -----------------------------------------------------------------------

static SESSION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1s", refresh)]
fn session(user: u64) -> u64 {
    SESSION_RUNS.fetch_add(1, SeqCst);
    user
}

#[cfg(feature = "testing")]
#[test]
fn refresh_renews_the_ttl_on_every_hit() {
    let report = stampede(8, |_| session_with_origin(1));
    assert_eq!((report.computed(), SESSION_RUNS.load(SeqCst)), (1, 1));
    // Read every 100 ms for 2.5 s, far past the 1 s TTL: each hit renews it.
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(session_with_origin(1).1, Origin::Hit);
    }
    assert_eq!(SESSION_RUNS.load(SeqCst), 1);
    // Left alone for longer than the TTL: it expires.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(session_with_origin(1).1, Origin::Computed);
    // Invalidated while fresh: the next call computes.
    session_cache().invalidate(&1);
    assert_eq!(session_with_origin(1).1, Origin::Computed);
    assert_eq!(SESSION_RUNS.load(SeqCst), 3);
}

static RENEWED_VERSION: AtomicU64 = AtomicU64::new(0);

/// A short TTL, so that hits a few milliseconds apart renew it (a hit renews an entry when that
/// moves its deadline by more than a 64th of the TTL).
#[cached(ttl = "100ms", refresh)]
fn renewed(user: u64) -> u64 {
    let _ = user;
    RENEWED_VERSION.load(SeqCst)
}

/// Readers hit (and so renew) the entry while it is invalidated: no read that starts after an
/// invalidation returned gets the value it removed. A renewal that wrote the entry back (a
/// read-then-insert) would bring it back, and be counted as a stale read.
#[cfg(feature = "testing")]
#[test]
fn refresh_renewing_hits_racing_invalidations_bring_no_value_back() {
    let race = invalidation_race(
        4,
        300,
        |_| renewed(1),
        |round| {
            // Long enough for the readers' hits to renew the entry (more than 100 ms / 64).
            std::thread::sleep(Duration::from_millis(2));
            RENEWED_VERSION.store(round, SeqCst);
            renewed_cache().invalidate(&1);
        },
    );
    assert_eq!(race.stale_reads, 0, "{race:?}");
    assert!(race.reads > 300, "{race:?}");
}

// ---- expires against an invalidation --------------------------------------------------------

static LEASE_VERSION: AtomicUsize = AtomicUsize::new(0);
static LEASE_RACE: Barrier = Barrier::new(2);
static LEASE_HOLD: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug, PartialEq)]
struct Lease(usize);

impl Expires for Lease {
    fn is_expired(&self) -> bool {
        false
    }
}

#[cached(expires)]
fn lease(n: u64) -> Lease {
    let _ = n;
    let version = LEASE_VERSION.load(SeqCst);
    if LEASE_HOLD.load(SeqCst) {
        LEASE_RACE.wait(); // the invalidation runs now
        LEASE_RACE.wait();
    }
    Lease(version)
}

/// An invalidation while a value that does not expire is computed: the value, computed from
/// the version before the invalidation, is returned to its caller but not stored (the
/// `Expiring` store takes the engine's revocation like any other).
#[test]
fn expires_does_not_store_a_value_computed_before_an_invalidation() {
    LEASE_HOLD.store(true, SeqCst);
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| lease_with_origin(1));
        LEASE_RACE.wait();
        LEASE_VERSION.store(1, SeqCst);
        lease_cache().invalidate(&1);
        LEASE_HOLD.store(false, SeqCst);
        LEASE_RACE.wait();
        assert_eq!(caller.join().unwrap(), (Lease(0), Origin::Computed));
    });
    assert_eq!(
        lease_with_origin(1),
        (Lease(1), Origin::Computed),
        "version 0 was not stored"
    );
    assert_eq!(lease_with_origin(1), (Lease(1), Origin::Hit));
}

// ---- max_weight + weigher -----------------------------------------------------------------

static BLOB_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(max_weight = 64, weigher = |_, blob: &String| blob.len() as u64)]
fn blob(size: usize) -> String {
    BLOB_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    "x".repeat(size)
}

#[cfg(feature = "testing")]
#[test]
fn max_weight_bounds_the_total_weight_of_the_values() {
    let report = stampede(8, |_| blob_with_origin(8));
    assert_eq!((report.computed(), BLOB_RUNS.load(SeqCst)), (1, 1));
    for size in 1..40 {
        blob(size);
        assert!(blob_cache().store().weight() <= 64);
    }
    let held: usize = (1..40)
        .filter_map(|size| blob_cache().get(&size))
        .map(|blob| blob.len())
        .sum();
    assert!(held <= 64, "{held} bytes held");
    assert!(blob_cache().stats().evictions > 0);
    // An invalidation gives its weight back, and the next call computes.
    let before = blob_cache().store().weight();
    if let Some(removed) = blob_cache().remove(&10) {
        assert_eq!(blob_cache().store().weight(), before - removed.len() as u64);
    }
    let runs = BLOB_RUNS.load(SeqCst);
    assert_eq!(blob_with_origin(10).1, Origin::Computed);
    assert_eq!(BLOB_RUNS.load(SeqCst), runs + 1);
}

// ---- the same options on async functions ----------------------------------------------------

#[cfg(feature = "async")]
mod async_functions {
    use super::*;

    static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
    static ASYNC_EPOCH: AtomicUsize = AtomicUsize::new(0);
    static ASYNC_DOWN: AtomicBool = AtomicBool::new(false);

    #[derive(Clone, Debug, PartialEq)]
    struct Price(u64, usize);

    impl Expires for Price {
        fn is_expired(&self) -> bool {
            self.1 < ASYNC_EPOCH.load(SeqCst)
        }
    }

    #[cached(expires, result_fallback, with_cached_flag)]
    async fn price(item: u64) -> Result<Return<Price>, String> {
        ASYNC_RUNS.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        match ASYNC_DOWN.load(SeqCst) {
            true => Err("down".to_string()),
            false => Ok(Return::new(Price(item, ASYNC_EPOCH.load(SeqCst)))),
        }
    }

    #[async_trait::async_trait]
    trait Catalog {
        async fn title(&self, id: u32) -> Return<String>;
    }

    struct Shop;

    #[async_trait::async_trait]
    impl Catalog for Shop {
        #[cached(convert = id, with_cached_flag)]
        async fn title(&self, id: u32) -> Return<String> {
            Return::new(format!("title {id}"))
        }
    }

    #[test]
    fn async_functions_flag_and_fall_back_with_one_execution() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let calls = (0..8).map(|_| price_with_origin(3));
            let first = futures::future::join_all(calls).await;
            assert_eq!(ASYNC_RUNS.load(SeqCst), 1);
            for (result, origin) in &first {
                let returned = result.as_ref().unwrap();
                assert_eq!(returned.value, Price(3, 0));
                assert_eq!(returned.was_cached(), *origin != Origin::Computed);
            }
            ASYNC_EPOCH.store(1, SeqCst);
            ASYNC_DOWN.store(true, SeqCst);
            let calls = (0..8).map(|_| price_with_origin(3));
            let fallen = futures::future::join_all(calls).await;
            assert_eq!(ASYNC_RUNS.load(SeqCst), 2);
            for (result, origin) in &fallen {
                assert_eq!(*origin, Origin::Fallback);
                let returned = result.as_ref().unwrap();
                assert_eq!(
                    (&returned.value, returned.was_cached()),
                    (&Price(3, 0), true)
                );
            }
            price_cache().invalidate(&3);
            assert_eq!(price(3).await, Err("down".to_string()));
            ASYNC_DOWN.store(false, SeqCst);

            assert!(!Shop.title(1).await.was_cached());
            assert!(Shop.title(1).await.was_cached());
        });
    }
}
