#[memoflight::cached]
async fn f(n: u32) -> u32 {
    n
}

fn main() {
    let _ = f(1);
}
