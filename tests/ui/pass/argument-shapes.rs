//! Argument shapes of the `cached` crate's users: optional borrows, slices, `mut` bindings,
//! destructured tuples and structs, `_`, and arguments named like generated locals.
#![deny(warnings)]

use memoflight::{cached, Origin};

#[cached]
fn optional(name: Option<&str>, path: Option<&std::path::Path>) -> usize {
    name.map_or(0, str::len) + path.map_or(0, |p| p.as_os_str().len())
}

#[cached]
fn optional_mut(buffer: Option<&mut String>) -> usize {
    buffer.map_or(0, |b| {
        b.push('!');
        b.len()
    })
}

#[cached]
fn slices(values: &[u32], mut extra: u32) -> u32 {
    extra += 1;
    values.iter().sum::<u32>() + extra
}

#[cached]
fn tuple((a, b): (u32, u32)) -> u32 {
    a + b
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Point {
    x: i32,
    y: i32,
}

#[cached]
fn point(Point { x, y }: Point) -> i32 {
    x * y
}

#[cached]
fn names(key: u32, cache: u32, result: u32, value: u32) -> u32 {
    key + cache + result + value
}

/// An `impl Trait` argument left out of the key by `convert` (a selection of the others, or
/// an expression with `key`).
#[cached(convert = id)]
fn logged(log: impl std::fmt::Write, id: u64) -> u64 {
    let _ = log;
    id
}

#[cached(convert = { id * 2 }, key = u64)]
fn doubled(prefix: impl std::fmt::Display, id: u64) -> String {
    format!("{prefix}{}", id * 2)
}

/// A `_` pattern: left out of the key (see `underscore-arguments.rs`).
#[cached]
fn ignored(_: u8, id: u64) -> u64 {
    id
}

/// Attributes and doc comments on arguments are kept.
#[cached]
fn documented(#[allow(unused_variables)] n: u64) -> u64 {
    7
}

fn main() {
    assert_eq!(logged(String::new(), 3), 3);
    assert_eq!(doubled("x", 2), "x4");
    assert_eq!(doubled("y", 2), "x4"); // the prefix is not part of the key
    assert_eq!(ignored(1, 5) + ignored(2, 5), 10);
    assert_eq!(ignored_with_origin(3, 5), (5, Origin::Hit));
    assert_eq!(documented(1), 7);
    assert_eq!(optional(Some("ab"), None), 2);
    assert_eq!(optional_with_origin(Some("ab"), None), (2, Origin::Hit));
    assert_eq!(optional(None, Some(std::path::Path::new("/x"))), 2);
    let mut text = String::from("a");
    assert_eq!(optional_mut(Some(&mut text)), 2);
    assert_eq!(optional_mut(None), 0);
    assert_eq!(slices(&[1, 2], 3), 7);
    assert_eq!(tuple((1, 2)), 3);
    assert_eq!(point(Point { x: 2, y: 3 }), 6);
    assert_eq!(names(1, 2, 3, 4), 10);
}
