//! `memoflight::testing` finds the bugs it is for: a hand-rolled cache's stampede and its
//! repopulation window are reported, the `#[cached]` versions report none; panics and errors
//! are caught and counted; it works through methods, async functions on any executor and on
//! tokio tasks, and `async_store` functions.
#![cfg(feature = "testing")]

mod common;

use memoflight::testing::{invalidation_race, stampede};
use memoflight::{cached, Origin};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

static SOURCE: AtomicU64 = AtomicU64::new(0);

/// Reads the source of truth slowly: the window in which an invalidation can slip between the
/// read and the store.
fn read_source() -> u64 {
    let version = SOURCE.load(SeqCst);
    std::thread::sleep(Duration::from_micros(200));
    version
}

/// Check, then act, with no single-flight and no invalidation fence.
struct HandRolled(Mutex<HashMap<u32, u64>>);

impl HandRolled {
    fn get(&self, key: u32) -> (u64, Origin) {
        if let Some(version) = self.0.lock().unwrap().get(&key) {
            return (*version, Origin::Hit);
        }
        let version = read_source();
        self.0.lock().unwrap().insert(key, version);
        (version, Origin::Computed)
    }

    fn invalidate(&self, key: u32) {
        self.0.lock().unwrap().remove(&key);
    }
}

#[cached]
fn versioned(key: u32) -> u64 {
    let _ = key;
    read_source()
}

#[test]
fn the_kit_reports_a_hand_rolled_caches_races_and_none_with_cached() {
    let hand_rolled = HandRolled(Mutex::new(HashMap::new()));
    let by_hand = stampede(8, |_| hand_rolled.get(1));
    assert!(by_hand.computed() > 1, "{:?}", by_hand.results);
    let race = invalidation_race(
        4,
        300,
        |_| hand_rolled.get(2).0,
        |round| {
            SOURCE.store(round, SeqCst);
            hand_rolled.invalidate(2);
        },
    );
    assert!(race.stale_reads > 0, "{race:?}");

    let before = versioned_cache().stats();
    let memoized = stampede(8, |_| versioned_with_origin(1));
    // One computes; the others wait for it (or, if one is late, find its value).
    assert_eq!(memoized.computed(), 1, "{:?}", memoized.results);
    assert_eq!(memoized.waited() + memoized.hits(), 7);
    assert_eq!((versioned_cache().stats() - before).executions, 1);
    let race = invalidation_race(
        4,
        300,
        |_| versioned(2),
        |round| {
            SOURCE.store(1_000 + round, SeqCst);
            versioned_cache().invalidate(&2);
        },
    );
    assert_eq!(race.stale_reads, 0, "{race:?}");
    assert!(race.reads > 0);
}

#[cached]
fn flaky(key: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(20));
    if key == 0 {
        panic!("key 0 is refused");
    }
    key
}

#[test]
fn a_callers_panic_is_reported_not_propagated() {
    let report = stampede(4, |_| flaky_with_origin(0));
    assert_eq!(
        report.panics(),
        4,
        "the leader's panic, and each waiter's own attempt"
    );
    assert!(report
        .results
        .iter()
        .all(|result| result.as_ref().unwrap_err().contains("key 0 is refused")));
    let report = stampede(4, |i| flaky_with_origin(1 + i as u32 % 2));
    assert_eq!(report.panics(), 0);
    assert_eq!(report.computed(), 2, "one execution per key");
}

#[cached]
fn parsed(text: &'static str) -> Result<u32, String> {
    std::thread::sleep(Duration::from_millis(20));
    if text == "boom" {
        panic!("the parser exploded");
    }
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn errors_are_counted_apart_from_panics_and_values() {
    let report = stampede(4, |_| parsed_with_origin("twelve"));
    assert_eq!((report.errors(), report.panics()), (4, 0), "{report:?}");
    let report = stampede(6, |i| parsed_with_origin(["12", "x", "boom"][i % 3]));
    assert_eq!((report.errors(), report.panics()), (2, 2), "{report:?}");
    assert_eq!(report.values().filter(|value| value.is_ok()).count(), 2);
}

#[test]
fn wall_covers_the_execution() {
    let report = stampede(4, |_| parsed_with_origin("34"));
    assert_eq!((report.computed(), report.errors()), (1, 0));
    // A bound that holds on any machine: the stampede lasted at least its one execution.
    assert!(
        report.wall >= Duration::from_millis(20),
        "{:?}",
        report.wall
    );
}

/// A method, through its `_with_origin` companion (shared by every instance: keyed by `n`).
struct Catalog {
    loads: AtomicU64,
}

impl Catalog {
    #[cached(convert = n)]
    fn item(&self, n: u32) -> String {
        self.loads.fetch_add(1, SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        format!("item {n}")
    }
}

#[test]
fn a_method_stampedes_through_its_with_origin_companion() {
    let catalog = Catalog {
        loads: AtomicU64::new(0),
    };
    let before = Catalog::item_cache().stats();
    let report = stampede(8, |_| catalog.item_with_origin(5));
    assert_eq!((report.computed(), report.panics()), (1, 0), "{report:?}");
    assert_eq!(report.waited() + report.hits(), 7);
    assert!(report.values().all(|item| item == "item 5"));
    assert_eq!((Catalog::item_cache().stats() - before).executions, 1);
    assert_eq!(catalog.loads.load(SeqCst), 1);
}

#[test]
fn readers_read_between_every_two_rounds() {
    // Reads much slower than the changes: without waiting for them, the rounds would be
    // over after a handful of reads.
    let race = invalidation_race(
        2,
        200,
        |_| {
            std::thread::sleep(Duration::from_micros(200));
            0
        },
        |_| {},
    );
    assert!(race.reads >= 200, "{race:?}");
}

#[test]
fn each_reader_has_its_own_index() {
    let threads: Mutex<HashMap<usize, std::thread::ThreadId>> = Mutex::new(HashMap::new());
    let race = invalidation_race(
        3,
        50,
        |reader| {
            let me = std::thread::current().id();
            let mut threads = threads.lock().unwrap();
            assert!(reader < 3, "index {reader} of 3 readers");
            assert_eq!(
                *threads.entry(reader).or_insert(me),
                me,
                "one thread per index"
            );
            0
        },
        |_| {},
    );
    assert!(race.reads >= 50);
    let threads = threads.into_inner().unwrap();
    let distinct: std::collections::HashSet<_> = threads.values().collect();
    assert_eq!(
        distinct.len(),
        threads.len(),
        "one index per thread: {threads:?}"
    );
}

#[test]
fn readers_that_all_panic_fail_the_race_instead_of_hanging_it() {
    let outcome = common::run_bounded(|| {
        invalidation_race(2, 10, |reader| panic!("reader {reader} gives up"), |_| {})
    });
    // `run_bounded` fails the test if the rounds hang; here they end, with the readers' panic.
    assert!(outcome.is_err(), "{outcome:?}");
}

#[cached]
fn reset_between(key: u32) -> u32 {
    key
}

#[test]
fn stats_reset_between_snapshots_panics_and_says_so() {
    reset_between(1);
    reset_between(2);
    let before = reset_between_cache().stats();
    reset_between_cache().reset_stats();
    reset_between(3); // fewer calls since the reset than before the baseline
    let after = reset_between_cache().stats();
    let subtracted = std::panic::catch_unwind(|| after - before);
    let message = common::panic_message(subtracted.expect_err("a reset between").as_ref());
    assert!(message.contains("reset_stats"), "{message}");
}

#[test]
fn swapped_snapshots_panic_instead_of_reading_zero() {
    let earlier = versioned_cache().stats();
    versioned(99);
    let later = versioned_cache().stats();
    assert_eq!((later - earlier).misses, 1);
    let swapped = std::panic::catch_unwind(|| earlier - later);
    let message = common::panic_message(swapped.expect_err("swapped").as_ref());
    assert!(message.contains("swapped snapshots"), "{message}");
}

#[test]
fn a_panicking_change_stops_the_readers() {
    let outcome = common::run_bounded(|| {
        std::panic::catch_unwind(|| {
            invalidation_race(
                2,
                10,
                |_| versioned(3),
                |round| {
                    if round == 5 {
                        panic!("the source of truth is down");
                    }
                },
            )
        })
    });
    let panicked = outcome.expect("the readers stopped: no hang");
    assert!(panicked.is_err());
}

#[cfg(feature = "async")]
mod async_callers {
    use super::common::{self, multi_thread, HANG};
    use memoflight::testing::stampede_async;
    use memoflight::{cached, AsyncStore};
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::LazyLock;
    use std::time::Duration;

    #[cached]
    async fn fetched(key: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        key * 10
    }

    #[test]
    fn the_async_stampede_runs_on_tokio() {
        let report = multi_thread().block_on(stampede_async(16, |_| fetched_with_origin(3)));
        assert_eq!(report.computed(), 1);
        assert_eq!(report.waited() + report.hits(), 15);
        assert!(report.values().all(|value| *value == 30));
    }

    #[cached]
    async fn refused(key: u32) -> u32 {
        tokio::task::yield_now().await;
        panic!("{key} is refused")
    }

    #[test]
    fn a_panic_making_or_polling_a_future_is_reported() {
        let report = futures::executor::block_on(stampede_async(4, |i| {
            assert!(i != 3, "caller 3 has no future");
            refused_with_origin(1)
        }));
        assert_eq!(report.panics(), 4, "{report:?}");
        let messages: Vec<_> = report
            .results
            .iter()
            .map(|r| r.as_ref().unwrap_err())
            .collect();
        assert!(
            messages[..3].iter().all(|m| m.contains("1 is refused")),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("caller 3 has no future"),
            "{messages:?}"
        );
    }

    static SHELF: LazyLock<common::MemoryStore<u32, u32>> = LazyLock::new(Default::default);
    /// Executions of key 4 (another test stampedes key 40).
    static SHELF_RUNS: AtomicU64 = AtomicU64::new(0);

    #[cached(async_store = &*SHELF)]
    async fn shelved(id: u32) -> u32 {
        if id == 4 {
            SHELF_RUNS.fetch_add(1, SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        id + 1
    }

    #[test]
    fn an_async_store_function_stampedes_once() {
        let report = multi_thread().block_on(stampede_async(8, |_| shelved_with_origin(4)));
        assert_eq!((report.computed(), report.panics()), (1, 0), "{report:?}");
        assert_eq!(report.waited() + report.hits(), 7);
        assert!(report.values().all(|value| *value == 5));
        assert_eq!(SHELF_RUNS.load(SeqCst), 1);
        assert_eq!(
            futures::executor::block_on(SHELF.get(&4)).unwrap(),
            Some(5),
            "written to the store"
        );
    }

    #[cfg(feature = "tokio")]
    mod on_tokio_tasks {
        use super::*;
        use memoflight::testing::stampede_tokio;

        const CALLERS: u64 = 8;

        /// Holds its execution until every other caller is waiting for it: exactly one
        /// execution and `CALLERS - 1` waits, however the tasks are scheduled.
        #[cached]
        async fn gathered(key: u32) -> u32 {
            tokio::time::timeout(HANG, async {
                while gathered_cache().stats().waits < CALLERS - 1 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .expect("the other callers never all waited");
            key * 2
        }

        #[test]
        fn tokio_tasks_stampede_one_execution_and_the_rest_wait() {
            let report = multi_thread().block_on(stampede_tokio(CALLERS as usize, |_| {
                gathered_with_origin(21)
            }));
            assert_eq!(report.panics(), 0, "{report:?}");
            assert_eq!(
                (report.computed(), report.waited()),
                (1, CALLERS as usize - 1)
            );
            assert!(report.values().all(|value| *value == 42));
            let stats = gathered_cache().stats();
            assert_eq!((stats.executions, stats.waits), (1, CALLERS - 1));
        }

        static INSIDE: AtomicU64 = AtomicU64::new(0);

        /// Blocks its thread (not only its task) until another key's execution is inside too:
        /// only callers running in parallel, on two threads, get past it. (Polled in turn on
        /// one task, as `stampede_async` does, the first would wait forever.)
        #[cached]
        async fn side_by_side(key: u32) -> u32 {
            INSIDE.fetch_add(1, SeqCst);
            common::wait_until("two callers at once", || INSIDE.load(SeqCst) >= 2);
            key
        }

        #[test]
        fn tokio_callers_run_in_parallel() {
            // Eight callers: the ones the barrier wakes on a worker that then blocks are taken
            // by the other workers (all but one, which tokio keeps for that worker).
            let report =
                multi_thread().block_on(stampede_tokio(8, |i| side_by_side_with_origin(i as u32)));
            assert_eq!((report.computed(), report.panics()), (8, 0), "{report:?}");
        }

        #[test]
        fn tokio_tasks_stampede_on_a_current_thread_runtime_too() {
            let report =
                common::current_thread().block_on(stampede_tokio(16, |_| fetched_with_origin(6)));
            assert_eq!((report.computed(), report.panics()), (1, 0), "{report:?}");
            assert_eq!(report.waited() + report.hits(), 15);
            assert!(report.values().all(|value| *value == 60));
        }

        #[cached]
        async fn exploding(key: u32) -> u32 {
            tokio::task::yield_now().await;
            panic!("task {key} exploded")
        }

        #[test]
        fn a_tasks_panic_is_reported_with_its_message() {
            let report = multi_thread().block_on(stampede_tokio(4, |i| {
                assert!(i != 0, "caller 0 has no future");
                exploding_with_origin(9)
            }));
            assert_eq!(report.panics(), 4, "{report:?}");
            let messages: Vec<_> = report
                .results
                .iter()
                .map(|r| r.as_ref().unwrap_err())
                .collect();
            assert!(
                messages[0].contains("caller 0 has no future"),
                "{messages:?}"
            );
            assert!(
                messages[1..].iter().all(|m| m.contains("task 9 exploded")),
                "{messages:?}"
            );
        }

        #[test]
        fn an_async_store_function_stampedes_once_on_tokio_tasks() {
            let report = multi_thread().block_on(stampede_tokio(8, |_| shelved_with_origin(40)));
            assert_eq!((report.computed(), report.panics()), (1, 0), "{report:?}");
            assert_eq!(report.waited() + report.hits(), 7);
            assert!(report.values().all(|value| *value == 41));
        }
    }
}
