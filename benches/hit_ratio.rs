//! Hit ratio of bounded caches, by capacity, on two seeded key traces.
//!
//! - `zipf`: 1,000,000 requests drawn from Zipf(s = 0.99) over 100,000 keys (rank r is key r).
//! - `zipf+scan`: the same 1,000,000 Zipf requests, in the same order, in 100 blocks of 10,000;
//!   each block is followed by a scan of 20,000 sequential keys that occur nowhere else in the
//!   trace. 3,000,000 requests, two thirds of them one-time keys, so no cache can exceed 33.3%.
//!
//! Each cache is driven the way a memoized function drives it: look the key up; on a miss,
//! insert it. The ratio is hits over all requests, counted from an empty cache. Everything runs
//! on one thread, with fixed seeds and fixed hashers where a cache takes one, so every run
//! prints the same table.
//!
//! Caches: an exact LRU (the `lru` crate) as the reference, memoflight `Bounded` (S3-FIFO),
//! moka `sync::Cache` (TinyLFU admission, with `run_pending_tasks()` after every insert so its
//! admission and eviction have run before the next lookup, as they would with an idle
//! housekeeper), and quick_cache `sync::Cache`.
//!
//! `cargo bench --bench hit_ratio`; the table and its reading are in `benches/README.md`. The
//! same numbers go to `target/bench-data/hit_ratio.csv` for `charts.rs`.

mod common;

use common::{data_dir, measuring};
use memoflight::{Bounded, Store};
use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::time::Instant;

/// Distinct keys of the Zipf working set.
const KEYS: u64 = 100_000;
/// Zipf requests in either trace.
const REQUESTS: usize = 1_000_000;
const ZIPF_S: f64 = 0.99;
const SEED: u64 = 0x6d65_6d6f_666c_6974;
/// Zipf requests between two scans.
const SCAN_EVERY: usize = 10_000;
/// Keys in one scan.
const SCAN_LEN: u64 = 20_000;
/// The first scan key: far above the Zipf keys (1..=KEYS), and scan keys only increase.
const SCAN_BASE: u64 = 1 << 40;
const CAPACITIES: [usize; 4] = [100, 1_000, 10_000, 50_000];

/// The hasher given to every cache that takes one, so that hash-dependent decisions (moka's
/// frequency sketch, quick_cache's shard of a key) are the same in every run.
fn hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(SEED)
}

fn zipf_trace(requests: usize) -> Vec<u64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let zipf = Zipf::new(KEYS as f64, ZIPF_S).expect("valid Zipf parameters");
    // A sample is an integral f64 in 1..=KEYS, exact in a u64.
    (0..requests)
        .map(|_| zipf.sample(&mut rng) as u64)
        .collect()
}

fn scan_trace(zipf: &[u64]) -> Vec<u64> {
    let mut trace = Vec::with_capacity(zipf.len() * 3);
    let mut next_scan_key = SCAN_BASE;
    for block in zipf.chunks(SCAN_EVERY) {
        trace.extend_from_slice(block);
        trace.extend(next_scan_key..next_scan_key + SCAN_LEN);
        next_scan_key += SCAN_LEN;
    }
    trace
}

/// The share of `trace` that `memo` (lookup; on a miss, insert; true on a hit) answers from
/// the cache.
fn hit_ratio(trace: &[u64], mut memo: impl FnMut(u64) -> bool) -> f64 {
    let hits = trace.iter().filter(|&&key| memo(key)).count();
    hits as f64 / trace.len() as f64
}

fn lru(trace: &[u64], capacity: usize) -> f64 {
    let capacity = NonZeroUsize::new(capacity).expect("capacity is positive");
    let mut cache = lru::LruCache::with_hasher(capacity, hasher());
    let ratio = hit_ratio(trace, |key| {
        if cache.get(&key).is_some() {
            return true;
        }
        cache.put(key, key);
        false
    });
    assert!(cache.len() <= capacity.get());
    ratio
}

fn memoflight(trace: &[u64], capacity: usize) -> f64 {
    let store = Bounded::<u64, u64>::new().max_size(capacity);
    let ratio = hit_ratio(trace, |key| {
        if store.get(&key).is_some() {
            return true;
        }
        store.insert(key, key);
        false
    });
    assert!(store.len() <= capacity);
    ratio
}

fn moka(trace: &[u64], capacity: usize) -> f64 {
    let cache = moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .build_with_hasher(hasher());
    let ratio = hit_ratio(trace, |key| {
        if cache.get(&key).is_some() {
            return true;
        }
        cache.insert(key, key);
        // Applies the buffered reads (the frequency sketch) and this write: admission, then
        // eviction down to `max_capacity`. Without it, up to 64 writes wait in a log and the
        // cache briefly holds more than its capacity.
        cache.run_pending_tasks();
        false
    });
    cache.run_pending_tasks();
    assert!(cache.entry_count() <= capacity as u64);
    ratio
}

fn quick_cache(trace: &[u64], capacity: usize) -> f64 {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        // The default on the 2-core machine of benches/README.md (4 per core), pinned so the
        // ratio does not depend on the machine. quick_cache halves the count while a shard
        // would hold fewer than 32 items, so capacity 100 has 2 shards of 50.
        .shards(8)
        .build()
        .expect("capacity options are set");
    let cache = quick_cache::sync::Cache::with_options(
        options,
        quick_cache::UnitWeighter,
        hasher(),
        quick_cache::sync::DefaultLifecycle::default(),
    );
    let ratio = hit_ratio(trace, |key| {
        if cache.get(&key).is_some() {
            return true;
        }
        cache.insert(key, key);
        false
    });
    assert!(cache.len() <= capacity);
    ratio
}

type Run = fn(&[u64], usize) -> f64;

/// The caches compared, by column; the first is the reference.
const CACHES: [(&str, Run); 4] = [
    ("exact LRU (`lru`)", lru),
    ("memoflight `Bounded`", memoflight),
    ("moka", moka),
    ("quick_cache", quick_cache),
];

fn percent(ratio: f64) -> String {
    format!("{:.2}", 100.0 * ratio)
}

fn main() {
    let start = Instant::now();
    // `cargo test` runs this unoptimized: a short trace and one capacity, to check that every
    // cache runs, and no CSV (it would replace a measured one).
    let (requests, capacities) = if measuring() {
        (REQUESTS, &CAPACITIES[..])
    } else {
        (SCAN_EVERY, &CAPACITIES[..1])
    };
    let zipf = zipf_trace(requests);
    let scan = scan_trace(&zipf);
    let traces = [("zipf", &zipf), ("zipf+scan", &scan)];

    let mut header = String::from("| trace | capacity |");
    let mut rule = String::from("|---|---|");
    let mut csv = String::from("trace,capacity,cache,hit_ratio\n");
    for (name, _) in CACHES {
        header += &format!(" {name} |");
        rule += "---|";
    }
    header += " memoflight − moka |";
    rule += "---|";
    println!("hit ratio, % of requests (higher is better)\n");
    println!("{header}\n{rule}");
    for (trace_name, trace) in traces {
        for &capacity in capacities {
            let ratios: Vec<f64> = CACHES.iter().map(|(_, run)| run(trace, capacity)).collect();
            let mut row = format!("| {trace_name} | {capacity} |");
            for (&ratio, (cache, _)) in ratios.iter().zip(CACHES) {
                row += &format!(" {} |", percent(ratio));
                // Cache names carry backticks for the markdown; the CSV has none.
                let cache = cache.replace('`', "");
                writeln!(csv, "{trace_name},{capacity},{cache},{ratio:.6}").unwrap();
            }
            let delta = 100.0 * (ratios[1] - ratios[2]);
            row += &format!(" {delta:+.2} pp |");
            println!("{row}");
        }
    }
    if measuring() {
        let dir = data_dir();
        std::fs::create_dir_all(&dir).expect("create target/bench-data");
        let path = dir.join("hit_ratio.csv");
        std::fs::write(&path, csv).expect("write hit_ratio.csv");
        eprintln!("hit_ratio: wrote {}", path.display());
    }
    eprintln!("\nhit_ratio: {:.1} s", start.elapsed().as_secs_f64());
}
