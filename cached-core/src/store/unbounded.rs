//! The default store: unbounded, read-optimized.
//!
//! # Design (numbers in `benches/README.md`)
//!
//! Values live in an immutable *frozen* table, published as an `Arc` together with a
//! generation number. Each thread keeps its own copy of the latest `Arc` it saw and, on every
//! read, compares the store's generation (one shared load, of a cache line that is written only
//! when a new table is published) with its copy's: a hit in the frozen table takes no lock and
//! writes no memory that another thread reads. A lock that every reader takes (`RwLock`,
//! dashmap's shards) makes two cores bounce its cache line and halves hit throughput.
//!
//! Writes go to a small *pending* table under the writer's mutex. Readers consult it (under
//! that mutex) only for keys absent from the frozen table, and only while it is non-empty.
//! Pending entries are merged into a new frozen table (a copy: O(entries)) when they reach half
//! its size, or after the pending table has answered as many reads as a quarter of its size,
//! so a hot new key is promoted to the lock-free path after a bounded number of locked reads.
//! Both triggers make the copying amortized O(1) per write or locked read. Removing or replacing
//! a key of the frozen table publishes a new table at once (O(entries)): invalidation costs a
//! copy, the price of hits without a lock.
//!
//! A thread's copy of an old table is released at its next read of this store: a thread that
//! stops calling keeps the table it last saw alive (as `arc_swap::Cache` does).

use crate::store::Store;
use crate::sync::{lock, AtomicU64, Mutex};
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering::Release;
use std::sync::Arc;

/// A thread's copy of the latest snapshot it saw, flattened so that a hit follows one pointer
/// (to the frozen table) instead of two.
#[cfg(not(memoflight_loom))]
pub(crate) type SnapshotCell<K, V> = std::cell::RefCell<Option<Copy<K, V>>>;

/// The fields of a [`Snapshot`] a read needs.
#[cfg(not(memoflight_loom))]
pub(crate) struct Copy<K, V> {
    generation: u64,
    pending: bool,
    frozen: Arc<HashTable<(K, V)>>,
}

/// [`SnapshotCell`] padded against false sharing (neighbouring threads' slots are adjacent in
/// memory and written on every read).
#[cfg(not(memoflight_loom))]
type Local<K, V> = crate::sync::Padded<SnapshotCell<K, V>>;

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
    /// The generation of the latest published snapshot; bumped (release) after each publish.
    generation: AtomicU64,
    /// The latest snapshot, for threads whose own copy is stale.
    published: Mutex<Arc<Snapshot<K, V>>>,
    /// The writers' side: pending entries and the merge budget.
    writer: Mutex<Pending<K, V>>,
    /// Each thread's copy of the latest snapshot it saw, padded against false sharing. Not
    /// under loom, whose model threads may share an OS thread: reads there go to `published`.
    #[cfg(not(memoflight_loom))]
    locals: thread_local::ThreadLocal<Local<K, V>>,
}

/// An immutable view: the frozen table, and whether pending entries may exist beside it.
pub(crate) struct Snapshot<K, V> {
    generation: u64,
    frozen: Arc<HashTable<(K, V)>>,
    pending: bool,
}

struct Pending<K, V> {
    /// The published snapshot (the same `Arc` as `Unbounded::published`).
    current: Arc<Snapshot<K, V>>,
    /// Entries written since the last merge; none of their keys is in `current.frozen`.
    entries: HashTable<(K, V)>,
    /// Reads answered from `entries` since the last merge.
    locked_hits: usize,
}

impl<K: Send + Sync, V: Send + Sync> Unbounded<K, V> {
    /// Creates an empty store.
    pub fn new() -> Self {
        let snapshot = Arc::new(Snapshot {
            generation: 0,
            frozen: Arc::new(HashTable::new()),
            pending: false,
        });
        Unbounded {
            hasher: RandomState::default(),
            generation: AtomicU64::new(0),
            published: Mutex::new(Arc::clone(&snapshot)),
            writer: Mutex::new(Pending {
                current: snapshot,
                entries: HashTable::new(),
                locked_hits: 0,
            }),
            #[cfg(not(memoflight_loom))]
            locals: thread_local::ThreadLocal::new(),
        }
    }
}

impl<K: Send + Sync, V: Send + Sync> Default for Unbounded<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Unbounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Publishes a snapshot made of `frozen` and the `pending` flag, under the writer's lock.
    fn publish(&self, writer: &mut Pending<K, V>, frozen: Arc<HashTable<(K, V)>>, pending: bool) {
        let generation = writer.current.generation + 1;
        let snapshot = Arc::new(Snapshot {
            generation,
            frozen,
            pending,
        });
        writer.current = Arc::clone(&snapshot);
        *lock(&self.published) = snapshot;
        self.generation.store(generation, Release);
    }

    /// Publishes a new frozen table made of the current one and the pending entries. The
    /// current table is cloned as it is (hashbrown copies its control bytes: nothing is hashed
    /// again), so a merge costs one clone per frozen entry and one insert per pending entry.
    fn merge_pending(&self, writer: &mut Pending<K, V>) {
        let mut frozen = HashTable::clone(&writer.current.frozen);
        let pending = std::mem::take(&mut writer.entries);
        frozen.reserve(pending.len(), |(k, _)| self.hasher.hash_one(k));
        for (key, value) in pending {
            let hash = self.hasher.hash_one(&key);
            frozen.insert_unique(hash, (key, value), |(k, _)| self.hasher.hash_one(k));
        }
        writer.locked_hits = 0;
        self.publish(writer, Arc::new(frozen), false);
    }

    /// Publishes a new frozen table made of the current one and the pending entries, less
    /// the entries `keep` rejects, plus `extra`; the pending table is emptied. O(entries).
    fn rebuild(
        &self,
        writer: &mut Pending<K, V>,
        mut keep: impl FnMut(&K, &V) -> bool,
        extra: Option<(K, V)>,
    ) {
        let capacity = writer.current.frozen.len() + writer.entries.len() + 1;
        let mut frozen = HashTable::with_capacity(capacity);
        let hasher = &self.hasher;
        let old = Arc::clone(&writer.current.frozen);
        let pending = std::mem::take(&mut writer.entries);
        let kept = old
            .iter()
            .cloned()
            .chain(pending)
            .filter(|(k, v)| keep(k, v));
        for (key, value) in kept.chain(extra) {
            let hash = hasher.hash_one(&key);
            frozen.insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k));
        }
        writer.locked_hits = 0;
        self.publish(writer, Arc::new(frozen), false);
    }

    /// A read through `local`, the calling thread's copy of the snapshot: refreshed if the
    /// store published a newer one, then searched without a lock; the pending entries are
    /// consulted (locked) only for a key absent from it while pending entries exist.
    ///
    /// `local` must belong to the calling thread (a `thread_local!` or this store's
    /// `ThreadLocal`); the generated code of `#[cached]` passes its function's own.
    // Always inlined: as a call, its register saves and restores were 16 of the ~60
    // instructions a hit costs (callgrind); the slow parts (`get_locked`, the refresh) are
    // out of line anyway.
    #[cfg(not(memoflight_loom))]
    #[inline(always)]
    pub(crate) fn get_via<Q: ?Sized + Hash + Equivalent<K>>(
        &self,
        local: &SnapshotCell<K, V>,
        key: &Q,
    ) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let found = {
            let mut local = local.borrow_mut();
            let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
            let snapshot = match &*local {
                Some(copy) if copy.generation == generation => copy,
                _ => {
                    let published = lock(&self.published);
                    local.insert(Copy {
                        generation: published.generation,
                        pending: published.pending,
                        frozen: Arc::clone(&published.frozen),
                    })
                }
            };
            match snapshot.frozen.find(hash, |(k, _)| key.equivalent(k)) {
                Some((_, value)) => Ok(value.clone()),
                None => Err(snapshot.pending.then_some(snapshot.generation)),
            }
        };
        match found {
            Ok(value) => Some(value),
            Err(None) => None,
            Err(Some(searched)) => self.get_locked(hash, key, searched),
        }
    }

    /// The locked part of a read: the pending entries, then the current frozen table.
    #[cold]
    ///
    /// `searched` is the generation of the frozen table the caller already searched without a
    /// lock: if it is still the current one, it is not searched again (a miss in a large
    /// table costs a cache miss per probe).
    fn get_locked<Q: ?Sized + Equivalent<K>>(
        &self,
        hash: u64,
        key: &Q,
        searched: u64,
    ) -> Option<V> {
        let mut writer = lock(&self.writer);
        if let Some((_, value)) = writer.entries.find(hash, |(k, _)| key.equivalent(k)) {
            let value = value.clone();
            writer.locked_hits += 1;
            if writer.locked_hits >= 64 + writer.current.frozen.len() / 4 {
                self.merge_pending(&mut writer);
            }
            return Some(value);
        }
        if writer.current.generation == searched {
            return None;
        }
        let frozen = &writer.current.frozen;
        frozen
            .find(hash, |(k, _)| key.equivalent(k))
            .map(|(_, v)| v.clone())
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
        return self.get_via(&self.locals.get_or(Local::default).0, key);
        #[cfg(memoflight_loom)]
        {
            let hash = self.hasher.hash_one(key);
            let snapshot = Arc::clone(&lock(&self.published));
            match snapshot.frozen.find(hash, |(k, _)| key.equivalent(k)) {
                Some((_, value)) => Some(value.clone()),
                None if snapshot.pending => self.get_locked(hash, key, snapshot.generation),
                None => None,
            }
        }
    }

    fn insert(&self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        let mut writer = lock(&self.writer);
        if writer
            .current
            .frozen
            .find(hash, |(k, _)| *k == key)
            .is_some()
        {
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
        if writer.entries.len() >= 32 + writer.current.frozen.len() / 2 {
            self.merge_pending(&mut writer);
        } else if !writer.current.pending {
            let frozen = Arc::clone(&writer.current.frozen);
            self.publish(&mut writer, frozen, true);
        }
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let mut writer = lock(&self.writer);
        if let Ok(entry) = writer.entries.find_entry(hash, |(k, _)| key.equivalent(k)) {
            return Some(entry.remove().0 .1);
        }
        let (_, value) = writer
            .current
            .frozen
            .find(hash, |(k, _)| key.equivalent(k))?;
        let value = value.clone();
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
        self.publish(&mut writer, Arc::new(HashTable::new()), false);
    }

    fn len(&self) -> usize {
        let writer = lock(&self.writer);
        writer.current.frozen.len() + writer.entries.len()
    }
}
