//! What the hit-path benches share: the hot-key workload and the multi-thread runner.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The number of hot keys every hit bench cycles over.
pub const HOT_KEYS: u64 = 1024;

/// The hot keys in a fixed shuffled order (a multiplicative permutation of 0..1024).
pub fn order() -> Vec<u64> {
    (0..HOT_KEYS).map(|i| (i * 389 + 7) % HOT_KEYS).collect()
}

/// Runs `per_thread` on `threads` threads released together; returns the wall time of the
/// slowest, so `iters` lookups per thread give aggregate throughput `threads * iters / wall`.
pub fn on_threads(threads: usize, iters: u64, per_thread: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                per_thread(iters);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}
