//! Per-value expiry: values that know when they go stale ([`Expires`]), in any store
//! ([`Expiring`]). `#[cached(expires)]` wraps its store in one.

use crate::store::Store;
use equivalent::Equivalent;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A value that decides its own expiry (the `cached` crate's trait of the same name): an
/// access token valid until the time its server gave, a price quoted until a deadline.
///
/// `is_expired` is called on every read of the value, with no lock of the store held: it may
/// be slow, but it should be cheap (a clock read and a comparison), and it may call memoized
/// functions.
///
/// ```
/// use memoflight::Expires;
/// use std::time::Instant;
///
/// #[derive(Clone)]
/// struct Token {
///     secret: String,
///     valid_until: Instant,
/// }
///
/// impl Expires for Token {
///     fn is_expired(&self) -> bool {
///         Instant::now() >= self.valid_until
///     }
/// }
/// # let token = Token { secret: String::new(), valid_until: Instant::now() };
/// # assert!(token.is_expired());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `memoflight::Expires`",
    note = "`expires` asks each value whether it has expired: implement `Expires` for the \
            value type (the `Ok` type of a `Result`, the `Some` type of an `Option`)"
)]
pub trait Expires {
    /// Whether the value has expired: a read then treats it as absent, and the call that
    /// made the read computes it afresh.
    fn is_expired(&self) -> bool;
}

/// A flagged value (`with_cached_flag`) expires when the value does.
impl<T: Expires> Expires for crate::Return<T> {
    fn is_expired(&self) -> bool {
        self.value.is_expired()
    }
}

/// A shared value (values are cloned on every hit: large ones go in an `Arc`) expires when the
/// value does.
impl<T: Expires + ?Sized> Expires for std::sync::Arc<T> {
    fn is_expired(&self) -> bool {
        (**self).is_expired()
    }
}

/// A store whose values expire when they say so ([`Expires`]), on top of any other store:
/// `#[cached(expires)]` is `Expiring<Unbounded<K, V>>`, and `#[cached(expires, max_size = n)]`
/// is `Expiring<Bounded<K, V>>` (so also bounded, and expiring at the `ttl` if one is given).
///
/// A read of an expired value returns nothing; the value stays in the inner store until a
/// write replaces it, a bounded store evicts it, [`invalidate_if`](crate::Cache::invalidate_if)
/// or [`evict_expired`](Store::evict_expired) sweeps it. So [`len`](Store::len) counts the
/// expired values not swept yet; call `evict_expired` (`cached`'s `evict`) to sweep.
///
/// ```
/// use memoflight::{Expires, Expiring, Store, Unbounded};
///
/// #[derive(Clone)]
/// struct Quote { price: u32, stale: bool }
///
/// impl Expires for Quote {
///     fn is_expired(&self) -> bool { self.stale }
/// }
///
/// let store = Expiring::new(Unbounded::<&str, Quote>::new());
/// store.insert("fresh", Quote { price: 1, stale: false });
/// store.insert("stale", Quote { price: 2, stale: true });
/// assert!(store.get("fresh").is_some());
/// assert!(store.get("stale").is_none());
/// assert_eq!(store.evict_expired(), 1);
/// assert_eq!(store.len(), 1);
/// ```
pub struct Expiring<S> {
    inner: S,
    /// Values removed by [`evict_expired`](Store::evict_expired) (or found expired by
    /// `retain`), on top of the inner store's own evictions.
    expired: AtomicU64,
}

impl<S> Expiring<S> {
    /// Wraps `inner`: its values expire when they say so, as well as by its own rules.
    ///
    /// ```
    /// # use memoflight::{Bounded, Expiring};
    /// # #[derive(Clone)] struct Quote;
    /// # impl memoflight::Expires for Quote { fn is_expired(&self) -> bool { false } }
    /// let store = Expiring::new(Bounded::<u32, Quote>::new().max_size(1_000));
    /// # let _ = store;
    /// ```
    pub fn new(inner: S) -> Self {
        Expiring {
            inner,
            expired: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    ///
    /// ```
    /// # use memoflight::{Expiring, Store, Unbounded};
    /// # #[derive(Clone)] struct Quote;
    /// # impl memoflight::Expires for Quote { fn is_expired(&self) -> bool { true } }
    /// let store = Expiring::new(Unbounded::<u32, Quote>::new());
    /// store.insert(1, Quote);
    /// assert!(store.get(&1).is_none()); // expired
    /// assert!(store.inner().get(&1).is_some()); // still held
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> Store for Expiring<S>
where
    S: Store,
    S::Value: Expires,
{
    type Key = S::Key;
    type Value = S::Value;

    #[inline]
    fn get<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
        self.inner.get(key).filter(|value| !value.is_expired())
    }

    #[inline]
    fn get_aged<Q: ?Sized + Hash + Equivalent<Self::Key>>(
        &self,
        key: &Q,
    ) -> Option<(Self::Value, bool)> {
        self.inner
            .get_aged(key)
            .filter(|(value, _)| !value.is_expired())
    }

    /// The value even if it has expired (by its own word or the inner store's rules), as long
    /// as it is held.
    fn get_stale<Q: ?Sized + Hash + Equivalent<Self::Key>>(&self, key: &Q) -> Option<Self::Value> {
        // `get_stale` first: `get` would renew an entry of a store with a time to idle.
        self.inner.get_stale(key).or_else(|| self.inner.get(key))
    }

    fn insert(&self, key: Self::Key, value: Self::Value) {
        self.inner.insert(key, value);
    }

    /// Removes the value; `read` sees it unless it had expired (the removal then returns `None`).
    fn remove_with<Q: ?Sized + Hash + Equivalent<Self::Key>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&Self::Value) -> R,
    ) -> Option<R> {
        self.inner
            .remove_with(key, |value| (!value.is_expired()).then(|| read(value)))
            .flatten()
    }

    /// Expired values are dropped too, and `keep` is asked about live ones only.
    fn retain(&self, keep: &mut dyn FnMut(&Self::Key, &Self::Value) -> bool) {
        self.sweep(keep);
    }

    fn clear(&self) {
        self.inner.clear();
    }

    /// The values held, expired ones not swept yet included.
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn evictions(&self) -> u64 {
        self.inner.evictions() + self.expired.load(Relaxed)
    }

    /// Removes every expired value (O(entries): a walk of the inner store, no lock of it held
    /// while `is_expired` runs for a store of this crate) and the inner store's own expired
    /// entries; returns how many were removed.
    fn evict_expired(&self) -> usize {
        self.sweep(&mut |_, _| true) + self.inner.evict_expired()
    }
}

impl<S> Expiring<S>
where
    S: Store,
    S::Value: Expires,
{
    /// Keeps the live values `keep` keeps; returns how many expired values it dropped.
    fn sweep(&self, keep: &mut dyn FnMut(&S::Key, &S::Value) -> bool) -> usize {
        let mut expired = 0;
        self.inner.retain(&mut |key, value| {
            if value.is_expired() {
                expired += 1;
                return false;
            }
            keep(key, value)
        });
        self.expired.fetch_add(expired as u64, Relaxed);
        expired
    }
}
