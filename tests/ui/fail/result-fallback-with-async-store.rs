//! `result_fallback` over an `async_store`: refused on `result_fallback` (an async store has
//! no expired values to fall back on yet).
use memoflight::cached;

#[cached(async_store = remote(), result_fallback)]
fn lookup(n: u32) -> Result<u32, String> {
    Ok(n)
}

fn main() {}
