use memoflight::DiskStore;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;
static DIR: OnceLock<PathBuf> = OnceLock::new();
fn dir() -> PathBuf {
    DIR.get().unwrap().clone()
}
#[memoflight::cached(async_store = DiskStore::new(dir()))]
fn memo_value(key: u64) -> String {
    format!("value of {key}: {}", "x".repeat(100))
}
fn main() {
    let base = std::env::temp_dir().join(format!("probe-{}", std::process::id()));
    DIR.set(base.clone()).unwrap();
    black_box(memo_value(0));
    let n = 300u64;
    let mut times = vec![];
    for k in 1..n {
        let t = Instant::now();
        black_box(memo_value(k));
        times.push(t.elapsed().as_micros());
    }
    times.sort();
    println!(
        "miss median {} us p90 {} max {}",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    let _ = std::fs::remove_dir_all(base);
}
