//! The `cached` crate's spellings of memoflight's options keep their meaning: a TTL in
//! `ttl_secs`/`ttl_millis` or a quoted `Duration` expression expires values, `name` names the
//! cache, `create` is the store, and `sync_writes` (in any spelling) is the single-flight
//! memoflight always does.

use memoflight::{cached, Origin, Unbounded};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

static MILLIS_RUNS: AtomicUsize = AtomicUsize::new(0);
static QUOTED_RUNS: AtomicUsize = AtomicUsize::new(0);
static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl_millis = 50)]
fn short_lived(n: u64) -> u64 {
    MILLIS_RUNS.fetch_add(1, SeqCst);
    n
}

#[cached(ttl = "core::time::Duration::from_millis(50)")]
fn quoted(n: u64) -> u64 {
    QUOTED_RUNS.fetch_add(1, SeqCst);
    n
}

#[cached(ttl_secs = 3600, name = "LONG_LIVED")]
fn long_lived(n: u64) -> u64 {
    n
}

#[cached(
    sync_writes = "by_key",
    sync_writes_buckets = 4,
    create = "{ Unbounded::new() }"
)]
fn slow(n: u64) -> u64 {
    SYNC_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    n
}

#[test]
fn ttl_millis_and_a_quoted_duration_expire_values() {
    for (call, runs) in [
        (
            short_lived_with_origin as fn(u64) -> (u64, Origin),
            &MILLIS_RUNS,
        ),
        (quoted_with_origin, &QUOTED_RUNS),
    ] {
        assert_eq!(call(1), (1, Origin::Computed));
        assert_eq!(call(1), (1, Origin::Hit));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(call(1), (1, Origin::Computed), "expired");
        assert_eq!(runs.load(SeqCst), 2);
    }
}

#[test]
fn name_names_the_cache() {
    assert_eq!(long_lived(2), 2);
    assert_eq!(long_lived_cache().name(), "LONG_LIVED");
    assert_eq!(long_lived_with_origin(2).1, Origin::Hit);
}

#[test]
fn sync_writes_in_any_spelling_is_single_flight() {
    let results = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8).map(|_| s.spawn(|| slow(3))).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results, [3; 8]);
    assert_eq!(
        SYNC_RUNS.load(SeqCst),
        1,
        "one execution for 8 concurrent calls"
    );
    // `create` made the store the function uses.
    assert_eq!(slow_cache().len(), 1);
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

/// `refresh` is left out of the key by `convert`, as `cached`'s users write it.
#[cached(convert = { id }, key = u64, force_refresh = { refresh })]
fn fetch(id: u64, refresh: bool) -> (u64, usize) {
    let _ = refresh;
    (id, FETCHES.fetch_add(1, SeqCst) + 1)
}

#[test]
fn force_refresh_computes_afresh_and_stores_the_new_value() {
    assert_eq!(fetch_with_origin(1, false), ((1, 1), Origin::Computed));
    assert_eq!(fetch_with_origin(1, false), ((1, 1), Origin::Hit));
    assert_eq!(fetch_with_origin(1, true), ((1, 2), Origin::Computed));
    assert_eq!(
        fetch_with_origin(1, false),
        ((1, 2), Origin::Hit),
        "the new value stored"
    );
    // Not forced: a stampede on a fresh key is one execution.
    let before = FETCHES.load(SeqCst);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| fetch(2, false));
        }
    });
    assert_eq!(FETCHES.load(SeqCst) - before, 1);
}

static PRIMES: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn version(id: u64) -> usize {
    let _ = id;
    PRIMES.fetch_add(1, SeqCst) + 1
}

#[test]
fn prime_cache_replaces_the_stored_value() {
    assert_eq!(version(5), 1);
    assert_eq!(version_with_origin(5), (1, Origin::Hit));
    assert_eq!(version_prime_cache(5), 2, "computed afresh");
    assert_eq!(version_with_origin(5), (2, Origin::Hit), "and stored");
    assert_eq!(
        version_prime_cache(6),
        3,
        "a key never seen is computed and stored"
    );
    assert_eq!(version_with_origin(6), (3, Origin::Hit));
}

#[cached]
fn counted(n: u64) -> u64 {
    n
}

#[test]
fn reset_stats_starts_the_counters_from_zero_and_keeps_the_values() {
    counted(1);
    counted(1);
    assert_eq!(
        (counted_cache().stats().hits, counted_cache().stats().misses),
        (1, 1)
    );
    counted_cache().reset_stats();
    let stats = counted_cache().stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.executions, stats.entries),
        (0, 0, 0, 1)
    );
    assert_eq!(counted_with_origin(1), (1, Origin::Hit), "the value stayed");
    assert_eq!(counted_cache().stats().hits, 1);
}

static GREETINGS: AtomicUsize = AtomicUsize::new(0);

/// `Option<&str>`: the key holds `Option<String>`; `None` and `Some` are different keys.
#[cached]
fn greet(name: Option<&str>) -> String {
    GREETINGS.fetch_add(1, SeqCst);
    format!("hello {}", name.unwrap_or("you"))
}

#[test]
fn an_optional_borrow_is_part_of_the_key() {
    assert_eq!(
        greet_with_origin(Some("ada")),
        ("hello ada".to_owned(), Origin::Computed)
    );
    assert_eq!(
        greet_with_origin(Some("ada")),
        ("hello ada".to_owned(), Origin::Hit)
    );
    assert_eq!(
        greet_with_origin(None),
        ("hello you".to_owned(), Origin::Computed)
    );
    assert_eq!(
        greet_cache().remove(&Some("ada".to_owned())),
        Some("hello ada".to_owned())
    );
    assert_eq!(GREETINGS.load(SeqCst), 2);
}

static PARSES: AtomicUsize = AtomicUsize::new(0);

/// A generic function: a cache per instantiation.
#[cached]
fn parse<T: std::str::FromStr + Clone + Send + Sync + 'static>(text: &str) -> Option<T> {
    PARSES.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    text.parse().ok()
}

#[test]
fn a_generic_function_has_a_single_flight_cache_per_instantiation() {
    let results = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8).map(|_| s.spawn(|| parse::<u32>("42"))).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results, [Some(42); 8]);
    assert_eq!(
        PARSES.load(SeqCst),
        1,
        "one execution for 8 calls of one instantiation"
    );
    assert_eq!(
        parse_with_origin::<f64>("42"),
        (Some(42.0), Origin::Computed)
    );
    assert_eq!(parse_with_origin::<u32>("42"), (Some(42), Origin::Hit));
    assert_eq!(parse_cache::<u32>().remove("42"), Some(42));
    assert_eq!(parse_with_origin::<u32>("42"), (Some(42), Origin::Computed));
    assert_eq!(PARSES.load(SeqCst), 3);
    assert_eq!(parse_cache::<f64>().len(), 1);
}

static IGNORING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The `_` argument is never read: it is not part of the key.
#[cached]
fn ignoring(_: u8, id: u64) -> u64 {
    IGNORING_RUNS.fetch_add(1, SeqCst);
    id * 2
}

#[test]
fn calls_that_differ_only_in_an_underscore_argument_share_an_entry() {
    assert_eq!(ignoring_with_origin(1, 5), (10, Origin::Computed));
    assert_eq!(ignoring_with_origin(2, 5), (10, Origin::Hit));
    assert_eq!(ignoring_with_origin(3, 6), (12, Origin::Computed));
    assert_eq!(IGNORING_RUNS.load(SeqCst), 2);
    // The key is the named argument alone.
    assert_eq!(ignoring_cache().remove(&5), Some(10));
    assert_eq!(ignoring_with_origin(1, 5), (10, Origin::Computed));
}

/// A zero TTL the macro cannot see (an expression): refused when the cache is made, at the
/// first call, instead of a cache that never hits.
#[cached(ttl = Duration::ZERO)]
fn never_fresh(n: u64) -> u64 {
    n
}

#[test]
#[should_panic(expected = "a ttl of zero")]
fn a_zero_ttl_expression_panics_when_the_cache_is_made() {
    never_fresh(1);
}

#[cached(ttl = "Duration::from_secs(0)", refresh)]
fn never_idle(n: u64) -> u64 {
    n
}

#[test]
#[should_panic(expected = "a time_to_idle of zero")]
fn a_zero_quoted_ttl_with_refresh_panics_when_the_cache_is_made() {
    never_idle(1);
}

// ---- force_refresh and `_prime_cache` against invalidations and stampedes -------------------

/// Polls `condition` for up to 10 s: a race test whose guarantee is broken fails its assertion
/// after this instead of hanging.
fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A computation that stops where a test wants it: `hold` makes the next computation report
/// `started` and wait for `release`.
struct Hold {
    hold: AtomicBool,
    started: AtomicBool,
    release: AtomicBool,
}

impl Hold {
    const fn new() -> Self {
        Hold {
            hold: AtomicBool::new(false),
            started: AtomicBool::new(false),
            release: AtomicBool::new(false),
        }
    }

    /// Called by the computation.
    fn pause(&self) {
        if self.hold.load(SeqCst) {
            self.started.store(true, SeqCst);
            eventually(|| self.release.load(SeqCst));
        }
    }
}

/// One caller that recomputes (`recompute`, which returns the value it computed) and seven plain
/// callers (`call`), all for a key that holds a value: the recomputation runs first and stops
/// (`hold`) until all seven wait for it. Returns what the recomputation and each plain call got.
fn one_recomputes_while_seven_call(
    hold: &Hold,
    waits: impl Fn() -> u64 + Sync,
    recompute: impl Fn() -> usize + Sync,
    call: impl Fn() -> (usize, Origin) + Sync,
) -> (usize, Vec<(usize, Origin)>) {
    hold.hold.store(true, SeqCst);
    std::thread::scope(|s| {
        let recomputing = s.spawn(&recompute);
        assert!(eventually(|| hold.started.load(SeqCst)));
        let before = waits();
        let plain: Vec<_> = (0..7).map(|_| s.spawn(&call)).collect();
        // Seven waits if the plain callers join the recomputation; a plain caller that hits
        // the old value or runs the function itself never waits, and this times out.
        eventually(|| waits() - before == 7);
        hold.hold.store(false, SeqCst);
        hold.release.store(true, SeqCst);
        let plain = plain.into_iter().map(|t| t.join().unwrap()).collect();
        (recomputing.join().unwrap(), plain)
    })
}

static RELOADS: AtomicUsize = AtomicUsize::new(0);
static RELOAD_HOLD: Hold = Hold::new();

#[cached(convert = { id }, key = u64, force_refresh = { refresh })]
fn reload(id: u64, refresh: bool) -> usize {
    let _ = (id, refresh);
    let run = RELOADS.fetch_add(1, SeqCst) + 1;
    RELOAD_HOLD.pause();
    run
}

/// A forced call and seven plain ones at once: the plain callers neither get the value the
/// forced call replaces nor run the function; they wait for the forced computation.
#[test]
fn force_refresh_with_seven_concurrent_plain_callers_runs_the_function_once() {
    assert_eq!(reload(1, false), 1);
    let (forced, plain) = one_recomputes_while_seven_call(
        &RELOAD_HOLD,
        || reload_cache().stats().waits,
        || reload_with_origin(1, true).0,
        || reload_with_origin(1, false),
    );
    assert_eq!(forced, 2);
    assert_eq!(plain, [(2, Origin::Waited); 7]);
    assert_eq!(RELOADS.load(SeqCst), 2, "one execution for the 8 calls");
    assert_eq!(reload_with_origin(1, false), (2, Origin::Hit));
}

static FORCED_VERSION: AtomicUsize = AtomicUsize::new(0);
static FORCED_HOLD: Hold = Hold::new();

#[cached(convert = { id }, key = u64, force_refresh = { refresh })]
fn forced(id: u64, refresh: bool) -> usize {
    let _ = (id, refresh);
    let version = FORCED_VERSION.load(SeqCst);
    FORCED_HOLD.pause(); // the invalidation runs now
    version
}

/// An invalidation while a forced call computes: the value it computed from the version
/// before the invalidation is returned to it but not stored.
#[test]
fn force_refresh_racing_an_invalidation_stores_nothing_computed_before_it() {
    assert_eq!(forced(1, false), 0);
    FORCED_HOLD.hold.store(true, SeqCst);
    std::thread::scope(|s| {
        let caller = s.spawn(|| forced_with_origin(1, true));
        assert!(eventually(|| FORCED_HOLD.started.load(SeqCst)));
        FORCED_VERSION.store(1, SeqCst);
        forced_cache().invalidate(&1);
        FORCED_HOLD.hold.store(false, SeqCst);
        FORCED_HOLD.release.store(true, SeqCst);
        assert_eq!(caller.join().unwrap(), (0, Origin::Computed));
    });
    assert_eq!(
        forced_with_origin(1, false),
        (1, Origin::Computed),
        "version 0 was not stored"
    );
}

static PRIMINGS: AtomicUsize = AtomicUsize::new(0);
static PRIMING_HOLD: Hold = Hold::new();

#[cached]
fn primed(id: u64) -> usize {
    let _ = id;
    let run = PRIMINGS.fetch_add(1, SeqCst) + 1;
    PRIMING_HOLD.pause();
    run
}

#[test]
fn prime_cache_with_seven_concurrent_callers_runs_the_function_once() {
    assert_eq!(primed(1), 1);
    let (primed_value, plain) = one_recomputes_while_seven_call(
        &PRIMING_HOLD,
        || primed_cache().stats().waits,
        || primed_prime_cache(1),
        || primed_with_origin(1),
    );
    assert_eq!(primed_value, 2);
    assert_eq!(plain, [(2, Origin::Waited); 7]);
    assert_eq!(PRIMINGS.load(SeqCst), 2, "one execution for the 8 calls");
    assert_eq!(primed_with_origin(1), (2, Origin::Hit));
}

static PRIMED_VERSION: AtomicUsize = AtomicUsize::new(0);
static PRIMED_HOLD: Hold = Hold::new();

#[cached]
fn primed_version(id: u64) -> usize {
    let _ = id;
    let version = PRIMED_VERSION.load(SeqCst);
    PRIMED_HOLD.pause(); // the invalidation runs now
    version
}

#[test]
fn prime_cache_racing_an_invalidation_stores_nothing_computed_before_it() {
    assert_eq!(primed_version(1), 0);
    PRIMED_HOLD.hold.store(true, SeqCst);
    std::thread::scope(|s| {
        let caller = s.spawn(|| primed_version_prime_cache(1));
        assert!(eventually(|| PRIMED_HOLD.started.load(SeqCst)));
        PRIMED_VERSION.store(1, SeqCst);
        primed_version_cache().invalidate(&1);
        PRIMED_HOLD.hold.store(false, SeqCst);
        PRIMED_HOLD.release.store(true, SeqCst);
        assert_eq!(caller.join().unwrap(), 0);
    });
    assert_eq!(
        primed_version_with_origin(1),
        (1, Origin::Computed),
        "version 0 was not stored"
    );
}
