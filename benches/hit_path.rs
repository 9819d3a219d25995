//! Hit and miss cost of a `#[cached]` function, with a read-only `HashMap` (foldhash) measured in
//! the same run as the baseline. u64 -> u64, 1024 hot keys visited in a shuffled order.
//!
//! `cargo bench --bench hit_path`; results and the machine are in `benches/README.md`.

mod common;

use common::{on_threads, order, HOT_KEYS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use memoflight::{cached, Cache, Unbounded};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[cached]
fn memo(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cached(max_size = 4096)]
fn memo_bounded(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cached(max_size = 4096, ttl = "1h")]
fn memo_bounded_ttl(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn baseline() -> HashMap<u64, u64, foldhash::fast::RandomState> {
    (0..HOT_KEYS).map(|k| (k, memo_no_cache(k))).collect()
}

fn hits(c: &mut Criterion) {
    let keys = order();
    let map = baseline();
    for &k in &keys {
        memo(k);
        memo_bounded(k);
        memo_bounded_ttl(k);
    }
    let map_lookups = |iters: u64| {
        for i in 0..iters {
            let k = keys[(i % HOT_KEYS) as usize];
            black_box(map.get(&black_box(k)).copied());
        }
    };
    let lookups = |f: fn(u64) -> u64| {
        let keys = &keys;
        move |iters: u64| {
            for i in 0..iters {
                let k = keys[(i % HOT_KEYS) as usize];
                black_box(f(black_box(k)));
            }
        }
    };
    let memo_lookups = |iters: u64| {
        for i in 0..iters {
            let k = keys[(i % HOT_KEYS) as usize];
            black_box(memo(black_box(k)));
        }
    };

    let mut group = c.benchmark_group("hit");
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("read-only HashMap", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, map_lookups))
        });
        group.bench_function(BenchmarkId::new("memoflight", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, memo_lookups))
        });
        for (name, f) in [
            ("memoflight max_size", memo_bounded as fn(u64) -> u64),
            ("memoflight max_size+ttl", memo_bounded_ttl),
        ] {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, lookups(f)))
            });
        }
    }
    group.finish();
}

fn misses(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss");
    // Each sample gets a fresh cache, so every call is a miss that runs the (trivial)
    // function, registers and unregisters a flight and inserts into the store.
    group.bench_function("memoflight", |b| {
        b.iter_custom(|iters| {
            let cache = Cache::new("miss", Unbounded::<u64, u64>::new());
            let start = Instant::now();
            for k in 0..iters {
                black_box(cache.get_or_compute(black_box(k), || k + 1));
            }
            let elapsed = start.elapsed();
            drop(cache);
            elapsed
        })
    });
    group.bench_function("HashMap insert", |b| {
        b.iter_custom(|iters| {
            let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
            let start = Instant::now();
            for k in 0..iters {
                black_box(map.entry(black_box(k)).or_insert(k + 1));
            }
            let elapsed = start.elapsed();
            drop(map);
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = hits, misses
}
criterion_main!(benches);
