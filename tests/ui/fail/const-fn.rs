#[memoflight::cached]
const fn f(n: u32) -> u32 {
    n
}

fn main() {
    f(1);
}
