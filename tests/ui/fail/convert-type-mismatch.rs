//! A `convert` whose value is not of the `key` type: one error, on the `convert` expression.
use memoflight::cached;

#[cached(key = String, convert = { k })]
fn lookup(k: i32) -> i32 {
    k
}

fn main() {}
