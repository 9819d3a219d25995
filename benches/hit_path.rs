//! Hit and miss cost of a `#[cached]` function, with a read-only `HashMap` (foldhash) measured in
//! the same run as the baseline. u64 -> u64, 1024 hot keys visited in a shuffled order.
//!
//! After criterion's groups, it measures the 2-thread scaling of the hit path a second way:
//! 1-thread and 2-thread runs interleaved, 21 rounds, medians. On this shared 2-vCPU VM a
//! lone thread often runs faster (the host's turbo), so criterion's 1-thread and 2-thread
//! medians, measured seconds apart, can give a ratio anywhere between 1.2× and 3× for the same
//! code; the interleaved median of each round's ratio does not drift that way.
//!
//! `cargo bench --bench hit_path`; results and the machine are in `benches/README.md`.

mod common;

use common::{measuring, on_threads, order, HOT_KEYS};
use criterion::{criterion_group, BenchmarkId, Criterion};
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

/// A hit renews the TTL (`refresh`, `Bounded::time_to_idle`): an atomic write when the
/// deadline moved by more than a sixty-fourth of it.
#[cached(max_size = 4096, ttl = "1h", refresh)]
fn memo_bounded_idle(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Weighted: the bound is a total weight.
#[cached(max_weight = 1 << 20, weigher = |_, _| 8)]
fn memo_weighted(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A generic function: its cache is found among its instantiations' at each call.
#[cached]
fn memo_generic<T: Copy + Into<u64> + std::hash::Hash + Eq + Send + Sync + 'static>(n: T) -> u64 {
    n.into().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn baseline() -> HashMap<u64, u64, foldhash::fast::RandomState> {
    (0..HOT_KEYS).map(|k| (k, memo_no_cache(k))).collect()
}

/// The hot keys and the baseline map, with every memoized function warmed on every key.
fn warmed() -> (Vec<u64>, HashMap<u64, u64, foldhash::fast::RandomState>) {
    let keys = order();
    for &k in &keys {
        memo(k);
        memo_bounded(k);
        memo_bounded_ttl(k);
        memo_bounded_idle(k);
        memo_weighted(k);
        memo_generic(k);
    }
    (keys, baseline())
}

/// `iters` lookups of the hot keys through `lookup`.
#[inline(always)]
fn lookups_with<R>(keys: &[u64], iters: u64, lookup: impl Fn(u64) -> R) {
    for i in 0..iters {
        let k = keys[(i % HOT_KEYS) as usize];
        black_box(lookup(black_box(k)));
    }
}

fn hits(c: &mut Criterion) {
    let (keys, map) = warmed();
    let map_lookups = |iters: u64| lookups_with(&keys, iters, |k| map.get(&k).copied());
    let lookups = |f: fn(u64) -> u64| {
        let keys = &keys;
        move |iters: u64| lookups_with(keys, iters, f)
    };
    let memo_lookups = |iters: u64| lookups_with(&keys, iters, memo);

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
            ("memoflight max_size+ttl refresh", memo_bounded_idle),
            ("memoflight max_weight", memo_weighted),
            ("memoflight generic fn", memo_generic::<u64>),
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

/// The interleaved scaling measurement (see the module docs); prints a markdown table.
fn scaling() {
    let (keys, map) = warmed();
    let map_lookups = |iters: u64| lookups_with(&keys, iters, |k| map.get(&k).copied());
    let lookups = |f: fn(u64) -> u64| {
        let keys = &keys;
        move |iters: u64| lookups_with(keys, iters, f)
    };
    type Lookups<'a> = &'a (dyn Fn(u64) + Sync);
    let candidates: [(&str, Lookups, u64); 3] = [
        ("read-only HashMap (baseline)", &map_lookups, 20_000_000),
        ("memoflight #[cached]", &lookups(memo), 20_000_000),
        (
            "memoflight #[cached(max_size)]",
            &lookups(memo_bounded),
            5_000_000,
        ),
    ];
    const ROUNDS: usize = 21;
    let mut results = vec![(Vec::new(), Vec::new(), Vec::new()); candidates.len()];
    for _ in 0..ROUNDS {
        for ((_, per_thread, iters), (one, two, ratio)) in candidates.iter().zip(&mut results) {
            let ns = |wall: Duration| wall.as_secs_f64() * 1e9 / *iters as f64;
            let alone = ns(on_threads(1, *iters, per_thread));
            let both = ns(on_threads(2, *iters, per_thread));
            one.push(alone);
            two.push(both);
            ratio.push(2.0 * alone / both);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("\n### Hit scaling, 1 and 2 threads interleaved, {ROUNDS} rounds, medians\n");
    println!("| function | 1 thread | 2 threads, wall per iteration | scaling (median of each round's) |");
    println!("|---|---|---|---|");
    for ((name, _, _), (one, two, ratio)) in candidates.iter().zip(&mut results) {
        println!(
            "| {name} | {:.2} ns | {:.2} ns | {:.2}× |",
            median(one),
            median(two),
            median(ratio)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = hits, misses
}
fn main() {
    benches();
    if measuring() {
        scaling();
    }
    Criterion::default().configure_from_args().final_summary();
}
