#[memoflight::cached]
fn f<T: Clone>(n: T) -> T {
    n
}

fn main() {
    f(1);
}
