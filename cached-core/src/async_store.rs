//! The async store trait (feature `async`): where finished values live when reaching them is
//! I/O (a Redis server, a database, a remote cache). [`AsyncCache`](crate::AsyncCache) talks to
//! it; `#[cached(async_store = ..)]` plugs one into an `async fn`.

use std::future::Future;
use std::hash::Hash;

/// A map from keys to finished values whose operations are async and may fail, which an
/// [`AsyncCache`](crate::AsyncCache) reads and writes.
///
/// In-memory stores do not need it: an `async fn` keeps its values in any [`Store`](crate::Store)
/// (the default). Implement it for storage behind I/O, and pass the store with
/// `#[cached(async_store = ..)]`.
///
/// # Concurrency contract
///
/// Every method takes `&self`, may be called from many tasks at once, and its future must be
/// `Send`. Each operation that succeeds must be linearizable: a [`get`](AsyncStore::get) that
/// starts after an [`insert`](AsyncStore::insert) or [`remove`](AsyncStore::remove) of the same
/// key completed must see its effect. The engine relies on this for one execution per key, and
/// for invalidation: a value written before an invalidation's removal is gone once it returns.
/// Methods must not call back into the cache.
///
/// # Errors
///
/// A failed operation returns its error and must leave the store as it was or with the
/// operation done (never a partial value). The cache degrades instead of failing its callers:
/// a failed `get` counts as a miss and the function runs; a failed `insert` leaves the value
/// uncached but still returned. Both are counted in
/// [`Stats::store_errors`](crate::Stats::store_errors) and traced. A failed
/// `remove` or `clear` is returned to the caller of
/// [`AsyncCache::invalidate`](crate::AsyncCache::invalidate) or
/// [`AsyncCache::clear`](crate::AsyncCache::clear), who must know that stale values may remain.
///
/// # Bounded time
///
/// Every operation must end, with a value or an error, within a bounded time: a store over a
/// network sets connection and response timeouts on its client. The cache adds no timer of its
/// own, so a store that can hang makes its callers hang.
///
/// # Example
///
/// A store over an in-memory map that a flag can break, as a test double would:
///
/// ```
/// use memoflight::AsyncStore;
/// use std::collections::HashMap;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Mutex;
///
/// #[derive(Debug)]
/// struct Down;
/// impl std::fmt::Display for Down {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the store is down")
///     }
/// }
/// impl std::error::Error for Down {}
///
/// #[derive(Default)]
/// struct Remote {
///     map: Mutex<HashMap<u64, String>>,
///     down: AtomicBool,
/// }
///
/// impl Remote {
///     fn check(&self) -> Result<(), Down> {
///         if self.down.load(Ordering::SeqCst) { Err(Down) } else { Ok(()) }
///     }
/// }
///
/// impl AsyncStore for Remote {
///     type Key = u64;
///     type Value = String;
///     type Error = Down;
///
///     async fn get(&self, key: &u64) -> Result<Option<String>, Down> {
///         self.check()?;
///         Ok(self.map.lock().unwrap().get(key).cloned())
///     }
///     async fn insert(&self, key: u64, value: String) -> Result<(), Down> {
///         self.check()?;
///         self.map.lock().unwrap().insert(key, value);
///         Ok(())
///     }
///     async fn remove(&self, key: &u64) -> Result<(), Down> {
///         self.check()?;
///         self.map.lock().unwrap().remove(key);
///         Ok(())
///     }
///     async fn clear(&self) -> Result<(), Down> {
///         self.check()?;
///         self.map.lock().unwrap().clear();
///         Ok(())
///     }
///     async fn len(&self) -> Result<usize, Down> {
///         self.check()?;
///         Ok(self.map.lock().unwrap().len())
///     }
/// }
///
/// futures::executor::block_on(async {
///     let store = Remote::default();
///     store.insert(1, "one".to_string()).await.unwrap();
///     assert_eq!(store.get(&1).await.unwrap().as_deref(), Some("one"));
///     store.down.store(true, Ordering::SeqCst);
///     assert!(store.get(&1).await.is_err());
/// });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `AsyncStore`",
    note = "an in-memory `Store` (such as `Unbounded` or `Bounded`) goes in `store = ..`, or \
            is the default: leave `async_store` out"
)]
pub trait AsyncStore: Send + Sync {
    /// The owned key. `Clone`: the engine keeps one copy in its in-flight table while it reads
    /// and writes the store with another.
    type Key: Hash + Eq + Clone + Send + Sync;
    /// The cached value, cloned to every caller waiting on a computation.
    type Value: Clone + Send + Sync;
    /// What a failed operation returns.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value stored under `key`, if any.
    fn get(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<Self::Value>, Self::Error>> + Send;

    /// Stores `value` under `key`, replacing any previous value.
    fn insert(
        &self,
        key: Self::Key,
        value: Self::Value,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Removes the value stored under `key`, if any.
    fn remove(&self, key: &Self::Key) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Removes every value.
    fn clear(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The number of stored values (a snapshot: it may be stale when it returns).
    fn len(&self) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// Whether [`len`](AsyncStore::len) is zero.
    fn is_empty(&self) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        async { Ok(self.len().await? == 0) }
    }

    /// Removes the values for which `keep(key, value)` is false: what
    /// [`AsyncCache::invalidate_if`](crate::AsyncCache::invalidate_if) calls.
    ///
    /// The default removes every value ([`clear`](AsyncStore::clear)): a store that cannot
    /// test its values removes more than asked, never less, so no value the predicate picks
    /// survives. [`DiskStore`](crate::DiskStore) and [`RedisStore`](crate::RedisStore) test
    /// each value.
    ///
    /// # Concurrency
    ///
    /// A computation in flight in any process sharing the store when it is called must not
    /// write its value afterwards (it has no value yet to test). `keep` is user code: run it
    /// with no lock held that another operation of the store may need.
    ///
    /// # Errors
    ///
    /// The store's; some values `keep` rejects may then remain.
    ///
    /// ```
    /// # use memoflight::AsyncStore;
    /// # use std::collections::HashMap;
    /// # use std::sync::Mutex;
    /// # #[derive(Default)]
    /// # struct Remote(Mutex<HashMap<u64, String>>);
    /// impl AsyncStore for Remote {
    ///     // get, insert, remove, clear and len as in the trait's example
    /// #   type Key = u64;
    /// #   type Value = String;
    /// #   type Error = std::io::Error;
    /// #   async fn get(&self, k: &u64) -> std::io::Result<Option<String>> { Ok(self.0.lock().unwrap().get(k).cloned()) }
    /// #   async fn insert(&self, k: u64, v: String) -> std::io::Result<()> { self.0.lock().unwrap().insert(k, v); Ok(()) }
    /// #   async fn remove(&self, k: &u64) -> std::io::Result<()> { self.0.lock().unwrap().remove(k); Ok(()) }
    /// #   async fn clear(&self) -> std::io::Result<()> { self.0.lock().unwrap().clear(); Ok(()) }
    /// #   async fn len(&self) -> std::io::Result<usize> { Ok(self.0.lock().unwrap().len()) }
    ///     async fn retain<F>(&self, mut keep: F) -> std::io::Result<()>
    ///     where
    ///         F: FnMut(&u64, &String) -> bool + Send,
    ///     {
    ///         // A copy, so that `keep` (user code) runs with no lock held.
    ///         let entries: Vec<_> = self.0.lock().unwrap().clone().into_iter().collect();
    ///         for (key, value) in entries {
    ///             if !keep(&key, &value) {
    ///                 self.0.lock().unwrap().remove(&key);
    ///             }
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// futures::executor::block_on(async {
    ///     let store = Remote::default();
    ///     store.insert(1, "one".into()).await.unwrap();
    ///     store.insert(2, "two".into()).await.unwrap();
    ///     store.retain(|key, _| key % 2 == 0).await.unwrap();
    ///     assert_eq!(store.get(&2).await.unwrap().as_deref(), Some("two"));
    ///     assert_eq!(store.len().await.unwrap(), 1);
    /// });
    /// ```
    fn retain<F>(&self, keep: F) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        F: FnMut(&Self::Key, &Self::Value) -> bool + Send,
    {
        drop(keep);
        self.clear()
    }

    /// How many entries the store has dropped on its own so far (evicted, expired), when it
    /// knows; zero otherwise.
    fn evictions(&self) -> u64 {
        0
    }

    /// The value stored under `key` and whether it is due for a refresh: the cache reads
    /// through this. A store with a refresh policy returns `true` for a value old enough; the
    /// cache then serves it to every caller while one refreshes it
    /// ([`lead_refresh`](AsyncStore::lead_refresh)). The default is [`get`](AsyncStore::get),
    /// never due.
    ///
    /// # Errors
    ///
    /// As [`get`](AsyncStore::get).
    fn look(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<(Self::Value, bool)>, Self::Error>> + Send {
        async move { Ok(self.get(key).await?.map(|value| (value, false))) }
    }

    /// For a value [`look`](AsyncStore::look) found due for a refresh: decides, across the
    /// processes sharing the store, whether this one refreshes it (see [`Refresh`]). The
    /// default coordinates nothing: every process refreshes.
    ///
    /// # Errors
    ///
    /// The store's; the cache then serves the due value.
    fn lead_refresh(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Refresh<Self::Value>, Self::Error>> + Send {
        let _ = key;
        async { Ok(Refresh::Lead(Lease::unshared())) }
    }

    /// Called once by [`AsyncCache::new`](crate::AsyncCache::new) with the cache's name (under
    /// `#[cached]`, the memoized function's path, `module::function`): a store that several
    /// programs or functions share keeps each function's keys apart with it. Does nothing by
    /// default. [`RedisStore`](crate::RedisStore) and [`DiskStore`](crate::DiskStore) panic
    /// when bound a second time to another name.
    fn bind(&self, name: &'static str) {
        let _ = name;
    }

    /// Decides, for a store shared by several processes, which process computes `key`: called
    /// by this process's leader after its look found no value. Another process's computation
    /// is waited for (at most `wait`, when given) and its value returned as
    /// [`Lead::Computed`]; otherwise this process computes under the returned
    /// [`Lead::Compute`] lease, which it keeps alive with [`keep`](AsyncStore::keep) and ends
    /// with [`insert_leased`](AsyncStore::insert_leased) or
    /// [`release`](AsyncStore::release).
    ///
    /// The default coordinates nothing: every process computes ([`Lease::unshared`]).
    ///
    /// # Errors
    ///
    /// The store's; the cache then computes locally and does not write the value.
    fn lead(
        &self,
        key: &Self::Key,
        wait: Option<std::time::Duration>,
    ) -> impl Future<Output = Result<Lead<Self::Value>, Self::Error>> + Send {
        let _ = (key, wait);
        async { Ok(Lead::Compute(Lease::unshared())) }
    }

    /// Keeps `lease` alive while it is polled (the cache polls it next to the computation and
    /// drops it when the computation ends). Never completes while the lease is held; the
    /// default never completes at all.
    fn keep(&self, key: &Self::Key, lease: &Lease) -> impl Future<Output = ()> + Send {
        let _ = (key, lease);
        std::future::pending()
    }

    /// Stores the leader's value if `lease` is still this process's, and ends the lease, in
    /// one atomic step: a leader whose lease expired or was revoked (by an invalidation) does
    /// not overwrite what happened since. Returns whether the value was written. The default,
    /// for a store without leases, is [`insert`](AsyncStore::insert).
    ///
    /// # Errors
    ///
    /// The store's; the value is then not stored (the caller still gets it).
    fn insert_leased(
        &self,
        key: Self::Key,
        value: Self::Value,
        lease: &Lease,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = lease;
        async move { self.insert(key, value).await.map(|()| true) }
    }

    /// Ends `lease` without a value (the computation failed, or its flight was invalidated),
    /// so that another process may compute at once. Does nothing by default.
    ///
    /// # Errors
    ///
    /// The store's; the lease then ends at its expiry.
    fn release(
        &self,
        key: &Self::Key,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (key, lease);
        async { Ok(()) }
    }

    /// Called, in a destructor, when a leader holding `lease` ends without writing or
    /// releasing it: its computation panicked, or its caller's future was dropped. It cannot
    /// await; a store may end the lease in the background (the Redis store does, on the
    /// current tokio runtime), or leave it to expire. Does nothing by default.
    fn abandon(&self, key: &Self::Key, lease: Lease) {
        let _ = (key, lease);
    }
}

/// What [`AsyncStore::lead`] decided for a key that had no value.
///
/// ```
/// use memoflight::{Lead, Lease};
///
/// let decided: Lead<String> = Lead::Compute(Lease::unshared());
/// match decided {
///     Lead::Computed(value) => println!("another process computed {value}"),
///     Lead::Compute(lease) => assert_eq!(lease.token(), None),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lead<V> {
    /// Another process computed the value while this one waited for it.
    Computed(V),
    /// This process computes the key, under this lease.
    Compute(Lease),
}

/// What [`AsyncStore::lead_refresh`] decided for a value due for a refresh.
///
/// ```
/// use memoflight::{Lease, Refresh};
///
/// let decided: Refresh<String> = Refresh::Refreshing;
/// let serve_the_due_value = matches!(decided, Refresh::Refreshing);
/// assert!(serve_the_due_value);
/// # let _ = Refresh::<String>::Lead(Lease::unshared());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh<V> {
    /// This process refreshes the value, under this lease.
    Lead(Lease),
    /// Another process refreshes it: the due value is served meanwhile.
    Refreshing,
    /// It was refreshed since it was read: this is the new value.
    Refreshed(V),
    /// It is gone (invalidated or expired): the call is a miss.
    Gone,
}

/// A process's right to compute a key for every process sharing an [`AsyncStore`]: the token
/// that fences its write (see [`AsyncStore::insert_leased`]).
///
/// ```
/// use memoflight::Lease;
///
/// let lease = Lease::new("4f1c-7a".to_string());
/// assert_eq!(lease.token(), Some("4f1c-7a"));
/// assert_eq!(Lease::unshared().token(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    token: Option<String>,
}

impl Lease {
    /// A lease identified by `token`, unique among every process sharing the store.
    ///
    /// See [`Lease`] for an example.
    pub fn new(token: String) -> Self {
        Lease { token: Some(token) }
    }

    /// No lease: the store does not coordinate processes, or could not be reached, and this
    /// process computes on its own. A store shared by processes must not write under it.
    ///
    /// See [`Lease`] for an example.
    pub fn unshared() -> Self {
        Lease { token: None }
    }

    /// The lease's token, if it is one.
    ///
    /// See [`Lease`] for an example.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// Implements `AsyncStore` for a pointer to an async store by forwarding every method.
macro_rules! forward_async_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: AsyncStore + ?Sized> AsyncStore for $pointer {
            type Key = S::Key;
            type Value = S::Value;
            type Error = S::Error;

            fn get(
                &self,
                key: &Self::Key,
            ) -> impl Future<Output = Result<Option<Self::Value>, Self::Error>> + Send {
                (**self).get(key)
            }
            fn insert(
                &self,
                key: Self::Key,
                value: Self::Value,
            ) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).insert(key, value)
            }
            fn remove(&self, key: &Self::Key) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).remove(key)
            }
            fn clear(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).clear()
            }
            fn len(&self) -> impl Future<Output = Result<usize, Self::Error>> + Send {
                (**self).len()
            }
            fn is_empty(&self) -> impl Future<Output = Result<bool, Self::Error>> + Send {
                (**self).is_empty()
            }
            fn retain<F>(&self, keep: F) -> impl Future<Output = Result<(), Self::Error>> + Send
            where
                F: FnMut(&Self::Key, &Self::Value) -> bool + Send,
            {
                (**self).retain(keep)
            }
            fn evictions(&self) -> u64 {
                (**self).evictions()
            }
            fn bind(&self, name: &'static str) {
                (**self).bind(name)
            }
            fn look(
                &self,
                key: &Self::Key,
            ) -> impl Future<Output = Result<Option<(Self::Value, bool)>, Self::Error>> + Send {
                (**self).look(key)
            }
            fn lead_refresh(
                &self,
                key: &Self::Key,
            ) -> impl Future<Output = Result<Refresh<Self::Value>, Self::Error>> + Send {
                (**self).lead_refresh(key)
            }
            fn lead(
                &self,
                key: &Self::Key,
                wait: Option<std::time::Duration>,
            ) -> impl Future<Output = Result<Lead<Self::Value>, Self::Error>> + Send {
                (**self).lead(key, wait)
            }
            fn keep(&self, key: &Self::Key, lease: &Lease) -> impl Future<Output = ()> + Send {
                (**self).keep(key, lease)
            }
            fn insert_leased(
                &self,
                key: Self::Key,
                value: Self::Value,
                lease: &Lease,
            ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
                (**self).insert_leased(key, value, lease)
            }
            fn release(
                &self,
                key: &Self::Key,
                lease: &Lease,
            ) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).release(key, lease)
            }
            fn abandon(&self, key: &Self::Key, lease: Lease) {
                (**self).abandon(key, lease)
            }
        }
    };
}

forward_async_store! {
    /// An async store behind a reference is one: `#[cached(async_store = &*REMOTE)]` keeps your
    /// own handle on a `static` store.
    ///
    /// ```
    /// use memoflight::AsyncStore;
    ///
    /// fn takes_a_store(_: impl AsyncStore) {}
    /// # struct Remote;
    /// # impl AsyncStore for Remote {
    /// #     type Key = u32;
    /// #     type Value = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn get(&self, _: &u32) -> std::io::Result<Option<u32>> { Ok(None) }
    /// #     async fn insert(&self, _: u32, _: u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn remove(&self, _: &u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn clear(&self) -> std::io::Result<()> { Ok(()) }
    /// #     async fn len(&self) -> std::io::Result<usize> { Ok(0) }
    /// # }
    /// static REMOTE: Remote = Remote;
    /// takes_a_store(&REMOTE);
    /// ```
    &S
}

forward_async_store! {
    /// A shared async store is one: several caches (or your code) can hold the same one.
    ///
    /// ```
    /// use memoflight::AsyncStore;
    /// use std::sync::Arc;
    ///
    /// fn takes_a_store(_: impl AsyncStore) {}
    /// # struct Remote;
    /// # impl AsyncStore for Remote {
    /// #     type Key = u32;
    /// #     type Value = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn get(&self, _: &u32) -> std::io::Result<Option<u32>> { Ok(None) }
    /// #     async fn insert(&self, _: u32, _: u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn remove(&self, _: &u32) -> std::io::Result<()> { Ok(()) }
    /// #     async fn clear(&self) -> std::io::Result<()> { Ok(()) }
    /// #     async fn len(&self) -> std::io::Result<usize> { Ok(0) }
    /// # }
    /// takes_a_store(Arc::new(Remote));
    /// ```
    std::sync::Arc<S>
}
