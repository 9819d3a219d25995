#[memoflight::cached(cache_err = true)]
fn f(n: u32) -> Option<u32> {
    Some(n)
}

fn main() {
    f(1);
}
