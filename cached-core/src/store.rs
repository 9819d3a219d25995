//! The store trait: where finished values live. One file per store under `store/`.

mod arena;
mod bounded;
mod expiring;
mod hashed;
mod table;
mod unbounded;

pub use bounded::Bounded;
pub use expiring::{Expires, Expiring};
pub use unbounded::Unbounded;

use equivalent::Equivalent;
use std::hash::Hash;

/// A concurrent map from keys to finished values, which a [`Cache`](crate::Cache) reads and
/// writes.
///
/// Implement it to plug your own storage into `#[cached(store = ...)]`.
///
/// # Concurrency contract
///
/// Every method takes `&self` and may be called from many threads at once. Each method must be
/// linearizable: it appears to take effect at one instant between its call and its return (for
/// [`remove_with`](Store::remove_with), the removal, before `read` runs). In particular a
/// [`get`](Store::get) that starts after an [`insert`](Store::insert) or a removal of the same
/// key returned must see its effect; the single-flight
/// engine relies on this to guarantee one execution per key. Methods must not block for long
/// (no I/O under a lock, never wait on another caller's computation) and must not call back into
/// the cache. `get` is the hit path: it should not take a lock that other readers also take.
///
/// A store may drop entries on its own (a bounded store evicts); it must never return a value
/// that was not inserted for that key.
///
/// # Example
///
/// A store that keeps everything in one mutex-protected map:
///
/// ```
/// use memoflight::{Equivalent, Store};
/// use std::collections::HashMap;
/// use std::hash::Hash;
/// use std::sync::Mutex;
///
/// struct Locked(Mutex<HashMap<u64, String>>);
///
/// impl Store for Locked {
///     type Key = u64;
///     type Value = String;
///
///     fn get<Q: ?Sized + Hash + Equivalent<u64>>(&self, key: &Q) -> Option<String> {
///         let map = self.0.lock().unwrap();
///         map.iter().find(|(k, _)| key.equivalent(*k)).map(|(_, v)| v.clone())
///     }
///     fn insert(&self, key: u64, value: String) {
///         self.0.lock().unwrap().insert(key, value);
///     }
///     fn remove_with<Q: ?Sized + Hash + Equivalent<u64>, R>(
///         &self,
///         key: &Q,
///         read: impl FnOnce(&String) -> R,
///     ) -> Option<R> {
///         let removed = {
///             let mut map = self.0.lock().unwrap();
///             let found = *map.keys().find(|k| key.equivalent(*k))?;
///             map.remove(&found)
///         };
///         removed.map(|value| read(&value)) // after the lock: `read` may be user code
///     }
///     fn retain(&self, keep: &mut dyn FnMut(&u64, &String) -> bool) {
///         self.0.lock().unwrap().retain(|k, v| keep(k, v));
///     }
///     fn clear(&self) {
///         self.0.lock().unwrap().clear();
///     }
///     fn len(&self) -> usize {
///         self.0.lock().unwrap().len()
///     }
/// }
///
/// let store = Locked(Mutex::new(HashMap::new()));
/// store.insert(1, "one".to_string());
/// assert_eq!(store.get(&1), Some("one".to_string()));
/// assert_eq!(store.len(), 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Store`",
    note = "a store whose operations are async (an `AsyncStore`) goes in `async_store = ..`"
)]
pub trait Store: Send + Sync {
    /// The owned key (cloned by the cache: a computation in flight keeps its key).
    type Key: Hash + Eq + Clone + Send + Sync;
    /// The cached value, cloned out on every hit (wrap large values in an `Arc`).
    type Value: Clone + Send + Sync;

    /// Returns a clone of the value stored under `key`, if any.
    fn get<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value>;

    /// Like [`get`](Store::get), and also tells whether the value is due for a refresh: `true`
    /// once it is older than the store's refresh age (see
    /// [`Bounded::refresh_after`](crate::Bounded::refresh_after)). The single-flight engine
    /// then lets one caller recompute it while the others keep getting it. The default never
    /// reports a value due.
    fn get_aged<Q: ?Sized + Hash + Equivalent<Self::Key>>(
        &self,
        key: &Q,
    ) -> Option<(Self::Value, bool)> {
        self.get(key).map(|value| (value, false))
    }

    /// The value the store still holds under `key`, even one that has expired (which reads no
    /// longer return): `#[cached(result_fallback)]` returns it when computing a fresh value
    /// fails. The default returns none.
    ///
    /// ```
    /// use memoflight::{Bounded, Clock, Store};
    /// use std::time::Duration;
    ///
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, &str>::new()
    ///     .ttl(Duration::from_secs(1))
    ///     .keep_expired_for(Duration::from_secs(60))
    ///     .clock(clock.clone());
    /// store.insert(1, "old");
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!((store.get(&1), store.get_stale(&1)), (None, Some("old")));
    /// ```
    fn get_stale<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
        let _ = key;
        None
    }

    /// Stores `value` under `key`, replacing any previous value.
    fn insert(&self, key: Self::Key, value: Self::Value);

    /// Removes the value stored under `key` and returns what `read` makes of it, or `None`
    /// if there was no value (a store may also remove an expired value without showing it to
    /// `read`, and return `None`). [`Cache::invalidate`](crate::Cache::invalidate) calls it
    /// with a `read` that only notes the removal: a store whose readers may still be reading
    /// a removed value (and so cannot move it out) then copies nothing.
    ///
    /// `read` must be called at most once, after the removal is complete (the entry gone and
    /// any accounting done) and with no lock of the store held: it may be user code (the
    /// value's `Clone`) that calls back into the cache, and if it panics, the panic reaches
    /// the caller with the store consistent.
    ///
    /// ```
    /// use memoflight::{Store, Unbounded};
    ///
    /// let store = Unbounded::<u8, String>::new();
    /// store.insert(1, "one".to_string());
    /// assert_eq!(store.remove_with(&1, |value| value.len()), Some(3));
    /// assert_eq!(store.remove_with(&1, |value| value.len()), None);
    /// ```
    fn remove_with<Q: ?Sized + Hash + Equivalent<Self::Key>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&Self::Value) -> R,
    ) -> Option<R>;

    /// Removes the value stored under `key` and returns it: by default, a clone made by
    /// [`remove_with`](Store::remove_with). A store that owns its values outright may
    /// override it to move the value out; [`Cache::remove`](crate::Cache::remove) calls it.
    fn remove<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
        self.remove_with(key, Self::Value::clone)
    }

    /// Keeps only the entries for which `keep` returns `true`.
    fn retain(&self, keep: &mut dyn FnMut(&Self::Key, &Self::Value) -> bool);

    /// Removes every value.
    fn clear(&self);

    /// The number of stored values (a snapshot: it may be stale when it returns).
    fn len(&self) -> usize;

    /// Whether [`len`](Store::len) is zero.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the store has dropped on its own so far (evicted for room, or
    /// expired), as opposed to removed when asked. Zero for stores that never do.
    fn evictions(&self) -> u64 {
        0
    }

    /// Removes the entries that have expired and returns how many (`cached`'s `evict`):
    /// reads never return them, but a store may hold them until a later write reclaims them.
    /// The default has nothing to remove.
    ///
    /// ```
    /// use memoflight::{Bounded, Clock, Store, Unbounded};
    /// use std::time::Duration;
    ///
    /// let clock = Clock::manual();
    /// let store = Bounded::<u8, u8>::new().ttl(Duration::from_secs(1)).clock(clock.clone());
    /// store.insert(1, 1);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(store.evict_expired(), 1);
    /// assert_eq!(Unbounded::<u8, u8>::new().evict_expired(), 0);
    /// ```
    fn evict_expired(&self) -> usize {
        0
    }
}

/// Implements `Store` for a pointer to a store by forwarding every method.
macro_rules! forward_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: Store + ?Sized> Store for $pointer {
            type Key = S::Key;
            type Value = S::Value;

            #[inline]
            fn get<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
                (**self).get(key)
            }
            #[inline]
            fn get_aged<Q: ?Sized + Hash + Equivalent<Self::Key>>(
                &self,
                key: &Q,
            ) -> Option<(Self::Value, bool)> {
                (**self).get_aged(key)
            }
            fn get_stale<Q: ?Sized + Hash + Equivalent<Self::Key>>(
                &self,
                key: &Q,
            ) -> Option<Self::Value> {
                (**self).get_stale(key)
            }
            fn insert(&self, key: Self::Key, value: Self::Value) {
                (**self).insert(key, value)
            }
            fn remove<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
                (**self).remove(key)
            }
            fn remove_with<Q: ?Sized + Hash + Equivalent<Self::Key>, R>(
                &self,
                key: &Q,
                read: impl FnOnce(&Self::Value) -> R,
            ) -> Option<R> {
                (**self).remove_with(key, read)
            }
            fn retain(&self, keep: &mut dyn FnMut(&Self::Key, &Self::Value) -> bool) {
                (**self).retain(keep)
            }
            fn clear(&self) {
                (**self).clear()
            }
            fn len(&self) -> usize {
                (**self).len()
            }
            fn evictions(&self) -> u64 {
                (**self).evictions()
            }
            fn evict_expired(&self) -> usize {
                (**self).evict_expired()
            }
        }
    };
}

forward_store! {
    /// A store behind a reference is a store: `#[cached(store = &MY_STORE)]` keeps your own
    /// handle on a `static` store, with its full API.
    ///
    /// ```
    /// use memoflight::{cached, Store, Unbounded};
    /// use std::sync::LazyLock;
    ///
    /// static SQUARES: LazyLock<Unbounded<u64, u64>> = LazyLock::new(Unbounded::new);
    ///
    /// #[cached(store = &*SQUARES)]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// square(4);
    /// assert_eq!(SQUARES.get(&4), Some(16));
    /// ```
    &S
}

forward_store! {
    /// A shared store is a store: several caches (or your code) can hold the same one.
    ///
    /// ```
    /// use memoflight::{Cache, Store, Unbounded};
    /// use std::sync::Arc;
    ///
    /// let shared = Arc::new(Unbounded::<u8, u8>::new());
    /// let cache = Cache::new("shared", Arc::clone(&shared));
    /// cache.get_or_compute(1, || 2);
    /// assert_eq!(shared.get(&1), Some(2));
    /// ```
    std::sync::Arc<S>
}
