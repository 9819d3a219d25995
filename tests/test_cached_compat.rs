//! The `cached` crate's spellings of memoflight's options keep their meaning: a TTL in
//! `ttl_secs`/`ttl_millis` or a quoted `Duration` expression expires values, `name` names the
//! cache, `create` is the store, and `sync_writes` (in any spelling) is the single-flight
//! memoflight always does.

use memoflight::{cached, Origin, Unbounded};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
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
