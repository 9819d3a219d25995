//! `tracing` events, behind the `tracing` feature; every function here compiles to nothing
//! without it. Events carry the function's name (`function`) and the key's `Debug` form
//! (`key`, formatted only when the event is enabled). Nothing is emitted on the hit path.
//!
//! | event | level |
//! |---|---|
//! | miss | debug |
//! | computation start, end (with `elapsed_us`) | debug |
//! | coalesced wait end (with `waited_us`) | debug |
//! | leader panicked, was cancelled or failed unshareably, waiters take over | warn |
//! | invalidation, clear | debug |
//! | a store that evicted or expired entries to take a computed value (with `evicted`) | debug |
//! | an async store operation failed (with `operation`, `error`); the cache carries on | warn, the first in a minute per cache; debug after |
//!
//! Without the feature, the types here are empty and every function is an empty inline one.

#[cfg(feature = "tracing")]
mod enabled {
    use std::time::Instant;

    const TARGET: &str = "memoflight";

    /// The computation events are about: `function(key)`, described only if a subscriber
    /// wants memoflight's events at all.
    pub(crate) struct Subject {
        function: &'static str,
        key: Option<String>,
    }

    impl Subject {
        pub(crate) fn new(function: &'static str, key: impl FnOnce() -> String) -> Self {
            let wanted = tracing::enabled!(target: TARGET, tracing::Level::WARN);
            Subject {
                function,
                key: wanted.then(key),
            }
        }

        fn key(&self) -> &str {
            self.key.as_deref().unwrap_or("?")
        }
    }

    /// A clock for durations, read only when the feature is on.
    pub(crate) struct Clock(Instant);

    impl Clock {
        pub(crate) fn start() -> Self {
            Clock(Instant::now())
        }

        fn elapsed_us(&self) -> u64 {
            self.0.elapsed().as_micros() as u64
        }
    }

    pub(crate) fn miss(s: &Subject) {
        tracing::debug!(target: TARGET, function = s.function, key = %s.key(), "miss");
    }

    pub(crate) fn computing(s: &Subject) {
        tracing::debug!(target: TARGET, function = s.function, key = %s.key(), "computation started");
    }

    pub(crate) fn computed(s: &Subject, clock: &Clock) {
        tracing::debug!(
            target: TARGET,
            function = s.function,
            key = %s.key(),
            elapsed_us = clock.elapsed_us(),
            "computation finished"
        );
    }

    pub(crate) fn waited(s: &Subject, clock: &Clock) {
        tracing::debug!(
            target: TARGET,
            function = s.function,
            key = %s.key(),
            waited_us = clock.elapsed_us(),
            "coalesced wait finished"
        );
    }

    pub(crate) fn handed_off(s: &Subject, why: &str) {
        tracing::warn!(target: TARGET, function = s.function, key = %s.key(), why, "waiters take over");
    }

    pub(crate) fn invalidated(function: &str) {
        tracing::debug!(target: TARGET, function, "invalidated a key");
    }

    pub(crate) fn cleared(function: &str) {
        tracing::debug!(target: TARGET, function, "cleared");
    }

    /// Spaces one cache's warnings about its store: a store that stays down (a read-only
    /// directory, a stopped server) fails every call, and one warning a minute says so; the
    /// other failures are debug events (all are counted in `Stats::store_errors`).
    #[cfg(feature = "async")]
    pub(crate) struct Repeats {
        /// When the last warning was emitted: ms since `BASE`, plus one (0: never).
        last_warning: std::sync::atomic::AtomicU64,
    }

    #[cfg(feature = "async")]
    impl Repeats {
        pub(crate) fn new() -> Self {
            Repeats {
                last_warning: std::sync::atomic::AtomicU64::new(0),
            }
        }

        /// Whether a warning is due now (none in the last minute), claiming it if so.
        fn warning_due(&self) -> bool {
            use std::sync::atomic::Ordering::Relaxed;
            static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            let now = BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
            let last = self.last_warning.load(Relaxed);
            (last == 0 || now.saturating_sub(last) >= 60_000)
                && self
                    .last_warning
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_ok()
        }
    }

    /// An async store's `operation` failed with `error`; the call went on without the store.
    /// A warning the first time in a minute for this cache, a debug event otherwise.
    #[cfg(feature = "async")]
    pub(crate) fn store_failed(
        s: &Subject,
        operation: &str,
        error: &dyn std::error::Error,
        repeats: &Repeats,
    ) {
        if repeats.warning_due() {
            tracing::warn!(
                target: TARGET,
                function = s.function,
                key = %s.key(),
                operation,
                error = %error,
                "store operation failed; computing without the store (further failures within \
                 a minute are debug events, all counted in stats().store_errors)"
            );
        } else {
            tracing::debug!(
                target: TARGET,
                function = s.function,
                key = %s.key(),
                operation,
                error = %error,
                "store operation failed again; computing without the store"
            );
        }
    }

    /// The store's eviction count before a value is stored, for [`evicted`].
    pub(crate) fn evictions_before(count: impl FnOnce() -> u64) -> u64 {
        count()
    }

    /// Reports the entries the store evicted (or reclaimed as expired) while taking the
    /// subject's value.
    pub(crate) fn evicted(s: &Subject, before: u64, count: impl FnOnce() -> u64) {
        let evicted = count().saturating_sub(before);
        if evicted > 0 {
            tracing::debug!(
                target: TARGET,
                function = s.function,
                key = %s.key(),
                evicted,
                "stored; the store evicted entries"
            );
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod enabled {
    /// Nothing to describe without the feature.
    pub(crate) struct Subject;

    impl Subject {
        #[inline(always)]
        pub(crate) fn new(_: &'static str, _: impl FnOnce() -> String) -> Self {
            Subject
        }
    }

    /// No clock without the feature.
    pub(crate) struct Clock;

    impl Clock {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Clock
        }
    }

    #[inline(always)]
    pub(crate) fn miss(_: &Subject) {}
    #[inline(always)]
    pub(crate) fn computing(_: &Subject) {}
    #[inline(always)]
    pub(crate) fn computed(_: &Subject, _: &Clock) {}
    #[inline(always)]
    pub(crate) fn waited(_: &Subject, _: &Clock) {}
    #[inline(always)]
    pub(crate) fn handed_off(_: &Subject, _: &str) {}
    #[inline(always)]
    pub(crate) fn invalidated(_: &str) {}
    #[inline(always)]
    pub(crate) fn cleared(_: &str) {}
    /// Nothing to space without the feature.
    #[cfg(feature = "async")]
    pub(crate) struct Repeats;

    #[cfg(feature = "async")]
    impl Repeats {
        pub(crate) fn new() -> Self {
            Repeats
        }
    }

    #[inline(always)]
    #[cfg(feature = "async")]
    pub(crate) fn store_failed(_: &Subject, _: &str, _: &dyn std::error::Error, _: &Repeats) {}

    pub(crate) fn evictions_before(_: impl FnOnce() -> u64) -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn evicted(_: &Subject, _: u64, _: impl FnOnce() -> u64) {}
}

pub(crate) use enabled::*;
