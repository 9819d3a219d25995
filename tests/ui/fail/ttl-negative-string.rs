//! A negative duration in a string: refused on the string, rather than read as the expression
//! `-1s` (whose suffix rustc would refuse).
use memoflight::cached;

#[cached(ttl = "-1s")]
fn negative(n: u64) -> u64 {
    n
}

fn main() {}
