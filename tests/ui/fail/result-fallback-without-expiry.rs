//! `result_fallback` returns an expired value when recomputing fails: without a `ttl` or
//! `expires`, values never expire, so it is refused on `result_fallback`.
use memoflight::cached;

#[cached(result_fallback)]
fn fallback_without_expiry(n: u64) -> Result<u64, String> {
    Ok(n)
}

fn main() {}
