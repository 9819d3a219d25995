//! `cached`'s `create` is the store: the built-in store's options are refused next to it, and
//! the error names `create`, as written, not `store`.
use memoflight::cached;

#[cached(create = "{ memoflight::Unbounded::new() }", max_size = 10)]
fn created(n: u64) -> u64 {
    n
}

fn main() {}
