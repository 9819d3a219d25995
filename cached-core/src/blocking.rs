//! Sync functions over an async store (feature `tokio`): a sync `#[cached(async_store = ..)]`
//! function runs the async caller protocol of [`AsyncCache`](crate::AsyncCache) to its end on
//! the caller's thread.
//!
//! The store's I/O (a Redis client, its timers) needs a tokio runtime: the process gets one of
//! its own, with one worker thread, started on first use; the caller's thread enters its
//! context and polls the call itself, parking between polls. So the computation runs on the
//! caller's thread (its thread-locals are its own), and a computation may call other memoized
//! functions, sync or not: a nested call parks the same thread until it returns. A call from
//! inside another runtime's task blocks that task's thread for the call's duration, as any
//! blocking I/O would (run it in `spawn_blocking`).

use std::future::Future;
#[cfg(feature = "tokio")]
use std::sync::OnceLock;

/// The stores a sync memoized function can use with `async_store = ..`: every
/// [`AsyncStore`](crate::AsyncStore), with the `tokio` feature.
#[diagnostic::on_unimplemented(
    message = "a sync function with `async_store = ..` needs memoflight's `tokio` feature",
    note = "turn on the `tokio` feature (or `redis`, which includes it), or make the function \
            `async`"
)]
pub trait Blocking {}

#[cfg(feature = "tokio")]
impl<S: crate::AsyncStore> Blocking for S {}

/// The name of the I/O runtime's worker thread.
#[cfg(feature = "tokio")]
const IO_THREAD: &str = "memoflight-io";

/// Runs `future` to its end on this thread, inside the process's I/O runtime.
///
/// # Panics
///
/// On the I/O runtime's own worker (a task spawned there by a computation that called a sync
/// function over an async store): parking it would stop every store's I/O.
#[cfg(feature = "tokio")]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    assert!(
        std::thread::current().name() != Some(IO_THREAD),
        "memoflight: a sync function over an async store was called on memoflight's I/O \
         thread (from a task spawned while such a function computed); call it from your own \
         threads or runtime"
    );
    let runtime = IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(IO_THREAD)
            .enable_all()
            .build()
            .expect("memoflight: cannot start the I/O runtime of sync functions over async stores")
    });
    let _context = runtime.enter();
    // Each call has its own wake-up flag: a nested call parking this thread may consume the
    // thread's unpark token, but never this call's flag.
    let woken = std::sync::Arc::new(Unpark {
        thread: std::thread::current(),
        woken: std::sync::atomic::AtomicBool::new(false),
    });
    let waker = std::task::Waker::from(std::sync::Arc::clone(&woken));
    let mut context = std::task::Context::from_waker(&waker);
    // Unconstrained: when called from inside a tokio task, that task's cooperative budget
    // must not make the store's I/O yield to a scheduler that cannot run until this returns.
    let mut future = std::pin::pin!(tokio::task::unconstrained(future));
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        while !woken.woken.swap(false, std::sync::atomic::Ordering::AcqRel) {
            std::thread::park();
        }
    }
}

/// Wakes a parked caller: sets its flag, then unparks its thread.
#[cfg(feature = "tokio")]
struct Unpark {
    thread: std::thread::Thread,
    woken: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "tokio")]
impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::Release);
        self.thread.unpark();
    }
}

/// Without the `tokio` feature nothing implements [`Blocking`], so this is never called.
#[cfg(not(feature = "tokio"))]
pub(crate) fn block_on<F: Future>(_future: F) -> F::Output {
    unreachable!("memoflight: sync functions over async stores need the `tokio` feature")
}
