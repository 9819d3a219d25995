//! Two memoized functions calling each other from two threads: thread 1 leads `left(1)` and
//! waits for `right(1)`, thread 2 leads `right(1)` and waits for `left(1)`. Instead of a
//! deadlock, the call that closes the cycle panics naming both functions and keys.

mod common;

use common::{panic_message, HANG};
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
