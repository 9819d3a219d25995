//! Spellings the `cached` crate removed: each refused on its name, with what to write instead.
use memoflight::cached;

#[cached(size = 10, time = 60, time_refresh = true, result = true)]
fn removed(n: u64) -> Result<u64, String> {
    Ok(n)
}

#[cached(option = true)]
fn removed_option(n: u64) -> Option<u64> {
    Some(n)
}

fn main() {}
