use memoflight::cached;
use std::time::Duration;

#[cached(wait_timeout = "1m 30s")]
fn human(n: u32) -> u32 {
    n
}

#[cached(wait_timeout = Duration::from_millis(250))]
fn expression(n: u32) -> u32 {
    n
}

fn main() {
    assert_eq!(human(1) + expression(2), 3);
}
