use memoflight::cached;
use std::time::Duration;

#[cached(wait_timeout = Duration::from_secs(1))]
async fn patient(n: u32) -> u32 {
    n
}

#[cached(wait_timeout = "250ms")]
async fn hurried(n: u32) -> u32 {
    n
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(async { patient(1).await + hurried(2).await }), 3);
}
