//! `#[cached]` on `async fn` against async peers, in one run:
//!
//! - **hit**: u64 -> u64, 1024 hot keys in the shuffled order of `hit_path.rs`, awaited one after
//!   another inside one `block_on` on a tokio current-thread runtime, so every peer pays the
//!   same runtime cost and none pays a runtime entry per call. The baseline is a read-only
//!   `HashMap` (foldhash) lookup inside an `async` block. Criterion.
//! - **stampede**: 10,000 tasks spawned on a tokio multi-thread runtime (2 workers) call one
//!   fresh key; the function counts its execution and awaits a 50 ms `tokio::time::sleep`.
//!   Prints a markdown table of executions and wall time per round, with an uncached function
//!   (every task runs it) as the floor of spawning, timers and joins.
//!
//! Peers: moka `future::Cache::get_with` behind a function over a static cache, and the `cached`
//! crate's `#[cached]` on an `async fn` with no `sync_writes`, `sync_writes = "default"` and
//! `sync_writes = "by_key"` (all three async in `cached` 4.1 with its `async` feature).
//!
//! `cargo bench --bench peers_async --features async`; results are in `benches/README.md`.

mod common;

use common::{order, HOT_KEYS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion};
use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};

fn work(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

// ---- hit path ----

#[memoflight::cached]
async fn hit_memoflight(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached]
async fn hit_cached(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached(sync_writes = "default")]
async fn hit_cached_sync(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
async fn hit_cached_by_key(n: u64) -> u64 {
    work(n)
}

static HIT_MOKA: LazyLock<moka::future::Cache<u64, u64>> =
    LazyLock::new(|| moka::future::Cache::builder().build());

async fn hit_moka(n: u64) -> u64 {
    HIT_MOKA.get_with(n, async move { work(n) }).await
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// Awaits `f(k)` for `iters` keys in the hot order inside one `block_on`; returns the time of
/// the loop alone, without entering the runtime.
fn await_hits<F: Future<Output = u64>>(
    rt: &Runtime,
    keys: &[u64],
    iters: u64,
    f: impl Fn(u64) -> F,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            let k = keys[(i % HOT_KEYS) as usize];
            black_box(f(black_box(k)).await);
        }
        start.elapsed()
    })
}

/// Checks that `f` returns the right value for every hot key (filling its cache), then
/// benchmarks its hits.
fn bench_peer<F: Future<Output = u64>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    keys: &[u64],
    name: &str,
    f: impl Fn(u64) -> F + Copy,
) {
    rt.block_on(async {
        for &k in keys {
            assert_eq!(f(k).await, work(k));
        }
    });
    group.bench_function(BenchmarkId::new(name, "current_thread"), |b| {
        b.iter_custom(|iters| await_hits(rt, keys, iters, f))
    });
}

fn hits(c: &mut Criterion) {
    let rt = &current_thread();
    let keys = &order();
    let map: HashMap<u64, u64, foldhash::fast::RandomState> =
        (0..HOT_KEYS).map(|k| (k, work(k))).collect();
    let map = &map;
    let baseline = |k: u64| async move { map.get(&k).copied().unwrap_or(0) };

    let mut group = c.benchmark_group("peers_async hit");
    bench_peer(
        &mut group,
        rt,
        keys,
        "read-only HashMap in async block",
        baseline,
    );
    bench_peer(&mut group, rt, keys, "memoflight", hit_memoflight);
    bench_peer(&mut group, rt, keys, "cached", hit_cached);
    bench_peer(
        &mut group,
        rt,
        keys,
        "cached sync_writes=default",
        hit_cached_sync,
    );
    bench_peer(
        &mut group,
        rt,
        keys,
        "cached sync_writes=by_key",
        hit_cached_by_key,
    );
    bench_peer(&mut group, rt, keys, "moka future get_with", hit_moka);
    group.finish();
    // Every measured memoflight call was a hit: the function ran once per hot key, in the check.
    let stats = hit_memoflight_cache().stats();
    assert_eq!((stats.executions, stats.misses), (HOT_KEYS, HOT_KEYS));
}

// ---- stampede ----

const TASKS: usize = 10_000;
const WORKERS: usize = 2;
const WORK: Duration = Duration::from_millis(50);
const ROUNDS: u64 = 5;

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
/// When the last execution of the round finished, in nanoseconds since `EPOCH`.
static LAST_END: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The memoized work: counts the execution, sleeps without blocking the worker, and records
/// when it finished.
async fn slow(k: u64) -> u64 {
    EXECUTIONS.fetch_add(1, SeqCst);
    tokio::time::sleep(WORK).await;
    LAST_END.fetch_max(EPOCH.elapsed().as_nanos() as u64, SeqCst);
    k.wrapping_mul(3)
}

/// The floor: no cache, every task runs the function.
async fn slow_uncached(k: u64) -> u64 {
    slow(k).await
}

#[memoflight::cached]
async fn slow_memoflight(k: u64) -> u64 {
    slow(k).await
}

#[cached::proc_macro::cached]
async fn slow_cached(k: u64) -> u64 {
    slow(k).await
}

#[cached::proc_macro::cached(sync_writes = "default")]
async fn slow_cached_sync(k: u64) -> u64 {
    slow(k).await
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
async fn slow_cached_by_key(k: u64) -> u64 {
    slow(k).await
}

static SLOW_MOKA: LazyLock<moka::future::Cache<u64, u64>> =
    LazyLock::new(|| moka::future::Cache::builder().build());

async fn slow_moka(k: u64) -> u64 {
    SLOW_MOKA.get_with(k, slow(k)).await
}

/// Keys never used before: every round of every mode is a real stampede.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1 << 32);

struct Round {
    executions: usize,
    /// From the first spawn to the last join.
    wall: Duration,
    /// From the first spawn to the last spawn.
    spawned: Duration,
    /// From the end of the last execution to the last join: handing the value to the tasks.
    tail: Duration,
}

/// One round: `TASKS` tasks spawned on the multi-thread runtime all call `f` on one fresh key.
fn round<F>(rt: &Runtime, f: fn(u64) -> F) -> Round
where
    F: Future<Output = u64> + Send + 'static,
{
    let k = NEXT_KEY.fetch_add(1, SeqCst);
    EXECUTIONS.store(0, SeqCst);
    LAST_END.store(0, SeqCst);
    let (start, spawned, end) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(f(k))).collect();
        let spawned = Instant::now();
        for task in tasks {
            assert_eq!(task.await.expect("task panicked"), k.wrapping_mul(3));
        }
        (start, spawned, Instant::now())
    });
    let last_end = *EPOCH + Duration::from_nanos(LAST_END.load(SeqCst));
    Round {
        executions: EXECUTIONS.load(SeqCst),
        wall: end - start,
        spawned: spawned - start,
        tail: end.saturating_duration_since(last_end),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median_ms(rounds: &[Round], field: fn(&Round) -> Duration) -> String {
    let mut v: Vec<Duration> = rounds.iter().map(field).collect();
    v.sort_unstable();
    ms(v[v.len() / 2])
}

fn row<F>(rt: &Runtime, name: &str, f: fn(u64) -> F)
where
    F: Future<Output = u64> + Send + 'static,
{
    let rounds: Vec<Round> = (0..ROUNDS).map(|_| round(rt, f)).collect();
    let execs: Vec<String> = rounds.iter().map(|r| r.executions.to_string()).collect();
    let walls: Vec<String> = rounds.iter().map(|r| ms(r.wall)).collect();
    println!(
        "| {name} | {} | {} | {} | {} | {} |",
        execs.join(", "),
        median_ms(&rounds, |r| r.wall),
        median_ms(&rounds, |r| r.spawned),
        median_ms(&rounds, |r| r.tail),
        walls.join(", ")
    );
}

fn stampede() {
    let rt = Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\n### Async stampede: {TASKS} tasks, one fresh key per round, {} ms `tokio::time::sleep`, \
         {WORKERS} tokio workers, {ROUNDS} rounds\n",
        WORK.as_millis()
    );
    println!(
        "| mode | executions per round | median wall | median spawn loop | median tail after \
         last execution | wall per round |"
    );
    println!("|---|---|---|---|---|---|");
    row(
        &rt,
        "no cache (baseline: every task runs it)",
        slow_uncached,
    );
    row(&rt, "memoflight `#[cached]`", slow_memoflight);
    row(&rt, "cached `#[cached]` (no sync_writes)", slow_cached);
    row(&rt, "cached `sync_writes = \"default\"`", slow_cached_sync);
    row(&rt, "cached `sync_writes = \"by_key\"`", slow_cached_by_key);
    row(&rt, "moka `future::Cache::get_with`", slow_moka);
}

criterion_group! {
    name = benches;
    config = common::peer_config();
    targets = hits
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` skip the slow rounds.
    if std::env::args().any(|a| a == "--bench") {
        stampede();
    }
}
