//! The default store: unbounded, on the concurrent table of `table.rs`.
//!
//! # Design (numbers in `benches/README.md`, "The default store")
//!
//! Entries live in a sharded, open-addressed table (`crate::store::table`): reads take no
//! lock and write no shared memory but the thread's own epoch slot (seize's), so hits scale
//! across cores. An
//! insert, a replacement and a removal scan their shard without a lock (the key's `Eq` runs
//! there), then hold the shard's mutex for a few stores; a removed slot is reused in place by
//! the next insert that probes through it, and a grown array is built off the lock. So no
//! write pauses for work proportional to the store's size. A removed or replaced value is
//! freed once no reader can still see it (epoch-based reclamation), on whichever thread ends
//! the last read that could: a thread that stops calling keeps at most a batch (2, or as many
//! as there are threads if that is more) of removed values alive. The entries themselves (a
//! key, a value, a hash and a word of bookkeeping, 48 bytes for `u64` keys and `String`
//! values) are packed in chunks per shard (`crate::store::arena`), so that `invalidate_if`
//! reads them in memory order: a removed entry's cell is reused by the next insert into its
//! shard, and a shard's chunks are freed when it holds no entry (or, after `clear`, all but
//! those of entries still waiting for reclamation), so the cells follow the peak number of
//! entries, as a hash map's buckets do; a value's own heap memory is freed with it.
//!
//! No user code runs under a lock of the store: a key is hashed once, before the table is
//! entered, and stored with its hash, so a rebuild never runs the key's `Hash`; `Eq`, a
//! `retain` predicate and a value's `Clone` run outside the shard's mutex, and a value's `Drop`
//! runs when it is reclaimed, after the lock is released. Each may call back into the cache.
//!
//! The designs before it (an immutable table per version, then a papaya map) are measured in
//! `benches/README.md`: the first copied the whole table on every removal, the second copied it
//! under remove-and-insert churn (tombstones it never reused).
//!
//! # During thread teardown
//!
//! The epoch guard lives in a thread-local of seize's. A call made from another thread-local's
//! destructor, after that one is gone, reads and writes through an owned guard instead (see
//! `crate::teardown`): every operation works then.

use crate::store::hashed::KeyHasher;
use crate::store::table::Table;
use crate::store::Store;
use equivalent::Equivalent;
use std::hash::{BuildHasher, Hash};

/// An unbounded concurrent store: every value stays until it is invalidated or cleared.
///
/// Hits take no lock; inserts, replacements and removals cost O(1), whatever the store's size.
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
pub struct Unbounded<K, V> {
    table: Table<K, V>,
    /// Hashes keys before they enter the table.
    hasher: KeyHasher,
}

impl<K: Hash + Eq, V> Unbounded<K, V> {
    /// Creates an empty store.
    ///
    /// ```
    /// # use memoflight::{Store, Unbounded};
    /// let store = Unbounded::<u64, String>::new();
    /// assert!(store.is_empty());
    /// ```
    pub fn new() -> Self {
        Unbounded {
            table: Table::new(),
            hasher: KeyHasher::default(),
        }
    }
}

impl<K: Hash + Eq, V> Default for Unbounded<K, V> {
    fn default() -> Self {
        Self::new()
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
        let hash = self.hasher.hash_one(key);
        self.table
            .get(hash, |stored| key.equivalent(stored), V::clone)
    }

    fn insert(&self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        self.table.insert(hash, key, value, |_| ());
    }

    /// Clones nothing: `read` sees the removed value after the shard's lock, while this
    /// call's epoch guard keeps it allocated.
    fn remove_with<Q: ?Sized + Hash + Equivalent<K>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        self.table
            .remove(hash, |stored, _| key.equivalent(stored), read)
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        self.table.retain(keep, &mut |_, _| ());
    }

    fn clear(&self) {
        self.table.clear(&mut |_, _| ());
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}
