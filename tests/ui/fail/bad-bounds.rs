#[memoflight::cached(ttl = "ninety seconds")]
fn bad_ttl(n: u32) -> u32 {
    n
}

#[memoflight::cached(max_size = 0)]
fn empty(n: u32) -> u32 {
    n
}

#[memoflight::cached(max_size = 10, ttl = "1s", store = memoflight::Unbounded::new())]
fn both(n: u32) -> u32 {
    n
}

fn main() {
    bad_ttl(1);
    empty(1);
    both(1);
}
