use memoflight::cached;

#[cached(async_store = remote())]
fn lookup(n: u32) -> u32 {
    n
}

fn main() {
    lookup(1);
}
