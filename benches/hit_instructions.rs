//! Instruction counts of the hit path against the read-only map, for callgrind, whose counts
//! repeat exactly on a noisy host where timings move by ±15%:
//!
//! ```text
//! cargo bench --bench hit_instructions --no-run
//! valgrind --tool=callgrind target/release/deps/hit_instructions-* && callgrind_annotate callgrind.out.*
//! ```
//!
//! Compare the inclusive counts of `hits`, `generic_hits` and `baseline` (1,000,000 calls
//! each).
use memoflight::cached;
use std::hint::black_box;

#[cached]
fn memo(n: u64) -> u64 {
    n * 3
}

#[inline(never)]
fn hits(rounds: u64) -> u64 {
    let mut acc = 0;
    for i in 0..rounds {
        acc ^= memo(black_box(i % 1024));
    }
    acc
}

/// A generic function: its cache is found among its instantiations' at each call.
#[cached]
fn memo_generic<T: Copy + Into<u64> + std::hash::Hash + Eq + Send + Sync + 'static>(n: T) -> u64 {
    n.into() * 3
}

#[inline(never)]
fn generic_hits(rounds: u64) -> u64 {
    let mut acc = 0;
    for i in 0..rounds {
        acc ^= memo_generic::<u64>(black_box(i % 1024));
    }
    acc
}

#[inline(never)]
fn baseline(
    map: &std::collections::HashMap<u64, u64, foldhash::fast::RandomState>,
    rounds: u64,
) -> u64 {
    let mut acc = 0;
    for i in 0..rounds {
        acc ^= *map.get(&black_box(i % 1024)).unwrap();
    }
    acc
}

fn main() {
    let map = (0..1024u64).map(|k| (k, k * 3)).collect();
    black_box(hits(10_000)); // warm: every key computed
    black_box(hits(1_000_000));
    black_box(generic_hits(10_000));
    black_box(generic_hits(1_000_000));
    black_box(baseline(&map, 1_000_000));
}
