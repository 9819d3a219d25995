//! Keys: every argument by default, borrowed arguments stored owned, hits that do not
//! allocate, custom keys from an expression, and plugged-in stores.

// The counting allocator below is the one place the tests need `unsafe`.
#![allow(unsafe_code)]

use memoflight::__private::Borrowed;
use memoflight::{cached, Equivalent, Store, Unbounded};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// Counts the allocations made by the current thread.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call forwards its arguments unchanged to the system allocator, which upholds
// the GlobalAlloc contract; the only addition is a thread-local counter that never allocates
// (const-initialised, and `try_with` skips it during thread teardown).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let value = f();
    (value, ALLOCATIONS.with(Cell::get) - before)
}

#[cached]
fn shout(word: &str) -> usize {
    word.len()
}

#[cached]
fn label(name: &str, id: u64, tags: &[u8]) -> usize {
    name.len() + id as usize + tags.len()
}

#[cached]
fn maybe_shout(word: Option<&str>) -> usize {
    word.map_or(0, str::len)
}

#[cached]
fn maybe_label(name: Option<&str>, id: u64, tags: Option<&mut Vec<u8>>) -> usize {
    name.map_or(0, str::len) + id as usize + tags.map_or(0, |tags| tags.len())
}

#[test]
fn hits_on_optional_borrowed_arguments_do_not_allocate() {
    for word in [Some("hello"), None] {
        let expected = word.map_or(0, str::len);
        assert_eq!(maybe_shout(word), expected); // miss: the key is stored as an Option<String>
        maybe_shout(word);
        let (value, allocated) = allocations_during(|| maybe_shout(word));
        assert_eq!((value, allocated), (expected, 0), "{word:?}");
    }
    assert_eq!(maybe_shout_cache().stats().executions, 2);
    // `_prime_cache` removes the key through the same borrowed view, then computes it again.
    assert_eq!(maybe_shout_prime_cache(Some("hello")), 5);
    assert_eq!(maybe_shout_cache().stats().executions, 3);
    assert_eq!(maybe_shout(Some("hello")), 5);
    assert_eq!(
        maybe_shout_cache().stats().executions,
        3,
        "a hit after the priming"
    );
    let mut tags = vec![1, 2];
    assert_eq!(maybe_label(Some("ab"), 1, Some(&mut tags)), 5);
    maybe_label(Some("ab"), 1, Some(&mut tags));
    let (value, allocated) = allocations_during(|| maybe_label(Some("ab"), 1, Some(&mut tags)));
    assert_eq!((value, allocated), (5, 0));
    assert_eq!(maybe_label(None, 1, Some(&mut tags)), 3, "another key");
    let (value, allocated) = allocations_during(|| maybe_label(None, 1, Some(&mut tags)));
    assert_eq!((value, allocated), (3, 0));
    assert_eq!(maybe_label_cache().stats().executions, 2);
    assert_eq!(
        maybe_label_cache().remove(&(Some("ab".to_string()), 1, Some(vec![1, 2]))),
        Some(5)
    );
}

#[test]
fn hits_on_borrowed_arguments_do_not_allocate() {
    assert_eq!(shout("hello"), 5); // miss: the key is stored as a String
    shout("hello"); // first hit on this thread sets up its hit counter
    let (value, allocated) = allocations_during(|| shout("hello"));
    assert_eq!((value, allocated), (5, 0));

    assert_eq!(label("ab", 1, &[1, 2]), 5);
    label("ab", 1, &[1, 2]);
    let (value, allocated) = allocations_during(|| label("ab", 1, &[1, 2]));
    assert_eq!((value, allocated), (5, 0));
    assert_eq!(label_cache().stats().hits, 2);
    // The owned key is (String, u64, Vec<u8>); a borrowed view finds it too.
    assert!(Borrowed(("ab", &1_u64, &[1_u8, 2][..])).equivalent(&(
        "ab".to_string(),
        1,
        vec![1, 2]
    )));
    assert_eq!(
        label_cache().remove(&("ab".to_string(), 1, vec![1, 2])),
        Some(5)
    );
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Point {
    x: i32,
    y: i32,
}

#[cached]
fn norm(point: &Point, scale: i32) -> i32 {
    (point.x.abs() + point.y.abs()) * scale
}

#[cached]
fn destructured((a, b): (u32, u32), mut c: u32) -> u32 {
    c += a + b;
    c
}

#[cached]
fn no_arguments() -> &'static str {
    "constant"
}

#[test]
fn argument_shapes() {
    assert_eq!(norm(&Point { x: 1, y: -2 }, 2), 6);
    assert_eq!(norm(&Point { x: 1, y: -2 }, 2), 6);
    assert_eq!(norm_cache().stats().hits, 1);
    assert_eq!(destructured((1, 2), 3), 6);
    assert_eq!(destructured((1, 2), 3), 6);
    assert_eq!(destructured_cache().stats().executions, 1);
    assert_eq!(no_arguments(), "constant");
    assert_eq!(no_arguments(), "constant");
    assert_eq!(no_arguments_cache().stats().hits, 1);
}

struct Db {
    queries: AtomicUsize,
}

static DB: Db = Db {
    queries: AtomicUsize::new(0),
};

/// The handle is left out of the key by naming the arguments that form it.
#[cached(convert = (id, region))]
fn user_name(db: &Db, id: u64, region: &str) -> String {
    db.queries.fetch_add(1, SeqCst);
    format!("user-{id}@{region}")
}

/// Any expression works; its type is inferred.
#[cached(convert = format!("{}:{}", a % 10, b))]
fn modular(a: u32, b: &str) -> u32 {
    a % 10 + b.len() as u32
}

/// Naming the key type makes the handle's `invalidate` usable with it.
#[cached(convert = a.to_lowercase(), key = String)]
fn case_blind(a: &str) -> usize {
    a.len()
}

#[test]
fn custom_keys() {
    assert_eq!(user_name(&DB, 7, "eu"), "user-7@eu");
    assert_eq!(user_name(&DB, 7, "eu"), "user-7@eu");
    assert_eq!(DB.queries.load(SeqCst), 1);
    assert_eq!(
        user_name_cache().remove(&(7_u64, "eu".to_string())),
        Some("user-7@eu".into())
    );

    assert_eq!(modular(13, "x"), 4);
    assert_eq!(modular(23, "x"), 4, "23 % 10 == 13 % 10: same key");
    assert_eq!(modular_cache().stats().executions, 1);

    assert_eq!(case_blind("ABC"), 3);
    assert_eq!(case_blind("abc"), 3);
    assert_eq!(case_blind_cache().stats().hits, 1);
    assert_eq!(case_blind_cache().remove("abc"), Some(3));
}

/// A store that records what it is asked to keep.
#[derive(Default)]
struct Recording {
    map: Mutex<HashMap<u32, u32>>,
    inserts: AtomicUsize,
}

impl Store for Recording {
    type Key = u32;
    type Value = u32;

    fn get<Q: ?Sized + Hash + Equivalent<u32>>(&self, key: &Q) -> Option<u32> {
        let map = self.map.lock().unwrap();
        map.iter()
            .find(|(k, _)| key.equivalent(*k))
            .map(|(_, v)| *v)
    }
    fn insert(&self, key: u32, value: u32) {
        self.inserts.fetch_add(1, SeqCst);
        self.map.lock().unwrap().insert(key, value);
    }
    fn remove_with<Q: ?Sized + Hash + Equivalent<u32>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&u32) -> R,
    ) -> Option<R> {
        let removed = {
            let mut map = self.map.lock().unwrap();
            let found = *map.keys().find(|k| key.equivalent(*k))?;
            map.remove(&found)
        };
        removed.map(|value| read(&value))
    }
    fn retain(&self, keep: &mut dyn FnMut(&u32, &u32) -> bool) {
        self.map.lock().unwrap().retain(|k, v| keep(k, v));
    }
    fn clear(&self) {
        self.map.lock().unwrap().clear();
    }
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

static RECORDING: std::sync::LazyLock<Recording> = std::sync::LazyLock::new(Recording::default);

#[cached(store = &*RECORDING)]
fn recorded(n: u32) -> u32 {
    n + 100
}

#[cached(store = Recording::default())]
fn owned_store(n: u32) -> u32 {
    n
}

#[cached(store = Unbounded::new())]
fn explicit_default(n: u32) -> u32 {
    n
}

#[test]
fn plugged_in_stores() {
    assert_eq!(recorded(1), 101);
    assert_eq!(recorded(1), 101);
    assert_eq!(RECORDING.inserts.load(SeqCst), 1);
    assert_eq!(recorded_cache().stats().hits, 1);
    assert_eq!(recorded_cache().remove(&1), Some(101));
    assert_eq!(owned_store(2), 2);
    assert_eq!(owned_store_cache().remove(&2), Some(2));
    assert_eq!(explicit_default(3), 3);
    assert_eq!(explicit_default_cache().len(), 1);
}
