//! An option that takes a value, given none: the error is where the value should be.
use memoflight::cached;

#[cached(max_size)]
fn bounded(n: u32) -> u32 {
    n
}

fn main() {}
