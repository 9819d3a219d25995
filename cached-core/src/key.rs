//! Borrowed views of multi-argument keys, so that a hit never builds (or allocates) an owned key.
//!
//! A function `fn f(name: &str, id: u64)` is cached under the owned key `(String, u64)`. On each
//! call the generated code looks the cache up with `Borrowed((name, &id))`, which hashes exactly
//! like the owned tuple and compares equal to it through [`Borrow`], so a hit costs no allocation.
//! A single argument needs no wrapper: `&str` already looks up a `String` key.

use equivalent::Equivalent;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// A tuple of references standing in for the owned tuple key `(A, B, ...)` during a lookup.
///
/// It hashes like the owned tuple (std hashes a tuple field by field, in order, and [`Borrow`]
/// requires `a.borrow()` to hash like `a`) and is [`Equivalent`] to it field by field.
///
/// ```
/// use memoflight::Equivalent;
/// use memoflight::__private::Borrowed;
///
/// let owned = (String::from("ada"), 1815_u64);
/// assert!(Borrowed(("ada", &1815_u64)).equivalent(&owned));
/// assert!(!Borrowed(("bob", &1815_u64)).equivalent(&owned));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Borrowed<T>(pub T);

macro_rules! borrowed_tuple {
    ($($owned:ident $view:ident $idx:tt),+) => {
        impl<$($view: ?Sized + Hash),+> Hash for Borrowed<($(&$view,)+)> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                $(self.0.$idx.hash(state);)+
            }
        }

        impl<$($owned,)+ $($view),+> Equivalent<($($owned,)+)> for Borrowed<($(&$view,)+)>
        where
            $($owned: Borrow<$view>, $view: ?Sized + Eq,)+
        {
            fn equivalent(&self, key: &($($owned,)+)) -> bool {
                $(*self.0.$idx == *key.$idx.borrow())&&+
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
}
