#[memoflight::cached(cache_err = true, cache_err = false)]
fn f(n: u32) -> Result<u32, String> {
    Ok(n)
}

fn main() {
    let _ = f(1);
}
