//! `name` takes a string (or a bare word, as `cached` does): a number is refused on it.
use memoflight::cached;

#[cached(name = 5)]
fn numbered(n: u32) -> u32 {
    n
}

fn main() {}
