//! Helpers shared by the behaviour tests. Deadlines here only turn a would-be hang into a
//! failure; no test asserts on how long anything took.
#![allow(dead_code)]

pub mod children;

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test may wait for something that should happen promptly before calling it a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// Spins (yielding) until `condition` holds; panics if it does not within [`HANG`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !condition() {
        assert!(Instant::now() < deadline, "hung waiting for {what}");
        std::thread::yield_now();
    }
}

/// Runs `f` on its own thread and returns its result (or its panic message), failing the test
/// if it has not finished within [`HANG`] (a regression to a deadlock fails instead of hanging).
pub fn run_bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    run_bounded_for(HANG, f)
}

/// [`run_bounded`] with a bound of `limit`.
pub fn run_bounded_for<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result.map_err(|payload| panic_message(&*payload)));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the call hung: not finished within {limit:?}"))
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else {
        "(non-string panic)".to_owned()
    }
}

/// Tracks how many executions run at once and the most seen.
#[derive(Default)]
pub struct Concurrency {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
}

impl Concurrency {
    pub const fn new() -> Self {
        Concurrency {
            now: std::sync::atomic::AtomicUsize::new(0),
            max: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Counts an execution in until the returned guard drops.
    pub fn enter(&self) -> impl Drop + '_ {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        struct Exit<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        Exit(&self.now)
    }

    pub fn now(&self) -> usize {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn max(&self) -> usize {
        self.max.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs `f` on `threads` threads released at the same instant by a barrier; returns each
/// thread's outcome (its value, or its panic), in thread order.
pub fn together<T: Send + 'static>(
    threads: usize,
    f: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<std::thread::Result<T>> {
    let f = std::sync::Arc::new(f);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    handles.into_iter().map(|handle| handle.join()).collect()
}

/// A tokio runtime with 4 worker threads (more than this machine's cores, so tasks interleave).
#[cfg(feature = "async")]
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// A tokio runtime that runs every task on the calling thread.
#[cfg(feature = "async")]
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An async store kept in memory (a map behind a mutex) whose reads and writes yield once
/// first, as I/O would; for tests of `async_store = ..` that need no server.
#[cfg(feature = "async")]
pub struct MemoryStore<K, V>(std::sync::Mutex<std::collections::HashMap<K, V>>);

#[cfg(feature = "async")]
impl<K, V> Default for MemoryStore<K, V> {
    fn default() -> Self {
        MemoryStore(std::sync::Mutex::new(std::collections::HashMap::new()))
    }
}

#[cfg(feature = "async")]
impl<K, V> memoflight::AsyncStore for MemoryStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;
    type Error = std::io::Error;

    async fn get(&self, key: &K) -> std::io::Result<Option<V>> {
        tokio::task::yield_now().await;
        Ok(self.0.lock().unwrap().get(key).cloned())
    }

    async fn insert(&self, key: K, value: V) -> std::io::Result<()> {
        tokio::task::yield_now().await;
        self.0.lock().unwrap().insert(key, value);
        Ok(())
    }

    async fn remove(&self, key: &K) -> std::io::Result<()> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }

    async fn clear(&self) -> std::io::Result<()> {
        self.0.lock().unwrap().clear();
        Ok(())
    }

    async fn len(&self) -> std::io::Result<usize> {
        Ok(self.0.lock().unwrap().len())
    }
}
