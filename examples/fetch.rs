//! An async download that sometimes fails. Eight tasks ask for the same file at once: one
//! download runs, and when it fails every waiting task receives its error (one attempt, not
//! eight). The error is not cached: the next round tries again, and its success is.
//!
//! ```text
//! cargo run --release --example fetch --features async
//! ```

use memoflight::cached;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Why a download failed. `Clone`, so that waiting tasks receive the leader's error instead of
/// retrying one after another.
#[derive(Clone, Debug)]
enum FetchError {
    TimedOut { url: String, after: Duration },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::TimedOut { url, after } => write!(f, "{url}: timed out after {after:?}"),
        }
    }
}

static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// A flaky server: the first attempt times out, later ones succeed.
#[cached]
async fn fetch(url: &str) -> Result<Arc<Vec<u8>>, FetchError> {
    let attempt = ATTEMPTS.fetch_add(1, SeqCst) + 1;
    println!("  attempt {attempt}: downloading {url}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    if attempt == 1 {
        return Err(FetchError::TimedOut {
            url: url.to_owned(),
            after: Duration::from_millis(100),
        });
    }
    Ok(Arc::new(vec![0xAB; 4096]))
}

async fn round(number: u32) {
    println!("round {number}: 8 tasks fetch the same file at once");
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(fetch_with_origin("https://example.org/song.mp3")))
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (result, origin) = task.await.expect("a task panicked");
        match result {
            Ok(bytes) => println!("  task {i}: {} bytes ({origin:?})", bytes.len()),
            Err(error) => println!("  task {i}: error: {error} ({origin:?})"),
        }
    }
}

#[tokio::main]
async fn main() {
    for number in 1..=3 {
        round(number).await;
    }
    let stats = fetch_cache().stats();
    println!(
        "\n{} attempts for 24 calls: executions {}, failed {} (shared with the waiters, not \
         cached), coalesced waits {}, hits {}",
        ATTEMPTS.load(SeqCst),
        stats.executions,
        stats.errors,
        stats.waits,
        stats.hits
    );
}
