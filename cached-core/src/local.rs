//! The hit path of `#[cached]` functions on the default store: one `thread_local!` per
//! function holds this thread's copy of the store's snapshot and its hit counter, so that a hit
//! costs one TLS access instead of two per-cache thread-local lookups (see
//! `benches/README.md`). Other stores take the generic path, `Cache::__lookup`.

use crate::cache::Cache;
use crate::store::{SnapshotCell, Unbounded};
use crate::sync::Padded;
use equivalent::Equivalent;
use std::cell::OnceCell;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A thread's state for one memoized function. For generated code: it must live in a
/// `thread_local!` (each thread its own) and serve one cache only.
#[doc(hidden)]
pub struct Local<K, V> {
    snapshot: SnapshotCell<K, V>,
    /// This thread's hit counter, registered with the cache on the first hit.
    hits: OnceCell<Arc<Padded<AtomicU64>>>,
}

impl<K, V> Local<K, V> {
    /// Empty state, for a `const`-initialized `thread_local!`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Local {
            snapshot: std::cell::RefCell::new(None),
            hits: OnceCell::new(),
        }
    }
}

impl<K, V> Cache<Unbounded<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// The hit path through the calling thread's `local`: a store read that counts a hit.
    #[doc(hidden)]
    #[inline(always)]
    pub fn __lookup_local<Q>(&self, local: &Local<K, V>, key: &Q) -> Option<V>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        let value = self.store().get_via(&local.snapshot, key)?;
        match local.hits.get() {
            // Only this thread writes its counter: load + store loses no increment.
            Some(mine) => mine.store(mine.load(Relaxed) + 1, Relaxed),
            None => {
                let _ = local.hits.set(self.counters().register_local_hits());
            }
        }
        Some(value)
    }
}
