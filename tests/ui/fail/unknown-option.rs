#[memoflight::cached(max_sise = 10)]
fn f(n: u32) -> u32 {
    n
}

fn main() {
    f(1);
}
