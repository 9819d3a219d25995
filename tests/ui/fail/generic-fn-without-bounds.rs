//! A generic function gets a cache per instantiation, so its key and value types need the
//! bounds of any key and value: rustc names each missing one on the type parameter.
#[memoflight::cached]
fn f<T: Clone>(n: T) -> T {
    n
}

fn main() {
    f(1);
}
