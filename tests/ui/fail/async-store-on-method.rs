//! `async_store = ..` on a method: refused on the option (a method's cache lives in its
//! handle, which does not take an async store yet).
use memoflight::cached;

struct Service;

impl Service {
    #[cached(async_store = remote(), convert = n, key = u32)]
    fn lookup(&self, n: u32) -> u32 {
        n
    }
}

fn main() {}
