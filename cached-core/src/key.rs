//! Borrowed views of multi-argument keys, so that a hit never builds (or allocates) an owned key.
//!
//! A function `fn f(name: &str, id: u64)` is cached under the owned key `(String, u64)`. On each
//! call the generated code looks the cache up with `Borrowed((name, &id))`, which hashes exactly
//! like the owned tuple and compares equal to it through [`Borrow`], so a hit costs no allocation.
//! A single argument needs no wrapper: `&str` already looks up a `String` key.

use equivalent::Equivalent;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// A borrowed view standing in for an owned key during a lookup: a tuple of parts for the
/// owned tuple `(A, B, ...)`, or `Option<&Q>` for an owned `Option<O>` (an `Option<&str>`
/// argument looks up its `Option<String>` key).
///
/// It hashes like the owned key (std hashes a tuple field by field, in order, and an `Option`
/// as its discriminant then its content; [`Borrow`] requires `a.borrow()` to hash like `a`)
/// and is [`Equivalent`] to it part by part ([`KeyView`]).
///
/// ```
/// use memoflight::Equivalent;
/// use memoflight::__private::Borrowed;
///
/// let owned = (String::from("ada"), 1815_u64, Some(String::from("uk")));
/// assert!(Borrowed(("ada", &1815_u64, Some("uk"))).equivalent(&owned));
/// assert!(!Borrowed(("bob", &1815_u64, Some("uk"))).equivalent(&owned));
/// assert!(!Borrowed(("ada", &1815_u64, None::<&str>)).equivalent(&owned));
/// assert!(Borrowed(Some("uk")).equivalent(&Some(String::from("uk"))));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Borrowed<T>(pub T);

/// One part of a [`Borrowed`] view, compared with the owned part `Owned` it stands for.
pub trait KeyView<Owned> {
    /// Whether the owned part equals this view of it.
    fn matches(&self, owned: &Owned) -> bool;
}

/// A borrowed argument (`&str` for a `String`, `&[T]` for a `Vec<T>`, `&u64` for a `u64`).
impl<Q: ?Sized + Eq, O: Borrow<Q>> KeyView<O> for &Q {
    fn matches(&self, owned: &O) -> bool {
        **self == *owned.borrow()
    }
}

/// An optional borrowed argument (`Option<&str>` for an `Option<String>`).
impl<Q: ?Sized + Eq, O: Borrow<Q>> KeyView<Option<O>> for Option<&Q> {
    fn matches(&self, owned: &Option<O>) -> bool {
        match (self, owned) {
            (Some(view), Some(owned)) => **view == *owned.borrow(),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<Q: ?Sized + Hash> Hash for Borrowed<Option<&Q>> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<Q: ?Sized + Eq, O: Borrow<Q>> Equivalent<Option<O>> for Borrowed<Option<&Q>> {
    fn equivalent(&self, key: &Option<O>) -> bool {
        self.0.matches(key)
    }
}

macro_rules! borrowed_tuple {
    ($($owned:ident $view:ident $idx:tt),+) => {
        impl<$($view: Hash),+> Hash for Borrowed<($($view,)+)> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                $(self.0.$idx.hash(state);)+
            }
        }

        impl<$($owned,)+ $($view),+> Equivalent<($($owned,)+)> for Borrowed<($($view,)+)>
        where
            $($view: KeyView<$owned>,)+
        {
            fn equivalent(&self, key: &($($owned,)+)) -> bool {
                $(self.0.$idx.matches(&key.$idx))&&+
            }
        }
    };
}

borrowed_tuple!(A QA 0, B QB 1);
borrowed_tuple!(A QA 0, B QB 1, C QC 2);
borrowed_tuple!(A QA 0, B QB 1, C QC 2, D QD 3);
borrowed_tuple!(A QA 0, B QB 1, C QC 2, D QD 3, E QE 4);
borrowed_tuple!(A QA 0, B QB 1, C QC 2, D QD 3, E QE 4, F QF 5);
borrowed_tuple!(A QA 0, B QB 1, C QC 2, D QD 3, E QE 4, F QF 5, G QG 6);
borrowed_tuple!(A QA 0, B QB 1, C QC 2, D QD 3, E QE 4, F QF 5, G QG 6, H QH 7);

// `Borrowed` covers tuples of 2 to 8 parts. `cached-macros/src/expand.rs` (MAX_BORROWED_PARTS)
// looks keys with more parts up through an owned key; change both together.

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        let state = foldhash::fast::FixedState::with_seed(7);
        state.hash_one(value)
    }

    #[test]
    fn borrowed_tuple_hashes_like_the_owned_tuple() {
        let owned = (String::from("x"), 3_u32, vec![1_u8, 2]);
        let view = Borrowed(("x", &3_u32, &[1_u8, 2][..]));
        assert_eq!(hash_of(&owned), hash_of(&view));
        assert!(view.equivalent(&owned));
        assert!(!Borrowed(("x", &4_u32, &[1_u8, 2][..])).equivalent(&owned));
    }

    #[test]
    fn optional_parts_hash_like_their_owned_options() {
        let owned = (Some(String::from("x")), None::<String>);
        let view = Borrowed((Some("x"), None::<&str>));
        assert_eq!(hash_of(&owned), hash_of(&view));
        assert!(view.equivalent(&owned));
        assert!(!Borrowed((None::<&str>, None::<&str>)).equivalent(&owned));
        for single in [Some(String::from("y")), None] {
            let view = Borrowed(single.as_deref());
            assert_eq!(hash_of(&single), hash_of(&view));
            assert!(view.equivalent(&single));
        }
        assert!(!Borrowed(Some("y")).equivalent(&None::<String>));
    }
}
