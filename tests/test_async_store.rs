//! `#[cached(async_store = ..)]` and [`AsyncCache`]: values kept in a store whose operations
//! are async and may fail. The store here is an in-memory map behind async operations that
//! yield (as I/O would), count what they are asked, and can be made to fail or to hold a write
//! at a gate. Every count is exact; timeouts only turn a would-be hang into a failure.
#![cfg(feature = "async")]

mod common;

use common::{current_thread, multi_thread, HANG};

use memoflight::__private::CacheAll;
use memoflight::{cached, AsyncCache, AsyncStore, Origin};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::Poll;

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store is down")
    }
}

impl std::error::Error for Down {}

type Hook = Box<dyn Fn(&Remote) + Send + Sync>;

/// An async store over a map: every operation yields a few times before it takes effect, at
/// one instant, under the map's lock (so it is linearizable, as the trait asks); a read also
/// yields after, as its answer travels back.
struct Remote {
    map: Mutex<HashMap<u64, u64>>,
    reads_fail: AtomicBool,
    writes_fail: AtomicBool,
    /// Fails this many of the next reads.
    fail_next_reads: AtomicU64,
    gets: AtomicU64,
    /// Reads that took effect (read the map).
    reads_done: AtomicU64,
    removes: AtomicU64,
    inserts: AtomicU64,
    /// While false, inserts wait at the gate; `at_gate` counts those waiting.
    writes_open: tokio::sync::watch::Sender<bool>,
    at_gate: AtomicUsize,
    /// Runs after each read has taken effect.
    after_get: Mutex<Option<Hook>>,
}

impl Remote {
    fn new() -> Self {
        Remote {
            map: Mutex::new(HashMap::new()),
            reads_fail: AtomicBool::new(false),
            writes_fail: AtomicBool::new(false),
            fail_next_reads: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            reads_done: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            writes_open: tokio::sync::watch::Sender::new(true),
            at_gate: AtomicUsize::new(0),
            after_get: Mutex::new(None),
        }
    }

    fn stored(&self, key: u64) -> Option<u64> {
        self.map.lock().unwrap().get(&key).copied()
    }

    fn hold_writes(&self) {
        self.writes_open.send_replace(false);
    }

    fn release_writes(&self) {
        self.writes_open.send_replace(true);
    }
}

async fn io() {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}

impl AsyncStore for Remote {
    type Key = u64;
    type Value = u64;
    type Error = Down;

    async fn get(&self, key: &u64) -> Result<Option<u64>, Down> {
        self.gets.fetch_add(1, SeqCst);
        io().await;
        let fail_once = self
            .fail_next_reads
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail_once || self.reads_fail.load(SeqCst) {
            return Err(Down);
        }
        let found = self.map.lock().unwrap().get(key).copied();
        self.reads_done.fetch_add(1, SeqCst);
        if let Some(hook) = &*self.after_get.lock().unwrap() {
            hook(self);
        }
        io().await;
        Ok(found)
    }

    async fn insert(&self, key: u64, value: u64) -> Result<(), Down> {
        self.inserts.fetch_add(1, SeqCst);
        let mut open = self.writes_open.subscribe();
        self.at_gate.fetch_add(1, SeqCst);
        let _ = open.wait_for(|open| *open).await;
        self.at_gate.fetch_sub(1, SeqCst);
        io().await;
        if self.writes_fail.load(SeqCst) {
            return Err(Down);
        }
        self.map.lock().unwrap().insert(key, value);
        Ok(())
    }

    async fn remove(&self, key: &u64) -> Result<(), Down> {
        self.removes.fetch_add(1, SeqCst);
        io().await;
        if self.writes_fail.load(SeqCst) {
            return Err(Down);
        }
        self.map.lock().unwrap().remove(key);
        Ok(())
    }

    async fn clear(&self) -> Result<(), Down> {
        io().await;
        if self.writes_fail.load(SeqCst) {
            return Err(Down);
        }
        self.map.lock().unwrap().clear();
        Ok(())
    }

    async fn len(&self) -> Result<usize, Down> {
        io().await;
        if self.reads_fail.load(SeqCst) {
            return Err(Down);
        }
        Ok(self.map.lock().unwrap().len())
    }
}

/// Polls `future` once: whether it finished.
fn poll_once<F: Future + Unpin>(future: &mut F) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    matches!(std::pin::Pin::new(future).poll(&mut cx), Poll::Ready(_))
}

/// Yields until `done` holds, failing the test after `HANG`.
async fn until(done: impl Fn() -> bool) {
    tokio::time::timeout(HANG, async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the awaited condition never held");
}

static PAGES: LazyLock<Remote> = LazyLock::new(Remote::new);
static PAGE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(async_store = &*PAGES)]
async fn page(id: u64) -> u64 {
    PAGE_RUNS.fetch_add(1, SeqCst);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    id * 10
}

#[test]
fn ten_thousand_tasks_on_one_key_compute_once_and_write_once() {
    multi_thread().block_on(async {
        let tasks: Vec<_> = (0..10_000).map(|_| tokio::spawn(page(7))).collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 70);
        }
        let stats = page_cache().stats().await.unwrap();
        assert_eq!(
            (stats.executions, stats.in_flight, stats.entries),
            (1, 0, 1)
        );
        assert_eq!(stats.hits + stats.misses, 10_000);
        assert_eq!(stats.store_errors, 0);
    });
    assert_eq!(PAGE_RUNS.load(SeqCst), 1);
    assert_eq!(PAGES.inserts.load(SeqCst), 1);
    assert_eq!(PAGES.stored(7), Some(70));
}

static MEETING: LazyLock<Remote> = LazyLock::new(Remote::new);
static MEETING_RUNS: AtomicU64 = AtomicU64::new(0);

/// Returns only once 64 computations run at the same time.
#[cached(async_store = &*MEETING, convert = id)]
async fn meet(id: u64, barrier: Arc<tokio::sync::Barrier>) -> u64 {
    MEETING_RUNS.fetch_add(1, SeqCst);
    barrier.wait().await;
    id
}

#[test]
fn distinct_keys_run_concurrently() {
    multi_thread().block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|id| tokio::spawn(meet(id, Arc::clone(&barrier))))
            .collect();
        let all = futures::future::join_all(tasks);
        let values = tokio::time::timeout(HANG, all)
            .await
            .expect("64 keys did not all compute at once");
        assert_eq!(values.len(), 64);
    });
    assert_eq!(MEETING_RUNS.load(SeqCst), 64);
    assert_eq!(MEETING.inserts.load(SeqCst), 64);
}

#[test]
fn a_value_stored_after_the_first_look_is_found_by_the_leaders_second_look() {
    let remote = Arc::new(Remote::new());
    // The first read of key 5 misses, and right after it another process stores 50.
    let first = AtomicBool::new(true);
    *remote.after_get.lock().unwrap() = Some(Box::new(move |remote: &Remote| {
        if first.swap(false, SeqCst) {
            remote.map.lock().unwrap().insert(5, 50);
        }
    }));
    let cache = AsyncCache::new("second_look", Arc::clone(&remote));
    current_thread().block_on(async {
        let value = cache
            .get_or_compute(5, || async { unreachable!("the second look finds 50") })
            .await;
        assert_eq!(value, 50);
        let stats = cache.stats().await.unwrap();
        assert_eq!((stats.hits, stats.misses, stats.executions), (1, 0, 0));
    });
    assert_eq!(remote.gets.load(SeqCst), 2);
    assert_eq!(remote.inserts.load(SeqCst), 0);
}

#[test]
fn invalidation_waits_for_a_write_in_progress_then_removes_the_value() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("gated", Arc::clone(&remote)));
    current_thread().block_on(async {
        remote.hold_writes();
        let leader = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.get_or_compute(1, || async { 100 }).await }
        });
        until(|| remote.at_gate.load(SeqCst) == 1).await;
        // The leader computed 100 and is writing it. An invalidation now must not finish
        // before the write does, or the write would land after the removal.
        let mut invalidation = Box::pin(cache.invalidate(&1));
        for _ in 0..100 {
            assert!(
                !poll_once(&mut invalidation),
                "invalidate returned mid-write"
            );
            tokio::task::yield_now().await;
        }
        remote.release_writes();
        tokio::time::timeout(HANG, invalidation)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(remote.stored(1), None, "the write landed after the removal");
        assert_eq!(leader.await.unwrap(), 100);
        assert_eq!(cache.get_or_compute(1, || async { 101 }).await, 101);
        let stats = cache.stats().await.unwrap();
        assert_eq!((stats.executions, stats.in_flight), (2, 0));
    });
}

/// Polls `future` until `done` holds, failing the test if it finishes first or never gets
/// there.
fn poll_until<F: Future + Unpin>(future: &mut F, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        assert!(!poll_once(future), "finished before the awaited step");
    }
    panic!("the awaited step never came");
}

#[test]
fn a_flight_that_read_the_old_value_during_an_invalidation_is_not_joined_after_it() {
    let remote = Arc::new(Remote::new());
    let cache = AsyncCache::new("reread", Arc::clone(&remote));
    remote.map.lock().unwrap().insert(2, 20); // the old value
                                              // The invalidation has unregistered flights and is removing the value...
    let mut invalidation = Box::pin(cache.invalidate(&2));
    poll_until(&mut invalidation, || remote.removes.load(SeqCst) == 1);
    // ...when a caller whose first look failed registers a flight, and its second look reads
    // the old value before the removal takes effect (its answer still on its way back).
    remote.fail_next_reads.store(1, SeqCst);
    let mut early = Box::pin(cache.get_or_compute(2, || async { 21 }));
    poll_until(&mut early, || remote.reads_done.load(SeqCst) == 1);
    // The invalidation returns.
    while !poll_once(&mut invalidation) {}
    // A call that starts now must not join the flight that read the old value.
    // (Polled alone first: if it joined the early flight, it gets nowhere until that ends.)
    let mut late = Box::pin(cache.get_or_compute(2, || async { 22 }));
    let mut early_done = false;
    let waker = futures::task::noop_waker();
    let late = (0..).find_map(|polls| {
        let mut cx = std::task::Context::from_waker(&waker);
        if let Poll::Ready(value) = late.as_mut().poll(&mut cx) {
            return Some(value);
        }
        // The early call is concurrent with the invalidation: either value is fine for it.
        if polls > 100 && !early_done {
            early_done = poll_once(&mut early);
        }
        None
    });
    assert_eq!(
        late,
        Some(22),
        "a call made after the invalidation got the old value"
    );
}

#[test]
fn clear_waits_for_a_write_in_progress_then_removes_every_value() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("cleared", Arc::clone(&remote)));
    current_thread().block_on(async {
        assert_eq!(cache.get_or_compute(1, || async { 10 }).await, 10);
        remote.hold_writes();
        let leader = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.get_or_compute(2, || async { 20 }).await }
        });
        until(|| remote.at_gate.load(SeqCst) == 1).await;
        let mut clear = Box::pin(cache.clear());
        for _ in 0..100 {
            assert!(!poll_once(&mut clear), "clear returned mid-write");
            tokio::task::yield_now().await;
        }
        remote.release_writes();
        tokio::time::timeout(HANG, clear).await.unwrap().unwrap();
        assert_eq!(leader.await.unwrap(), 20);
        assert_eq!(
            cache.len().await.unwrap(),
            0,
            "a write landed after the clear"
        );
        let stats = cache.stats().await.unwrap();
        assert_eq!(
            (stats.executions, stats.entries, stats.in_flight),
            (2, 0, 0)
        );
    });
}

#[test]
fn a_flight_invalidated_while_computing_is_not_stored_and_its_waiters_compute_afresh() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("invalidated", Arc::clone(&remote)));
    let gate = Arc::new(tokio::sync::Notify::new());
    let runs = Arc::new(AtomicU64::new(0));
    current_thread().block_on(async {
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let (cache, gate, runs) = (cache.clone(), gate.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute(3, || async move {
                            // The first run (the one invalidated) waits for the gate.
                            if runs.fetch_add(1, SeqCst) == 0 {
                                gate.notified().await;
                                return 30;
                            }
                            31
                        })
                        .await
                })
            })
            .collect();
        until(|| runs.load(SeqCst) == 1).await;
        // Let the five waiters join the flight.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        cache.invalidate(&3).await.unwrap();
        // The waiters were released: one of them registered a fresh flight while the value was
        // being removed, which the invalidation also revokes (it may have read the old value);
        // then one computed afresh and the others waited for it.
        until(|| runs.load(SeqCst) >= 2).await;
        gate.notify_one();
        let mut results: Vec<_> = Vec::new();
        for call in calls {
            results.push(call.await.unwrap());
        }
        results.sort();
        assert_eq!(results, [30, 31, 31, 31, 31, 31]);
        let stats = cache.stats().await.unwrap();
        assert_eq!(stats.in_flight, 0);
        assert!((2..=3).contains(&stats.executions), "{stats:?}");
    });
    assert_eq!(
        remote.inserts.load(SeqCst),
        1,
        "only a fresh value was written"
    );
    assert_eq!(remote.stored(3), Some(31));
}

#[test]
fn a_broken_store_degrades_to_computing_without_it() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("broken", Arc::clone(&remote)));
    let runs = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    remote.reads_fail.store(true, SeqCst);
    remote.writes_fail.store(true, SeqCst);
    // One runtime thread: once the test task sees 51 reads, every caller has joined.
    current_thread().block_on(async {
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute(9, || async move {
                            runs.fetch_add(1, SeqCst);
                            gate.notified().await;
                            90
                        })
                        .await
                })
            })
            .collect();
        // 50 first looks and the leader's second look, all failed.
        until(|| remote.gets.load(SeqCst) == 51).await;
        gate.notify_one();
        for call in calls {
            assert_eq!(call.await.unwrap(), 90);
        }
        // Still in-process single-flight: one execution for 50 concurrent callers.
        assert_eq!(runs.load(SeqCst), 1);
        // Nothing was cached: the next call computes again.
        let again = cache.get_or_compute(9, || async { 91 }).await;
        assert_eq!(again, 91);
        assert!(cache.stats().await.is_err(), "the store cannot count");
        assert!(cache.invalidate(&9).await.is_err(), "the removal failed");

        remote.reads_fail.store(false, SeqCst);
        remote.writes_fail.store(false, SeqCst);
        let stats = cache.stats().await.unwrap();
        // 51 + 2 failed reads, 2 failed writes.
        assert_eq!(stats.store_errors, 55);
        assert_eq!((stats.executions, stats.waits, stats.in_flight), (2, 49, 0));
        assert_eq!(cache.get_or_compute(9, || async { 92 }).await, 92);
        assert_eq!(cache.get_or_compute(9, || async { 93 }).await, 92);
    });
    assert_eq!(remote.stored(9), Some(92));
}

#[test]
fn a_leader_cancelled_while_writing_leaves_nothing_in_flight() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("cancelled", Arc::clone(&remote)));
    current_thread().block_on(async {
        remote.hold_writes();
        let leader = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.get_or_compute(4, || async { 40 }).await }
        });
        until(|| remote.at_gate.load(SeqCst) == 1).await;
        // A caller arriving during the write gets the value at once.
        let (value, origin) = memoflight::__private::compute_in_async_store::<u64, CacheAll, _, _>(
            &cache,
            4,
            || async { unreachable!() },
            None,
        )
        .await;
        assert_eq!((value, origin), (40, Origin::Waited));
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        remote.release_writes();
        // Nothing waits for the abandoned write: an invalidation returns.
        tokio::time::timeout(HANG, cache.invalidate(&4))
            .await
            .unwrap()
            .unwrap();
        let stats = cache.stats().await.unwrap();
        assert_eq!((stats.executions, stats.in_flight), (1, 0));
    });
}

static ERRORS: LazyLock<Remote> = LazyLock::new(Remote::new);
static ERROR_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(async_store = &*ERRORS)]
async fn resolve(host: u64) -> Result<u64, String> {
    ERROR_RUNS.fetch_add(1, SeqCst);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    Err(format!("host {host} is unreachable"))
}

#[test]
fn an_error_is_shared_with_every_waiting_task_and_not_stored() {
    current_thread().block_on(async {
        let calls: Vec<_> = (0..50).map(|_| tokio::spawn(resolve(8))).collect();
        for call in calls {
            assert_eq!(
                call.await.unwrap(),
                Err("host 8 is unreachable".to_string())
            );
        }
        let stats = resolve_cache().stats().await.unwrap();
        assert_eq!((stats.executions, stats.errors, stats.entries), (1, 1, 0));
    });
    assert_eq!(ERROR_RUNS.load(SeqCst), 1);
    assert_eq!(ERRORS.inserts.load(SeqCst), 0);
}

static MIRROR: LazyLock<Remote> = LazyLock::new(Remote::new);

#[cached(async_store = &*MIRROR)]
async fn mirror(n: u64) -> u64 {
    if n > 0 {
        return Box::pin(mirror(n)).await;
    }
    0
}

#[test]
fn same_key_reentrance_in_one_task_panics_instead_of_hanging() {
    let outcome = std::panic::catch_unwind(|| {
        current_thread().block_on(async { tokio::time::timeout(HANG, mirror(1)).await })
    });
    let panic = outcome.expect_err("awaiting its own key must panic");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.contains("`mirror` was called with key 1"),
        "{message}"
    );
    assert!(message.contains("same-key recursion"), "{message}");
}

static ANY_EXECUTOR: LazyLock<Remote> = LazyLock::new(Remote::new);
static ANY_EXECUTOR_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(async_store = &*ANY_EXECUTOR)]
async fn twice(n: u64) -> u64 {
    ANY_EXECUTOR_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await; // one suspension: both calls are in flight together
    n * 2
}

#[test]
fn an_async_store_needs_no_particular_runtime() {
    let both = futures::future::join(twice(21), twice(21));
    assert_eq!(futures::executor::block_on(both), (42, 42));
    assert_eq!(ANY_EXECUTOR_RUNS.load(SeqCst), 1);
    assert_eq!(ANY_EXECUTOR.stored(21), Some(42));
}

/// §5 over an async store: a writer changes the source and invalidates; readers that start
/// after an invalidation returned must never get a value computed from the older source.
#[test]
fn no_stale_value_is_read_after_an_invalidation_returned() {
    const ROUNDS: u64 = 2_000;
    const READERS: usize = 3;
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("versions", Arc::clone(&remote)));
    let source = Arc::new(AtomicU64::new(0));
    // The source version that every read starting now must see at least.
    let floor = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    multi_thread().block_on(async {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (cache, source, floor, stale, done) = (
                    cache.clone(),
                    source.clone(),
                    floor.clone(),
                    stale.clone(),
                    done.clone(),
                );
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    while !done.load(SeqCst) {
                        let at_least = floor.load(SeqCst);
                        let source = Arc::clone(&source);
                        let seen = cache
                            .get_or_compute(0, || async move {
                                let version = source.load(SeqCst);
                                tokio::task::yield_now().await;
                                version
                            })
                            .await;
                        if seen < at_least {
                            stale.fetch_add(1, SeqCst);
                            eprintln!("stale read: {seen} after invalidation of {at_least}");
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for version in 1..=ROUNDS {
            let writes = remote.inserts.load(SeqCst);
            source.store(version, SeqCst);
            cache.invalidate(&0).await.unwrap();
            floor.store(version, SeqCst);
            // Let a reader compute from this version and start writing it; the next version
            // then lands during (or just around) that write, which must not outlive the
            // next invalidation.
            for _ in 0..10_000 {
                if remote.inserts.load(SeqCst) > writes {
                    break;
                }
                tokio::task::yield_now().await;
            }
            for _ in 0..(version % 5) {
                tokio::task::yield_now().await;
            }
        }
        done.store(true, SeqCst);
        let mut reads = 0;
        for reader in readers {
            reads += reader.await.unwrap();
        }
        assert!(reads > 0);
        let stats = cache.stats().await.unwrap();
        eprintln!(
            "{reads} reads, {} writes: {stats:?}",
            remote.inserts.load(SeqCst)
        );
        assert_eq!(stats.in_flight, 0);
    });
    assert_eq!(stale.load(SeqCst), 0, "stale reads after invalidation");
}

/// A leader over an async store registers its flight, then looks at the store again (a value
/// stored meanwhile is found): dropped during that look, the call is still counted, as the
/// miss its first look was.
#[test]
fn a_leader_cancelled_during_its_second_look_is_counted_as_a_miss() {
    let remote = Arc::new(Remote::new());
    let cache = AsyncCache::new("looked", Arc::clone(&remote));
    current_thread().block_on(async {
        {
            let call = std::pin::pin!(cache.get_or_compute(1, || async { 10 }));
            let mut call = call;
            let mut registered = false;
            for _ in 0..100 {
                let ready =
                    std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
                assert!(!ready, "the call finished before it could be cancelled");
                if cache.stats().await.unwrap().in_flight == 1 {
                    registered = true;
                    break;
                }
            }
            assert!(registered, "the leader registered its flight");
        } // dropped during its second look
        let stats = cache.stats().await.unwrap();
        assert_eq!(
            (stats.hits, stats.misses, stats.executions, stats.in_flight),
            (0, 1, 0, 0)
        );
    });
}

/// `invalidate_if` over a store that cannot test values (no `retain` of its own) removes every
/// value: more than asked, never less. A computation in flight when it is called does not
/// write its value.
#[test]
fn invalidate_if_without_a_retain_of_the_store_removes_every_value() {
    let remote = Arc::new(Remote::new());
    let cache = Arc::new(AsyncCache::new("picked", Arc::clone(&remote)));
    current_thread().block_on(async {
        for n in 1..=4 {
            cache.get_or_compute(n, || async move { n * 10 }).await;
        }
        remote.hold_writes();
        let leader = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.get_or_compute(9, || async { 90 }).await }
        });
        until(|| remote.at_gate.load(SeqCst) == 1).await;
        let invalidate_if = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.invalidate_if(|n, _| n % 2 == 0).await }
        });
        remote.release_writes();
        tokio::time::timeout(HANG, invalidate_if)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(leader.await.unwrap(), 90);
        for n in [1, 2, 3, 4, 9] {
            assert_eq!(remote.stored(n), None, "key {n}");
        }
    });
}
