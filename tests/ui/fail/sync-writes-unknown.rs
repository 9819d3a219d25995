//! `sync_writes` with a string that is none of `cached`'s spellings: the error lists them.
use memoflight::cached;

#[cached(sync_writes = "x")]
fn writes(n: u32) -> u32 {
    n
}

fn main() {}
