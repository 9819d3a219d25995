//! Head-to-head hit and miss cost against other Rust caches, with a read-only `HashMap`
//! (foldhash) measured in the same run as the baseline. u64 -> u64, 1024 hot keys visited in a
//! shuffled order, as in `hit_path.rs`.
//!
//! Peers: the `cached` crate's `#[cached]` macro (no `sync_writes`, `sync_writes = "default"`,
//! `sync_writes = "by_key"`), moka `sync::Cache::get_with` and quick_cache
//! `sync::Cache::get_or_insert_with`, each behind a function over a static cache the way a
//! memoized function would use it.
//!
//! `cargo bench --bench peers`; results and the machine are in `benches/PEERS.md`.

mod common;

use common::{on_threads, order, HOT_KEYS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::Instant;

fn work(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[memoflight::cached]
fn memo_memoflight(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached]
fn memo_cached(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached(sync_writes = "default")]
fn memo_cached_sync(n: u64) -> u64 {
    work(n)
}

#[cached::proc_macro::cached(sync_writes = "by_key")]
fn memo_cached_by_key(n: u64) -> u64 {
    work(n)
}

static MOKA: LazyLock<moka::sync::Cache<u64, u64>> =
    LazyLock::new(|| moka::sync::Cache::builder().build());

fn memo_moka(n: u64) -> u64 {
    MOKA.get_with(n, || work(n))
}

static QUICK: LazyLock<quick_cache::sync::Cache<u64, u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(2 * HOT_KEYS as usize));

fn memo_quick(n: u64) -> u64 {
    match QUICK.get_or_insert_with(&n, || Ok::<u64, Infallible>(work(n))) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

type Peer = (&'static str, fn(u64) -> u64);

/// The memoized functions compared on the hit path, by name.
const PEERS: [Peer; 6] = [
    ("memoflight", memo_memoflight),
    ("cached", memo_cached),
    ("cached sync_writes=default", memo_cached_sync),
    ("cached sync_writes=by_key", memo_cached_by_key),
    ("moka get_with", memo_moka),
    ("quick_cache get_or_insert_with", memo_quick),
];

fn hits(c: &mut Criterion) {
    let keys = order();
    let map: HashMap<u64, u64, foldhash::fast::RandomState> =
        (0..HOT_KEYS).map(|k| (k, work(k))).collect();
    for (_, f) in PEERS {
        for &k in &keys {
            assert_eq!(f(k), work(k));
        }
    }
    let keys = &keys;
    let map_lookups = |iters: u64| {
        for i in 0..iters {
            let k = keys[(i % HOT_KEYS) as usize];
            black_box(map.get(&black_box(k)).copied());
        }
    };

    let mut group = c.benchmark_group("peers hit");
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("read-only HashMap", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, map_lookups))
        });
        for (name, f) in PEERS {
            let lookups = |iters: u64| {
                for i in 0..iters {
                    let k = keys[(i % HOT_KEYS) as usize];
                    black_box(f(black_box(k)));
                }
            };
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, lookups))
            });
        }
    }
    group.finish();
}

/// Keys for the macro-based caches' misses: one counter, ever increasing, starting past the
/// hot keys, so every call in the miss benchmarks is a key never seen before.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1 << 32);

fn fresh_keys(iters: u64) -> u64 {
    NEXT_KEY.fetch_add(iters, Relaxed)
}

fn misses(c: &mut Criterion) {
    let mut group = c.benchmark_group("peers miss");
    group.bench_function("HashMap insert", |b| {
        b.iter_custom(|iters| {
            let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
            let start = Instant::now();
            for k in 0..iters {
                black_box(map.entry(black_box(k)).or_insert_with(|| work(k)));
            }
            let elapsed = start.elapsed();
            drop(map);
            elapsed
        })
    });
    // A fresh cache per sample, as in `hit_path.rs`.
    group.bench_function("memoflight Cache (fresh per sample)", |b| {
        b.iter_custom(|iters| {
            let cache = memoflight::Cache::new("miss", memoflight::Unbounded::<u64, u64>::new());
            let start = Instant::now();
            for k in 0..iters {
                black_box(cache.get_or_compute(black_box(k), || work(k)));
            }
            let elapsed = start.elapsed();
            drop(cache);
            elapsed
        })
    });
    group.bench_function("moka get_with (fresh per sample)", |b| {
        b.iter_custom(|iters| {
            let cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::builder().build();
            let start = Instant::now();
            for k in 0..iters {
                black_box(cache.get_with(black_box(k), || work(k)));
            }
            let elapsed = start.elapsed();
            drop(cache);
            elapsed
        })
    });
    group.bench_function("quick_cache get_or_insert_with (fresh per sample)", |b| {
        b.iter_custom(|iters| {
            // Room for every key of the sample, so nothing is evicted.
            let cache: quick_cache::sync::Cache<u64, u64> =
                quick_cache::sync::Cache::new(iters as usize + 1);
            let start = Instant::now();
            for k in 0..iters {
                let v = cache.get_or_insert_with(&black_box(k), || Ok::<u64, Infallible>(work(k)));
                black_box(v.ok());
            }
            let elapsed = start.elapsed();
            drop(cache);
            elapsed
        })
    });
    // The macro-based caches live in statics: ever-increasing keys instead of a fresh cache.
    for (name, f) in PEERS {
        if name.starts_with("moka") || name.starts_with("quick_cache") {
            continue;
        }
        group.bench_function(format!("{name} macro (increasing keys)"), |b| {
            b.iter_custom(|iters| {
                let first = fresh_keys(iters);
                let start = Instant::now();
                for k in first..first + iters {
                    black_box(f(black_box(k)));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::peer_config();
    targets = hits, misses
}
criterion_main!(benches);
