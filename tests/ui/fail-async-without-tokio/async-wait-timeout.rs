// `wait_timeout` needs a timer, which only the `tokio` feature brings to async functions.
#[memoflight::cached(wait_timeout = "2s")]
async fn f(n: u32) -> u32 {
    n
}

fn main() {
    let _ = f(1);
}
