//! What the benches share: the hot-key workload, the multi-thread runner, and where the benches
//! leave machine-readable results for `charts.rs`.

// Each bench includes this module and uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The number of hot keys every hit bench cycles over.
pub const HOT_KEYS: u64 = 1024;

/// The hot keys in a fixed shuffled order (a multiplicative permutation of 0..1024).
pub fn order() -> Vec<u64> {
    (0..HOT_KEYS).map(|i| (i * 389 + 7) % HOT_KEYS).collect()
}

/// Key `k` as a string: `key-000123` (10 bytes), as in the `String` workloads.
pub fn string_key(k: u64) -> String {
    format!("key-{k:06}")
}

/// The hot keys of [`order`] as strings, in the same order.
pub fn string_order() -> Vec<String> {
    order().into_iter().map(string_key).collect()
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

/// Whether this is a measuring run: `cargo bench` passes `--bench`, `cargo test` does not (and
/// criterion then runs each benchmark once, as a test).
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` of the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `target/bench-data/`: the results that `charts.rs` reads besides criterion's own files.
pub fn data_dir() -> PathBuf {
    target_dir().join("bench-data")
}

/// The criterion settings every peer comparison uses: short enough for `regenerate.sh` to stay
/// within its time budget with six or more peers per group.
pub fn peer_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

/// The current date and time, UTC, as `2026-01-31 12:34:56 UTC`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}
