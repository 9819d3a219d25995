//! A TTL of zero would never hit, in every spelling; the TTL is one option in three spellings.
use memoflight::cached;

#[cached(ttl = "0s")]
fn zero(n: u64) -> u64 {
    n
}

#[cached(ttl_secs = 0)]
fn zero_seconds(n: u64) -> u64 {
    n
}

#[cached(ttl_millis = 0)]
fn zero_millis(n: u64) -> u64 {
    n
}

#[cached(ttl = "1m", ttl_secs = 60)]
fn twice(n: u64) -> u64 {
    n
}

#[cached(ttl = "soon", sync_lock = "spin", companions_vis = "public")]
fn misspelled(n: u64) -> u64 {
    n
}

fn main() {}
