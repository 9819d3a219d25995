//! The default store: unbounded, read-optimized.
//!
//! # Design (numbers in `benches/README.md`)
//!
//! Values live in an immutable *frozen* table, published as an `Arc`. Each thread keeps its
//! own clone of the latest `Arc` it saw and, on every read, checks the table's `stale` flag (a
//! load from the table's own header, written once: when the next table is published): a hit
//! in a current frozen table takes no lock and writes no memory that another thread reads. A
//! lock that every reader takes (`RwLock`, dashmap's shards) makes two cores bounce its cache
//! line and halves hit throughput.
//!
//! Writes go to a small *pending* table under the writer's mutex. Readers consult it (under
//! that mutex) only for keys absent from the frozen table, and only once the frozen table's
//! `pending` flag says pending entries may exist. Pending entries are merged into a new frozen
//! table (a copy: O(entries)) when they reach half its size, or after the pending table has
//! answered as many reads as a quarter of its size, so a hot new key is promoted to the
//! lock-free path after a bounded number of locked reads. Both triggers make the copying
//! amortized O(1) per write or locked read. Removing or replacing a key of the frozen table
//! publishes a new table at once (O(entries)): invalidation costs a copy, the price of hits
//! without a lock.
//!
//! # Why a read is linearizable
//!
//! Every publish stores the new table in `published` and then marks the table it replaced
//! `stale` (release), under the writer's lock, before the write that caused it returns. So
//! every table but the current one is stale, and a read that starts after a write returned
//! sees the old table stale (its acquire load happens after the release) and takes the new
//! one. A read that found its table not stale reads a state that was current at that instant;
//! the table itself never changes. The `pending` flag is set (release) under the writer's lock
//! when an entry goes to the pending table, before the insert returns; a read that starts
//! after it sees the flag, or the table stale.
//!
//! A thread's copy of an old table is released at its next read of this store: a thread that
//! stops calling keeps the table it last saw alive (as `arc_swap::Cache` does).

use crate::store::Store;
use crate::sync::{lock, AtomicBool, Mutex};
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;

/// A thread's copy of the latest table it saw (the generic path, [`Store::get`]; generated
/// code keeps its own, see `crate::local`).
#[cfg(not(memoflight_loom))]
type Local<K, V> = crate::sync::Padded<std::cell::RefCell<Option<Arc<Frozen<K, V>>>>>;

/// An unbounded concurrent store: every value stays until it is invalidated or cleared.
///
/// Hits take no lock; see the module documentation for how, and what writes cost.
///
/// ```
/// use memoflight::{Store, Unbounded};
///
/// let store = Unbounded::<String, u32>::new();
/// store.insert("a".to_string(), 1);
/// assert_eq!(store.get("a"), Some(1)); // looked up by &str: no allocation
/// assert_eq!(store.remove("a"), Some(1));
/// assert!(store.is_empty());
/// ```
pub struct Unbounded<K: Send + Sync, V: Send + Sync> {
    hasher: RandomState,
    /// The current frozen table, for threads whose own copy is stale.
    published: Mutex<Arc<Frozen<K, V>>>,
    /// The writers' side: pending entries and the merge budget.
    writer: Mutex<Pending<K, V>>,
    /// Each thread's copy of the latest table it saw, padded against false sharing (the
    /// threads' slots are adjacent in memory). Not under loom, whose model threads may share an
    /// OS thread: reads there go to `published`.
    #[cfg(not(memoflight_loom))]
    locals: thread_local::ThreadLocal<Local<K, V>>,
}

/// An immutable table of values, with the two flags a reader checks. Everything a hit reads
/// before reaching its bucket (the flags, the hasher, the table's header) sits in this one
/// allocation.
pub(crate) struct Frozen<K, V> {
    table: HashTable<(K, V)>,
    /// The store's hasher (a copy): a hit hashes without reaching the store.
    hasher: RandomState,
    /// Set once, when a newer table is published; never cleared.
    stale: AtomicBool,
    /// Set when entries may exist in the pending table beside this one; never cleared (the
    /// merge that empties the pending table publishes a new table).
    pending: AtomicBool,
}

impl<K, V> Frozen<K, V> {
    fn new(table: HashTable<(K, V)>, hasher: &RandomState) -> Self {
        Frozen {
            table,
            hasher: hasher.clone(),
            stale: AtomicBool::new(false),
            pending: AtomicBool::new(false),
        }
    }

    /// Whether a newer table replaced this one.
    // Loom's reads always take the current table (see `Store::get`).
    #[cfg_attr(memoflight_loom, allow(dead_code))]
    #[inline(always)]
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Acquire)
    }

    /// Whether entries absent from this table may be in the store's pending table.
    #[inline(always)]
    pub(crate) fn may_have_pending(&self) -> bool {
        self.pending.load(Acquire)
    }

    /// The value of `key` in this table.
    #[inline(always)]
    pub(crate) fn find<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |(k, _)| key.equivalent(k))
            .map(|(_, v)| v)
    }
}

struct Pending<K, V> {
    /// The published table (the same `Arc` as `Unbounded::published`).
    current: Arc<Frozen<K, V>>,
    /// Entries written since the last merge; none of their keys is in `current`.
    entries: HashTable<(K, V)>,
    /// Reads answered from `entries` since the last merge.
    locked_hits: usize,
}

impl<K: Eq + Send + Sync, V: Send + Sync> Unbounded<K, V> {
    /// Creates an empty store.
    pub fn new() -> Self {
        let hasher = RandomState::default();
        let current = Arc::new(Frozen::new(HashTable::new(), &hasher));
        Unbounded {
            published: Mutex::new(Arc::clone(&current)),
            writer: Mutex::new(Pending {
                current,
                entries: HashTable::new(),
                locked_hits: 0,
            }),
            hasher,
            #[cfg(not(memoflight_loom))]
            locals: thread_local::ThreadLocal::new(),
        }
    }
}

impl<K: Eq + Send + Sync, V: Send + Sync> Default for Unbounded<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Unbounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Publishes `table` as the new frozen table and marks the one it replaces stale, under
    /// the writer's lock.
    fn publish(&self, writer: &mut Pending<K, V>, table: HashTable<(K, V)>) {
        let frozen = Arc::new(Frozen::new(table, &self.hasher));
        let old = std::mem::replace(&mut writer.current, Arc::clone(&frozen));
        *lock(&self.published) = frozen;
        old.stale.store(true, Release);
    }

    /// Publishes a new frozen table made of the current one and the pending entries. The
    /// current table is cloned as it is (hashbrown copies its control bytes: nothing is hashed
    /// again), so a merge costs one clone per frozen entry and one insert per pending entry.
    fn merge_pending(&self, writer: &mut Pending<K, V>) {
        let mut table = HashTable::clone(&writer.current.table);
        let pending = std::mem::take(&mut writer.entries);
        table.reserve(pending.len(), |(k, _)| self.hasher.hash_one(k));
        for (key, value) in pending {
            let hash = self.hasher.hash_one(&key);
            table.insert_unique(hash, (key, value), |(k, _)| self.hasher.hash_one(k));
        }
        writer.locked_hits = 0;
        self.publish(writer, table);
    }

    /// Publishes a new frozen table made of the current one and the pending entries, less
    /// the entries `keep` rejects, plus `extra`; the pending table is emptied. O(entries).
    fn rebuild(
        &self,
        writer: &mut Pending<K, V>,
        mut keep: impl FnMut(&K, &V) -> bool,
        extra: Option<(K, V)>,
    ) {
        let capacity = writer.current.table.len() + writer.entries.len() + 1;
        let mut table = HashTable::with_capacity(capacity);
        let hasher = &self.hasher;
        let old = Arc::clone(&writer.current);
        let pending = std::mem::take(&mut writer.entries);
        let kept = old
            .table
            .iter()
            .cloned()
            .chain(pending)
            .filter(|(k, v)| keep(k, v));
        for (key, value) in kept.chain(extra) {
            let hash = hasher.hash_one(&key);
            table.insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k));
        }
        writer.locked_hits = 0;
        self.publish(writer, table);
    }

    /// The current frozen table.
    pub(crate) fn current(&self) -> Arc<Frozen<K, V>> {
        Arc::clone(&lock(&self.published))
    }

    /// A read in `frozen`, a table that was current when the caller took it, then in the
    /// pending entries if `frozen` says they may hold it.
    #[inline(always)]
    pub(crate) fn get_in<Q: ?Sized + Hash + Equivalent<K>>(
        &self,
        frozen: &Frozen<K, V>,
        key: &Q,
    ) -> Option<V> {
        match frozen.find(key) {
            Some(value) => Some(value.clone()),
            None if frozen.may_have_pending() => self.get_locked(key, frozen),
            None => None,
        }
    }

    /// The locked part of a read: the pending entries, then the current frozen table.
    ///
    /// `searched` is the frozen table the caller already searched without a lock: if it is
    /// still the current one, it is not searched again (a miss in a large table costs a cache
    /// miss per probe).
    #[cold]
    pub(crate) fn get_locked<Q: ?Sized + Hash + Equivalent<K>>(
        &self,
        key: &Q,
        searched: &Frozen<K, V>,
    ) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let mut writer = lock(&self.writer);
        if let Some((_, value)) = writer.entries.find(hash, |(k, _)| key.equivalent(k)) {
            let value = value.clone();
            writer.locked_hits += 1;
            if writer.locked_hits >= 64 + writer.current.table.len() / 4 {
                self.merge_pending(&mut writer);
            }
            return Some(value);
        }
        if std::ptr::eq(Arc::as_ptr(&writer.current), searched) {
            return None;
        }
        writer.current.find(key).cloned()
    }
}

impl<K, V> Store for Unbounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    #[inline]
    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        #[cfg(not(memoflight_loom))]
        {
            // Busy only when `get` re-enters itself (from a key's `Eq` or a value's `Clone`):
            // the inner read then takes the current table under the lock.
            let Ok(mut local) = self.locals.get_or(Local::default).0.try_borrow_mut() else {
                return self.get_in(&self.current(), key);
            };
            if local.as_ref().map_or(true, |frozen| frozen.is_stale()) {
                *local = Some(self.current());
            }
            let frozen = local.as_deref().expect("just refreshed");
            self.get_in(frozen, key)
        }
        #[cfg(memoflight_loom)]
        self.get_in(&self.current(), key)
    }

    fn insert(&self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        let mut writer = lock(&self.writer);
        if writer.current.find(&key).is_some() {
            // Replacing a frozen value: publish a copy with the new value (rare when memoizing:
            // a key is inserted after it missed).
            let stale = key.clone();
            self.rebuild(&mut writer, |k, _| *k != stale, Some((key, value)));
            return;
        }
        match writer.entries.find_mut(hash, |(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => {
                writer
                    .entries
                    .insert_unique(hash, (key, value), |(k, _)| self.hasher.hash_one(k));
            }
        }
        if writer.entries.len() >= 32 + writer.current.table.len() / 2 {
            self.merge_pending(&mut writer);
        } else {
            writer.current.pending.store(true, Release);
        }
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let mut writer = lock(&self.writer);
        if let Ok(entry) = writer.entries.find_entry(hash, |(k, _)| key.equivalent(k)) {
            return Some(entry.remove().0 .1);
        }
        let value = writer.current.find(key)?.clone();
        self.rebuild(&mut writer, |k, _| !key.equivalent(k), None);
        Some(value)
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        let mut writer = lock(&self.writer);
        self.rebuild(&mut writer, keep, None);
    }

    fn clear(&self) {
        let mut writer = lock(&self.writer);
        writer.entries = HashTable::new();
        writer.locked_hits = 0;
        self.publish(&mut writer, HashTable::new());
    }

    fn len(&self) -> usize {
        let writer = lock(&self.writer);
        writer.current.table.len() + writer.entries.len()
    }
}
