//! Invalidation with no repopulation window (SCENARIOS.md §5): a computation in flight when
//! its key is invalidated never stores its value, and a call that starts after `invalidate`
//! returned never sees a value computed from the data as it was before.

use memoflight::cached;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

/// The "database": its version is what the memoized query returns.
static VERSION: AtomicU64 = AtomicU64::new(0);
/// The newest version whose invalidation has returned: no call starting later may see less.
static FLOOR: AtomicU64 = AtomicU64::new(0);
/// Reads finished, so that the writer paces itself to the readers.
static READS: AtomicU64 = AtomicU64::new(0);

#[cached]
fn query(key: u8) -> u64 {
    let _ = key;
    let version = VERSION.load(SeqCst);
    // Widen the window between reading the data and storing the result.
    std::thread::yield_now();
    version
}

#[test]
fn no_stale_value_is_seen_after_an_invalidation_returned() {
    const ROUNDS: u64 = 100_000;
    const READERS: usize = 3;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut reads, mut stale) = (0_u64, 0_u64);
                while !done.load(SeqCst) {
                    let floor = FLOOR.load(SeqCst);
                    if query(1) < floor {
                        stale += 1;
                    }
                    reads += 1;
                    READS.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                }
                (reads, stale)
            })
        })
        .collect();
    for version in 1..=ROUNDS {
        // Let at least one read land between two invalidations, so that reads and
        // invalidations really race.
        let seen = READS.load(SeqCst);
        while READS.load(SeqCst) == seen {
            std::thread::yield_now();
        }
        VERSION.store(version, SeqCst); // the data changes...
        query_cache().invalidate(&1); // ...and its cached results are dropped
        FLOOR.store(version, SeqCst);
    }
    done.store(true, SeqCst);
    let (reads, stale) = readers
        .into_iter()
        .map(|r| r.join().unwrap())
        .fold((0, 0), |(r, s), (r2, s2)| (r + r2, s + s2));
    assert!(reads > 0);
    assert_eq!(stale, 0, "{stale} stale values in {reads} reads");
    // After the last invalidation, the value is current.
    assert_eq!(query(1), ROUNDS);
    assert_eq!(query_cache().stats().in_flight, 0);
    println!("{ROUNDS} invalidations, {reads} concurrent reads, {stale} stale");
}

static CLEAR_VERSION: AtomicU64 = AtomicU64::new(0);
static CLEAR_FLOOR: AtomicU64 = AtomicU64::new(0);
static CLEAR_READS: AtomicU64 = AtomicU64::new(0);

#[cached]
fn listing(page: u8) -> u64 {
    let _ = page;
    let version = CLEAR_VERSION.load(SeqCst);
    std::thread::yield_now();
    version
}

#[test]
fn no_stale_value_is_seen_after_clear_returned() {
    const ROUNDS: u64 = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2_u8)
        .map(|page| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut stale = 0_u64;
                while !done.load(SeqCst) {
                    let floor = CLEAR_FLOOR.load(SeqCst);
                    stale += u64::from(listing(page) < floor);
                    CLEAR_READS.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                }
                stale
            })
        })
        .collect();
    for version in 1..=ROUNDS {
        let seen = CLEAR_READS.load(SeqCst);
        while CLEAR_READS.load(SeqCst) == seen {
            std::thread::yield_now();
        }
        CLEAR_VERSION.store(version, SeqCst);
        listing_cache().clear();
        CLEAR_FLOOR.store(version, SeqCst);
    }
    done.store(true, SeqCst);
    let stale: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(stale, 0);
}

static USERS_VERSION: AtomicU64 = AtomicU64::new(0);
static USERS_FLOOR: AtomicU64 = AtomicU64::new(0);
static PATTERN_READS: AtomicU64 = AtomicU64::new(0);

/// A query cache: `users:*` results depend on the users table, `orders:*` on nothing that
/// changes here.
#[cached]
fn run_query(query: &str) -> u64 {
    let version = if query.starts_with("users:") {
        USERS_VERSION.load(SeqCst)
    } else {
        0
    };
    std::thread::yield_now();
    version
}

/// SCENARIOS.md §5: a scanner invalidates every `users:*` query by predicate while readers
/// query both tables.
#[test]
fn no_stale_value_is_seen_after_a_predicate_invalidation_returned() {
    const ROUNDS: u64 = 10_000;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3_u64)
        .map(|reader| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut stale = 0_u64;
                let mut i = reader;
                while !done.load(SeqCst) {
                    let floor = USERS_FLOOR.load(SeqCst);
                    let users = format!("users:{}", i % 4);
                    stale += u64::from(run_query(&users) < floor);
                    run_query(&format!("orders:{}", i % 4));
                    PATTERN_READS.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                    i += 1;
                }
                stale
            })
        })
        .collect();
    for version in 1..=ROUNDS {
        let seen = PATTERN_READS.load(SeqCst);
        while PATTERN_READS.load(SeqCst) == seen {
            std::thread::yield_now();
        }
        USERS_VERSION.store(version, SeqCst);
        run_query_cache().invalidate_if(|query, _| query.starts_with("users:"));
        USERS_FLOOR.store(version, SeqCst);
    }
    done.store(true, SeqCst);
    let stale: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(stale, 0);
    // Orders were never invalidated: still cached.
    assert_eq!(run_query_cache().get("orders:1"), Some(0));
}
