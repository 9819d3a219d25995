//! `wait_timeout`: a caller that has waited that long for another caller's computation stops
//! waiting and computes on its own. The leader here is held until the waiter has returned, so
//! the timeout fires on every run; the test counts what happened.

mod common;

use common::wait_until;
use memoflight::{cached, Origin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

static RUNS: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);

#[cached(wait_timeout = "20ms")]
fn slow(key: u32) -> u32 {
    if RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("the test to release the leader", || RELEASE.load(SeqCst));
        return key * 10; // the leader's value
    }
    key * 100 // the impatient caller's own
}

#[test]
fn a_waiter_past_its_timeout_computes_on_its_own() {
    let leader = std::thread::spawn(|| slow(1));
    wait_until("the leader to start", || RUNS.load(SeqCst) == 1);

    assert_eq!(slow_with_origin(1), (100, Origin::Computed));
    let stats = slow_cache().stats();
    assert_eq!((stats.waits, stats.timeouts, stats.executions), (1, 1, 2));
    // The leader was still running and nothing was stored: the impatient value is stored.
    assert_eq!(slow_cache().get(&1), Some(100));

    RELEASE.store(true, SeqCst);
    assert_eq!(leader.join().unwrap(), 10);
    // The leader finished last; its value replaces the impatient one.
    assert_eq!(slow_cache().get(&1), Some(10));
    assert_eq!(slow_cache().stats().in_flight, 0);
}

static HELD_RUNS: AtomicUsize = AtomicUsize::new(0);
static HELD_RELEASE: AtomicBool = AtomicBool::new(false);

#[cached(wait_timeout = std::time::Duration::from_millis(20))]
fn invalidated_meanwhile(key: u32) -> u32 {
    if HELD_RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("the test to release the leader", || {
            HELD_RELEASE.load(SeqCst)
        });
    } else {
        // The impatient caller's computation: the key is invalidated while it runs.
        invalidated_meanwhile_cache().invalidate(&key);
    }
    key
}

#[test]
fn an_impatient_result_is_not_stored_after_an_invalidation() {
    let leader = std::thread::spawn(|| invalidated_meanwhile(2));
    wait_until("the leader to start", || HELD_RUNS.load(SeqCst) == 1);
    assert_eq!(invalidated_meanwhile_with_origin(2), (2, Origin::Computed));
    assert_eq!(
        invalidated_meanwhile_cache().get(&2),
        None,
        "stored after an invalidation"
    );
    HELD_RELEASE.store(true, SeqCst);
    assert_eq!(leader.join().unwrap(), 2);
    // The leader's flight was invalidated too: it does not store either.
    assert_eq!(invalidated_meanwhile_cache().get(&2), None);
}

std::thread_local! {
    /// Set by a `Slow` value's `Clone`, just before the leader writes it.
    static WRITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static WRITE_HELD: AtomicBool = AtomicBool::new(false);
static WRITE_RELEASE: AtomicBool = AtomicBool::new(false);

/// A value whose `Clone` marks the leader's write.
#[derive(Debug, PartialEq)]
struct Slow(u32);

impl Clone for Slow {
    fn clone(&self) -> Self {
        WRITING.set(true);
        Slow(self.0)
    }
}

/// A key whose `Hash`, in the leader's write, holds the write until the test releases it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct HeldWrite(u32);

impl std::hash::Hash for HeldWrite {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if WRITING.replace(false) {
            WRITE_HELD.store(true, SeqCst);
            wait_until("the test to release the write", || {
                WRITE_RELEASE.load(SeqCst)
            });
        }
        self.0.hash(state);
    }
}

#[cached(wait_timeout = "20ms")]
fn slowly_stored(key: HeldWrite) -> Slow {
    Slow(key.0)
}

/// A caller that arrives while the leader writes its value (with no copy kept, since nobody
/// waited while it computed) waits for the write, and `wait_timeout` bounds that wait too:
/// the caller computes on its own while the write is still held (it used to spin until the
/// write ended).
#[test]
fn a_wait_for_a_write_ends_at_the_timeout_too() {
    let leader = std::thread::spawn(|| slowly_stored(HeldWrite(1)));
    wait_until("the leader's write", || WRITE_HELD.load(SeqCst));
    let impatient = common::run_bounded(|| slowly_stored_with_origin(HeldWrite(1)));
    let still_held = !WRITE_RELEASE.load(SeqCst);
    WRITE_RELEASE.store(true, SeqCst);
    assert_eq!(impatient, Ok((Slow(1), Origin::Computed)));
    assert!(still_held);
    assert_eq!(leader.join().unwrap(), Slow(1));
    let stats = slowly_stored_cache().stats();
    assert_eq!(
        (stats.timeouts, stats.executions, stats.in_flight),
        (1, 2, 0)
    );
}
