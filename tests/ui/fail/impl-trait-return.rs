#[memoflight::cached]
fn f(n: u32) -> impl std::fmt::Display {
    n
}

fn main() {
    f(1);
}
