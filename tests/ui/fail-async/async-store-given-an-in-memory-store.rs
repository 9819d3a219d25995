use memoflight::{cached, Unbounded};

#[cached(async_store = Unbounded::new())]
async fn lookup(n: u32) -> u32 {
    n
}

fn main() {
    let _ = lookup(1);
}
