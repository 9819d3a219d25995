//! [`Return`]: a value with a flag telling whether the call that returned it ran the function
//! (`#[cached(with_cached_flag)]`, as in the `cached` crate).

use std::ops::{Deref, DerefMut};

/// A memoized function's value with `was_cached`, for `#[cached(with_cached_flag)]`: the
/// function returns `Return<T>` (or `Result<Return<T>, E>`, `Option<Return<T>>`), builds it
/// with [`Return::new`], and every call that did not run the function gets it with
/// `was_cached` set (a hit, a wait for another caller's computation, a fallback).
///
/// `f_with_origin(..)` tells the same and more ([`Origin`](crate::Origin)); `Return` is for
/// code written for the `cached` crate. It dereferences to the value.
///
/// ```
/// use memoflight::{cached, Return};
///
/// #[cached(with_cached_flag)]
/// fn price(item: u32) -> Return<u64> {
///     Return::new(u64::from(item) * 100)
/// }
///
/// let first = price(3);
/// assert!(!first.was_cached());
/// let second = price(3);
/// assert!(second.was_cached());
/// assert_eq!(*second, 300);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Return<T> {
    /// The value.
    pub value: T,
    /// Whether this call got the value without running the function.
    pub was_cached: bool,
}

impl<T> Return<T> {
    /// A freshly computed value (`was_cached` false): what the function body returns.
    ///
    /// ```
    /// # use memoflight::Return;
    /// assert!(!Return::new(1).was_cached());
    /// ```
    pub fn new(value: T) -> Self {
        Return {
            value,
            was_cached: false,
        }
    }

    /// Whether this call got the value without running the function.
    ///
    /// ```
    /// # use memoflight::Return;
    /// let returned = Return { value: 1, was_cached: true };
    /// assert!(returned.was_cached());
    /// ```
    pub fn was_cached(&self) -> bool {
        self.was_cached
    }

    /// The value.
    ///
    /// ```
    /// # use memoflight::Return;
    /// assert_eq!(Return::new("v").into_inner(), "v");
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Return<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Return<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// What a `with_cached_flag` function returns, marked as cached by generated code when the call
/// did not run the function.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`with_cached_flag` needs the function to return `memoflight::Return<T>`, not `{Self}`",
    label = "not a `Return<T>`, `Result<Return<T>, E>` or `Option<Return<T>>`",
    note = "build the value with `Return::new(value)`; `was_cached()` then tells the calls that \
            did not run the function"
)]
pub trait MarkCached {
    /// Sets `was_cached` on the `Return` inside.
    fn __memo_mark_cached(&mut self);
}

impl<T> MarkCached for Return<T> {
    fn __memo_mark_cached(&mut self) {
        self.was_cached = true;
    }
}

impl<T, E> MarkCached for Result<Return<T>, E> {
    fn __memo_mark_cached(&mut self) {
        if let Ok(returned) = self {
            returned.was_cached = true;
        }
    }
}

impl<T> MarkCached for Option<Return<T>> {
    fn __memo_mark_cached(&mut self) {
        if let Some(returned) = self {
            returned.was_cached = true;
        }
    }
}
