//! Memoized recursion with single-flight on, and the clear panic for same-key recursion.
//!
//! ```text
//! cargo run --release --example fib                # fib(150), each n computed once
//! cargo run --release --example fib -- --same-key  # a function that asks for its own key
//! ```

use memoflight::cached;

#[cached]
fn fib(n: u64) -> u128 {
    if n < 2 {
        n as u128
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// A bug: for n > 0 it asks for its own key. With a per-key lock held across the call (the
/// `cached` crate's `sync_writes = "by_key"`) this hangs forever; here that call panics at once.
#[cached]
fn countdown(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        countdown(n) + 1
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--same-key") {
        std::panic::set_hook(Box::new(|_| {})); // printed below instead
        match std::panic::catch_unwind(|| countdown(3)) {
            Ok(value) => println!("countdown(3) returned {value}"),
            Err(panic) => println!(
                "countdown(3) panicked instead of hanging:\n  {}",
                text(&*panic)
            ),
        }
        println!(
            "in flight afterwards: {}",
            countdown_cache().stats().in_flight
        );
        return;
    }
    let value = fib(150);
    let stats = fib_cache().stats();
    println!("fib(150) = {value}");
    println!(
        "executions {} (fib(0)..fib(150), each once), hits {}, misses {}, entries {}, in flight {}",
        stats.executions, stats.hits, stats.misses, stats.entries, stats.in_flight
    );
}

fn text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
