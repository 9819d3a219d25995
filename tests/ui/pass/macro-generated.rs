//! `#[cached]` written inside a `macro_rules!` body whose return type (and, for the flag, the
//! whole signature) comes from the macro's caller: the generated locals keep the attribute's
//! hygiene while errors about the return type are still located on it.

use memoflight::{cached, Return};

macro_rules! memoized {
    ($name:ident -> $t:ty) => {
        #[cached]
        fn $name(n: u64) -> $t {
            n * 2
        }
    };
}

macro_rules! flagged {
    ($($item:tt)*) => {
        #[cached(with_cached_flag)]
        $($item)*
    };
}

memoized!(doubled -> u64);

flagged! {
    fn tripled(n: u64) -> Return<u64> {
        Return::new(n * 3)
    }
}

fn main() {
    assert_eq!(doubled(2), 4);
    assert_eq!(doubled(2), 4);
    assert!(!tripled(2).was_cached());
    assert!(tripled(2).was_cached());
}
