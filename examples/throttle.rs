//! A throttle shared by concurrent hooks (`../shared/SCENARIOS.md` §4): "play each sound at most
//! once per window". Ten hooks fire at once in each window; the value lives one window (`ttl`),
//! and `play_with_origin` tells each hook whether *its* call computed it: exactly one plays.
//!
//! ```text
//! cargo run --release --example throttle
//! ```

use memoflight::{cached, Origin};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The throttle window.
const WINDOW: Duration = Duration::from_millis(300);

/// "Plays" the sound; the value is when. Cached for one window: calls within it are throttled.
#[cached(ttl = WINDOW)]
fn play(sound: &str) -> Instant {
    let _ = sound;
    Instant::now()
}

fn main() {
    let hooks = 10;
    let start = Instant::now();
    for window in 1..=3 {
        let barrier = Barrier::new(hooks);
        let played: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..hooks)
                .map(|hook| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let (_, origin) = play_with_origin("bell.wav");
                        (origin == Origin::Computed).then_some(hook)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("a hook panicked"))
                .collect()
        });
        println!(
            "window {window} (t = {:>4} ms): {hooks} hooks fired, hook {:?} played bell.wav, {} throttled",
            start.elapsed().as_millis(),
            played,
            hooks - played.len()
        );
        std::thread::sleep(WINDOW);
    }
    let stats = play_cache().stats();
    println!(
        "\n{} plays for {} calls ({} hits, {} coalesced waits)",
        stats.executions,
        stats.hits + stats.misses,
        stats.hits,
        stats.waits
    );
}
