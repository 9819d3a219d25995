//! `cached`'s `ty` alone: it names the type of the store `create` makes, so the error on `ty`
//! asks for `create`.
use memoflight::cached;

#[cached(ty = "memoflight::Unbounded<u64, u64>")]
fn typed_store(n: u64) -> u64 {
    n
}

fn main() {}
