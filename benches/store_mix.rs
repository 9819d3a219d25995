//! memoflight's stores against concurrent maps and caches on a mix of operations, invalidation
//! in large stores above all: u64 keys, `String` values of 100 bytes. Prints markdown tables.
//!
//! Stores (a column each), every one used the way a memoized function uses it: a call returns
//! a clone of the cached value, or computes the value (a fresh 100-byte `String`), caches a
//! clone and returns it; an invalidation removes the key (and drops its value).
//!
//! - memoflight `Cache::new(..., Unbounded::new())`: `get_or_compute`, `invalidate`;
//! - memoflight `Cache::new(..., Bounded::new().max_size(n))`, `n` room for every key inserted;
//! - dashmap 6 `DashMap::new()` (its default hasher, SipHash): `get`, then `insert`; `remove`;
//! - quick_cache 0.7 `sync::Cache::new(n)`: `get_or_insert_with`, `remove`;
//! - moka 0.12 `sync::Cache`, `max_capacity(n)`: `get_with`, `invalidate`;
//! - cached 4 `UnboundCache` behind the exclusive lock `#[cached]` generates (a `parking_lot`
//!   `RwLock` taken for writing, as a mutex): `cache_get`, unlock, compute, lock, `cache_set`;
//!   `cache_remove`.
//!
//! The bounded stores are sized to hold everything (a quarter more than the keys inserted),
//! so nothing is evicted. Workloads 1, 2 and 5 (latency tails) run each store in a process of
//! its own (this bench, started again): a write that grows the heap takes a page fault every
//! few inserts, and in one process every store after the first would reuse the pages an
//! earlier one freed. Workloads, each the median of 3 rounds:
//!
//! 1. invalidate one random key of a store of 10k, 100k and 1M entries (re-inserted untimed
//!    after each): median, p99 and p99.9 ns per invalidation, each timed alone;
//! 2. a service at 1M entries on 2 threads, each request invalidating a random key and then
//!    calling it (a miss that recomputes): throughput and p50/p99/p99.9/max per request;
//! 3. 8 threads over 100k keys drawn from Zipf(0.99): 95.9% calls on them (hits, but for the
//!    keys invalidated), 4% calls on new keys (misses), 0.1% invalidations: Mops/s;
//! 4. misses on distinct keys (each thread its own new keys) at 1, 2, 8 and 64 threads;
//! 5. a miss into a store already holding 1M entries, 1 thread: median, p99 and p99.9 ns
//!    per miss, each timed alone;
//! 6. a hit, 1 thread, the 1024 hot keys of `common::order`.
//!
//! Two more count bytes and clones rather than time (one round each):
//!
//! 7. heap bytes live (a counting global allocator) in a store of 100k entries: built; with 32
//!    threads idle after a hit and an invalidate + reinsert each; after 32 more threads missed
//!    once each and exited and the store was cleared, and again after 1,000 more calls;
//! 8. `Clone` calls of the value per insert and per hit, with a value that counts them.
//!
//! And one more timed workload:
//!
//! 9. `invalidate_if` (peers: `retain`) removing 1% of 1M entries: the first call after the
//!    store was filled, and the median of the next 3.
//!
//! `cargo bench --bench store_mix`; about 5 minutes on 2 cores. `STORE_MIX_ONLY=7,8 cargo bench
//! --bench store_mix` runs only the workloads listed.
#![allow(unsafe_code)] // the counting global allocator of workload 7

mod common;

use cached::Cached;
use common::{data_dir, measuring, now_utc, on_threads, order, HOT_KEYS};
use dashmap::DashMap;
use memoflight::{Bounded, Cache, Store, Unbounded};
use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

const VALUE_BYTES: usize = 100;
const ROUNDS: usize = 3;
const SEED: u64 = 0x6d65_6d6f_666c_6974;
/// Keys of the misses on new keys: far above the stored keys; thread `t` of round `r` uses
/// `FRESH + (r << 40) + (t << 32) + i`.
const FRESH: u64 = 1 << 48;

/// The value of key `k`: 100 bytes, freshly allocated (the "computation" of every miss).
fn value(k: u64) -> String {
    String::from_utf8(vec![b'a' + (k % 26) as u8; VALUE_BYTES]).expect("ASCII")
}

/// The system allocator, counting the bytes live while [`COUNTING`] is set (workload 7 sets
/// it; the timed workloads run before, without a shared counter to contend on). Only
/// differences of [`live`] are reported, all taken while counting.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn count(bytes: isize) {
    if COUNTING.load(Relaxed) {
        LIVE.fetch_add(bytes, Relaxed);
    }
}

// SAFETY: forwards every call unchanged to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes live, counted since [`COUNTING`] was set.
fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Room for `n` entries in a bounded store, so that nothing is evicted.
fn room(n: u64) -> usize {
    (n + n / 4 + 1024) as usize
}

/// A store, as a memoized function uses it.
trait Peer: Sync + Sized {
    const NAME: &'static str;
    /// An empty store; a bounded one holds `capacity` entries.
    fn with_capacity(capacity: usize) -> Self;
    /// The value cached for `k`, or `value(k)` computed, cached and returned.
    fn call(&self, k: u64) -> String;
    /// Removes `k` and drops its value.
    fn invalidate(&self, k: u64);
    /// Removes every entry, as the store's users would: `clear()` or its equivalent.
    fn clear(&self);
    /// Removes the entries whose key `remove` selects, in one pass: `invalidate_if` or
    /// `retain`.
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync));
    /// Entries held.
    fn held(&self) -> usize;
}

struct MemoUnbounded(Cache<Unbounded<u64, String>>);

impl Peer for MemoUnbounded {
    const NAME: &'static str = "memoflight `Unbounded`";
    fn with_capacity(_: usize) -> Self {
        Self(Cache::new("x", Unbounded::new()))
    }
    fn call(&self, k: u64) -> String {
        self.0.get_or_compute(k, || value(k))
    }
    fn invalidate(&self, k: u64) {
        black_box(self.0.invalidate(&k));
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        self.0.invalidate_if(|k, _| remove(*k));
    }
    fn held(&self) -> usize {
        self.0.len()
    }
}

struct MemoBounded(Cache<Bounded<u64, String>>);

impl Peer for MemoBounded {
    const NAME: &'static str = "memoflight `Bounded`";
    fn with_capacity(capacity: usize) -> Self {
        Self(Cache::new("x", Bounded::new().max_size(capacity)))
    }
    fn call(&self, k: u64) -> String {
        self.0.get_or_compute(k, || value(k))
    }
    fn invalidate(&self, k: u64) {
        black_box(self.0.invalidate(&k));
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        self.0.invalidate_if(|k, _| remove(*k));
    }
    fn held(&self) -> usize {
        assert_eq!(self.0.store().evictions(), 0, "sized to evict nothing");
        self.0.len()
    }
}

struct Dash(DashMap<u64, String>);

impl Peer for Dash {
    const NAME: &'static str = "dashmap";
    fn with_capacity(_: usize) -> Self {
        Self(DashMap::new())
    }
    fn call(&self, k: u64) -> String {
        if let Some(v) = self.0.get(&k) {
            return v.clone();
        }
        let v = value(k);
        self.0.insert(k, v.clone());
        v
    }
    fn invalidate(&self, k: u64) {
        black_box(self.0.remove(&k));
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        self.0.retain(|k, _| !remove(*k));
    }
    fn held(&self) -> usize {
        self.0.len()
    }
}

struct Quick(quick_cache::sync::Cache<u64, String>);

impl Peer for Quick {
    const NAME: &'static str = "quick_cache";
    fn with_capacity(capacity: usize) -> Self {
        Self(quick_cache::sync::Cache::new(capacity))
    }
    fn call(&self, k: u64) -> String {
        match self
            .0
            .get_or_insert_with(&k, || Ok::<String, Infallible>(value(k)))
        {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
    fn invalidate(&self, k: u64) {
        black_box(self.0.remove(&k));
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        self.0.retain(|k, _| !remove(*k));
    }
    fn held(&self) -> usize {
        self.0.len()
    }
}

struct Moka(moka::sync::Cache<u64, String>);

impl Peer for Moka {
    const NAME: &'static str = "moka";
    fn with_capacity(capacity: usize) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build(),
        )
    }
    fn call(&self, k: u64) -> String {
        self.0.get_with(k, || value(k))
    }
    fn invalidate(&self, k: u64) {
        self.0.invalidate(&k);
    }
    fn clear(&self) {
        // moka's `clear`: lazy, applied by later housekeeping.
        self.0.invalidate_all();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        // moka's `invalidate_entries_if` is lazy (applied by later housekeeping): the eager
        // equivalent walks the entries and invalidates the selected ones.
        for (k, _) in self.0.iter() {
            if remove(*k) {
                self.0.invalidate(&*k);
            }
        }
    }
    fn held(&self) -> usize {
        self.0.run_pending_tasks();
        self.0.entry_count() as usize
    }
}

/// What `#[cached]` (no `sync_writes`) expands to: an `UnboundCache` behind a `parking_lot`
/// `RwLock`, always locked for writing (`cache_get` counts hits through `&mut`).
struct CachedUnbound(cached::sync_sync::RwLock<cached::UnboundCache<u64, String>>);

impl Peer for CachedUnbound {
    const NAME: &'static str = "cached `UnboundCache`";
    fn with_capacity(_: usize) -> Self {
        Self(cached::sync_sync::RwLock::new(cached::UnboundCache::new()))
    }
    fn call(&self, k: u64) -> String {
        if let Some(v) = self.0.write().cache_get(&k) {
            return v.clone();
        }
        let v = value(k);
        self.0.write().cache_set(k, v.clone());
        v
    }
    fn invalidate(&self, k: u64) {
        black_box(self.0.write().cache_remove(&k));
    }
    fn clear(&self) {
        // `cache_clear` keeps the map's capacity (`cache_reset` would free it).
        self.0.write().cache_clear();
    }
    fn remove_where(&self, remove: &(dyn Fn(u64) -> bool + Sync)) {
        self.0.write().retain(|k, _| !remove(*k));
    }
    fn held(&self) -> usize {
        self.0.write().cache_size()
    }
}

/// A workload, run on every store in turn.
trait Workload {
    type Out;
    fn run<S: Peer>(&self) -> Self::Out;
}

/// The columns: the names of the stores, in the order of [`each`].
const NAMES: [&str; 6] = [
    MemoUnbounded::NAME,
    MemoBounded::NAME,
    Dash::NAME,
    Quick::NAME,
    Moka::NAME,
    CachedUnbound::NAME,
];
/// The columns of memoflight `Unbounded` and of dashmap, for the ratio.
const MEMO: usize = 0;
const DASH: usize = 2;

fn each<W: Workload>(w: &W) -> Vec<W::Out> {
    vec![
        timed::<MemoUnbounded, W>(w),
        timed::<MemoBounded, W>(w),
        timed::<Dash, W>(w),
        timed::<Quick, W>(w),
        timed::<Moka, W>(w),
        timed::<CachedUnbound, W>(w),
    ]
}

/// Set in a child process of a latency workload: `workload:column[:size index]`, what it runs.
const CHILD: &str = "STORE_MIX_CHILD";

/// A latency workload (1, 2 or 5) for every store, each in a fresh process (this bench run
/// again, `child` naming the workload): a write that grows the heap takes a page fault every
/// few inserts, and much of a write's tail is those faults. Run one after the other in one
/// process, every store but the first reuses pages an earlier one freed, and the first (ours)
/// paid for all of them: its p99 miss at 1M entries was 4.8× dashmap's in process and 1.00× in
/// a process of its own (`benches/README.md`).
fn each_in_its_own_process<W: Workload>(child: impl Fn(usize) -> String) -> Vec<W::Out>
where
    W::Out: Numbers,
{
    (0..NAMES.len())
        .map(|column| {
            let out = std::process::Command::new(std::env::current_exe().expect("own path"))
                .args(std::env::args_os().skip(1))
                .env(CHILD, child(column))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("a latency workload runs in a child process");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout
                .lines()
                .find_map(|line| line.strip_prefix(CHILD))
                .unwrap_or_else(|| panic!("{}: {stdout}", child(column)));
            W::Out::from_numbers(
                line.split_whitespace()
                    .map(|n| n.parse().expect("a number"))
                    .collect(),
            )
        })
        .collect()
}

/// Runs `w` on the store of column `column` (the order of [`each`]).
fn on_column<W: Workload>(column: usize, w: &W) -> Vec<f64>
where
    W::Out: Numbers,
{
    match column {
        0 => timed::<MemoUnbounded, W>(w),
        1 => timed::<MemoBounded, W>(w),
        2 => timed::<Dash, W>(w),
        3 => timed::<Quick, W>(w),
        4 => timed::<Moka, W>(w),
        _ => timed::<CachedUnbound, W>(w),
    }
    .numbers()
}

/// A workload's result, through a child process's standard output.
trait Numbers {
    fn numbers(&self) -> Vec<f64>;
    fn from_numbers(numbers: Vec<f64>) -> Self;
}

impl Numbers for (f64, f64, f64) {
    fn numbers(&self) -> Vec<f64> {
        vec![self.0, self.1, self.2]
    }
    fn from_numbers(n: Vec<f64>) -> Self {
        (n[0], n[1], n[2])
    }
}

impl Numbers for ServiceOut {
    fn numbers(&self) -> Vec<f64> {
        vec![self.per_sec, self.p50, self.p99, self.p999, self.max]
    }
    fn from_numbers(n: Vec<f64>) -> Self {
        ServiceOut {
            per_sec: n[0],
            p50: n[1],
            p99: n[2],
            p999: n[3],
            max: n[4],
        }
    }
}

fn timed<S: Peer, W: Workload>(w: &W) -> W::Out {
    let start = Instant::now();
    let out = w.run::<S>();
    eprintln!("  {}: {:.1} s", S::NAME, start.elapsed().as_secs_f64());
    out
}

/// A store holding keys `0..entries`, with room for `capacity`.
fn build<S: Peer>(entries: u64, capacity: u64) -> S {
    let store = S::with_capacity(room(capacity));
    for k in 0..entries {
        black_box(store.call(k));
    }
    store
}

fn check<S: Peer>(store: &S, expected: u64) {
    let held = store.held();
    assert_eq!(held as u64, expected, "{} holds {held}", S::NAME);
}

/// splitmix64: uniform keys without the rand API in the way.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (the bias of the modulo is negligible for these `n`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `q` quantile of sorted nanoseconds.
fn quantile(sorted: &[u64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

fn ns_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// 1. Invalidation of one random key in a store of `entries`.
struct Invalidate {
    entries: u64,
    count: usize,
}

impl Workload for Invalidate {
    /// Median, p99 and p99.9 ns.
    type Out = (f64, f64, f64);
    fn run<S: Peer>(&self) -> (f64, f64, f64) {
        let store = build::<S>(self.entries, self.entries);
        let mut rng = SplitMix(SEED);
        let (mut medians, mut p99s, mut p999s) = (Vec::new(), Vec::new(), Vec::new());
        let mut ns = Vec::with_capacity(self.count);
        for _ in 0..ROUNDS {
            ns.clear();
            for _ in 0..self.count {
                let k = rng.below(self.entries);
                let start = Instant::now();
                store.invalidate(black_box(k));
                ns.push(ns_since(start));
                black_box(store.call(k));
            }
            ns.sort_unstable();
            medians.push(quantile(&ns, 0.5));
            p99s.push(quantile(&ns, 0.99));
            p999s.push(quantile(&ns, 0.999));
        }
        check(&store, self.entries);
        (median(medians), median(p99s), median(p999s))
    }
}

/// Workload 9: `invalidate_if` (or `retain`) removing 1% of a store of `entries`: the first
/// call after the store was filled, then the median of the next `rounds` (the removed keys
/// re-inserted, untimed, in between), in ms.
struct RemoveWhere {
    entries: u64,
    rounds: usize,
}

impl Workload for RemoveWhere {
    type Out = (f64, f64);
    fn run<S: Peer>(&self) -> (f64, f64) {
        let store = build::<S>(self.entries, self.entries);
        let every_hundredth = |k: u64| k % 100 == 0;
        let mut times = Vec::new();
        for _ in 0..=self.rounds {
            let start = Instant::now();
            store.remove_where(&every_hundredth);
            times.push(start.elapsed().as_secs_f64() * 1e3);
            for k in (0..self.entries).filter(|k| every_hundredth(*k)) {
                black_box(store.call(k));
            }
        }
        check(&store, self.entries);
        let first = times.remove(0);
        (first, median(times))
    }
}

/// 2. Requests of a service: invalidate a random key, then call it (a miss).
struct Service {
    entries: u64,
    threads: usize,
    requests: u64,
}

struct ServiceOut {
    per_sec: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Workload for Service {
    type Out = ServiceOut;
    fn run<S: Peer>(&self) -> ServiceOut {
        let store = build::<S>(self.entries, self.entries);
        let mut rng = SplitMix(SEED ^ 2);
        let (mut per_sec, mut p50, mut p99, mut p999, mut max) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let keys: Vec<Vec<u64>> = (0..self.threads)
                .map(|_| {
                    (0..self.requests)
                        .map(|_| rng.below(self.entries))
                        .collect()
                })
                .collect();
            let next = AtomicUsize::new(0);
            let all = Mutex::new(Vec::with_capacity(self.threads * self.requests as usize));
            let wall = on_threads(self.threads, self.requests, |_| {
                let keys = &keys[next.fetch_add(1, Relaxed)];
                let mut ns = Vec::with_capacity(keys.len());
                for &k in keys {
                    let start = Instant::now();
                    store.invalidate(k);
                    black_box(store.call(k));
                    ns.push(ns_since(start));
                }
                all.lock().expect("not poisoned").extend(ns);
            });
            let mut all = all.into_inner().expect("not poisoned");
            all.sort_unstable();
            per_sec.push(all.len() as f64 / wall.as_secs_f64());
            p50.push(quantile(&all, 0.5));
            p99.push(quantile(&all, 0.99));
            p999.push(quantile(&all, 0.999));
            max.push(quantile(&all, 1.0));
        }
        check(&store, self.entries);
        ServiceOut {
            per_sec: median(per_sec),
            p50: median(p50),
            p99: median(p99),
            p999: median(p999),
            max: median(max),
        }
    }
}

/// 3. A mix on `threads`: each thread runs its own trace of (invalidate?, key).
struct Mixed {
    keys: u64,
    traces: Vec<Vec<(bool, u64)>>,
    new_keys: u64,
}

impl Mixed {
    fn new(keys: u64, threads: usize, ops: usize) -> Self {
        let zipf = Zipf::new(keys as f64, 0.99).expect("valid Zipf parameters");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let mut pick = SplitMix(SEED ^ 3);
        let mut new_keys = 0;
        let traces = (0..threads as u64)
            .map(|t| {
                let mut fresh = FRESH + (t << 32);
                (0..ops)
                    .map(|_| {
                        // A sample is an integral f64 in 1..=keys.
                        let hot = zipf.sample(&mut rng) as u64 - 1;
                        match pick.below(10_000) {
                            0..10 => (true, hot),
                            10..410 => {
                                fresh += 1;
                                new_keys += 1;
                                (false, fresh)
                            }
                            _ => (false, hot),
                        }
                    })
                    .collect()
            })
            .collect();
        Mixed {
            keys,
            traces,
            new_keys,
        }
    }
}

impl Workload for Mixed {
    /// Mops/s.
    type Out = f64;
    fn run<S: Peer>(&self) -> f64 {
        let threads = self.traces.len();
        let ops = self.traces[0].len();
        let mut mops = Vec::new();
        for _ in 0..ROUNDS {
            let store = build::<S>(self.keys, self.keys + self.new_keys);
            let next = AtomicUsize::new(0);
            let wall = on_threads(threads, ops as u64, |_| {
                for &(invalidate, k) in &self.traces[next.fetch_add(1, Relaxed)] {
                    if invalidate {
                        store.invalidate(k);
                    } else {
                        black_box(store.call(k));
                    }
                }
            });
            mops.push((threads * ops) as f64 / wall.as_secs_f64() / 1e6);
        }
        median(mops)
    }
}

/// 4. Misses on distinct keys: `inserts` in all, split among `threads`, into an empty store.
struct Misses {
    threads: usize,
    inserts: u64,
}

impl Workload for Misses {
    /// ns per insert (wall × threads / inserts), and inserts per second in all (millions).
    type Out = (f64, f64);
    fn run<S: Peer>(&self) -> (f64, f64) {
        let per_thread = self.inserts / self.threads as u64;
        let total = per_thread * self.threads as u64;
        let (mut ns, mut mops) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS as u64 {
            let store = S::with_capacity(room(total));
            let next = AtomicUsize::new(0);
            let wall = on_threads(self.threads, per_thread, |iters| {
                let first = FRESH + (round << 40) + ((next.fetch_add(1, Relaxed) as u64) << 32);
                for k in first..first + iters {
                    black_box(store.call(k));
                }
            });
            ns.push(wall.as_nanos() as f64 * self.threads as f64 / total as f64);
            mops.push(total as f64 / wall.as_secs_f64() / 1e6);
            check(&store, total);
        }
        (median(ns), median(mops))
    }
}

/// 5. Misses into a store already holding `entries`, 1 thread.
struct BigMiss {
    entries: u64,
    inserts: u64,
}

impl Workload for BigMiss {
    /// Median, p99 and p99.9 ns per insert, each timed alone.
    type Out = (f64, f64, f64);
    fn run<S: Peer>(&self) -> (f64, f64, f64) {
        let all = self.inserts * ROUNDS as u64;
        let store = build::<S>(self.entries, self.entries + all);
        let (mut medians, mut p99s, mut p999s) = (Vec::new(), Vec::new(), Vec::new());
        let mut ns = Vec::with_capacity(self.inserts as usize);
        for round in 0..ROUNDS as u64 {
            let first = FRESH + (round << 40);
            ns.clear();
            for k in first..first + self.inserts {
                let start = Instant::now();
                black_box(store.call(black_box(k)));
                ns.push(ns_since(start));
            }
            ns.sort_unstable();
            medians.push(quantile(&ns, 0.5));
            p99s.push(quantile(&ns, 0.99));
            p999s.push(quantile(&ns, 0.999));
        }
        check(&store, self.entries + all);
        (median(medians), median(p99s), median(p999s))
    }
}

/// 6. Hits on the 1024 hot keys, 1 thread.
struct Hits {
    lookups: u64,
}

impl Workload for Hits {
    /// ns per hit.
    type Out = f64;
    fn run<S: Peer>(&self) -> f64 {
        let store = build::<S>(HOT_KEYS, HOT_KEYS);
        let keys = order();
        let mut ns = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for i in 0..self.lookups {
                let k = keys[(i % HOT_KEYS) as usize];
                black_box(store.call(black_box(k)));
            }
            ns.push(ns_since(start) as f64 / self.lookups as f64);
        }
        check(&store, HOT_KEYS);
        median(ns)
    }
}

/// 7. Heap bytes of a store of `entries` as `threads` threads come, stay idle, and go.
struct Threads {
    entries: u64,
    threads: u64,
    /// Calls on the cleared store, from the main thread, over `FEW_KEYS` new keys.
    calls_after: u64,
}

/// The new keys of the calls after the clear of workload 7: the first call on each misses.
const FEW_KEYS: u64 = 100;

/// Bytes live in workload 7, less those live before the store was built.
struct ThreadsOut {
    built: isize,
    idle: isize,
    cleared: isize,
    after: isize,
}

impl Workload for Threads {
    type Out = ThreadsOut;
    fn run<S: Peer>(&self) -> ThreadsOut {
        COUNTING.store(true, Relaxed);
        let before = live();
        let store = build::<S>(self.entries, self.entries + self.threads + self.calls_after);
        let built = live() - before;

        // (b) Each thread: a hit and an invalidate + reinsert of its own key, then idle until
        // measured.
        let spacing = self.entries / self.threads;
        let done = Barrier::new(self.threads as usize + 1);
        let release = Barrier::new(self.threads as usize + 1);
        let idle = std::thread::scope(|s| {
            for t in 0..self.threads {
                let (store, done, release) = (&store, &done, &release);
                s.spawn(move || {
                    let k = t * spacing;
                    black_box(store.call(k));
                    store.invalidate(k);
                    black_box(store.call(k));
                    done.wait();
                    release.wait();
                });
            }
            done.wait();
            let idle = live() - before;
            release.wait();
            idle
        });

        // (c) Each thread misses once (a new key) and exits; then the store is cleared.
        std::thread::scope(|s| {
            for t in 0..self.threads {
                let store = &store;
                s.spawn(move || black_box(store.call(FRESH + t)));
            }
        });
        store.clear();
        let cleared = live() - before;
        for i in 0..self.calls_after {
            black_box(store.call(FRESH + (1 << 40) + i % FEW_KEYS));
        }
        let after = live() - before;
        drop(store);
        eprintln!(
            "    bytes: built {built}, idle {idle}, cleared {cleared}, after {after}, \
             dropped {}",
            live() - before
        );
        ThreadsOut {
            built,
            idle,
            cleared,
            after,
        }
    }
}

/// How many times a [`Counted`] has been cloned.
static CLONES: AtomicU64 = AtomicU64::new(0);

/// The value of workload 8: a 100-byte `String` that counts its clones.
struct Counted(String);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Relaxed);
        Counted(self.0.clone())
    }
}

fn counted(k: u64) -> Counted {
    Counted(value(k))
}

/// A store of [`Counted`] values, used as its users would use it.
trait Cloning: Sized {
    /// An empty store; a bounded one holds `capacity` entries.
    fn empty(capacity: usize) -> Self;
    /// Caches `counted(k)` for a new `k`: a miss through `get_or_compute` for memoflight (whose
    /// caller gets the value), a plain insert for the others (whose caller does not).
    fn insert(&self, k: u64);
    /// The value cached for `k`, which is there.
    fn hit(&self, k: u64) -> Counted;
    /// The value cached for `k`, or `counted(k)` computed, cached and returned: the `call` of
    /// workloads 1–7.
    fn call(&self, k: u64) -> Counted;
    /// Removes `k`'s value, as workloads 1 and 2 do.
    fn invalidate(&self, k: u64);
}

impl Cloning for Cache<Unbounded<u64, Counted>> {
    fn empty(_: usize) -> Self {
        Cache::new("x", Unbounded::new())
    }
    fn insert(&self, k: u64) {
        black_box(self.get_or_compute(k, || counted(k)));
    }
    fn hit(&self, k: u64) -> Counted {
        self.get_or_compute(k, || unreachable!("{k} is cached"))
    }
    fn call(&self, k: u64) -> Counted {
        self.get_or_compute(k, || counted(k))
    }
    fn invalidate(&self, k: u64) {
        black_box(Cache::invalidate(self, &k));
    }
}

impl Cloning for Cache<Bounded<u64, Counted>> {
    fn empty(capacity: usize) -> Self {
        Cache::new("x", Bounded::new().max_size(capacity))
    }
    fn insert(&self, k: u64) {
        black_box(self.get_or_compute(k, || counted(k)));
    }
    fn hit(&self, k: u64) -> Counted {
        self.get_or_compute(k, || unreachable!("{k} is cached"))
    }
    fn call(&self, k: u64) -> Counted {
        self.get_or_compute(k, || counted(k))
    }
    fn invalidate(&self, k: u64) {
        black_box(Cache::invalidate(self, &k));
    }
}

impl Cloning for DashMap<u64, Counted> {
    fn empty(_: usize) -> Self {
        DashMap::new()
    }
    fn insert(&self, k: u64) {
        black_box(self.insert(k, counted(k)));
    }
    fn hit(&self, k: u64) -> Counted {
        self.get(&k).expect("cached").value().clone()
    }
    fn call(&self, k: u64) -> Counted {
        if let Some(v) = self.get(&k) {
            return v.value().clone();
        }
        let v = counted(k);
        self.insert(k, v.clone());
        v
    }
    fn invalidate(&self, k: u64) {
        black_box(self.remove(&k));
    }
}

impl Cloning for quick_cache::sync::Cache<u64, Counted> {
    fn empty(capacity: usize) -> Self {
        quick_cache::sync::Cache::new(capacity)
    }
    fn insert(&self, k: u64) {
        self.insert(k, counted(k));
    }
    fn hit(&self, k: u64) -> Counted {
        self.get(&k).expect("cached")
    }
    fn call(&self, k: u64) -> Counted {
        match self.get_or_insert_with(&k, || Ok::<Counted, Infallible>(counted(k))) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
    fn invalidate(&self, k: u64) {
        black_box(self.remove(&k));
    }
}

impl Cloning for moka::sync::Cache<u64, Counted> {
    fn empty(capacity: usize) -> Self {
        moka::sync::Cache::builder()
            .max_capacity(capacity as u64)
            .build()
    }
    fn insert(&self, k: u64) {
        self.insert(k, counted(k));
    }
    fn hit(&self, k: u64) -> Counted {
        self.get(&k).expect("cached")
    }
    fn call(&self, k: u64) -> Counted {
        self.get_with(k, || counted(k))
    }
    fn invalidate(&self, k: u64) {
        moka::sync::Cache::invalidate(self, &k);
    }
}

impl Cloning for cached::sync_sync::RwLock<cached::UnboundCache<u64, Counted>> {
    fn empty(_: usize) -> Self {
        cached::sync_sync::RwLock::new(cached::UnboundCache::new())
    }
    fn insert(&self, k: u64) {
        self.write().cache_set(k, counted(k));
    }
    fn hit(&self, k: u64) -> Counted {
        self.write().cache_get(&k).cloned().expect("cached")
    }
    fn call(&self, k: u64) -> Counted {
        if let Some(v) = self.write().cache_get(&k) {
            return v.clone();
        }
        let v = counted(k);
        self.write().cache_set(k, v.clone());
        v
    }
    fn invalidate(&self, k: u64) {
        black_box(self.write().cache_remove(&k));
    }
}

/// 8. Clones per operation.
///
/// `ops` inserts of new keys, `ops` hits on them, `ops` calls on other new keys (misses
/// that return the value), then `ops` invalidations of the first keys.
struct Clones {
    ops: u64,
}

impl Clones {
    /// Clones per insert, per hit, per returning miss and per invalidation.
    fn run<C: Cloning>(&self, name: &str) -> [f64; 4] {
        let start = Instant::now();
        let store = C::empty(room(2 * self.ops));
        let per_op = |keys: std::ops::Range<u64>, op: &dyn Fn(u64)| {
            let before = CLONES.load(Relaxed);
            for k in keys {
                op(k);
            }
            (CLONES.load(Relaxed) - before) as f64 / self.ops as f64
        };
        let out = [
            per_op(0..self.ops, &|k| store.insert(k)),
            per_op(0..self.ops, &|k| drop(black_box(store.hit(k)))),
            per_op(self.ops..2 * self.ops, &|k| drop(black_box(store.call(k)))),
            per_op(0..self.ops, &|k| store.invalidate(k)),
        ];
        eprintln!("  {name}: {:.1} s", start.elapsed().as_secs_f64());
        out
    }

    /// Every store, in the order of [`NAMES`].
    fn each(&self) -> Vec<[f64; 4]> {
        vec![
            self.run::<Cache<Unbounded<u64, Counted>>>(NAMES[0]),
            self.run::<Cache<Bounded<u64, Counted>>>(NAMES[1]),
            self.run::<DashMap<u64, Counted>>(NAMES[2]),
            self.run::<quick_cache::sync::Cache<u64, Counted>>(NAMES[3]),
            self.run::<moka::sync::Cache<u64, Counted>>(NAMES[4]),
            self.run::<cached::sync_sync::RwLock<cached::UnboundCache<u64, Counted>>>(NAMES[5]),
        ]
    }
}

/// Prints a table: a row label, a column per store, and memoflight `Unbounded` / dashmap.
fn table(title: &str, first: &str, rows: &[(String, Vec<String>, String)]) {
    println!("\n### {title}\n");
    println!(
        "| {first} | {} | memoflight `Unbounded` / dashmap |",
        NAMES.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(NAMES.len()));
    for (label, cells, ratio) in rows {
        println!("| {label} | {} | {ratio} |", cells.join(" | "));
    }
}

fn ratio(values: &[f64]) -> String {
    if values[DASH] == 0.0 {
        return "–".into();
    }
    format!("{:.2}×", values[MEMO] / values[DASH])
}

/// A row of one number per store, formatted by `show`.
fn row(
    label: String,
    values: &[f64],
    show: impl Fn(f64) -> String,
) -> (String, Vec<String>, String) {
    (
        label,
        values.iter().map(|&v| show(v)).collect(),
        ratio(values),
    )
}

fn ns(v: f64) -> String {
    format!("{v:.0} ns")
}

/// Bytes as MB of 10⁶ bytes.
fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// Which workloads to run: those listed in `STORE_MIX_ONLY` (`7,8`), or, unset, every one.
fn selected() -> impl Fn(u32) -> bool {
    let listed: Option<Vec<u32>> = std::env::var("STORE_MIX_ONLY").ok().map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| match w.parse() {
                Ok(n @ 1..=9) => n,
                _ => panic!("STORE_MIX_ONLY: {w:?} is not a workload (1 to 9)"),
            })
            .collect()
    });
    move |workload| match &listed {
        Some(listed) => listed.contains(&workload),
        None => true,
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The median cost of the two clock reads around each timed operation, which per-operation
/// latencies include.
fn clock_overhead() -> f64 {
    let mut ns: Vec<u64> = (0..10_000)
        .map(|_| ns_since(black_box(Instant::now())))
        .collect();
    ns.sort_unstable();
    quantile(&ns, 0.5)
}

/// The sizes of every workload: full when measuring, tiny under `cargo test`.
struct Plan {
    invalidate_sizes: Vec<(u64, usize)>,
    remove_where: RemoveWhere,
    service: Service,
    mixed: (u64, usize, usize),
    misses_threads: Vec<usize>,
    misses_inserts: u64,
    big_miss: BigMiss,
    hits: Hits,
    threads: Threads,
    clones: Clones,
}

impl Plan {
    fn full() -> Self {
        Plan {
            invalidate_sizes: vec![(10_000, 20_000), (100_000, 20_000), (1_000_000, 20_000)],
            remove_where: RemoveWhere {
                entries: 1_000_000,
                rounds: 3,
            },
            service: Service {
                entries: 1_000_000,
                threads: 2,
                requests: 100_000,
            },
            mixed: (100_000, 8, 250_000),
            misses_threads: vec![1, 2, 8, 64],
            misses_inserts: 262_144,
            big_miss: BigMiss {
                entries: 1_000_000,
                inserts: 50_000,
            },
            hits: Hits { lookups: 2_000_000 },
            threads: Threads {
                entries: 100_000,
                threads: 32,
                calls_after: 1_000,
            },
            clones: Clones { ops: 10_000 },
        }
    }

    fn tiny() -> Self {
        Plan {
            invalidate_sizes: vec![(1_000, 100)],
            remove_where: RemoveWhere {
                entries: 1_000,
                rounds: 1,
            },
            service: Service {
                entries: 1_000,
                threads: 2,
                requests: 100,
            },
            mixed: (1_000, 8, 1_000),
            misses_threads: vec![1, 8],
            misses_inserts: 1_024,
            big_miss: BigMiss {
                entries: 1_000,
                inserts: 100,
            },
            hits: Hits { lookups: 10_000 },
            threads: Threads {
                entries: 1_000,
                threads: 32,
                calls_after: 1_000,
            },
            clones: Clones { ops: 100 },
        }
    }
}

fn main() {
    let start = Instant::now();
    let plan = if measuring() {
        Plan::full()
    } else {
        Plan::tiny()
    };
    if let Ok(child) = std::env::var(CHILD) {
        // "workload:column[:size index]": one store's run, its numbers on one line.
        let parts: Vec<usize> = child.split(':').map(|n| n.parse().expect(CHILD)).collect();
        let numbers = match parts[0] {
            1 => {
                let (entries, count) = plan.invalidate_sizes[parts[2]];
                on_column(parts[1], &Invalidate { entries, count })
            }
            2 => on_column(parts[1], &plan.service),
            _ => on_column(parts[1], &plan.big_miss),
        };
        let numbers: Vec<String> = numbers.iter().map(f64::to_string).collect();
        println!("{CHILD} {}", numbers.join(" "));
        return;
    }
    let only = selected();
    let mut chart = Chart::default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## Store mix: u64 keys, `String` values of {VALUE_BYTES} bytes\n");
    println!(
        "{}, {cores} cores. Every cell of workloads 1–6 is the median of {ROUNDS} rounds; \
         7 and 8 count bytes and clones, in one round.",
        now_utc()
    );
    if only(1) || only(2) || only(5) {
        println!(
            "Per-operation latencies include two clock reads, {:.0} ns together (median).",
            clock_overhead()
        );
    }

    if only(1) {
        eprintln!("1. invalidate");
        let mut rows = Vec::new();
        for (size, &(entries, _)) in plan.invalidate_sizes.iter().enumerate() {
            let out = each_in_its_own_process::<Invalidate>(|column| format!("1:{column}:{size}"));
            let medians: Vec<f64> = out.iter().map(|o| o.0).collect();
            let p99s: Vec<f64> = out.iter().map(|o| o.1).collect();
            let p999s: Vec<f64> = out.iter().map(|o| o.2).collect();
            if size + 1 == plan.invalidate_sizes.len() {
                chart.panel(
                    &format!(
                        "invalidate one key of {} entries: p99 ns (lower is better)",
                        thousands(entries)
                    ),
                    &p99s,
                );
            }
            rows.push((
                format!("{} entries", thousands(entries)),
                out.iter()
                    .map(|&(m, p, t)| format!("{m:.0} / {p:.0} / {t:.0} ns"))
                    .collect(),
                format!("{} / {} / {}", ratio(&medians), ratio(&p99s), ratio(&p999s)),
            ));
        }
        table(
            "1. `invalidate` of one random key (re-inserted untimed): median / p99 / p99.9 ns, \
             lower is better",
            "store size",
            &rows,
        );
    }

    if only(2) {
        eprintln!("2. service");
        let s = &plan.service;
        let out = each_in_its_own_process::<Service>(|column| format!("2:{column}"));
        let pick = |f: fn(&ServiceOut) -> f64| out.iter().map(f).collect::<Vec<f64>>();
        chart.panel(
            &format!(
                "service at {} entries, {} threads: M requests/s (higher is better)",
                thousands(s.entries),
                s.threads
            ),
            &pick(|o| o.per_sec / 1e6),
        );
        table(
            &format!(
                "2. Service at {} entries, {} threads × {} requests (invalidate a random key, \
                 then call it: a miss)",
                thousands(s.entries),
                s.threads,
                thousands(s.requests)
            ),
            "per request",
            &[
                row(
                    "throughput (higher is better)".into(),
                    &pick(|o| o.per_sec),
                    |v| format!("{:.2} M/s", v / 1e6),
                ),
                row("p50 latency".into(), &pick(|o| o.p50), ns),
                row("p99 latency".into(), &pick(|o| o.p99), ns),
                row("p99.9 latency".into(), &pick(|o| o.p999), ns),
                row(
                    "max latency (median of the rounds' max)".into(),
                    &pick(|o| o.max),
                    ns,
                ),
            ],
        );
    }

    if only(3) {
        eprintln!("3. mixed");
        let (keys, threads, ops) = plan.mixed;
        let mixed = Mixed::new(keys, threads, ops);
        let out = each(&mixed);
        chart.panel(
            &format!("mixed, {threads} threads: M operations/s (higher is better)"),
            &out,
        );
        table(
            &format!(
                "3. Mixed, {threads} threads × {} operations, {} keys of Zipf(0.99): 95.9% calls \
                 on them, 4% on new keys, 0.1% invalidations",
                thousands(ops as u64),
                thousands(keys)
            ),
            "metric",
            &[row("Mops/s (higher is better)".into(), &out, |v| {
                format!("{v:.2}")
            })],
        );
    }

    if only(4) {
        eprintln!("4. misses on distinct keys");
        let mut rows = Vec::new();
        for &threads in &plan.misses_threads {
            let out = each(&Misses {
                threads,
                inserts: plan.misses_inserts,
            });
            let per_insert: Vec<f64> = out.iter().map(|o| o.0).collect();
            if threads == 8 {
                chart.panel(
                    "misses on distinct keys, 8 threads: M inserts/s (higher is better)",
                    &out.iter().map(|o| o.1).collect::<Vec<f64>>(),
                );
            }
            rows.push((
                threads.to_string(),
                out.iter()
                    .map(|&(n, m)| format!("{n:.0} ns ({m:.2} M/s)"))
                    .collect(),
                ratio(&per_insert),
            ));
        }
        table(
            &format!(
                "4. Misses on distinct keys, {} inserts into an empty store: ns per insert \
                 (wall × threads / inserts; lower is better), and inserts per second in all",
                thousands(plan.misses_inserts)
            ),
            "threads",
            &rows,
        );
    }

    if only(5) {
        eprintln!("5. miss into a full store");
        let b = &plan.big_miss;
        let out = each_in_its_own_process::<BigMiss>(|column| format!("5:{column}"));
        let pick = |f: fn(&(f64, f64, f64)) -> f64| out.iter().map(f).collect::<Vec<f64>>();
        table(
            &format!(
                "5. Miss into a store of {} entries, 1 thread, {} inserts per round, each timed \
                 alone: median / p99 / p99.9 ns (lower is better)",
                thousands(b.entries),
                thousands(b.inserts)
            ),
            "metric",
            &[(
                "ns per insert".into(),
                out.iter()
                    .map(|&(m, p, t)| format!("{m:.0} / {p:.0} / {t:.0} ns"))
                    .collect(),
                format!(
                    "{} / {} / {}",
                    ratio(&pick(|o| o.0)),
                    ratio(&pick(|o| o.1)),
                    ratio(&pick(|o| o.2))
                ),
            )],
        );
    }

    if only(6) {
        eprintln!("6. hits");
        let out = each(&plan.hits);
        table(
            &format!(
                "6. Hit, 1 thread, {HOT_KEYS} hot keys, {} lookups per round (a clone of the \
                 value each)",
                thousands(plan.hits.lookups)
            ),
            "metric",
            &[row("ns per hit (lower is better)".into(), &out, ns)],
        );
    }

    // Last of all: the counting allocator, once on, stays on.
    if only(7) {
        eprintln!("7. memory with idle and exited threads");
        let w = &plan.threads;
        let out = each(w);
        let pick =
            |f: fn(&ThreadsOut) -> isize| -> Vec<f64> { out.iter().map(|o| f(o) as f64).collect() };
        let (built, idle) = (pick(|o| o.built), pick(|o| o.idle));
        chart.panel(
            "heap after threads that missed exited, and clear(): MB (lower is better)",
            &pick(|o| o.cleared)
                .iter()
                .map(|b| b / 1e6)
                .collect::<Vec<f64>>(),
        );
        table(
            &format!(
                "7. Heap bytes live in a store of {} entries as threads come and go (MB of \
                 10⁶ bytes, lower is better)",
                thousands(w.entries)
            ),
            "after",
            &[
                row("(a) building".into(), &built, mb),
                (
                    format!(
                        "(b) {} threads each did a hit and an invalidate + reinsert of its \
                         own key, now idle (ratio to (a))",
                        w.threads
                    ),
                    idle.iter()
                        .zip(&built)
                        .map(|(i, b)| format!("{} ({:.2}×)", mb(*i), i / b))
                        .collect(),
                    ratio(&idle),
                ),
                row(
                    format!(
                        "(c) those released, {} more threads missed once each and exited, \
                         then `clear()` (moka: `invalidate_all()`; cached: `cache_clear()`)",
                        w.threads
                    ),
                    &pick(|o| o.cleared),
                    mb,
                ),
                row(
                    format!(
                        "(c) then {} calls from the main thread on {FEW_KEYS} new keys \
                         ({FEW_KEYS} misses, the rest hits; their entries included)",
                        thousands(w.calls_after)
                    ),
                    &pick(|o| o.after),
                    mb,
                ),
            ],
        );
    }

    if only(8) {
        eprintln!("8. clones per operation");
        let c = &plan.clones;
        let out = c.each();
        let pick = |i: usize| -> Vec<f64> { out.iter().map(|o| o[i]).collect() };
        let clones = |v: f64| format!("{v:.2}");
        table(
            &format!(
                "8. `Clone` calls of the value per operation, {} operations each (a 100-byte \
                 `String` that counts its clones; lower is better)",
                thousands(c.ops)
            ),
            "operation",
            &[
                row(
                    "insert of a new key (memoflight: a miss through `get_or_compute`, value \
                     returned; others: plain `insert` / `cache_set`, nothing returned)"
                        .into(),
                    &pick(0),
                    clones,
                ),
                row(
                    "hit (memoflight: `get_or_compute`; others: `get` / `get(..).cloned()`)".into(),
                    &pick(1),
                    clones,
                ),
                row(
                    "miss that returns the value, as in workloads 1–7 (dashmap, cached: \
                     `get`, then `insert(k, v.clone())`; quick_cache: `get_or_insert_with`; \
                     moka: `get_with`)"
                        .into(),
                    &pick(2),
                    clones,
                ),
                row(
                    "invalidation (memoflight: `invalidate`, which returns no value; its \
                     `remove`, which returns one, clones it: 1.00; dashmap, quick_cache: \
                     `remove` and cached: `cache_remove`, which move the value out; moka: \
                     `invalidate`)"
                        .into(),
                    &pick(3),
                    clones,
                ),
            ],
        );
    }

    if only(9) {
        eprintln!("9. invalidate_if");
        let w = &plan.remove_where;
        let out = each(w);
        let pick = |f: fn(&(f64, f64)) -> f64| out.iter().map(f).collect::<Vec<f64>>();
        let ms = |v: f64| format!("{v:.1} ms");
        chart.panel(
            &format!(
                "invalidate_if removing 1% of {} entries: ms (lower is better)",
                thousands(w.entries)
            ),
            &pick(|o| o.1),
        );
        table(
            &format!(
                "9. `invalidate_if` removing 1% of {} entries (dashmap, quick_cache, cached: \
                 `retain`; moka: iterate and `invalidate`, its own is lazy)",
                thousands(w.entries)
            ),
            "call",
            &[
                row(
                    "first, right after filling the store".into(),
                    &pick(|o| o.0),
                    ms,
                ),
                row(
                    format!("median of the next {}", w.rounds),
                    &pick(|o| o.1),
                    ms,
                ),
            ],
        );
    }

    if measuring() {
        chart.write();
    }
    eprintln!("\nstore_mix: {:.1} s", start.elapsed().as_secs_f64());
}

/// The numbers `charts.rs` draws in `benches/charts/store_mix.svg`: one panel per headline
/// workload, a value per store, in `target/bench-data/store_mix.tsv` (tab-separated: panel, store, value).
/// A run of a few workloads (`STORE_MIX_ONLY`) replaces only their panels.
#[derive(Default)]
struct Chart(Vec<(String, Vec<f64>)>);

impl Chart {
    fn panel(&mut self, title: &str, values: &[f64]) {
        self.0.push((title.to_string(), values.to_vec()));
    }

    fn write(&self) {
        let path = data_dir().join("store_mix.tsv");
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        let mut csv = String::from("panel\tstore\tvalue\n");
        // The panels of earlier runs that this one did not redo, in their order.
        for line in kept.lines().skip(1) {
            let panel = line.split('\t').next().unwrap_or_default();
            if !self.0.iter().any(|(title, _)| title == panel) {
                csv.push_str(line);
                csv.push('\n');
            }
        }
        for (title, values) in &self.0 {
            for (store, value) in NAMES.iter().zip(values) {
                csv.push_str(&format!("{title}\t{store}\t{value}\n"));
            }
        }
        std::fs::create_dir_all(data_dir()).expect("create target/bench-data");
        std::fs::write(&path, csv).expect("write store_mix.tsv");
    }
}
