//! `cached`'s `ttl_secs` with a negative number: a `Duration` cannot be negative, said on the
//! number.
use memoflight::cached;

#[cached(ttl_secs = -1)]
fn negative(n: u64) -> u64 {
    n
}

fn main() {}
