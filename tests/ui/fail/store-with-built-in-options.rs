//! A store given with `store = ..`: the built-in store's options (`expires`, `refresh`, `ttl`)
//! do not apply to it, and each is refused on its own name.
use memoflight::cached;

#[cached(store = memoflight::Unbounded::new(), expires, refresh, ttl = "1m")]
fn options_of_the_built_in_store(n: u64) -> u64 {
    n
}

fn main() {}
