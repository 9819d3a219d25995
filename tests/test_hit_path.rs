//! The hit path of `#[cached]` on the default store: a read of a lock-free map under an epoch
//! guard, whose removed values are freed once no reader can see them
//! (`cached-core/src/store/unbounded.rs`). These tests exercise what that must survive: a
//! value's `Clone` that calls the function again while the value it is cloned from is being
//! removed, panics in user code during a hit, thread-local destructors that call the function
//! while the thread's state is torn down (`cached-core/src/teardown.rs`), and hits on many
//! short-lived threads. CI runs them under valgrind: a value freed while still read fails the
//! run even where the freed memory still reads back the same.

mod common;

use common::run_bounded;
use memoflight::{cached, Origin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;

/// A value that records its drop, so a test can tell whether a value still being read was freed.
struct Tracked {
    id: u64,
    n: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static DROPPED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// When set, the next `Tracked::clone` invalidates and calls `tracked` again.
static REENTER: AtomicBool = AtomicBool::new(false);

impl Tracked {
    fn new(n: u64) -> Self {
        Tracked {
            id: NEXT_ID.fetch_add(1, SeqCst),
            n,
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        let id = self.id;
        if REENTER.swap(false, SeqCst) {
            // An invalidation during the read (removing nothing: the predicate keeps all).
            tracked_cache().invalidate_if(|_, _| false);
            // A call during the read: it must not free the value being read.
            assert_eq!(tracked(5).n, 50);
            assert!(
                !DROPPED.lock().unwrap().contains(&id),
                "the value being read was freed by a call made during the read"
            );
        }
        Tracked::new(self.n)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().push(self.id);
    }
}

#[cached]
fn tracked(n: u64) -> Tracked {
    Tracked::new(n * 10)
}

#[test]
fn a_call_from_a_values_clone_never_frees_the_value_being_read() {
    let result = run_bounded(|| {
        assert_eq!(tracked(1).n, 10); // computed
        tracked_cache().invalidate_if(|_, _| false);
        assert_eq!(tracked(1).n, 10); // a hit
        REENTER.store(true, SeqCst);
        let (value, origin) = tracked_with_origin(1); // the clone re-enters, see above
        assert_eq!((value.n, origin), (10, Origin::Hit));
        assert!(!REENTER.load(SeqCst), "the hit did not clone the value");
        assert_eq!(tracked(1).n, 10);
        assert_eq!(tracked(5).n, 50);
    });
    assert_eq!(result, Ok(()));
    let stats = tracked_cache().stats();
    assert_eq!((stats.misses, stats.executions), (2, 2));
    assert_eq!(stats.hits, 4);
}

static PANIC_ON_CLONE: AtomicBool = AtomicBool::new(false);

#[derive(Debug, PartialEq)]
struct Fragile(u64);

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if PANIC_ON_CLONE.swap(false, SeqCst) {
            panic!("clone failed");
        }
        Fragile(self.0)
    }
}

#[cached]
fn fragile(n: u64) -> Fragile {
    Fragile(n + 1)
}

#[test]
fn a_panic_in_a_values_clone_during_a_hit_leaves_the_hit_path_working() {
    let result = run_bounded(|| {
        for _ in 0..3 {
            assert_eq!(fragile(1), Fragile(2));
        }
        fragile_cache().invalidate_if(|_, _| false);
        assert_eq!(fragile(1), Fragile(2));
        PANIC_ON_CLONE.store(true, SeqCst);
        let panicked = std::panic::catch_unwind(|| fragile(1));
        assert!(panicked.is_err());
        for _ in 0..10 {
            assert_eq!(fragile_with_origin(1), (Fragile(2), Origin::Hit));
        }
    });
    assert_eq!(result, Ok(()));
    // The panicking clone was not a hit; the 2 + 1 + 10 others were.
    assert_eq!(fragile_cache().stats().hits, 13);
    assert_eq!(fragile_cache().stats().executions, 1);
}

#[cached]
fn torn_down(n: u64) -> u64 {
    n * 7
}

static FROM_DESTRUCTORS: Mutex<Vec<(u64, Origin)>> = Mutex::new(Vec::new());

/// Calls `torn_down(3)` from a thread-local destructor.
struct CallsOnDrop;

impl Drop for CallsOnDrop {
    fn drop(&mut self) {
        let result = torn_down_with_origin(3);
        FROM_DESTRUCTORS.lock().unwrap().push(result);
    }
}

thread_local! {
    static CALLS_ON_DROP: CallsOnDrop = const { CallsOnDrop };
}

#[test]
fn a_thread_local_destructor_can_call_the_function_while_the_thread_is_torn_down() {
    assert_eq!(torn_down(3), 21);
    torn_down_cache().invalidate_if(|_, _| false);
    // Thread-local destructors run in the reverse order of their registration (the first
    // access), so the destructor runs after the thread-locals the store uses are gone in the
    // first thread, and before them in the second.
    let destructor_first = std::thread::spawn(|| {
        CALLS_ON_DROP.with(|_| {});
        assert_eq!(torn_down(3), 21);
        torn_down_cache().invalidate_if(|_, _| false);
    });
    destructor_first.join().unwrap();
    let state_first = std::thread::spawn(|| {
        assert_eq!(torn_down(3), 21);
        CALLS_ON_DROP.with(|_| {});
    });
    state_first.join().unwrap();
    let from_destructors = FROM_DESTRUCTORS.lock().unwrap().clone();
    assert_eq!(from_destructors, [(21, Origin::Hit), (21, Origin::Hit)]);
    assert_eq!(torn_down_cache().stats().executions, 1);
    assert_eq!(torn_down_cache().stats().hits, 4);
}

#[cached]
fn short_lived(n: u64) -> u64 {
    n + 100
}

#[test]
fn hits_on_many_short_lived_threads_are_all_counted() {
    assert_eq!(short_lived(1), 101);
    for round in 0..4 {
        let threads: Vec<_> = (0..16)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        assert_eq!(short_lived(1), 101);
                    }
                    if round == 2 {
                        // Invalidations while threads come and go.
                        short_lived_cache().invalidate_if(|_, _| false);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    let stats = short_lived_cache().stats();
    assert_eq!((stats.hits, stats.executions), (4 * 16 * 25, 1));
}
