use memoflight::{cached, Unbounded};
use std::sync::{Arc, LazyLock};

static SHARED: LazyLock<Arc<Unbounded<u32, u32>>> = LazyLock::new(|| Arc::new(Unbounded::new()));

#[cached(store = Unbounded::new())]
fn own_store(n: u32) -> u32 {
    n
}

#[cached(store = Arc::clone(&SHARED))]
fn shared_store(n: u32) -> u32 {
    n + 1
}

fn main() {
    assert_eq!(own_store(1), 1);
    assert_eq!(own_store_cache().remove(&1), Some(1));
    assert_eq!(shared_store(1), 2);
    assert_eq!(memoflight::Store::len(&**SHARED), 1);
}
