//! `max_weight` and `max_size` bound the same store two ways: one is refused, naming the
//! other.
use memoflight::cached;

#[cached(max_weight = 100, weigher = |_: &u64, _: &u64| 1, max_size = 10)]
fn weight_and_size(n: u64) -> u64 {
    n
}

fn main() {}
