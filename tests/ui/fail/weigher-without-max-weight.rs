//! A `weigher` weighs entries against a `max_weight`: without one, it is refused.
use memoflight::cached;

#[cached(weigher = |_: &u64, _: &u64| 1)]
fn weigher_without_weight(n: u64) -> u64 {
    n
}

fn main() {}
