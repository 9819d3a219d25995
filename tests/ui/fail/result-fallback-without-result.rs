//! `result_fallback` needs a `Result` whose `Err` is not cached: on an `Option`, it is refused
//! on `result_fallback`.
use memoflight::cached;

#[cached(result_fallback, ttl = "1m")]
fn fallback_without_result(n: u64) -> Option<u64> {
    Some(n)
}

fn main() {}
