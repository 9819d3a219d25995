//! "Did my call compute it?": `f_with_origin` tells each caller whether it ran the function
//! (the callers released at once by `memoflight::testing::stampede`).
//! The throttle of SCENARIOS.md §4: of 10 concurrent checks, exactly one is "not throttled".
//! (A window ends here with `invalidate`; with `ttl` it will end on its own.)

#![cfg(feature = "testing")]

use memoflight::cached;
use memoflight::testing::stampede;

#[cached]
fn play(sound: &str) -> u64 {
    // Stands in for playing the sound; the value is irrelevant, who computed it is not.
    sound.len() as u64
}

#[test]
fn exactly_one_of_ten_concurrent_callers_computes_per_window() {
    for window in 0..50 {
        let checks = stampede(10, |_| play_with_origin("ding"));
        assert_eq!(checks.panics(), 0);
        assert_eq!(
            checks.computed(),
            1,
            "window {window}: {:?}",
            checks.results
        );
        play_cache().invalidate("ding"); // the window ends
    }
    assert_eq!(play_cache().stats().executions, 50);
    assert_eq!(
        play("ding"),
        4,
        "the ordinary function returns the plain value"
    );
}
