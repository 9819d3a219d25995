//! Two memoized functions calling each other from two threads: thread 1 leads `left(1)` and
//! waits for `right(1)`, thread 2 leads `right(1)` and waits for `left(1)`. Instead of a
//! deadlock, the call that closes the cycle panics naming both functions and keys.

mod common;

use common::{panic_message, run_bounded, HANG};
use memoflight::cached;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Barrier;

static BOTH_LEADING: Barrier = Barrier::new(2);
static ARRIVED: AtomicUsize = AtomicUsize::new(0);

/// The first two executions (one of each function) wait until both lead, so that each thread
/// then asks for the key the other leads.
fn rendezvous() {
    if ARRIVED.fetch_add(1, SeqCst) < 2 {
        BOTH_LEADING.wait();
    }
}

#[cached]
fn left(n: u64) -> u64 {
    rendezvous();
    right(n) + 1
}

#[cached]
fn right(n: u64) -> u64 {
    rendezvous();
    left(n) + 1
}

#[test]
fn a_cross_thread_wait_cycle_panics_instead_of_deadlocking() {
    let (tx, rx) = mpsc::channel();
    for call in [left as fn(u64) -> u64, right] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| call(1));
            let _ = tx.send(outcome.map_err(|p| panic_message(&*p)));
        });
    }
    let outcomes: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(HANG).expect("deadlocked"))
        .collect();
    let messages: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    // The cycle is closed by one thread; the other then computes the rest of the cycle on its
    // own and meets its own key: a same-key recursion. Neither hangs.
    let cycle: Vec<_> = messages
        .iter()
        .filter(|m| m.contains("would deadlock"))
        .collect();
    assert_eq!(cycle.len(), 1, "{messages:?}");
    assert!(
        cycle[0].contains("`left`(1)") && cycle[0].contains("`right`(1)"),
        "{}",
        cycle[0]
    );
    assert_eq!(left_cache().stats().in_flight, 0);
    assert_eq!(right_cache().stats().in_flight, 0);
}

#[cached]
fn inner(n: u64) -> u64 {
    // Led by thread 2; returns once thread 1 waits for it (one wait per round).
    INNER_STARTED.store(n + 1, SeqCst);
    common::wait_until("thread 1 to wait for inner", || {
        inner_cache().stats().waits > n
    });
    n
}

#[cached]
fn outer(n: u64) -> u64 {
    inner(n) + 1
}

/// The round whose `inner` thread 2 leads now, plus one (0: none yet).
static INNER_STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Thread 1 leads `outer(n)` and waits for `inner(n)`, which thread 2 leads; thread 2 finishes
/// `inner(n)` and then calls `outer(n)`. No cycle is left once `inner(n)` is done, so thread 2
/// must wait for thread 1 instead of reporting a deadlock through the edge "thread 1 waits for
/// thread 2" that thread 1 has not yet removed.
#[test]
fn a_finished_computation_is_no_longer_part_of_a_wait_cycle() {
    const ROUNDS: u64 = 10_000;
    let first = std::thread::spawn(|| {
        for n in 0..ROUNDS {
            common::wait_until("thread 2 to lead inner", || INNER_STARTED.load(SeqCst) > n);
            assert_eq!(outer(n), n + 1);
        }
    });
    let second = std::thread::spawn(|| {
        for n in 0..ROUNDS {
            assert_eq!(inner(n), n);
            assert_eq!(outer(n), n + 1);
        }
    });
    let results = [first.join(), second.join()];
    let alarms: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|p| panic_message(&**p)))
        .collect();
    assert!(alarms.is_empty(), "false alarms: {alarms:?}");
    assert_eq!(outer_cache().stats().executions, ROUNDS);
}

/// A key whose `Debug` calls a memoized function that another thread is computing: describing
/// the key for the wait graph waits on that computation.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Described(u64);

impl std::fmt::Debug for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Described({}, {})", self.0, label(self.0))
    }
}

static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cached]
fn label(n: u64) -> String {
    common::wait_until("the release", || RELEASE.load(SeqCst));
    format!("label {n}")
}

#[cached]
fn described(key: Described) -> u64 {
    common::wait_until("the release", || RELEASE.load(SeqCst));
    key.0
}

#[test]
fn a_keys_debug_may_wait_for_a_memoized_call_while_its_caller_waits() {
    let result = common::run_bounded(|| {
        let label_leader = std::thread::spawn(|| label(1));
        common::wait_until("label(1) to lead", || label_cache().stats().in_flight == 1);
        let leader = std::thread::spawn(|| described(Described(1)));
        common::wait_until("described(1) to lead", || {
            described_cache().stats().in_flight == 1
        });
        // This caller must block on `described(1)`; describing its key waits for `label(1)`.
        let waiter = std::thread::spawn(|| described(Described(1)));
        common::wait_until("the waiter to wait for label(1)", || {
            label_cache().stats().waits == 1
        });
        // Another caller that must block meanwhile is not held up by that description.
        let leader_2 = std::thread::spawn(|| described(Described(2)));
        common::wait_until("described(2) to lead", || {
            described_cache().stats().in_flight == 2
        });
        let waiter_2 = std::thread::spawn(|| described(Described(2)));
        common::wait_until("the second waiter", || described_cache().stats().waits == 2);
        RELEASE.store(true, SeqCst);
        (
            waiter.join().unwrap(),
            leader.join().unwrap(),
            waiter_2.join().unwrap(),
            leader_2.join().unwrap(),
            label_leader.join().unwrap(),
        )
    });
    assert_eq!(result, Ok((1, 1, 2, 2, "label 1".to_string())));
}

std::thread_local! {
    /// Set by a `Stored` value's `Clone`, which the leader runs just before it writes the
    /// value: the next key `Hash` on this thread is the write's.
    static STORING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static G_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static IN_WRITE_HASH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A value whose `Clone` marks the leader's write.
#[derive(Debug, PartialEq)]
struct Stored(u64);

impl Clone for Stored {
    fn clone(&self) -> Self {
        STORING.set(true);
        Stored(self.0)
    }
}

/// A key whose `Hash`, run by the leader's write of its value, calls `clears(0)`.
#[derive(Clone, PartialEq, Eq, Debug)]
struct WriteWaits(u64);

impl std::hash::Hash for WriteWaits {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if STORING.replace(false) {
            IN_WRITE_HASH.store(true, SeqCst);
            let _ = clears(0);
        }
        self.0.hash(state);
    }
}

#[cached]
fn written(key: WriteWaits) -> Stored {
    Stored(key.0)
}

/// Clears `written`'s cache once the write of `written` it runs against waits for this very
/// computation.
#[cached]
fn clears(n: u64) -> u64 {
    G_STARTED.store(true, SeqCst);
    common::wait_until("the write's Hash", || IN_WRITE_HASH.load(SeqCst));
    common::wait_until("the write to wait for clears(0)", || {
        clears_cache().stats().waits > 0
    });
    written_cache().clear();
    n
}

/// Thread 2 computes `clears(0)`, which clears `written`'s cache; thread 1 is writing the value
/// of `written(1)`, and the key's `Hash` in that write waits for `clears(0)`. The clear would
/// wait for the write and the write for the clear: the clear panics, naming the cycle, and
/// both calls return instead of hanging (the clear used to spin forever waiting for the write).
#[test]
fn a_clear_that_a_write_waits_for_panics_instead_of_waiting_for_it() {
    let second = std::thread::spawn(|| run_bounded(|| clears(0)));
    common::wait_until("clears(0) to start", || G_STARTED.load(SeqCst));
    let first = run_bounded(|| written(WriteWaits(1)));
    let second = second.join().unwrap();
    let messages: Vec<String> = [first.map(|_| ()), second.map(|_| ())]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("would deadlock")),
        "{messages:?}"
    );
    assert_eq!(written_cache().stats().in_flight, 0);
    assert_eq!(clears_cache().stats().in_flight, 0);
}

/// The round whose write is in progress now, plus one (0: none yet).
static WRITE_ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The round whose invalidation has been called, plus one.
static INVALIDATE_ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A key whose `Hash`, run by the leader's write of its value, holds the write until the
/// other thread has called `invalidate` on it (and, a millisecond later, is blocked on it).
#[derive(Clone, PartialEq, Eq, Debug)]
struct SlowWrite(u64);

impl std::hash::Hash for SlowWrite {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if STORING.replace(false) {
            WRITE_ROUND.store(self.0 + 1, SeqCst);
            common::wait_until("the invalidation", || {
                INVALIDATE_ROUND.load(SeqCst) > self.0
            });
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.0.hash(state);
    }
}

#[cached]
fn slowly_written(key: SlowWrite) -> Stored {
    Stored(key.0)
}

/// Led by thread 1: invalidates `slowly_written(n)` while thread 2 writes it, so the
/// invalidation waits for that write (an edge "thread 1 waits for thread 2").
#[cached]
fn invalidates(n: u64) -> u64 {
    common::wait_until("the write", || WRITE_ROUND.load(SeqCst) > n);
    INVALIDATE_ROUND.store(n + 1, SeqCst);
    slowly_written_cache().invalidate(&SlowWrite(n));
    n
}

/// Thread 1 leads `invalidates(n)`, which waits for thread 2's write of `slowly_written(n)`;
/// thread 2 ends that write and then calls `invalidates(n)`. Once the write is done nobody
/// waits for thread 2, so it must wait for thread 1, not report a deadlock through the edge
/// of the finished write (which lasted until thread 1 woke up).
#[test]
fn a_finished_write_is_no_longer_part_of_a_wait_cycle() {
    const ROUNDS: u64 = 500;
    let first = std::thread::spawn(|| {
        for n in 0..ROUNDS {
            assert_eq!(invalidates(n), n);
        }
    });
    let second = std::thread::spawn(|| {
        for n in 0..ROUNDS {
            assert_eq!(slowly_written(SlowWrite(n)), Stored(n));
            assert_eq!(invalidates(n), n);
        }
    });
    let results = [first.join(), second.join()];
    let alarms: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|p| panic_message(&**p)))
        .collect();
    assert!(alarms.is_empty(), "false alarms: {alarms:?}");
    assert_eq!(invalidates_cache().stats().executions, ROUNDS);
}

/// Whether `Cleared`'s `Debug` clears its cache (only while the test below runs its clear).
static DEBUG_CLEARS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CLEARED_IN_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CLEARED_MAY_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A key whose `Hash` holds the leader's write until released, and whose `Debug` (run by a
/// clear that waits for that write, to describe it) clears the same cache.
#[derive(Clone, PartialEq, Eq)]
struct Cleared(u64);

impl std::hash::Hash for Cleared {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if STORING.replace(false) {
            CLEARED_IN_WRITE.store(true, SeqCst);
            common::wait_until("the release", || CLEARED_MAY_WRITE.load(SeqCst));
        }
        self.0.hash(state);
    }
}

impl std::fmt::Debug for Cleared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if DEBUG_CLEARS.load(SeqCst) {
            cleared_cache().clear();
        }
        write!(f, "Cleared({})", self.0)
    }
}

#[cached]
fn cleared(key: Cleared) -> Stored {
    Stored(key.0)
}

/// A clear waits for a write in progress and describes it with the key's `Debug`, which
/// clears the same cache: the inner clear panics with a message (it would wait for the outer
/// one, which waits for it), instead of hanging on the lock that serializes clears.
#[test]
fn a_clear_from_a_keys_debug_during_a_clear_of_its_cache_panics() {
    let writer = std::thread::spawn(|| cleared(Cleared(1)));
    common::wait_until("the write", || CLEARED_IN_WRITE.load(SeqCst));
    DEBUG_CLEARS.store(true, SeqCst);
    let clearer = std::thread::spawn(|| run_bounded(|| cleared_cache().clear()));
    // The clear blocks on the write (and panics from the `Debug` it runs first): release the
    // write once the clear returned, or after a moment if it is blocked instead.
    let outcome = loop {
        if clearer.is_finished() {
            break clearer.join().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    CLEARED_MAY_WRITE.store(true, SeqCst);
    DEBUG_CLEARS.store(false, SeqCst);
    let message = outcome.expect_err("the inner clear panics");
    assert!(
        message.contains("cleared (or `invalidate_if` ran on it) from user code run by a clear"),
        "{message}"
    );
    assert_eq!(writer.join().unwrap(), Stored(1));
    assert_eq!(cleared_cache().stats().in_flight, 0);
    // The lock is free again: a later clear runs.
    cleared_cache().clear();
    assert_eq!(cleared_cache().stats().entries, 0);
}

static NOTED_IN_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A key whose `Hash`, in the leader's write of its value, calls `asks_back(0)`.
#[derive(Clone, PartialEq, Eq, Debug)]
struct AsksInWrite(u64);

impl std::hash::Hash for AsksInWrite {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if STORING.replace(false) {
            NOTED_IN_WRITE.store(true, SeqCst);
            let _ = asks_back(0);
        }
        self.0.hash(state);
    }
}

/// Nobody waits for its computation, so its leader keeps no copy of the value: a caller
/// arriving during the write waits for the write to end, then reads the store.
#[cached]
fn noted(key: AsksInWrite) -> Stored {
    Stored(key.0)
}

static ASKS_BACK_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// On the thread named "asker": once the write of `noted(1)` waits for this computation,
/// asks for `noted(1)`, which waits for that write. Elsewhere (the writer, taking over after
/// the asker panicked): returns at once.
#[cached]
fn asks_back(n: u64) -> u64 {
    if std::thread::current().name() == Some("asker") {
        ASKS_BACK_STARTED.store(true, SeqCst);
        common::wait_until("the write's Hash", || NOTED_IN_WRITE.load(SeqCst));
        common::wait_until("the write to wait for asks_back(0)", || {
            asks_back_cache().stats().waits > 0
        });
        let _ = noted(AsksInWrite(1));
    }
    n
}

/// Thread "asker" computes `asks_back(0)`, which asks for `noted(1)`; the writer is writing
/// `noted(1)` (no copy kept: nobody waited), and the key's `Hash` in that write waits for
/// `asks_back(0)`. The asker would wait for the write and the write for the asker: the asker's
/// call panics naming the cycle, and the write then completes (it used to hang: a caller
/// waiting for a write recorded no edge).
#[test]
fn a_wait_for_a_write_that_waits_for_the_caller_panics_instead_of_hanging() {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("asker".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| asks_back(0));
            let _ = tx.send(outcome.map_err(|p| panic_message(&*p)));
        })
        .unwrap();
    common::wait_until("asks_back(0) to start", || ASKS_BACK_STARTED.load(SeqCst));
    let written = run_bounded(|| noted(AsksInWrite(1)));
    let asked = rx.recv_timeout(HANG).expect("the asker hung");
    assert_eq!(written, Ok(Stored(1)));
    let message = asked.expect_err("the asker's call closes a cycle");
    assert!(
        message.contains("would deadlock") && message.contains("the write of `noted`"),
        "{message}"
    );
    assert_eq!(noted_cache().stats().in_flight, 0);
    assert_eq!(asks_back_cache().stats().in_flight, 0);
}
