//! The default store: unbounded, sharded, read-mostly.

use crate::store::Store;
use crate::sync::{read, write, ReadMostly};
use equivalent::Equivalent;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// An unbounded concurrent store: every value stays until it is invalidated or cleared.
///
/// Keys are spread over independently locked shards by hash, so writers on different keys rarely
/// meet. See `benches/README.md` for its hit cost and memory per entry.
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
    hasher: RandomState,
    shift: u32,
    shards: Box<[Shard<K, V>]>,
}

type Shard<K, V> = ReadMostly<HashTable<(K, V)>>;

impl<K, V> Unbounded<K, V> {
    /// Creates an empty store.
    pub fn new() -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        // Few key shards: each is a `ReadMostly` lock (8 cache-line pairs), and writers on
        // different keys meet only for the length of one insert.
        let shards = parallelism.next_power_of_two();
        Unbounded {
            hasher: RandomState::default(),
            shift: u64::BITS - shards.trailing_zeros(),
            shards: (0..shards)
                .map(|_| ReadMostly::new(HashTable::new()))
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // The top bits pick the shard; hashbrown uses the low and the top 7 bits inside it, and
        // with a shift of 64 - log2(shards) a 1-shard store shifts by 64: use checked_shr.
        let index = hash.checked_shr(self.shift).unwrap_or(0) as usize;
        &self.shards[index]
    }
}

impl<K, V> Default for Unbounded<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Store for Unbounded<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;

    #[inline]
    fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let table = read(self.shard(hash));
        table
            .find(hash, |(k, _)| key.equivalent(k))
            .map(|(_, v)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        let mut table = write(self.shard(hash));
        match table.find_mut(hash, |(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => {
                table.insert_unique(hash, (key, value), |(k, _)| self.hasher.hash_one(k));
            }
        }
    }

    fn remove<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let mut table = write(self.shard(hash));
        let entry = table.find_entry(hash, |(k, _)| key.equivalent(k)).ok()?;
        Some(entry.remove().0 .1)
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            // Take the entries out first so their destructors run after the lock is released.
            let old = std::mem::take(&mut *write(shard));
            drop(old);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| read(shard).len()).sum()
    }
}
