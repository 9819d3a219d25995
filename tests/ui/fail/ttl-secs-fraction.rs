//! `ttl_secs` takes a whole number of seconds, as in `cached`: a fraction is refused on it
//! (`ttl = "1.5s"` or `ttl_millis = 1500` say it).
use memoflight::cached;

#[cached(ttl_secs = 1.5)]
fn brief(n: u32) -> u32 {
    n
}

fn main() {}
