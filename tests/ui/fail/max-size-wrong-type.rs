#[memoflight::cached(max_size = 10u8)]
fn f(n: u32) -> u32 {
    n
}

fn main() {
    f(1);
}
