//! The hit path of `#[cached]` functions on the default store.
//!
//! Each such function declares two thread-locals of its own (see `memoflight_macros`'s
//! `expand.rs`):
//!
//! - a [`Fast`], made only of `Cell`s of pointers: to the frozen table this thread last took
//!   from the store, and to this thread's hit counter. A thread-local without a destructor is a
//!   plain offset from the thread pointer: no state check, no borrow flag. A hit reads it,
//!   checks the table's `stale` flag, probes the table and bumps the counter, without reaching
//!   the cache's `static` (no lazy-init check either);
//! - an [`Owner`], which owns what those pointers point to (the table's `Arc`, the counter's)
//!   and has a destructor. Only the slow path (a stale table, a thread's first call, a key that
//!   may be pending) touches it.
//!
//! The split is what `unsafe` buys here: through a thread-local with a destructor, a
//! `RefCell` and the cache's `LazyLock`, a hit cost 67 instructions against 35 for a read-only
//! `HashMap` (callgrind, `benches/hit_instructions.rs`); see `benches/README.md` for this one.
//!
//! # Why the pointers are valid (the invariant every function here keeps)
//!
//! A non-null `Fast::frozen` points into the `Arc` that the `Owner` bound to that `Fast` holds,
//! and a `Fast::hits` set with it into its counter's `Arc`. It holds because:
//!
//! 1. only [`Owner::refresh`] and `Owner::drop` set them, and each sets them to what the owner
//!    holds *before* it lets go of what it held (setting null on drop), while a [`Reading`]
//!    only sets `frozen` aside (null) and puts the same pointer back;
//! 2. an owner and a `Fast` are bound to each other once, both of the calling thread (each is
//!    reached through its `LocalKey`), and neither ever serves another: a refresh through any
//!    other pair is refused and the caller takes the generic path;
//! 3. a refresh is refused while a read of the table is in progress (the owner holds a table
//!    but `Fast::frozen` is null), so a read that runs user code (a key's `Eq`, a value's
//!    `Clone`) that calls the function again never has its table freed under it;
//! 4. an owner dropped while a read is in progress (it cannot happen: thread-local destructors
//!    run one by one after the thread's code) leaks its table and counter rather than free
//!    them.

#![allow(unsafe_code)]

use crate::cache::Cache;
use crate::stats::Counters;
use crate::store::{Frozen, Unbounded};
use crate::sync::Padded;
use equivalent::Equivalent;
use std::cell::{Cell, RefCell};
use std::hash::Hash;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::LocalKey;

/// A thread's pointers into one memoized function's store. For generated code: it lives in a
/// `const`-initialized `thread_local!` next to its [`Owner`].
#[doc(hidden)]
pub struct Fast<K, V> {
    /// The table the owner holds; null before the first refresh, while a read of it is in
    /// progress (see [`Reading`]), and after the owner's drop.
    frozen: Cell<*const Frozen<K, V>>,
    /// This thread's hit counter, which the owner holds; set with `frozen`.
    hits: Cell<*const AtomicU64>,
    /// The owner this is bound to (its address), null until the first refresh.
    owner: Cell<*const ()>,
}

/// What owns the targets of a [`Fast`]'s pointers. For generated code: it lives in a
/// `const`-initialized `thread_local!` next to its `Fast`.
#[doc(hidden)]
pub struct Owner<K: 'static, V: 'static> {
    /// The bound `Fast`: its key (to reach it from `drop`) and this thread's instance.
    fast: Cell<Option<FastOfThisThread<K, V>>>,
    /// The bound cache's counters (also what identifies the cache: each has its own), where
    /// `hits` is registered; `None` until the first refresh.
    counters: Cell<Option<&'static Counters>>,
    frozen: RefCell<Option<Arc<Frozen<K, V>>>>,
    hits: RefCell<Option<Arc<Padded<AtomicU64>>>>,
}

/// A `Fast` thread-local's key, and its instance of the calling thread.
type FastOfThisThread<K, V> = (&'static LocalKey<Fast<K, V>>, *const Fast<K, V>);

/// What a read through a [`Fast`] found. For generated code.
#[doc(hidden)]
pub enum Found<V> {
    /// The key's value (a hit, counted).
    Value(V),
    /// The key is not in the store.
    Absent,
    /// The table is missing or stale, or the key may be among the pending entries.
    AskTheStore,
}

/// A read through a [`Fast`] in progress. The `Fast`'s table pointer is set aside (it reads
/// null) until this drops, also when user code unwinds: a call that re-enters the function from
/// a key's `Eq` or a value's `Clone` neither uses the table nor lets a refresh free it.
struct Reading<'a, K, V> {
    slot: &'a Cell<*const Frozen<K, V>>,
    table: &'a Frozen<K, V>,
}

impl<K, V> Reading<'_, K, V> {
    /// The table, for as long as this read lasts.
    #[inline(always)]
    fn table(&self) -> &Frozen<K, V> {
        self.table
    }
}

impl<K, V> Drop for Reading<'_, K, V> {
    #[inline(always)]
    fn drop(&mut self) {
        self.slot.set(self.table);
    }
}

impl<K, V> Fast<K, V> {
    /// Nothing bound yet, for a `const`-initialized `thread_local!`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Fast {
            frozen: Cell::new(ptr::null()),
            hits: Cell::new(ptr::null()),
            owner: Cell::new(ptr::null()),
        }
    }

    /// Starts a read of this thread's table, if it has one that is current and no read of it
    /// is in progress.
    #[inline(always)]
    fn read(&self) -> Option<Reading<'_, K, V>> {
        let frozen = self.frozen.get();
        if frozen.is_null() {
            return None;
        }
        // SAFETY: non-null, so it points into the `Arc` its bound owner holds (module docs,
        // point 1). That `Arc` outlives the returned `Reading`: with the pointer set aside
        // below, the owner neither refreshes (point 3) nor frees it (point 4) until the
        // `Reading` puts it back.
        let table = unsafe { &*frozen };
        if table.is_stale() {
            return None;
        }
        self.frozen.set(ptr::null());
        Some(Reading {
            slot: &self.frozen,
            table,
        })
    }

    /// Adds one to this thread's hit counter.
    #[inline(always)]
    fn count_hit(&self) {
        // SAFETY: called only after a `Reading` of this call, so `hits` is set (it is set with
        // `frozen`, module docs point 1) and its owner holds it (an owner dropped during the
        // read leaks it, point 4).
        let hits = unsafe { &*self.hits.get() };
        // Only this thread writes its counter: load + store loses no increment.
        hits.store(hits.load(Relaxed) + 1, Relaxed);
    }
}

impl<K: Eq, V: Clone> Fast<K, V> {
    /// The hit path: the current table's value for `key`, without a lock or a shared write.
    #[inline(always)]
    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Found<V> {
        let Some(reading) = self.read() else {
            return Found::AskTheStore;
        };
        let table = reading.table();
        if let Some(value) = table.find(key) {
            let value = value.clone();
            drop(reading);
            self.count_hit();
            return Found::Value(value);
        }
        let pending = table.may_have_pending();
        drop(reading);
        match pending {
            true => Found::AskTheStore,
            false => Found::Absent,
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync, V: Clone + Send + Sync> Fast<K, V> {
    /// A read in this thread's current table, then among `store`'s pending entries if the
    /// table says they may hold the key; `None` if the table is missing or stale.
    fn get_in<Q: ?Sized + Hash + Equivalent<K>>(
        &self,
        store: &Unbounded<K, V>,
        key: &Q,
    ) -> Option<Option<V>> {
        let reading = self.read()?;
        let value = store.get_in(reading.table(), key);
        drop(reading);
        if value.is_some() {
            self.count_hit();
        }
        Some(value)
    }
}

impl<K, V> Owner<K, V> {
    /// Nothing bound yet, for a `const`-initialized `thread_local!`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Owner {
            fast: Cell::new(None),
            counters: Cell::new(None),
            frozen: RefCell::new(None),
            hits: RefCell::new(None),
        }
    }
}

impl<K, V> Owner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Binds this owner, `fast_key`'s instance of this thread and `cache` to each other (the
    /// first time), and points the `Fast` at the store's current table and this thread's hit
    /// counter. Returns `false`, changing nothing, if the three are bound otherwise or a read
    /// through the `Fast` is in progress: the caller then takes the generic path.
    fn refresh(
        &self,
        cache: &'static Cache<Unbounded<K, V>>,
        fast_key: &'static LocalKey<Fast<K, V>>,
    ) -> bool {
        let refreshed = fast_key.try_with(|fast| {
            if !self.bind(cache, fast_key, fast) {
                return false;
            }
            // Busy only while this very function runs further down the stack (re-entered from
            // the `Drop` of a table it let go of): take the generic path.
            let (Ok(mut frozen), Ok(mut hits)) =
                (self.frozen.try_borrow_mut(), self.hits.try_borrow_mut())
            else {
                return false;
            };
            if frozen.is_some() && fast.frozen.get().is_null() {
                // A read of the table is in progress further down the stack.
                return false;
            }
            let counter = hits.get_or_insert_with(|| cache.counters().register_local_hits());
            fast.hits.set(&counter.0);
            if frozen.as_ref().is_some_and(|table| !table.is_stale()) {
                return true;
            }
            let current = cache.store().current();
            fast.frozen.set(Arc::as_ptr(&current));
            let old = frozen.replace(current);
            drop((frozen, hits));
            // The old table's entries are dropped here, every pointer already moved on.
            drop(old);
            true
        });
        refreshed == Ok(true)
    }

    /// The first time, binds `self`, `fast` and `cache`; afterwards, checks they are the ones
    /// bound.
    fn bind(
        &self,
        cache: &'static Cache<Unbounded<K, V>>,
        fast_key: &'static LocalKey<Fast<K, V>>,
        fast: &Fast<K, V>,
    ) -> bool {
        let me = self as *const Self as *const ();
        let counters = cache.counters();
        let fast_ptr = fast as *const Fast<K, V>;
        if self.fast.get().is_none() && fast.owner.get().is_null() {
            self.fast.set(Some((fast_key, fast_ptr)));
            self.counters.set(Some(counters));
            fast.owner.set(me);
        }
        let mine = self
            .fast
            .get()
            .is_some_and(|(_, bound)| ptr::eq(bound, fast_ptr));
        let same_cache = self
            .counters
            .get()
            .is_some_and(|bound| ptr::eq(bound, counters));
        mine && same_cache && fast.owner.get() == me
    }
}

impl<K: 'static, V: 'static> Drop for Owner<K, V> {
    fn drop(&mut self) {
        let Some((fast_key, bound)) = self.fast.get() else {
            return;
        };
        let reading = fast_key.try_with(|fast| {
            if !ptr::eq(fast, bound) {
                return false;
            }
            let reading = fast.frozen.get().is_null() && self.frozen.get_mut().is_some();
            if !reading {
                fast.frozen.set(ptr::null());
                fast.hits.set(ptr::null());
            }
            reading
        });
        if reading == Ok(true) {
            // A read is using the table (module docs, point 4): leak it rather than free it,
            // and keep the counter registered (the read will count its hit).
            std::mem::forget(self.frozen.take());
            std::mem::forget(self.hits.take());
            return;
        }
        // The thread is ending: its hits go to the cache's total, its counter away.
        if let (Some(counters), Some(hits)) = (self.counters.get(), self.hits.get_mut()) {
            counters.end_local_hits(hits);
        }
    }
}

impl<K, V> Cache<Unbounded<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// The hit path of a `#[cached]` function on the default store: what this thread's table
    /// (in `fast`) says of `key`, counting a hit. On [`Found::AskTheStore`], the caller goes on
    /// to [`__lookup_slow`](Self::__lookup_slow). For generated code; a function's code calls
    /// it on the `LazyLock` that holds its cache (trait [`FastPath`]), so that a hit does not
    /// check that the cache is initialized.
    ///
    /// (A method, like every entry point of generated code that depends on the key and value
    /// types: a type that misses a bound is then reported once, on the cache's type.)
    #[doc(hidden)]
    #[inline(always)]
    pub fn __lookup_fast<Q>(&'static self, fast: &'static LocalKey<Fast<K, V>>, key: &Q) -> Found<V>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        lookup_fast(fast, key)
    }

    /// [`__lookup_fast`](Self::__lookup_fast) when the thread's table is missing or stale, or the key may be pending:
    /// `key`'s value, counting a hit, or `None`. For generated code.
    ///
    /// `fast` and `owner` must be the function's own thread-locals, serving this cache only:
    /// bound otherwise, this still returns the store's value, through the generic path.
    #[doc(hidden)]
    #[cold]
    #[inline(never)]
    pub fn __lookup_slow<Q>(
        &'static self,
        fast: &'static LocalKey<Fast<K, V>>,
        owner: &'static LocalKey<Owner<K, V>>,
        key: &Q,
    ) -> Option<V>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        if owner.try_with(|owner| owner.refresh(self, fast)) == Ok(true) {
            if let Ok(Some(found)) = fast.try_with(|fast| fast.get_in(self.store(), key)) {
                return found;
            }
        }
        // During thread teardown (the owner is gone), a re-entrant refresh, or a table that
        // went stale since the refresh.
        self.__lookup(key)
    }
}

/// The hit path of a `#[cached]` function on the default store, called on its cache's `static`
/// without initializing it (see [`Cache::__lookup_fast`]). For generated code.
#[doc(hidden)]
pub trait FastPath<K: 'static, V: 'static> {
    /// See [`Cache::__lookup_fast`].
    fn __lookup_fast<Q: ?Sized + Hash + Equivalent<K>>(
        &'static self,
        fast: &'static LocalKey<Fast<K, V>>,
        key: &Q,
    ) -> Found<V>;
}

impl<K, V> FastPath<K, V> for std::sync::LazyLock<Cache<Unbounded<K, V>>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    #[inline(always)]
    fn __lookup_fast<Q: ?Sized + Hash + Equivalent<K>>(
        &'static self,
        fast: &'static LocalKey<Fast<K, V>>,
        key: &Q,
    ) -> Found<V> {
        lookup_fast(fast, key)
    }
}

#[inline(always)]
fn lookup_fast<K: Eq + 'static, V: Clone + 'static, Q: ?Sized + Hash + Equivalent<K>>(
    fast: &'static LocalKey<Fast<K, V>>,
    key: &Q,
) -> Found<V> {
    fast.try_with(|fast| fast.get(key))
        .unwrap_or(Found::AskTheStore)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    type Memo = Cache<Unbounded<u64, u64>>;

    static A: LazyLock<Memo> = LazyLock::new(|| Cache::new("a", Unbounded::new()));
    static B: LazyLock<Memo> = LazyLock::new(|| Cache::new("b", Unbounded::new()));

    thread_local! {
        static FAST: Fast<u64, u64> = const { Fast::new() };
        static OWNER: Owner<u64, u64> = const { Owner::new() };
        static OTHER_FAST: Fast<u64, u64> = const { Fast::new() };
    }

    /// What generated code does for a hit on `cache`.
    fn lookup(
        cache: &'static Memo,
        fast: &'static LocalKey<Fast<u64, u64>>,
        key: u64,
    ) -> Option<u64> {
        match cache.__lookup_fast(fast, &key) {
            Found::Value(value) => Some(value),
            Found::Absent => None,
            Found::AskTheStore => cache.__lookup_slow(fast, &OWNER, &key),
        }
    }

    #[test]
    fn thread_locals_bound_to_one_cache_give_other_caches_their_own_values() {
        A.get_or_compute(1, || 10);
        B.get_or_compute(1, || 20);
        std::thread::spawn(|| {
            assert_eq!(lookup(&A, &FAST, 1), Some(10)); // binds FAST and OWNER to A
                                                        // B through OWNER, bound to A: refused, served by the generic path.
            assert_eq!(B.__lookup_slow(&FAST, &OWNER, &1), Some(20));
            // A second `Fast` with OWNER, bound to FAST: refused too.
            assert_eq!(A.__lookup_slow(&OTHER_FAST, &OWNER, &1), Some(10));
            assert!(matches!(
                A.__lookup_fast(&OTHER_FAST, &1),
                Found::AskTheStore
            ));
            assert_eq!(lookup(&A, &FAST, 1), Some(10));
        })
        .join()
        .unwrap();
        assert_eq!(A.stats().hits, 3);
        assert_eq!(B.stats().hits, 1);
    }

    static C: LazyLock<Memo> = LazyLock::new(|| Cache::new("c", Unbounded::new()));

    #[test]
    fn an_ended_threads_hits_stay_counted_and_its_counter_is_forgotten() {
        C.get_or_compute(1, || 10);
        for _ in 0..20 {
            std::thread::spawn(|| {
                for _ in 0..5 {
                    assert_eq!(lookup(&C, &FAST, 1), Some(10));
                }
            })
            .join()
            .unwrap();
        }
        assert_eq!(C.stats().hits, 100);
        assert_eq!(crate::sync::lock(&C.counters().local_hits).live.len(), 0);
    }
}
