//! Bytes per entry of the stores, measured with a counting global allocator: live heap bytes
//! after inserting N entries, divided by N. `cargo bench --bench memory`.
#![allow(unsafe_code)]

use memoflight::{Cache, Store, Unbounded};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn bytes_per_entry<T>(n: u64, build: impl FnOnce(u64) -> T) -> f64 {
    let before = LIVE.load(Relaxed);
    let built = build(n);
    let after = LIVE.load(Relaxed);
    drop(built);
    (after - before) as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    for n in [10_000_u64, 1_000_000] {
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
        println!("u64 -> u64, {n} entries: HashMap {baseline:.1} B/entry, Unbounded {store:.1} B/entry, Cache (store + in-flight table) {cache:.1} B/entry");
    }
}
