//! Options of the `cached` crate that memoflight does not take: each refused on its name, with
//! what to write instead.
use memoflight::cached;

#[cached(with_cached_flag = true)]
fn flagged(n: u64) -> u64 {
    n
}

#[cached(result_fallback = true)]
fn fallback(n: u64) -> Result<u64, String> {
    Ok(n)
}

#[cached(refresh = true, ttl = "1m")]
fn refreshed(n: u64) -> u64 {
    n
}

#[cached(expires = true)]
fn expiring(n: u64) -> u64 {
    n
}

#[cached(size = 10, time = 60, result = true, companions = false)]
fn removed(n: u64) -> Result<u64, String> {
    Ok(n)
}

fn main() {}
