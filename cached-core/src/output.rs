//! How a function's return value relates to what is cached, and how a failure reaches the
//! callers waiting on it. Used by the code `#[cached]` generates; hidden from the docs.
//!
//! Whether an error type is `Clone` (or a key `Debug`) is decided at compile time with autoref
//! specialization: generated code calls `(&SharingOf::<R>::new()).__memo_sharing()`, which resolves to
//! [`ShareFailure::sharing`] when `SharingOf<R>` implements it and falls back to
//! [`KeepFailure::sharing`] (one more `&`) otherwise. This works because generated code always
//! names concrete types.

use crate::flight::SharedFailure;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

/// How a return type `R` is cached: which results are kept, and as what.
#[diagnostic::on_unimplemented(
    message = "`#[cached]` took `{R}` for std's `Result` or `Option` by its name",
    label = "not std's `Result` or `Option`",
    note = "a return type named `Result` caches its `Ok` values only, and one named `Option` its \
            `Some` values: for a type of your own with that name, add `cache_err` or \
            `cache_none` to cache every value"
)]
pub trait Mode<R> {
    /// What the store holds.
    type Value;
    /// `Ok(value)` to cache; `Err(r)` gives back a result that is not cached.
    fn split(result: R) -> Result<Self::Value, R>;
    /// Rebuilds a return value from a cached value.
    fn rebuild(value: Self::Value) -> R;
}

/// Caches every result (a plain return type, or `cache_err` / `cache_none`).
pub struct CacheAll;
/// Caches the `Ok` value of a `Result`.
pub struct CacheOk;
/// Caches the `Some` value of an `Option`.
pub struct CacheSome;

impl<R> Mode<R> for CacheAll {
    type Value = R;
    #[inline]
    fn split(result: R) -> Result<R, R> {
        Ok(result)
    }
    #[inline]
    fn rebuild(value: R) -> R {
        value
    }
}

impl<T, E> Mode<Result<T, E>> for CacheOk {
    type Value = T;
    #[inline]
    fn split(result: Result<T, E>) -> Result<T, Result<T, E>> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => Err(Err(error)),
        }
    }
    #[inline]
    fn rebuild(value: T) -> Result<T, E> {
        Ok(value)
    }
}

impl<T> Mode<Option<T>> for CacheSome {
    type Value = T;
    #[inline]
    fn split(result: Option<T>) -> Result<T, Option<T>> {
        result.ok_or(None)
    }
    #[inline]
    fn rebuild(value: T) -> Option<T> {
        Some(value)
    }
}

/// How a failure of type `R` is copied to waiters: erased by `share`, rebuilt by `unshare`.
pub struct Sharing<R> {
    pub(crate) share: fn(&R) -> Option<SharedFailure>,
    pub(crate) unshare: fn(&SharedFailure) -> Option<R>,
}

/// The receiver of the autoref-specialized `sharing()` call.
pub struct SharingOf<R>(PhantomData<fn() -> R>);

impl<R> SharingOf<R> {
    /// The marker for return type `R`.
    pub fn new() -> Self {
        SharingOf(PhantomData)
    }
}

impl<R> Default for SharingOf<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen when a failure can be copied: `Result<T, E>` with `E: Clone`, and `Option<T>`.
pub trait ShareFailure<R> {
    /// Some sharing.
    fn __memo_sharing(&self) -> Option<Sharing<R>>;
}

/// The fallback: the failure cannot be copied, so waiters retry one at a time.
pub trait KeepFailure<R> {
    /// No sharing.
    fn __memo_sharing(&self) -> Option<Sharing<R>>;
}

impl<T, E: Clone + Send + Sync + 'static> ShareFailure<Result<T, E>> for SharingOf<Result<T, E>> {
    fn __memo_sharing(&self) -> Option<Sharing<Result<T, E>>> {
        Some(Sharing {
            share: |result| match result {
                Err(error) => Some(Arc::new(error.clone())),
                Ok(_) => None,
            },
            unshare: |failure| failure.downcast_ref::<E>().map(|error| Err(error.clone())),
        })
    }
}

impl<T> ShareFailure<Option<T>> for SharingOf<Option<T>> {
    fn __memo_sharing(&self) -> Option<Sharing<Option<T>>> {
        Some(Sharing {
            share: |result| result.is_none().then(|| Arc::new(()) as SharedFailure),
            unshare: |_| Some(None),
        })
    }
}

impl<R> KeepFailure<R> for &SharingOf<R> {
    fn __memo_sharing(&self) -> Option<Sharing<R>> {
        None
    }
}

/// The receiver of the autoref-specialized `describe()` call: a key's `Debug` form if it has
/// one, for panic messages.
pub struct KeyOf<'a, K>(pub &'a K);

/// Chosen when the key is `Debug`.
pub trait DescribeDebug {
    /// The key's `Debug` form.
    fn __memo_describe(&self) -> Option<String>;
}

/// The fallback for keys without `Debug`.
pub trait DescribeOpaque {
    /// Nothing.
    fn __memo_describe(&self) -> Option<String>;
}

impl<K: Debug> DescribeDebug for KeyOf<'_, K> {
    fn __memo_describe(&self) -> Option<String> {
        Some(format!("{:?}", self.0))
    }
}

impl<K> DescribeOpaque for &KeyOf<'_, K> {
    fn __memo_describe(&self) -> Option<String> {
        None
    }
}

impl<R> Clone for Sharing<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Sharing<R> {}

#[cfg(test)]
// The `&` is the point of autoref specialization, not a needless borrow.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;

    struct NotClone;

    #[test]
    fn clone_errors_are_shared_and_others_are_not() {
        #[allow(unused_imports)]
        use super::{KeepFailure as _, ShareFailure as _};
        assert!((&SharingOf::<Result<u8, String>>::new())
            .__memo_sharing()
            .is_some());
        assert!((&SharingOf::<Result<u8, NotClone>>::new())
            .__memo_sharing()
            .is_none());
        assert!((&SharingOf::<Option<u8>>::new()).__memo_sharing().is_some());
        assert!((&SharingOf::<u8>::new()).__memo_sharing().is_none());
    }

    #[test]
    fn keys_are_described_when_debug() {
        #[allow(unused_imports)]
        use super::{DescribeDebug as _, DescribeOpaque as _};
        assert_eq!((&KeyOf(&5_u8)).__memo_describe().as_deref(), Some("5"));
        assert_eq!((&KeyOf(&NotClone)).__memo_describe(), None);
    }
}
