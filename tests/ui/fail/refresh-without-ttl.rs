//! `refresh` renews a TTL on every hit: without a `ttl`, it is refused on `refresh`.
use memoflight::cached;

#[cached(refresh)]
fn refresh_without_ttl(n: u64) -> u64 {
    n
}

fn main() {}
