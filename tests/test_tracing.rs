//! With feature `tracing`, memoflight emits events for misses, computations, waits, hand-offs
//! and invalidations, carrying the function's name and the key. Counted from captured output.
#![cfg(feature = "tracing")]

mod common;

use common::{together, wait_until};
use memoflight::cached;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// Everything the subscriber writes.
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        OUTPUT.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines_with(parts: &[&str]) -> usize {
    let output = String::from_utf8(OUTPUT.lock().unwrap().clone()).unwrap();
    output
        .lines()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .count()
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn traced(key: u32) -> u32 {
    if RUNS.fetch_add(1, SeqCst) == 0 {
        wait_until("the other caller to wait", || {
            traced_cache().stats().waits == 1
        });
    }
    key + 1
}

#[cached]
fn explodes(key: u32) -> u32 {
    panic!("boom {key}")
}

#[cached(max_size = 1)]
fn single_slot(key: u32) -> u32 {
    key
}

/// Polled once, then dropped mid-computation: a cancelled leader.
#[cfg(feature = "async")]
#[cached]
async fn abandoned(key: u32) -> u32 {
    std::future::pending::<()>().await;
    key
}

#[cfg(feature = "async")]
fn cancel_a_leader() {
    let mut leader = Box::pin(abandoned(5));
    futures::executor::block_on(std::future::poll_fn(|cx| {
        assert!(std::future::Future::poll(leader.as_mut(), cx).is_pending());
        std::task::Poll::Ready(())
    }));
    drop(leader);
    assert_eq!(abandoned_cache().stats().cancellations, 1);
}

/// An async store that is down: every operation fails.
#[cfg(feature = "async")]
struct Down;

#[cfg(feature = "async")]
impl memoflight::AsyncStore for Down {
    type Key = u32;
    type Value = u32;
    type Error = std::io::Error;

    async fn get(&self, _: &u32) -> std::io::Result<Option<u32>> {
        Err(std::io::Error::other("connection refused"))
    }
    async fn insert(&self, _: u32, _: u32) -> std::io::Result<()> {
        Err(std::io::Error::other("connection refused"))
    }
    async fn remove(&self, _: &u32) -> std::io::Result<()> {
        Err(std::io::Error::other("connection refused"))
    }
    async fn clear(&self) -> std::io::Result<()> {
        Err(std::io::Error::other("connection refused"))
    }
    async fn len(&self) -> std::io::Result<usize> {
        Err(std::io::Error::other("connection refused"))
    }
}

#[cfg(feature = "async")]
#[cached(async_store = Down)]
async fn behind_a_broken_store(key: u32) -> u32 {
    key
}

#[test]
fn events_name_the_function_and_key() {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_ansi(false)
        .with_writer(|| Capture)
        .init();

    for outcome in together(2, || traced(7)) {
        assert_eq!(outcome.unwrap(), 8);
    }
    traced(7); // a hit: no event
    traced_cache().invalidate(&7);
    assert!(std::panic::catch_unwind(|| explodes(1)).is_err());
    single_slot(1);
    single_slot(2); // evicts 1
    #[cfg(feature = "async")]
    cancel_a_leader();
    #[cfg(feature = "async")]
    assert_eq!(futures::executor::block_on(behind_a_broken_store(3)), 3);

    let tagged = ["function=\"traced\"", "key=7"];
    assert_eq!(lines_with(&[&tagged[..], &["miss"]].concat()), 2);
    assert_eq!(
        lines_with(&[&tagged[..], &["computation started"]].concat()),
        1
    );
    assert_eq!(
        lines_with(&[&tagged[..], &["computation finished", "elapsed_us="]].concat()),
        1
    );
    assert_eq!(
        lines_with(&[&tagged[..], &["coalesced wait finished", "waited_us="]].concat()),
        1
    );
    assert_eq!(lines_with(&["function=\"traced\"", "invalidated"]), 1);
    assert_eq!(
        lines_with(&["WARN", "function=\"explodes\"", "key=1", "panicked"]),
        1
    );
    assert_eq!(
        lines_with(&["function=\"single_slot\"", "key=2", "evicted=1"]),
        1
    );
    #[cfg(feature = "async")]
    assert_eq!(
        lines_with(&["WARN", "function=\"abandoned\"", "key=5", "was cancelled"]),
        1
    );
    // The first look, the leader's second look, and the write; the first a warning, the
    // others (within a minute) debug events.
    #[cfg(feature = "async")]
    assert_eq!(
        lines_with(&[
            "WARN",
            "function=\"behind_a_broken_store\"",
            "store operation failed"
        ]),
        1
    );
    #[cfg(feature = "async")]
    for (operation, failures) in [("get", 2), ("insert", 1)] {
        let operation = format!("operation=\"{operation}\"");
        let line = ["function=\"behind_a_broken_store\"", "key=3", &operation];
        let line = [
            &line[..],
            &["error=connection refused", "store operation failed"],
        ]
        .concat();
        assert_eq!(lines_with(&line), failures, "{operation}");
    }
}
