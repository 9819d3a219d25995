//! Bytes per entry of memoflight's stores and of its peers, measured with a counting global
//! allocator: the heap bytes live after building a store of N entries (keys and values
//! included) minus those live before, divided by N. Every byte a store allocates is counted,
//! as requested from the allocator (the allocator's own per-block overhead is not).
//!
//! - memoflight's stores alone and in a `Cache`, against a `HashMap` (foldhash): u64 -> u64 at
//!   10,000 and 1,000,000 entries;
//! - the peers and the bounded stores, each bounded store sized to hold exactly N: u64 -> u64
//!   at 100,000 and 1,000,000 entries, and `String` (`key-000123`, 10 bytes) -> `Vec<u8>` of
//!   100 bytes at 100,000 entries (the total per entry, key and value bytes included).
//!
//! - big values: `Vec<u8>` of 10 KB through a `Cache` on each of memoflight's stores, 1 thread:
//!   the heap's peak while the cache fills, and what it holds after, against the payload (the
//!   values' bytes alone). A store that copied values, or kept a second copy per entry, would
//!   show it here.
//!
//! Prints markdown tables. `cargo bench --bench memory`; results are in `benches/README.md`.
#![allow(unsafe_code)]

mod common;

use cached::Cached;
use common::{measuring, string_key};
use memoflight::{Bounded, Cache, Store, Unbounded};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The highest `LIVE` reached since it was last reset (`big_values`).
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn count(bytes: isize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: forwards every call unchanged to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System.alloc` with this layout.
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

/// What one store measured: bytes per entry, and how many entries it held when measured.
struct Measured {
    per_entry: f64,
    held: usize,
}

/// Builds a store of `n` entries with `build` and measures it; `len` says how many it holds.
fn measure<T>(n: u64, build: impl FnOnce(u64) -> T, len: impl FnOnce(&T) -> usize) -> Measured {
    let before = LIVE.load(Relaxed);
    let built = build(n);
    let after = LIVE.load(Relaxed);
    let held = len(&built);
    drop(built);
    Measured {
        per_entry: (after - before) as f64 / n as f64,
        held,
    }
}

fn bytes_per_entry<T>(n: u64, build: impl FnOnce(u64) -> T) -> f64 {
    measure(n, build, |_| 0).per_entry
}

/// The entries of a workload: key and value of entry `i`.
trait Entries {
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
    type Value: Clone + Send + Sync + 'static;
    fn entry(i: u64) -> (Self::Key, Self::Value);
}

/// u64 -> u64.
struct Numbers;

impl Entries for Numbers {
    type Key = u64;
    type Value = u64;
    fn entry(i: u64) -> (u64, u64) {
        (i, i)
    }
}

/// `key-000123` -> 100 bytes.
struct Strings;

/// The size of each value of [`Strings`].
const VALUE_BYTES: usize = 100;

impl Entries for Strings {
    type Key = String;
    type Value = Vec<u8>;
    fn entry(i: u64) -> (String, Vec<u8>) {
        (string_key(i), vec![i as u8; VALUE_BYTES])
    }
}

fn hash_map<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
            for (k, v) in (0..n).map(E::entry) {
                map.insert(k, v);
            }
            map
        },
        HashMap::len,
    )
}

fn memoflight_cache<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let cache = Cache::new("memory", Unbounded::<E::Key, E::Value>::new());
            for (k, v) in (0..n).map(E::entry) {
                cache.get_or_compute(k, || v);
            }
            cache
        },
        Cache::len,
    )
}

fn memoflight_bounded<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let store = Bounded::<E::Key, E::Value>::new().max_size(n as usize);
            for (k, v) in (0..n).map(E::entry) {
                store.insert(k, v);
            }
            store
        },
        |store| store.len(),
    )
}

fn cached_unbound<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let mut cache = cached::UnboundCache::new();
            for (k, v) in (0..n).map(E::entry) {
                cache.cache_set(k, v);
            }
            cache
        },
        |cache| cache.cache_size(),
    )
}

fn cached_lru<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let mut cache = cached::LruCache::new(n as usize);
            for (k, v) in (0..n).map(E::entry) {
                cache.cache_set(k, v);
            }
            cache
        },
        |cache| cache.cache_size(),
    )
}

fn moka<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let cache = moka::sync::Cache::builder().max_capacity(n).build();
            for (k, v) in (0..n).map(E::entry) {
                cache.insert(k, v);
            }
            // Applies the write log: admission, the frequency sketch, the eviction queues.
            cache.run_pending_tasks();
            cache
        },
        |cache| cache.entry_count() as usize,
    )
}

fn quick_cache<E: Entries>(n: u64) -> Measured {
    measure(
        n,
        |n| {
            let cache = quick_cache::sync::Cache::new(n as usize);
            for (k, v) in (0..n).map(E::entry) {
                cache.insert(k, v);
            }
            cache
        },
        quick_cache::sync::Cache::len,
    )
}

type Run = fn(u64) -> Measured;

/// A row of the peers' table: its name and how to measure it for each workload.
struct Row {
    name: &'static str,
    numbers: Run,
    strings: Run,
}

/// The peers' table, by row; the first is the baseline.
const ROWS: [Row; 7] = [
    Row {
        name: "`HashMap` (foldhash), baseline",
        numbers: hash_map::<Numbers>,
        strings: hash_map::<Strings>,
    },
    Row {
        name: "memoflight `#[cached]` (`Cache` over `Unbounded`)",
        numbers: memoflight_cache::<Numbers>,
        strings: memoflight_cache::<Strings>,
    },
    Row {
        name: "memoflight `Bounded::new().max_size(n)`",
        numbers: memoflight_bounded::<Numbers>,
        strings: memoflight_bounded::<Strings>,
    },
    Row {
        name: "cached `UnboundCache` (`#[cached]`)",
        numbers: cached_unbound::<Numbers>,
        strings: cached_unbound::<Strings>,
    },
    Row {
        name: "cached `LruCache::new(n)` (`SizedCache`, `#[cached(size = n)]`)",
        numbers: cached_lru::<Numbers>,
        strings: cached_lru::<Strings>,
    },
    Row {
        name: "moka `sync::Cache`, `max_capacity(n)`",
        numbers: moka::<Numbers>,
        strings: moka::<Strings>,
    },
    Row {
        name: "quick_cache `sync::Cache::new(n)`",
        numbers: quick_cache::<Numbers>,
        strings: quick_cache::<Strings>,
    },
];

/// One cell: bytes per entry, the ratio to the baseline's, and a note if the store held fewer
/// entries than were inserted.
fn cell(m: &Measured, baseline: &Measured, n: u64) -> String {
    let mut s = format!(
        "{:.1} B ({:.2}×)",
        m.per_entry,
        m.per_entry / baseline.per_entry
    );
    if m.held as u64 != n {
        s += &format!(", holds {}", m.held);
    }
    s
}

fn stores_table(sizes: &[u64]) {
    println!("\n### memoflight's stores, u64 -> u64\n");
    println!("| entries | `HashMap` (foldhash) | `Unbounded` store | `Cache` (store + in-flight table) |");
    println!("|---|---|---|---|");
    for &n in sizes {
        let baseline = bytes_per_entry(n, |n| {
            let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
            for k in 0..n {
                map.insert(k, k);
            }
            map
        });
        let store = bytes_per_entry(n, |n| {
            let store = Unbounded::<u64, u64>::new();
            for k in 0..n {
                store.insert(k, k);
            }
            store
        });
        let cache = bytes_per_entry(n, |n| {
            let cache = Cache::new("memory", Unbounded::<u64, u64>::new());
            for k in 0..n {
                cache.get_or_compute(k, || k);
            }
            cache
        });
        println!("| {n} | {baseline:.1} B | {store:.1} B | {cache:.1} B |");
    }
}

fn peers_table(numbers: &[u64], strings: &[u64]) {
    let columns: Vec<(String, u64, bool)> = numbers
        .iter()
        .map(|&n| (format!("u64 → u64, {n} entries"), n, false))
        .chain(strings.iter().map(|&n| {
            (
                format!("`String` → `Vec<u8>` ({VALUE_BYTES} B), {n} entries"),
                n,
                true,
            )
        }))
        .collect();
    println!("\n### Peers and bounded stores, bytes per entry (ratio to the `HashMap`)\n");
    let mut header = String::from("| store |");
    let mut rule = String::from("|---|");
    for (title, _, _) in &columns {
        header += &format!(" {title} |");
        rule += "---|";
    }
    println!("{header}\n{rule}");
    let cells: Vec<Vec<Measured>> = ROWS
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|&(_, n, strings)| {
                    if strings {
                        (row.strings)(n)
                    } else {
                        (row.numbers)(n)
                    }
                })
                .collect()
        })
        .collect();
    for (row, measured) in ROWS.iter().zip(&cells) {
        let mut line = format!("| {} |", row.name);
        for ((m, baseline), (_, n, _)) in measured.iter().zip(&cells[0]).zip(&columns) {
            line += &format!(" {} |", cell(m, baseline, *n));
        }
        println!("{line}");
    }
}

/// The size of each value of the big-values table.
const BIG_VALUE_BYTES: usize = 10 * 1024;

/// Fills `cache` with `n` values of [`BIG_VALUE_BYTES`] through `get_or_compute` (each
/// returned clone dropped at once, as a caller that used it would) and returns the heap's
/// peak during the fill and what stays after it, both as ratios to the payload.
fn big_values<S>(n: u64, cache: Cache<S>) -> (f64, f64)
where
    S: Store<Key = u64, Value = Vec<u8>>,
{
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    for k in 0..n {
        drop(cache.get_or_compute(k, || vec![k as u8; BIG_VALUE_BYTES]));
    }
    let (peak, after) = (PEAK.load(Relaxed), LIVE.load(Relaxed));
    assert_eq!(cache.len() as u64, n, "every value stays");
    let payload = (n as usize * BIG_VALUE_BYTES) as f64;
    (
        (peak - before) as f64 / payload,
        (after - before) as f64 / payload,
    )
}

fn big_values_table(n: u64) {
    println!(
        "\n### Big values: {n} values of {} KB (`Vec<u8>`) through a `Cache`, 1 thread: heap \
         bytes against the payload\n",
        BIG_VALUE_BYTES / 1024
    );
    println!("| store | peak while filling | held after |");
    println!("|---|---|---|");
    let rows = [
        (
            "`Unbounded`",
            big_values(n, Cache::new("big", Unbounded::new())),
        ),
        (
            // Room for a quarter more: its shards split the bound, and a full shard evicts.
            "`Bounded`, `max_size` = 1.25 n",
            big_values(
                n,
                Cache::new("big", Bounded::new().max_size(n as usize * 5 / 4)),
            ),
        ),
    ];
    for (store, (peak, after)) in rows {
        println!("| {store} | {peak:.4}× | {after:.4}× |");
    }
}

fn main() {
    let start = Instant::now();
    if measuring() {
        stores_table(&[10_000, 1_000_000]);
        peers_table(&[100_000, 1_000_000], &[100_000]);
        big_values_table(10_000);
    } else {
        // `cargo test`: unoptimized, so only small stores, to check that every row runs.
        stores_table(&[1_000]);
        peers_table(&[1_000], &[1_000]);
        big_values_table(100);
    }
    eprintln!("\nmemory: {:.1} s", start.elapsed().as_secs_f64());
}
