#[memoflight::cached]
fn f(n: u32) {
    println!("{n}");
}

fn main() {
    f(1);
}
