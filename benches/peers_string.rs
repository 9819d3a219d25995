//! Hit cost with `String` keys against other Rust caches, with a read-only
//! `HashMap<String, u64>` (foldhash) looked up by `&str` as the baseline, measured in the same
//! run. 1024 hot keys (`key-000123`, 10 bytes) visited in the shuffled order of `hit_path.rs`,
//! on 1 and 2 threads; every call is given a `&str` from the same key list.
//!
//! Peers, each behind a function `fn(&str) -> u64`, the way a memoized function would be
//! called:
//!
//! - memoflight `#[cached] fn f(s: &str)`: the key is stored as a `String` and looked up by
//!   `&str`, so a hit allocates nothing;
//! - the `cached` crate's `#[cached] fn f(s: &str)` (no `sync_writes`, `sync_writes =
//!   "default"`, `sync_writes = "by_key"`): its key is `s.to_owned()`, built on every call;
//! - moka `sync::Cache::get_with`, which takes an owned key (one `String` per call), and
//!   `get_with_by_ref`, which takes `&str` and clones it only on a miss;
//! - quick_cache `sync::Cache::get_or_insert_with`, which takes `&str`.
//!
//! `cargo bench --bench peers_string`; results and the machine are in `benches/README.md`.

mod common;

use common::{on_threads, string_order, HOT_KEYS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::LazyLock;

/// The memoized work: FNV-1a of the key (any value will do; every timed call is a hit).
fn work(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[memoflight::cached]
fn memo_memoflight(s: &str) -> u64 {
    work(s)
}

#[cached::proc_macro::cached]
fn memo_cached(s: &str) -> u64 {
    work(s)
}

#[cached::proc_macro::cached(sync_writes = "default")]
fn memo_cached_sync(s: &str) -> u64 {
    work(s)
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
fn memo_cached_by_key(s: &str) -> u64 {
    work(s)
}

static MOKA: LazyLock<moka::sync::Cache<String, u64>> =
    LazyLock::new(|| moka::sync::Cache::builder().build());

fn memo_moka(s: &str) -> u64 {
    MOKA.get_with(s.to_owned(), || work(s))
}

static MOKA_BY_REF: LazyLock<moka::sync::Cache<String, u64>> =
    LazyLock::new(|| moka::sync::Cache::builder().build());

fn memo_moka_by_ref(s: &str) -> u64 {
    MOKA_BY_REF.get_with_by_ref(s, || work(s))
}

static QUICK: LazyLock<quick_cache::sync::Cache<String, u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(2 * HOT_KEYS as usize));

fn memo_quick(s: &str) -> u64 {
    match QUICK.get_or_insert_with(s, || Ok::<u64, Infallible>(work(s))) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

type Peer = (&'static str, fn(&str) -> u64);

/// The memoized functions compared, by name (criterion's ids, read by `charts.rs`).
const PEERS: [Peer; 7] = [
    ("memoflight", memo_memoflight),
    ("cached", memo_cached),
    ("cached sync_writes=default", memo_cached_sync),
    ("cached sync_writes=by_key", memo_cached_by_key),
    ("moka get_with", memo_moka),
    ("moka get_with_by_ref", memo_moka_by_ref),
    ("quick_cache get_or_insert_with", memo_quick),
];

fn hits(c: &mut Criterion) {
    let keys = string_order();
    let map: HashMap<String, u64, foldhash::fast::RandomState> =
        keys.iter().map(|k| (k.clone(), work(k))).collect();
    for (_, f) in PEERS {
        for k in &keys {
            assert_eq!(f(k), work(k));
        }
    }
    let keys = &keys;
    let map_lookups = |iters: u64| {
        for i in 0..iters {
            let k = keys[(i % HOT_KEYS) as usize].as_str();
            black_box(map.get(black_box(k)).copied());
        }
    };

    let mut group = c.benchmark_group("peers hit String");
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("read-only HashMap", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, map_lookups))
        });
        for (name, f) in PEERS {
            let lookups = |iters: u64| {
                for i in 0..iters {
                    let k = keys[(i % HOT_KEYS) as usize].as_str();
                    black_box(f(black_box(k)));
                }
            };
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, lookups))
            });
        }
    }
    group.finish();
    // Every timed memoflight call was a hit: the function ran once per key, in the check.
    let stats = memo_memoflight_cache().stats();
    assert_eq!((stats.executions, stats.misses), (HOT_KEYS, HOT_KEYS));
}

criterion_group! {
    name = benches;
    config = common::peer_config();
    targets = hits
}
criterion_main!(benches);
