//! `_` arguments are never read by the function, so they are left out of the default key, as
//! in the `cached` crate: calls that differ only in them share an entry, and the key type
//! names the other arguments alone. An `impl Trait` argument bound to `_` needs no `convert`.
#![deny(warnings)]

use memoflight::{cached, Origin};

#[cached]
fn first(_: u8, id: u64) -> u64 {
    id
}

#[cached]
fn middle(a: u32, _: &str, b: u32) -> u32 {
    a + b
}

#[cached]
fn only(_: String) -> u64 {
    7
}

#[cached]
fn opaque(_: impl std::fmt::Display, id: u64) -> u64 {
    id
}

fn main() {
    assert_eq!(first_with_origin(1, 5), (5, Origin::Computed));
    assert_eq!(first_with_origin(2, 5), (5, Origin::Hit));
    let _: Option<u64> = first_cache().get(&5u64);
    assert_eq!(middle_with_origin(1, "x", 2), (3, Origin::Computed));
    assert_eq!(middle_with_origin(1, "y", 2), (3, Origin::Hit));
    let _: Option<u32> = middle_cache().get(&(1u32, 2u32));
    assert_eq!(only_with_origin(String::from("a")), (7, Origin::Computed));
    assert_eq!(only_with_origin(String::from("b")), (7, Origin::Hit));
    let _: Option<u64> = only_cache().get(&());
    assert_eq!(opaque_with_origin("a", 1), (1, Origin::Computed));
    assert_eq!(opaque_with_origin(2, 1), (1, Origin::Hit));
}
