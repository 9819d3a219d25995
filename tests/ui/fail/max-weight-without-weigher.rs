//! `max_weight` bounds the total weight, which a `weigher` gives: without one, it is refused.
use memoflight::cached;

#[cached(max_weight = 100)]
fn weight_without_weigher(n: u64) -> u64 {
    n
}

fn main() {}
