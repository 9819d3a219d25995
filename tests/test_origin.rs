//! "Did my call compute it?": `f_with_origin` tells each caller whether it ran the function.
//! The throttle of SCENARIOS.md §4: of 10 concurrent checks, exactly one is "not throttled".
//! (A window ends here with `invalidate`; with `ttl` it will end on its own.)

mod common;

use memoflight::{cached, Origin};

#[cached]
fn play(sound: &str) -> u64 {
    // Stands in for playing the sound; the value is irrelevant, who computed it is not.
    sound.len() as u64
}

fn ten_concurrent_checks() -> Vec<Origin> {
    common::together(10, || play_with_origin("ding").1)
        .into_iter()
        .map(|outcome| outcome.expect("a check panicked"))
        .collect()
}

#[test]
fn exactly_one_of_ten_concurrent_callers_computes_per_window() {
    for window in 0..50 {
        let origins = ten_concurrent_checks();
        let computed = origins.iter().filter(|&&o| o == Origin::Computed).count();
        assert_eq!(computed, 1, "window {window}: {origins:?}");
        assert!(origins
            .iter()
            .all(|o| matches!(o, Origin::Computed | Origin::Waited | Origin::Hit)));
        play_cache().invalidate("ding"); // the window ends
    }
    assert_eq!(play_cache().stats().executions, 50);
    assert_eq!(
        play("ding"),
        4,
        "the ordinary function returns the plain value"
    );
}
