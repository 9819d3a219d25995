//! The `cached` crate's options where their meaning cannot hold: each refused on its own
//! tokens, saying what is missing.
use memoflight::{cached, Return};

// `result_fallback` needs a `Result` whose `Err` is not cached, and values that expire.
#[cached(result_fallback)]
fn fallback_without_expiry(n: u64) -> Result<u64, String> {
    Ok(n)
}

#[cached(result_fallback, ttl = "1m")]
fn fallback_without_result(n: u64) -> Option<u64> {
    Some(n)
}

// `refresh` renews a TTL, which must be given.
#[cached(refresh)]
fn refresh_without_ttl(n: u64) -> u64 {
    n
}

// `max_weight` and `weigher` go together, and not with `max_size`.
#[cached(max_weight = 100)]
fn weight_without_weigher(n: u64) -> u64 {
    n
}

#[cached(weigher = |_: &u64, _: &u64| 1)]
fn weigher_without_weight(n: u64) -> u64 {
    n
}

#[cached(max_weight = 100, weigher = |_: &u64, _: &u64| 1, max_size = 10)]
fn weight_and_size(n: u64) -> u64 {
    n
}

// A store given: the built-in store's options do not apply to it.
#[cached(store = memoflight::Unbounded::new(), expires, refresh, ttl = "1m")]
fn options_of_the_built_in_store(n: u64) -> u64 {
    n
}

// Private companions have no visibility to set.
#[cached(companions = false, companions_vis = "pub")]
fn hidden_and_visible(n: u64) -> Return<u64> {
    Return::new(n)
}

fn main() {}
