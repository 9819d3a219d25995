//! `#[cached]` on `async fn` (feature `async`): one execution per key among concurrent tasks,
//! distinct keys in parallel, cancellation and panic hand-off, shared errors, same-task
//! re-entrance, on tokio's multi-thread and current-thread runtimes and on `futures`' executor.
//! Every count is exact; timeouts only turn a would-be hang into a failure.
#![cfg(feature = "async")]

mod common;

use common::{current_thread, multi_thread, HANG};

use memoflight::{cached, Origin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

static DOWNLOADS: AtomicU64 = AtomicU64::new(0);

/// SCENARIOS.md §2: a song download, slow enough that every caller arrives while it runs.
#[cached]
async fn download(song: u64) -> Arc<Vec<u8>> {
    DOWNLOADS.fetch_add(1, SeqCst);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    Arc::new(song.to_le_bytes().to_vec())
}

#[test]
fn ten_thousand_tasks_on_one_song_download_it_once() {
    multi_thread().block_on(async {
        let tasks: Vec<_> = (0..10_000)
            .map(|_| tokio::spawn(download(7))) // spawn: the future is `Send`
            .collect();
        for task in tasks {
            assert_eq!(*task.await.unwrap(), 7u64.to_le_bytes());
        }
    });
    assert_eq!(DOWNLOADS.load(SeqCst), 1);
    let stats = download_cache().stats();
    assert_eq!((stats.executions, stats.in_flight), (1, 0));
    assert_eq!(stats.hits + stats.misses, 10_000);
}

static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached]
async fn slow(key: u64, round: u64) -> u64 {
    let _ = round;
    SLOW_RUNS.fetch_add(1, SeqCst);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    key * 2
}

/// Many callers on one key, on a current-thread runtime and on `futures`' executor (no tokio
/// runtime at all): one execution each time.
#[test]
fn concurrent_calls_run_once_on_any_executor() {
    let callers = |round| futures::future::join_all((0..500).map(move |_| slow(3, round)));
    let on_tokio = current_thread().block_on(callers(1));
    assert!(on_tokio.iter().all(|v| *v == 6));
    assert_eq!(SLOW_RUNS.load(SeqCst), 1);

    let on_futures = futures::executor::block_on(callers(2));
    assert!(on_futures.iter().all(|v| *v == 6));
    assert_eq!(SLOW_RUNS.load(SeqCst), 2);
    assert_eq!(slow_cache().stats().in_flight, 0);
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Different songs download in parallel: 64 keys, each computation waits until all 64 run at
/// once (a barrier), which only completes if none waits for another.
#[cached(convert = id)]
async fn fetch(id: u64, barrier: Arc<tokio::sync::Barrier>) -> u64 {
    let now = RUNNING.fetch_add(1, SeqCst) + 1;
    PEAK.fetch_max(now, SeqCst);
    barrier.wait().await;
    RUNNING.fetch_sub(1, SeqCst);
    id
}

#[test]
fn distinct_keys_run_concurrently() {
    multi_thread().block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|id| tokio::spawn(fetch(id, barrier.clone())))
            .collect();
        let all = futures::future::join_all(tasks);
        let results = tokio::time::timeout(HANG, all)
            .await
            .expect("keys waited on each other");
        assert!(results
            .into_iter()
            .enumerate()
            .all(|(i, r)| r.unwrap() == i as u64));
    });
    assert_eq!(PEAK.load(SeqCst), 64);
}

/// Executions per round of the cancellation storm.
static STORM_RUNS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

#[cached]
async fn stormy(round: usize) -> usize {
    STORM_RUNS.lock().unwrap()[round] += 1;
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    round
}

/// 1,000 rounds: a leader task is aborted at a varying point of its computation while 5 tasks
/// wait on its key.
/// No round hangs, every waiter gets the value, each round runs 1 or 2 executions, and the
/// in-flight table ends empty.
#[test]
fn cancellation_storm_never_hangs_or_leaks() {
    const ROUNDS: usize = 1_000;
    *STORM_RUNS.lock().unwrap() = vec![0; ROUNDS];
    multi_thread().block_on(async {
        for round in 0..ROUNDS {
            let leader = tokio::spawn(stormy(round));
            // Once the leader's computation has started, a varying number of steps later.
            let started = async {
                while STORM_RUNS.lock().unwrap()[round] == 0 {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(HANG, started)
                .await
                .expect("the leader never started");
            for _ in 0..round % 12 {
                tokio::task::yield_now().await;
            }
            let waiters: Vec<_> = (0..5).map(|_| tokio::spawn(stormy(round))).collect();
            leader.abort();
            let all = futures::future::join_all(waiters);
            let results = tokio::time::timeout(HANG, all).await.expect("a round hung");
            assert!(results.into_iter().all(|r| r.unwrap() == round));
            let _ = leader.await;
        }
    });
    let runs = STORM_RUNS.lock().unwrap();
    assert!(runs.iter().all(|n| (1..=2).contains(n)), "{runs:?}");
    let cancelled = runs.iter().filter(|n| **n == 2).count() as u64;
    let stats = stormy_cache().stats();
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.cancellations, cancelled);
    assert!(cancelled > 0, "the storm cancelled no computation");
}

static FLAKY_RUNS: AtomicU64 = AtomicU64::new(0);

/// The first execution panics midway; the next one succeeds.
#[cached]
async fn flaky(key: u8) -> u8 {
    let run = FLAKY_RUNS.fetch_add(1, SeqCst);
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert!(run > 0, "first run panics");
    key
}

#[test]
fn a_panicking_leader_task_hands_over_to_one_waiter() {
    multi_thread().block_on(async {
        // Whichever task leads first panics; one waiter takes over and the rest get its value.
        let tasks: Vec<_> = (0..9).map(|_| tokio::spawn(flaky(1))).collect();
        let (mut panicked, mut values) = (0, 0);
        for task in tasks {
            match task.await {
                Ok(value) => values += usize::from(value == 1),
                Err(error) => panicked += usize::from(error.is_panic()),
            }
        }
        assert_eq!((panicked, values), (1, 8));
    });
    let stats = flaky_cache().stats();
    assert_eq!((stats.executions, stats.panics, stats.in_flight), (2, 1, 0));
    assert_eq!(FLAKY_RUNS.load(SeqCst), 2);
}

static FAILURES: AtomicU64 = AtomicU64::new(0);

#[cached]
async fn unreachable_host(host: &str) -> Result<u32, String> {
    FAILURES.fetch_add(1, SeqCst);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    Err(format!("{host}: connection refused"))
}

/// An `Err` is not cached, but the tasks waiting on it all receive it: one execution.
#[test]
fn an_error_is_shared_with_every_waiting_task_and_not_cached() {
    let results = current_thread().block_on(futures::future::join_all(
        (0..50).map(|_| unreachable_host("db")),
    ));
    let refused = Err("db: connection refused".to_string());
    assert!(results.iter().all(|r| *r == refused));
    assert_eq!(FAILURES.load(SeqCst), 1);
    assert_eq!(unreachable_host_cache().len(), 0);
    let stats = unreachable_host_cache().stats();
    assert_eq!((stats.executions, stats.errors, stats.waits), (1, 1, 49));
}

/// A future that awaits its own key would wait for itself forever: it panics at once.
#[cached]
async fn narcissus(n: u64) -> u64 {
    if n == 0 {
        return Box::pin(narcissus(0)).await;
    }
    n
}

#[test]
fn same_key_reentrance_in_one_task_panics_instead_of_hanging() {
    let outcome = multi_thread().block_on(async {
        let task = tokio::spawn(narcissus(0));
        tokio::time::timeout(HANG, task).await.expect("hung")
    });
    let panic = outcome.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("same-key recursion"), "{message}");
    assert!(
        message.contains("`narcissus`") && message.contains("key 0"),
        "{message}"
    );
    assert_eq!(narcissus_cache().stats().in_flight, 0);
    // Other keys are unaffected.
    assert_eq!(futures::executor::block_on(narcissus(4)), 4);
}

#[cached]
async fn origin_of(n: u64) -> u64 {
    n
}

#[test]
fn origin_tells_which_task_computed() {
    futures::executor::block_on(async {
        assert_eq!(origin_of_with_origin(1).await, (1, Origin::Computed));
        assert_eq!(origin_of_with_origin(1).await, (1, Origin::Hit));
        assert_eq!(origin_of_no_cache(1).await, 1);
    });
}

#[cfg(feature = "tokio")]
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
#[cfg(feature = "tokio")]
static PATIENT_RUNS: AtomicU64 = AtomicU64::new(0);

/// The first execution blocks until the gate opens; later ones return at once.
#[cfg(feature = "tokio")]
#[cached(wait_timeout = "50ms")]
async fn gated(key: u8) -> u64 {
    let _ = key;
    if PATIENT_RUNS.fetch_add(1, SeqCst) == 0 {
        GATE.notified().await;
    }
    7
}

/// With the `tokio` feature, a task that waited `wait_timeout` computes on its own.
#[cfg(feature = "tokio")]
#[test]
fn an_async_waiter_stops_waiting_after_wait_timeout() {
    multi_thread().block_on(async {
        let leader = tokio::spawn(gated(1));
        while PATIENT_RUNS.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gated_with_origin(1).await, (7, Origin::Computed));
        GATE.notify_one();
        assert_eq!(leader.await.unwrap(), 7);
    });
    let stats = gated_cache().stats();
    assert_eq!(
        (stats.timeouts, stats.executions, stats.in_flight),
        (1, 2, 0)
    );
}

#[cached(max_size = 2)]
async fn bounded(n: u32) -> u32 {
    n
}

#[test]
fn bounded_async_functions_hold_their_bound() {
    futures::executor::block_on(async {
        for n in 0..10 {
            assert_eq!(bounded(n).await, n);
        }
    });
    let stats = bounded_cache().stats();
    assert_eq!((stats.entries, stats.evictions), (2, 8));
}

/// Functions whose first run (the leader that will be forgotten) never finishes; one per way
/// of releasing its waiters.
macro_rules! forgettable {
    ($($name:ident),*) => {$(
        #[cached]
        async fn $name(key: u64) -> u64 {
            static VERSION: AtomicU64 = AtomicU64::new(0);
            let version = VERSION.fetch_add(1, SeqCst);
            if version == 0 {
                std::future::pending::<()>().await;
            }
            key * 100 + version
        }
    )*};
}

forgettable!(forgettable, forgettable_cleared, forgettable_retained);

/// Polls `leader` once (it leads its key and stays pending), forgets it, starts a waiter on
/// the same key, runs `release` once the waiter waits, and returns what the waiter got.
fn forget_the_leader_then<F>(
    leader: F,
    waiter: F,
    waits: impl Fn() -> u64,
    release: impl FnOnce(),
) -> u64
where
    F: std::future::Future<Output = u64> + Send + 'static,
{
    multi_thread().block_on(async {
        let mut leader = Box::pin(leader);
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(leader.as_mut().poll(cx).is_pending())
        })
        .await;
        assert!(polled, "the leader is pending");
        std::mem::forget(leader);
        let waiter = tokio::spawn(waiter);
        while waits() == 0 {
            tokio::task::yield_now().await;
        }
        release();
        tokio::time::timeout(HANG, waiter)
            .await
            .expect("the waiter hung")
            .unwrap()
    })
}

/// A leader future polled once and then forgotten (`mem::forget`) can never finish and
/// nothing can tell. Its waiters are released by an invalidation of its key, by a `clear` and
/// by an `invalidate_if`: they compute afresh, and nothing of the forgotten leader is left
/// registered.
#[test]
fn invalidation_releases_the_waiters_of_a_forgotten_leader() {
    let got = forget_the_leader_then(
        forgettable(1),
        forgettable(1),
        || forgettable_cache().stats().waits,
        || assert!(!forgettable_cache().invalidate(&1)),
    );
    assert_eq!(got, 101);
    let stats = forgettable_cache().stats();
    assert_eq!((stats.executions, stats.in_flight), (2, 0));

    let got = forget_the_leader_then(
        forgettable_cleared(1),
        forgettable_cleared(1),
        || forgettable_cleared_cache().stats().waits,
        || forgettable_cleared_cache().clear(),
    );
    assert_eq!(got, 101, "clear");
    let stats = forgettable_cleared_cache().stats();
    assert_eq!((stats.executions, stats.in_flight), (2, 0), "clear");

    let got = forget_the_leader_then(
        forgettable_retained(1),
        forgettable_retained(1),
        || forgettable_retained_cache().stats().waits,
        || forgettable_retained_cache().invalidate_if(|_, _| false),
    );
    assert_eq!(got, 101, "invalidate_if");
    let stats = forgettable_retained_cache().stats();
    assert_eq!((stats.executions, stats.in_flight), (2, 0), "invalidate_if");
}
