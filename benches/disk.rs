//! memoflight's `DiskStore` against `cached`'s disk store (`RedbCache`, on redb), in a
//! temporary directory. Prints markdown tables.
//!
//! 1. A hit, 1 thread: median, p99 and p99.9 µs over 20,000 calls of 1,000 keys (100-byte
//!    `String` values).
//! 2. A miss: a fresh key, a computation that returns at once, and the write; 2,000 keys.
//!    Each store with and without a device flush per write (memoflight's `durable`, cached's
//!    `durable`; memoflight's default is without, cached's with).
//! 3. A stampede: 8 processes (this bench run again as children) × 8 threads call one fresh
//!    key at the same instant; the function sleeps 200 ms and counts its executions in a file.
//!    Executions across the processes, the processes that could not open the store, and the
//!    wall time until the last call returned (median of 3 rounds).
//!
//! `cargo bench --bench disk`; about half a minute. The stores live in the system's temporary
//! directory, or in `MEMOFLIGHT_BENCH_DIR` (`/dev/shm` to take the device out of the numbers).

mod common;

use cached::{ConcurrentCached, RedbCache};
use common::now_utc;
use memoflight::DiskStore;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HITS: usize = 20_000;
const HIT_KEYS: u64 = 1_000;
const MISSES: u64 = 2_000;
const PROCESSES: usize = 8;
const THREADS: usize = 8;
const COMPUTE: Duration = Duration::from_millis(200);
const ROUNDS: usize = 3;

static DIR: OnceLock<PathBuf> = OnceLock::new();

fn dir() -> PathBuf {
    DIR.get().expect("set first").clone()
}

#[memoflight::cached(async_store = DiskStore::new(dir().join("memoflight")))]
fn memo_value(key: u64) -> String {
    computed(key)
}

#[memoflight::cached(async_store = DiskStore::new(dir().join("memoflight-durable")).durable(true))]
fn memo_durable(key: u64) -> String {
    computed(key)
}

/// The "computation": for stampede keys, counted in a file and 200 ms long; otherwise at once.
fn computed(key: u64) -> String {
    if key >= 1 << 32 {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir().join(format!("executions-{key}")))
            .expect("the execution counter");
        writeln!(file, "{}", std::process::id()).expect("an appended line");
        std::thread::sleep(COMPUTE);
    }
    format!("value of {key}: {}", "x".repeat(100))
}

/// cached's store in `dir/name`, or its error (redb takes its file for one process).
fn redb(name: &str, durable: bool) -> Result<RedbCache<u64, String>, String> {
    RedbCache::builder(name)
        .disk_dir(dir().join("cached"))
        .durable(durable)
        .build()
        .map_err(|error| error.to_string())
}

/// What `#[concurrent_cached(disk = true)]` does: read, and on a miss compute and write.
fn cached_call(cache: &RedbCache<u64, String>, key: u64) -> String {
    if let Some(value) = cache.cache_get(&key).expect("cached's read") {
        return value;
    }
    let value = computed(key);
    cache.cache_set(key, value.clone()).expect("cached's write");
    value
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--stampede-child") {
        child(&args[at + 1..]);
        return;
    }
    let parent =
        std::env::var_os("MEMOFLIGHT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let base = parent.join(format!("memoflight-bench-disk-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    DIR.set(base.clone()).unwrap();

    println!("## Disk: memoflight `DiskStore` against cached's `RedbCache`\n");
    println!(
        "{}, {} cores, {}.\n",
        now_utc(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        filesystem(&base)
    );

    let cached = redb("hits", true).expect("cached's store");
    let memo = quantiles(hits(memo_value));
    let cached_hits = quantiles(hits(|key| cached_call(&cached, key)));
    println!("### 1. A hit, 1 thread, {HITS} calls of {HIT_KEYS} keys: µs\n");
    println!("| | median | p99 | p99.9 |\n|---|---|---|---|");
    for (name, (median, p99, p999)) in [("memoflight", memo), ("cached", cached_hits)] {
        println!("| {name} | {median:.1} | {p99:.1} | {p999:.1} |");
    }

    println!("\n### 2. A miss and its write, 1 thread, {MISSES} fresh keys: µs\n");
    println!("| | flush per write | median | p99 | p99.9 |\n|---|---|---|---|---|");
    let cached_fast = redb("misses-fast", false).expect("cached's store");
    let cached_durable = redb("misses-durable", true).expect("cached's store");
    let rows: [(&str, &str, Vec<f64>); 4] = [
        ("memoflight", "no (default)", misses(memo_value)),
        ("memoflight `durable(true)`", "yes", misses(memo_durable)),
        (
            "cached `durable(false)`",
            "no",
            misses(|key| cached_call(&cached_fast, key)),
        ),
        (
            "cached",
            "yes (default)",
            misses(|key| cached_call(&cached_durable, key)),
        ),
    ];
    for (name, flush, times) in rows {
        let (median, p99, p999) = quantiles(times);
        println!("| {name} | {flush} | {median:.1} | {p99:.1} | {p999:.1} |");
    }
    drop((cached, cached_fast, cached_durable));

    println!(
        "\n### 3. Stampede: {PROCESSES} processes × {THREADS} threads on one fresh key, \
         a {} ms computation (median of {ROUNDS} rounds)\n",
        COMPUTE.as_millis()
    );
    println!(
        "| | executions | processes that could not open the store | wall time until the last \
         call returned |\n|---|---|---|---|"
    );
    for (name, which) in [("memoflight", "memo"), ("cached", "cached")] {
        let mut runs: Vec<(usize, usize, f64)> =
            (0..ROUNDS).map(|round| stampede(which, round)).collect();
        runs.sort_by(|a, b| a.2.total_cmp(&b.2));
        let (executions, refused, wall) = runs[ROUNDS / 2];
        let all: Vec<String> = runs.iter().map(|r| r.0.to_string()).collect();
        println!(
            "| {name} | {executions} (rounds: {}) | {refused} | {:.0} ms |",
            all.join(", "),
            wall * 1e3
        );
    }
    if let Some(error) = redb_refusal() {
        println!("\ncached's error in the processes that could not open it: `{error}`");
    }
    let _ = std::fs::remove_dir_all(base);
}

/// The file system the temporary directory is on, from `/proc/mounts` (best effort).
fn filesystem(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 2 && path.starts_with(fields[1])).then(|| (fields[1].len(), fields[2]))
        })
        .max();
    best.map_or("file system unknown".to_owned(), |(_, kind)| {
        format!("temporary directory on {kind}")
    })
}

/// Times `HITS` hits of keys computed once before: µs each.
fn hits(call: impl Fn(u64) -> String) -> Vec<f64> {
    for key in 0..HIT_KEYS {
        black_box(call(key));
    }
    (0..HITS as u64)
        .map(|i| {
            // A stride through the keys, so consecutive hits read different files.
            let key = (i * 7919) % HIT_KEYS;
            let start = Instant::now();
            black_box(call(key));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Times `MISSES` calls of keys never seen: µs each.
fn misses(call: impl Fn(u64) -> String) -> Vec<f64> {
    let first = 1_000_000;
    (first..first + MISSES)
        .map(|key| {
            let start = Instant::now();
            black_box(call(key));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn quantiles(mut times: Vec<f64>) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99), at(0.999))
}

/// One stampede round: executions counted in a file, the children that could not open the
/// store, and the wall time from the release instant until the last child's last call
/// returned.
fn stampede(which: &str, round: usize) -> (usize, usize, f64) {
    let key = (1u64 << 32) + (now_ms() as u64 % 1_000_000) * 10 + round as u64;
    let start_at = now_ms() + 1500;
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .arg("--stampede-child")
                .arg(which)
                .arg(dir())
                .args([key.to_string(), start_at.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("a child process")
        })
        .collect();
    let mut last_done = 0u128;
    let mut refused = 0;
    for child in children {
        let output = child.wait_with_output().expect("the child ends");
        assert!(output.status.success(), "a stampede child failed");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some(done) = line.strip_prefix("DONE ") {
                last_done = last_done.max(done.parse().unwrap());
            }
            if let Some(error) = line.strip_prefix("REFUSED ") {
                refused += 1;
                let _ = std::fs::write(dir().join("refusal"), error);
            }
        }
    }
    let executions = std::fs::read_to_string(dir().join(format!("executions-{key}")))
        .map_or(0, |text| text.lines().count());
    (executions, refused, (last_done - start_at) as f64 / 1e3)
}

/// The error cached's store gave a child that could not open it, if any did.
fn redb_refusal() -> Option<String> {
    std::fs::read_to_string(dir().join("refusal")).ok()
}

/// A stampede child: `THREADS` calls at the release instant; prints when the last returned.
/// A cached child whose store cannot be opened computes without it (its callers need a value).
fn child(args: &[String]) {
    let [which, dir, key, start_at] = args else {
        panic!("--stampede-child WHICH DIR KEY START_AT_MS");
    };
    DIR.set(PathBuf::from(dir)).unwrap();
    let key: u64 = key.parse().unwrap();
    let start_at: u128 = start_at.parse().unwrap();
    // Open before the release instant, as a running service would have.
    let cached = match which.as_str() {
        "memo" => {
            black_box(memo_value(0));
            None
        }
        _ => Some(redb("stampede", true)),
    };
    if let Some(Err(error)) = &cached {
        println!("REFUSED {error}");
    }
    if let Some(wait) = start_at.checked_sub(now_ms()) {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| match &cached {
                None => black_box(memo_value(key)),
                Some(Ok(cache)) => black_box(cached_call(cache, key)),
                Some(Err(_)) => black_box(computed(key)),
            });
        }
    });
    println!("DONE {}", now_ms());
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}
