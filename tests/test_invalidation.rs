//! Invalidation with no repopulation window (SCENARIOS.md §5): a computation in flight when
//! its key is invalidated never stores its value, and a call that starts after `invalidate`
//! returned never sees a value computed from the data as it was before.

mod common;

use memoflight::cached;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

/// The races of readers against invalidations, on `memoflight::testing::invalidation_race`:
/// each round changes the data (the version becomes the round) and invalidates; a read that
/// started after that returned must not see an older version. The kit waits for a read
/// between every two rounds, so reads and invalidations interleave.
#[cfg(feature = "testing")]
mod against_readers {
    use memoflight::cached;
    use memoflight::testing::invalidation_race;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    /// The "database" behind `query`: its version is what the query returns.
    static VERSION: AtomicU64 = AtomicU64::new(0);

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
        let race = invalidation_race(
            3,
            ROUNDS,
            |_| query(1),
            |round| {
                VERSION.store(round, SeqCst); // the data changes...
                query_cache().invalidate(&1); // ...and its cached results are dropped
            },
        );
        assert!(race.reads >= ROUNDS, "{race:?}");
        assert_eq!(race.stale_reads, 0, "{race:?}");
        // After the last invalidation, the value is current.
        assert_eq!(query(1), ROUNDS);
        assert_eq!(query_cache().stats().in_flight, 0);
        println!("{ROUNDS} invalidations, {race:?}");
    }

    static CLEAR_VERSION: AtomicU64 = AtomicU64::new(0);

    #[cached]
    fn listing(page: u64) -> u64 {
        let _ = page;
        let version = CLEAR_VERSION.load(SeqCst);
        std::thread::yield_now();
        version
    }

    #[test]
    fn no_stale_value_is_seen_after_clear_returned() {
        // Readers 0 and 2 read page 0, reader 1 page 1: `clear` drops both.
        let race = invalidation_race(
            3,
            50_000,
            |reader| listing(reader as u64 % 2),
            |round| {
                CLEAR_VERSION.store(round, SeqCst);
                listing_cache().clear();
            },
        );
        assert_eq!(race.stale_reads, 0, "{race:?}");
    }

    static USERS_VERSION: AtomicU64 = AtomicU64::new(0);

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

    /// One read: both tables' queries for each of 4 keys, from the reader's own first key on
    /// (so readers ask for different keys at once); the oldest `users:*` version seen. Every
    /// query starts after the read does, so the read is stale if any query is.
    fn read_both_tables(reader: usize, run: impl Fn(&str) -> u64) -> u64 {
        (0..4)
            .map(|k| {
                let key = (reader + k) % 4;
                run(&format!("orders:{key}"));
                run(&format!("users:{key}"))
            })
            .min()
            .expect("4 keys")
    }

    /// SCENARIOS.md §5: a scanner invalidates every `users:*` query by predicate while readers
    /// query both tables.
    #[test]
    fn no_stale_value_is_seen_after_a_predicate_invalidation_returned() {
        let race = invalidation_race(
            3,
            10_000,
            |reader| read_both_tables(reader, run_query),
            |round| {
                USERS_VERSION.store(round, SeqCst);
                run_query_cache().invalidate_if(|query, _| query.starts_with("users:"));
            },
        );
        assert_eq!(race.stale_reads, 0, "{race:?}");
        // Orders were never invalidated: still cached.
        assert_eq!(run_query_cache().get("orders:1"), Some(0));
    }

    static TIMED_USERS_VERSION: AtomicU64 = AtomicU64::new(0);

    /// The same query cache as the music library had: bounded, with a TTL, invalidated by
    /// predicate while readers query it.
    #[cached(max_size = 64, ttl = "1h")]
    fn run_timed_query(query: &str) -> u64 {
        let version = if query.starts_with("users:") {
            TIMED_USERS_VERSION.load(SeqCst)
        } else {
            0
        };
        std::thread::yield_now();
        version
    }

    #[test]
    fn no_stale_value_is_seen_in_a_bounded_ttl_cache_after_a_predicate_invalidation() {
        let race = invalidation_race(
            3,
            10_000,
            |reader| read_both_tables(reader, run_timed_query),
            |round| {
                TIMED_USERS_VERSION.store(round, SeqCst);
                run_timed_query_cache().invalidate_if(|query, _| query.starts_with("users:"));
            },
        );
        assert!(race.reads >= 10_000, "{race:?}");
        assert_eq!(race.stale_reads, 0, "{race:?}");
        assert_eq!(run_timed_query_cache().get("orders:1"), Some(0));
    }
}

static RELEASED_VERSION: AtomicU64 = AtomicU64::new(0);
static LEADER_MAY_FINISH: AtomicBool = AtomicBool::new(false);

/// The first run waits until it is allowed to finish; later runs return at once.
#[cached]
fn held(key: u64) -> u64 {
    let version = RELEASED_VERSION.fetch_add(1, SeqCst);
    if version == 0 {
        while !LEADER_MAY_FINISH.load(SeqCst) {
            std::thread::yield_now();
        }
    }
    key * 100 + version
}

/// Callers waiting for a computation whose key is invalidated stop waiting and compute afresh
/// (they do not get a value computed from the data as it was before the invalidation), while
/// the old leader still runs; the old leader's value is returned to it and not stored.
#[test]
fn invalidation_releases_the_waiters_of_the_computation_it_revokes() {
    let leader = std::thread::spawn(|| held(1));
    while held_cache().stats().in_flight == 0 {
        std::thread::yield_now();
    }
    let waiter = std::thread::spawn(|| held(1));
    while held_cache().stats().waits == 0 {
        std::thread::yield_now();
    }
    held_cache().invalidate(&1);
    assert_eq!(waiter.join().unwrap(), 101, "the waiter computed afresh");
    LEADER_MAY_FINISH.store(true, SeqCst);
    assert_eq!(leader.join().unwrap(), 100);
    assert_eq!(
        held_cache().get(&1),
        Some(101),
        "the revoked value was not stored"
    );
    assert_eq!(held_cache().stats().executions, 2);
}

/// A key whose `Hash` (user code, run by the store) holds the thread named "leader" once its
/// computation is done, that is inside its write, and the thread named "first" once that write
/// is done, that is inside its own removal.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Gated(u64);

static GATED_COMPUTED: AtomicBool = AtomicBool::new(false);
static GATED_WRITE_HELD: AtomicBool = AtomicBool::new(false);
static GATED_LEADER_GO: AtomicBool = AtomicBool::new(false);
static GATED_WRITTEN: AtomicBool = AtomicBool::new(false);
static GATED_FIRST_GO: AtomicBool = AtomicBool::new(false);

impl std::hash::Hash for Gated {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let name = std::thread::current().name().map(str::to_owned);
        let hold = |gate: &AtomicBool| {
            while !gate.load(SeqCst) {
                std::thread::yield_now();
            }
        };
        match name.as_deref() {
            Some("leader") if GATED_COMPUTED.load(SeqCst) => {
                GATED_WRITE_HELD.store(true, SeqCst);
                hold(&GATED_LEADER_GO);
            }
            Some("first") if GATED_WRITTEN.load(SeqCst) => hold(&GATED_FIRST_GO),
            _ => {}
        }
        self.0.hash(state);
    }
}

static GATED_VERSION: AtomicU64 = AtomicU64::new(0);

#[cached]
fn gated(key: Gated) -> u64 {
    let version = GATED_VERSION.load(SeqCst);
    GATED_COMPUTED.store(true, SeqCst);
    key.0 * 100 + version
}

/// Two invalidations of a key whose leader is writing a value computed before both began:
/// each waits for that write and removes the value after it, so neither returns while the old
/// value can still land. (Before, the first one took the writing flight out of the table
/// while it waited, the second found no flight, returned at once, and the old value was
/// stored after it returned.)
#[test]
fn every_concurrent_invalidation_waits_for_a_write_in_progress() {
    let named = |name: &str, f: fn()| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .unwrap()
    };
    let leader = named("leader", || assert_eq!(gated(Gated(1)), 100));
    common::wait_until("the leader's write", || GATED_WRITE_HELD.load(SeqCst));
    // The data changes; both invalidations begin while the old value is being written.
    GATED_VERSION.store(1, SeqCst);
    let first = named("first", || {
        gated_cache().invalidate(&Gated(1));
    });
    // Scheduling only: the assertions below hold whatever these pauses let happen first.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let second = named("second", || {
        gated_cache().invalidate(&Gated(1));
    });
    std::thread::sleep(std::time::Duration::from_millis(30));
    GATED_WRITTEN.store(true, SeqCst); // from now on, "first" is held inside its removal
    GATED_LEADER_GO.store(true, SeqCst);
    leader.join().unwrap();
    second.join().unwrap();
    assert_eq!(
        gated_cache().get(&Gated(1)),
        None,
        "a value computed before the second invalidation began is stored after it returned"
    );
    assert_eq!(gated(Gated(1)), 101, "a call after both computes afresh");
    GATED_FIRST_GO.store(true, SeqCst);
    first.join().unwrap();
}

/// Invalidations of two kinds at once, a key's `invalidate` on one thread and `invalidate_if`
/// or `clear` on another, while readers recompute: a read that starts after an invalidation
/// returned never sees a value computed before it began. (A bulk invalidation took the flights
/// that were writing their values out of the table while it waited for them, so a key's
/// invalidation running then found no flight, returned, and the old write landed after it.)
#[test]
fn a_key_and_a_bulk_invalidation_at_once_leave_no_stale_value() {
    const ROUNDS: u64 = 10_000;
    for bulk in ["invalidate_if", "clear"] {
        let cache = memoflight::Cache::new("versions", memoflight::Unbounded::<u64, u64>::new());
        let source = AtomicU64::new(0);
        let floor = AtomicU64::new(0);
        let stale = AtomicU64::new(0);
        let invalidators_left = AtomicU64::new(2);
        let invalidate = |all: bool| {
            for _ in 0..ROUNDS {
                let version = source.fetch_add(1, SeqCst) + 1;
                match (all, bulk) {
                    (false, _) => {
                        cache.invalidate(&0);
                        cache.invalidate(&1);
                    }
                    (true, "clear") => cache.clear(),
                    (true, _) => cache.invalidate_if(|_, _| true),
                }
                floor.fetch_max(version, SeqCst);
            }
            invalidators_left.fetch_sub(1, SeqCst);
        };
        std::thread::scope(|s| {
            for reader in 0..3 {
                let (cache, source, floor, stale) = (&cache, &source, &floor, &stale);
                let invalidators_left = &invalidators_left;
                s.spawn(move || {
                    while invalidators_left.load(SeqCst) > 0 {
                        for key in 0..2 {
                            let at_least = floor.load(SeqCst);
                            let seen = cache.get_or_compute(key, || {
                                let version = source.load(SeqCst);
                                if reader == 0 {
                                    std::thread::yield_now(); // a write that lands late
                                }
                                version
                            });
                            if seen < at_least {
                                stale.fetch_add(1, SeqCst);
                            }
                        }
                    }
                });
            }
            s.spawn(|| invalidate(false));
            s.spawn(|| invalidate(true));
        });
        assert_eq!(stale.load(SeqCst), 0, "stale reads with {bulk}");
        assert_eq!(cache.stats().in_flight, 0);
    }
}
