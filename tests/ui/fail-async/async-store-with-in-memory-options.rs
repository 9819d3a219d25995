use memoflight::cached;

#[cached(async_store = remote(), max_size = 10, ttl = "1m")]
async fn lookup(n: u32) -> u32 {
    n
}

fn main() {
    let _ = lookup(1);
}
