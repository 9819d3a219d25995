//! Memoized calls from thread-local destructors, while the thread is torn down: a thread
//! initializes a thread-local of its own *before* its first memoized call, so that its
//! destructor runs after the thread-locals the cache uses are gone (destructors run in the
//! reverse order of their registration). The call must work and be counted, on the default
//! store and on a bounded one, for a hit and for a miss, whose value is stored, and for an
//! `invalidate` (the stores' table reads and writes through an epoch guard of its own then).
//!
//! A failure here used to abort the process ("cannot access a Thread Local Storage value during
//! or after destruction"), so each scenario runs in a child process: this test binary, started
//! again with `TEARDOWN_SCENARIO` set.

mod common;

use memoflight::{cached, Origin};
use std::sync::Mutex;

#[cached]
fn unbounded(n: u64) -> u64 {
    n * 7
}

#[cached(max_size = 100)]
fn bounded(n: u64) -> u64 {
    n * 11
}

#[cfg(feature = "tokio")]
static REMOTE: std::sync::LazyLock<common::MemoryStore<u64, u64>> =
    std::sync::LazyLock::new(Default::default);

#[cfg(feature = "tokio")]
#[cached(async_store = &*REMOTE)]
fn remote(n: u64) -> u64 {
    n * 13
}

/// A sync function over an async store, called from a thread-local destructor: it runs
/// uncached (tokio's context is gone), and each call is counted as a miss that executed.
#[cfg(feature = "tokio")]
#[test]
fn a_sync_function_over_an_async_store_is_computed_and_counted_during_teardown() {
    struct Calls;
    impl Drop for Calls {
        fn drop(&mut self) {
            let mut seen = SEEN.lock().unwrap();
            seen.push(remote_with_origin(3));
            seen.push(remote_with_origin(3));
        }
    }
    thread_local! {
        static CALLS: Calls = const { Calls };
    }
    let before = remote_cache().block_on(remote_cache().stats()).unwrap();
    std::thread::spawn(|| {
        CALLS.with(|_| {});
        // The thread's first memoized call, after its destructor was registered.
        assert_eq!(remote_with_origin(4), (52, Origin::Computed));
    })
    .join()
    .unwrap();
    let after = remote_cache().block_on(remote_cache().stats()).unwrap();
    let during: Vec<_> = SEEN.lock().unwrap().drain(..).collect();
    assert_eq!(during, [(39, Origin::Computed), (39, Origin::Computed)]);
    let delta = after - before;
    assert_eq!(
        (delta.misses, delta.executions, delta.hits),
        (3, 3, 0),
        "{delta:?}"
    );
}

static SEEN: Mutex<Vec<(u64, Origin)>> = Mutex::new(Vec::new());

/// Calls the function named by `TEARDOWN_SCENARIO` from its destructor: key 1 (computed by the
/// thread, a hit) and key 2 (never computed, a miss).
struct CallsOnDrop;

impl Drop for CallsOnDrop {
    fn drop(&mut self) {
        let call = match std::env::var("TEARDOWN_SCENARIO").as_deref() {
            Ok("bounded") => bounded_with_origin,
            _ => unbounded_with_origin,
        };
        let mut seen = SEEN.lock().unwrap();
        seen.push(call(1));
        seen.push(call(2));
        // The stores write through an epoch guard of their own then: the value just computed
        // was stored, and an invalidation works.
        seen.push(call(2));
        match std::env::var("TEARDOWN_SCENARIO").as_deref() {
            Ok("bounded") => bounded_cache().invalidate(&1),
            _ => unbounded_cache().invalidate(&1),
        };
        seen.push(call(1));
    }
}

thread_local! {
    static CALLS_ON_DROP: CallsOnDrop = const { CallsOnDrop };
}

/// The child's part: a thread registers its destructor first, then calls the function (or,
/// in `late_first_call`, only uses the `thread_local` crate, whose per-thread id is then torn
/// down before the destructor makes the thread's first memoized call).
fn run_scenario(scenario: &str) {
    let call = match scenario {
        "bounded" => bounded_with_origin,
        _ => unbounded_with_origin,
    };
    let late = scenario == "late_first_call";
    std::thread::spawn(move || {
        CALLS_ON_DROP.with(|_| {});
        if late {
            static OTHER: std::sync::LazyLock<thread_local::ThreadLocal<()>> =
                std::sync::LazyLock::new(thread_local::ThreadLocal::new);
            OTHER.get_or(|| ());
        } else {
            assert_eq!(call(1).1, Origin::Computed);
        }
    })
    .join()
    .unwrap();
    let stats = match scenario {
        "bounded" => bounded_cache().stats(),
        _ => unbounded_cache().stats(),
    };
    let seen = SEEN.lock().unwrap();
    println!(
        "RESULT {seen:?} executions={} hits={} misses={}",
        stats.executions, stats.hits, stats.misses
    );
}

/// Runs `scenario` in a child process and returns what it printed.
fn in_child(scenario: &str, test: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("TEARDOWN_SCENARIO", scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child died ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

fn check(scenario: &str, test: &str) {
    if let Ok(scenario) = std::env::var("TEARDOWN_SCENARIO") {
        run_scenario(&scenario);
        return;
    }
    let out = in_child(scenario, test);
    let expected = match scenario {
        "late_first_call" => {
            "RESULT [(7, Computed), (14, Computed), (14, Hit), (7, Computed)] executions=3 \
             hits=1 misses=3"
        }
        "bounded" => {
            "RESULT [(11, Hit), (22, Computed), (22, Hit), (11, Computed)] executions=3 hits=2 \
             misses=3"
        }
        _ => {
            "RESULT [(7, Hit), (14, Computed), (14, Hit), (7, Computed)] executions=3 hits=2 \
             misses=3"
        }
    };
    assert!(out.contains(expected), "expected `{expected}` in:\n{out}");
}

#[test]
fn the_default_store_serves_calls_from_thread_local_destructors() {
    check(
        "unbounded",
        "the_default_store_serves_calls_from_thread_local_destructors",
    );
}

#[test]
fn a_bounded_store_serves_calls_from_thread_local_destructors() {
    check(
        "bounded",
        "a_bounded_store_serves_calls_from_thread_local_destructors",
    );
}

/// The thread's first memoized call comes from a destructor that runs after the `thread_local`
/// crate's per-thread id is gone (touching it then panics, and a panic out of a destructor
/// aborts): the call still works.
#[test]
fn a_first_call_after_other_thread_locals_are_gone_works() {
    check(
        "late_first_call",
        "a_first_call_after_other_thread_locals_are_gone_works",
    );
}
