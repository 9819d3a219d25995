#[memoflight::cached(cache_err = "yes", key = 5, convert = n)]
fn f(n: u32) -> Result<u32, String> {
    Ok(n)
}

fn main() {
    let _ = f(1);
}
