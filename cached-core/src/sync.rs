//! The one place that picks std or loom synchronisation primitives.
//!
//! `cfg(memoflight_loom)` swaps in loom's types so that the single-flight protocol in
//! [`crate::flight`], the default store's table and the bounded store are model-checked (see
//! `tests/loom_flight.rs`, `tests/loom_table.rs` and `tests/loom_bounded.rs`). A crate-private cfg rather
//! than a `loom` feature, as moka does: `--all-features` must never turn loom on.

#[cfg(memoflight_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(memoflight_loom)]
pub(crate) use loom::thread::{yield_now, ThreadId};
#[cfg(not(memoflight_loom))]
pub(crate) use std::thread::yield_now;

#[cfg(not(memoflight_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize},
    Arc, Condvar, Mutex, MutexGuard,
};

/// Identifies a thread for same-key recursion checks. `std::thread::current()` clones an
/// `Arc` on every call; a thread-local number costs one TLS read on the miss path.
#[cfg(not(memoflight_loom))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct ThreadId(u64);

/// The id of the calling thread.
#[cfg(not(memoflight_loom))]
pub(crate) fn current_thread() -> ThreadId {
    use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering::Relaxed};
    static NEXT: StdAtomicU64 = StdAtomicU64::new(1);
    thread_local! {
        static ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Relaxed));
        }
        ThreadId(id.get())
    })
}

/// The id of the calling thread.
#[cfg(memoflight_loom)]
pub(crate) fn current_thread() -> ThreadId {
    loom::thread::current().id()
}

/// Locks `mutex`, ignoring poison.
///
/// memoflight never runs user code while holding one of its own locks except `Clone`, `Hash`,
/// `Eq` and `Drop` of keys and values; if one of those panics, the data behind the lock is still
/// consistent (every critical section leaves it valid before calling user code), so poison
/// carries no information and must not turn one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for std's mutex: code that is never model-checked (the I/O stores) keeps std's
/// types even under loom.
#[cfg(any(feature = "redis", feature = "disk"))]
pub(crate) fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Pads a value to its own cache line pair (128 bytes: adjacent-line prefetch on x86), so that
/// threads writing neighbouring values do not bounce one line between cores.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
