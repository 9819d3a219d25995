//! Generic memoized functions: a cache per instantiation, or one cache when `key` and the value
//! do not name the type parameters; lifetimes, `where` clauses and const generics.
#![deny(warnings)]

use memoflight::{cached, Origin};
use std::str::FromStr;

#[cached]
fn parse<T: FromStr + Clone + Send + Sync + 'static>(text: &str) -> Option<T> {
    text.parse().ok()
}

#[cached(key = String, convert = { format!("{value:?}") })]
fn describe<T>(value: T) -> String
where
    T: std::fmt::Debug,
{
    format!("<{value:?}>")
}

#[cached]
fn sum<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

#[cached]
fn first_word<'a>(text: &'a str) -> String {
    text.split(' ').next().unwrap_or_default().to_owned()
}

fn main() {
    assert_eq!(parse::<u32>("7"), Some(7));
    assert_eq!(parse::<f64>("7"), Some(7.0));
    assert_eq!(parse_with_origin::<u32>("7"), (Some(7), Origin::Hit));
    assert_eq!(parse_cache::<u32>().len(), 1);
    assert_eq!(parse_cache::<f64>().len(), 1);
    assert_eq!(describe(1u8), "<1>");
    assert_eq!(describe_with_origin(1u16), ("<1>".to_owned(), Origin::Hit), "one cache");
    assert_eq!(sum([1, 2]), 3);
    assert_eq!(sum([1, 2, 3]), 6);
    assert_eq!(sum_with_origin([1, 2]), (3, Origin::Hit));
    assert_eq!(first_word("hello world"), "hello");
}
