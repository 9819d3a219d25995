//! Executions, wall time and peak concurrency of memoflight and its peers under concurrent
//! misses, and memoized recursion. Prints markdown tables to stdout.
//!
//! - stampede: 64 threads released by a barrier call one fresh key; the function sleeps 50 ms.
//! - distinct keys: 64 threads, 64 fresh keys (one each); the function sleeps 50 ms.
//! - recursion: memoized `fib(90)` (u128). Each mode runs in a child process (this binary,
//!   started again with `PEERS_FIB_MODE` set) that is killed after 5 s and reported as hanging.
//!
//! `cargo bench --bench peers_concurrency`; results and the machine are in `benches/PEERS.md`.

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, LazyLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

const THREADS: usize = 64;
const WORK: Duration = Duration::from_millis(50);
const STAMPEDE_ROUNDS: u64 = 5;
const DISTINCT_ROUNDS: u64 = 3;
const FIB_N: u64 = 90;
const FIB_RUNS: usize = 5;
const FIB_TIMEOUT: Duration = Duration::from_secs(5);
const FIB_ENV: &str = "PEERS_FIB_MODE";

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The memoized work: counts the execution and how many run at once, then sleeps.
fn slow(k: u64) -> u64 {
    EXECUTIONS.fetch_add(1, SeqCst);
    let now = RUNNING.fetch_add(1, SeqCst) + 1;
    PEAK.fetch_max(now, SeqCst);
    sleep(WORK);
    RUNNING.fetch_sub(1, SeqCst);
    k.wrapping_mul(3)
}

#[memoflight::cached]
fn slow_memoflight(k: u64) -> u64 {
    slow(k)
}

#[cached::proc_macro::cached]
fn slow_cached(k: u64) -> u64 {
    slow(k)
}

#[cached::proc_macro::cached(sync_writes = "default")]
fn slow_cached_sync(k: u64) -> u64 {
    slow(k)
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
fn slow_cached_by_key(k: u64) -> u64 {
    slow(k)
}

static SLOW_MOKA: LazyLock<moka::sync::Cache<u64, u64>> =
    LazyLock::new(|| moka::sync::Cache::builder().build());

fn slow_moka(k: u64) -> u64 {
    SLOW_MOKA.get_with(k, || slow(k))
}

static SLOW_QUICK: LazyLock<quick_cache::sync::Cache<u64, u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(1 << 16));

fn slow_quick(k: u64) -> u64 {
    match SLOW_QUICK.get_or_insert_with(&k, || Ok::<u64, Infallible>(slow(k))) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// A mode: its name in the tables and its memoized function.
type Mode<R> = (&'static str, fn(u64) -> R);

const SLOW: [Mode<u64>; 6] = [
    ("memoflight `#[cached]`", slow_memoflight),
    ("cached `#[cached]` (no sync_writes)", slow_cached),
    ("cached `sync_writes = \"default\"`", slow_cached_sync),
    ("cached `sync_writes = \"by_key\"`", slow_cached_by_key),
    ("moka `get_with`", slow_moka),
    ("quick_cache `get_or_insert_with`", slow_quick),
];

fn fib_body(n: u64, rec: fn(u64) -> u128) -> u128 {
    EXECUTIONS.fetch_add(1, SeqCst);
    if n < 2 {
        u128::from(n)
    } else {
        rec(n - 1) + rec(n - 2)
    }
}

#[memoflight::cached]
fn fib_memoflight(n: u64) -> u128 {
    fib_body(n, fib_memoflight)
}

#[cached::proc_macro::cached]
fn fib_cached(n: u64) -> u128 {
    fib_body(n, fib_cached)
}

#[cached::proc_macro::cached(sync_writes = "default")]
fn fib_cached_sync(n: u64) -> u128 {
    fib_body(n, fib_cached_sync)
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
fn fib_cached_by_key(n: u64) -> u128 {
    fib_body(n, fib_cached_by_key)
}

static FIB_MOKA: LazyLock<moka::sync::Cache<u64, u128>> =
    LazyLock::new(|| moka::sync::Cache::builder().build());

fn fib_moka(n: u64) -> u128 {
    FIB_MOKA.get_with(n, || fib_body(n, fib_moka))
}

static FIB_QUICK: LazyLock<quick_cache::sync::Cache<u64, u128>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(1024));

fn fib_quick(n: u64) -> u128 {
    match FIB_QUICK.get_or_insert_with(&n, || Ok::<u128, Infallible>(fib_body(n, fib_quick))) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

const FIB: [Mode<u128>; 6] = [
    ("memoflight `#[cached]`", fib_memoflight),
    ("cached `#[cached]` (no sync_writes)", fib_cached),
    ("cached `sync_writes = \"default\"`", fib_cached_sync),
    ("cached `sync_writes = \"by_key\"`", fib_cached_by_key),
    ("moka `get_with`", fib_moka),
    ("quick_cache `get_or_insert_with`", fib_quick),
];

const FIB_90: u128 = 2_880_067_194_370_816_120;

struct Round {
    executions: usize,
    wall: Duration,
    peak: usize,
}

/// Runs one round: `THREADS` threads released by a barrier, thread `i` calls `f(key_of(i))`.
fn round(f: fn(u64) -> u64, key_of: impl Fn(usize) -> u64 + Sync) -> Round {
    EXECUTIONS.store(0, SeqCst);
    PEAK.store(0, SeqCst);
    let barrier = Barrier::new(THREADS + 1);
    let wall = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (barrier, key_of) = (&barrier, &key_of);
                s.spawn(move || {
                    barrier.wait();
                    let k = key_of(i);
                    assert_eq!(f(k), k.wrapping_mul(3));
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("worker panicked");
        }
        start.elapsed()
    });
    Round {
        executions: EXECUTIONS.load(SeqCst),
        wall,
        peak: PEAK.load(SeqCst),
    }
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// Prints one table: every mode over `rounds` rounds of `THREADS` threads, thread `i` of round
/// `r` calling key `key(r, i)`; `peaks` summarizes each round's peak concurrency.
fn concurrency_table(
    title: &str,
    rounds: u64,
    key: fn(u64, usize) -> u64,
    peaks: fn(Vec<usize>) -> String,
) {
    println!(
        "\n### {title}, {} ms function, {rounds} rounds\n",
        WORK.as_millis()
    );
    println!("| mode | executions per round | median wall | wall per round | peak concurrency |");
    println!("|---|---|---|---|---|");
    for (name, f) in SLOW {
        let results: Vec<Round> = (0..rounds).map(|r| round(f, move |i| key(r, i))).collect();
        let execs: Vec<usize> = results.iter().map(|r| r.executions).collect();
        let walls: Vec<Duration> = results.iter().map(|r| r.wall).collect();
        println!(
            "| {name} | {} | {} | {} | {} |",
            list(&execs),
            ms(median(walls.clone())),
            walls.iter().map(|&w| ms(w)).collect::<Vec<_>>().join(", "),
            peaks(results.iter().map(|r| r.peak).collect())
        );
    }
}

fn stampede() {
    concurrency_table(
        &format!("Stampede: {THREADS} threads, one fresh key per round"),
        STAMPEDE_ROUNDS,
        |r, _| 1_000 + r,
        |peaks| median(peaks).to_string(),
    );
}

fn distinct() {
    concurrency_table(
        &format!("Distinct keys: {THREADS} threads, {THREADS} fresh keys (one each)"),
        DISTINCT_ROUNDS,
        |r, i| 10_000 * (r + 1) + i as u64,
        |peaks| list(&peaks),
    );
}

/// In the child: computes `fib(90)` in the chosen mode and prints `executions wall_ns`.
fn fib_child(mode: &str) {
    let idx: usize = mode.parse().expect("mode index");
    let (_, f) = FIB[idx];
    EXECUTIONS.store(0, SeqCst);
    let start = Instant::now();
    let v = f(FIB_N);
    let wall = start.elapsed();
    assert_eq!(v, FIB_90);
    println!("{} {}", EXECUTIONS.load(SeqCst), wall.as_nanos());
}

enum Outcome {
    Done { executions: usize, wall: Duration },
    Hung,
    Failed(String),
}

fn run_fib_child(idx: usize) -> Outcome {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(FIB_ENV, idx.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let deadline = Instant::now() + FIB_TIMEOUT;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if Instant::now() >= deadline => {
                child.kill().expect("kill hung child");
                child.wait().expect("reap child");
                return Outcome::Hung;
            }
            None => sleep(Duration::from_millis(10)),
        }
    }
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with("note:"))
            .unwrap_or("")
            .to_string();
        return Outcome::Failed(format!("{}: {msg}", out.status));
    }
    let mut parts = stdout.split_whitespace();
    let executions = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("executions");
    let nanos: u64 = parts.next().and_then(|s| s.parse().ok()).expect("wall");
    Outcome::Done {
        executions,
        wall: Duration::from_nanos(nanos),
    }
}

fn recursion() {
    println!(
        "\n### Memoized recursion: fib({FIB_N}) as u128, fresh process per run, {FIB_RUNS} runs, \
         killed after {} s\n",
        FIB_TIMEOUT.as_secs()
    );
    println!("| mode | outcome | executions | median wall (inside the child) |");
    println!("|---|---|---|---|");
    for (idx, (name, _)) in FIB.iter().enumerate() {
        let mut walls = Vec::new();
        let mut execs = Vec::new();
        let mut bad = None;
        for _ in 0..FIB_RUNS {
            match run_fib_child(idx) {
                Outcome::Done { executions, wall } => {
                    execs.push(executions);
                    walls.push(wall);
                }
                Outcome::Hung => {
                    bad = Some(format!(
                        "**hangs** (killed after {} s)",
                        FIB_TIMEOUT.as_secs()
                    ));
                    break;
                }
                Outcome::Failed(msg) => {
                    bad = Some(format!("**fails**: `{}`", msg.replace('|', "\\|")));
                    break;
                }
            }
        }
        match bad {
            Some(what) => println!("| {name} | {what} | – | – |"),
            None => {
                execs.dedup();
                println!(
                    "| {name} | ok, = {FIB_90} | {} | {:.1} µs |",
                    list(&execs),
                    median(walls).as_secs_f64() * 1e6
                );
            }
        }
    }
}

fn main() {
    if let Ok(mode) = std::env::var(FIB_ENV) {
        fib_child(&mode);
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` skip the slow rounds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("peers_concurrency: run with `cargo bench --bench peers_concurrency`");
        return;
    }
    println!(
        "peers_concurrency: {THREADS} threads on {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    stampede();
    distinct();
    recursion();
}
