use memoflight::{cached, Store};
use std::time::Duration;

const CAPACITY: usize = 100;

#[cached(max_size = 2)]
fn sized(n: u32) -> u32 {
    n
}

#[cached(ttl = "90s")]
fn timed(s: &str) -> usize {
    s.len()
}

#[cached(max_size = CAPACITY, ttl = Duration::from_millis(250))]
fn both(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[cached(max_size = "10", ttl = "1m")] // cached 0.4x string values
fn strings(n: u32) -> Option<u32> {
    Some(n)
}

#[cached(refresh_after = "60s", ttl = "1h")]
fn refreshed(n: u32) -> u32 {
    n
}

#[cached(convert = n % 10, max_size = 5)]
fn inferred_key(n: u32) -> u32 {
    n
}

fn main() {
    assert_eq!(sized(1) + timed("ab") as u32 + both(3).unwrap() + strings(4).unwrap(), 10);
    assert_eq!(inferred_key(12), refreshed(12));
    assert_eq!(sized_cache().store().len(), 1);
}
