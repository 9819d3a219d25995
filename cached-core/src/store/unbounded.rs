//! The default store: unbounded, on a lock-free concurrent map.
//!
//! # Design (numbers in `benches/README.md`, "The default store")
//!
//! Entries live in a [papaya](https://docs.rs/papaya) hash map: reads take no lock and write
//! no shared memory but the thread's own epoch slot (seize's, with an asymmetric fence on Linux:
//! a hit makes no full barrier), so hits scale across cores; an insert, a replacement and a
//! removal are one compare-and-swap on one bucket, O(1), whatever the store's size; a table
//! that grows is copied incrementally, 64 entries per write, so no write pauses for the whole
//! table. A removed or replaced value is freed once no reader can still see it (epoch-based
//! reclamation, seize's), on whichever thread ends the last read that could. Removed values
//! wait in a batch of their thread until it holds 32 (one system call, a process-wide memory
//! barrier, per batch): a thread that stops calling keeps at most that many removed values
//! alive. `retain` and `clear` hand their batch over at once.
//!
//! The store holds no lock at any time, so user code it runs (a key's `Hash` and `Eq`, a
//! value's `Drop` when it is reclaimed, a `retain` predicate) may call back into the cache. A
//! key is hashed once, before the map is entered, and stored with its hash (`hashed.rs`): the
//! map's own copying never runs the key's `Hash`.
//!
//! The previous design (an immutable table per version, read through a thread-local pointer)
//! had faster hits but copied the whole table on every removal and replacement; see
//! `benches/README.md` for the measurements behind the switch.
//!
//! # During thread teardown
//!
//! papaya's epoch guard lives in a thread-local. A call made from another thread-local's
//! destructor, after that one is gone, reads through an owned guard instead (see
//! `crate::teardown`); its writes still need seize's thread-local, so such a call returns the
//! value it computed without storing it. Removals (`invalidate`, `clear`) from such a
//! destructor are not supported: papaya's removal needs that thread-local too.

#[cfg(not(memoflight_loom))]
use crate::store::hashed::{Hashed, KeyHasher, PassThrough, Probe};
use crate::store::Store;
#[cfg(not(memoflight_loom))]
use crate::teardown::pinned;
use equivalent::Equivalent;
#[cfg(not(memoflight_loom))]
use papaya::Guard as _;
use std::hash::Hash;

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
    map: Map<K, V>,
    /// Hashes keys before they enter the map.
    #[cfg(not(memoflight_loom))]
    hasher: KeyHasher,
}

#[cfg(not(memoflight_loom))]
type Map<K, V> = papaya::HashMap<Hashed<K>, V, PassThrough>;

/// Under loom, a mutex-protected map: papaya's epochs are not loom-aware, and the model checks
/// the single-flight protocol against the `Store` contract (linearizable operations), which a
/// mutex gives.
#[cfg(memoflight_loom)]
type Map<K, V> = crate::sync::Mutex<hashbrown::HashMap<K, V, foldhash::fast::FixedState>>;

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
            #[cfg(not(memoflight_loom))]
            map: papaya::HashMap::builder()
                .hasher(PassThrough::default())
                .build(),
            #[cfg(not(memoflight_loom))]
            hasher: KeyHasher::default(),
            #[cfg(memoflight_loom)]
            map: Default::default(),
        }
    }
}

#[cfg(not(memoflight_loom))]
impl<K: Hash + Eq, V> Unbounded<K, V> {
    /// Hands the values this thread removed to reclamation now rather than when its batch is
    /// full (after the bulk removals of `retain` and `clear`).
    fn flush(&self) {
        if crate::teardown::thread_alive() {
            self.map.guard().flush();
        }
    }
}

impl<K: Hash + Eq, V> Default for Unbounded<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(memoflight_loom))]
impl<K, V> Store for Unbounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    #[inline]
    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let probe = Probe::new(&self.hasher, key);
        pinned!(self.map, |map| map.get(&probe).cloned())
    }

    fn insert(&self, key: K, value: V) {
        // papaya's writes read a thread-local of seize's even through an owned guard: while
        // the thread is torn down, a value is returned to its caller and not stored.
        if crate::teardown::thread_alive() {
            let key = Hashed::new(&self.hasher, key);
            self.map.pin().insert(key, value);
        }
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let probe = Probe::new(&self.hasher, key);
        pinned!(self.map, |map| map.remove(&probe).cloned())
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        pinned!(self.map, |map| map.retain(|k, v| keep(&k.key, v)));
        self.flush();
    }

    fn clear(&self) {
        pinned!(self.map, |map| map.clear());
        self.flush();
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(memoflight_loom)]
impl<K, V> Store for Unbounded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let map = crate::sync::lock(&self.map);
        map.iter()
            .find(|(k, _)| key.equivalent(k))
            .map(|(_, v)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        crate::sync::lock(&self.map).insert(key, value);
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let mut map = crate::sync::lock(&self.map);
        map.extract_if(|k, _| key.equivalent(k))
            .next()
            .map(|(_, v)| v)
    }

    fn retain(&self, keep: &mut dyn FnMut(&K, &V) -> bool) {
        crate::sync::lock(&self.map).retain(|k, v| keep(k, v));
    }

    fn clear(&self) {
        crate::sync::lock(&self.map).clear();
    }

    fn len(&self) -> usize {
        crate::sync::lock(&self.map).len()
    }
}
