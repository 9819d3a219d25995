#[memoflight::cached(wait_timeout = "2 parsecs")]
fn f(n: u32) -> u32 {
    n
}

fn main() {
    f(1);
}
