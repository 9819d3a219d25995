//! [`Clock`]: the time source of expiring stores, real or moved by hand in tests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The time source of a [`Bounded`](crate::Bounded) store with a `ttl` or `refresh_after`.
///
/// [`Clock::system`] (the default) reads a fast monotonic clock (`quanta`: the CPU's time-stamp
/// counter where it is reliable), cheap enough for every hit. [`Clock::manual`] stands still
/// until [`advance`](Clock::advance)d: tests of expiry use it instead of sleeping. Clones share
/// the same time.
///
/// ```
/// use memoflight::{Bounded, Clock, Store};
/// use std::time::Duration;
///
/// let clock = Clock::manual();
/// let store = Bounded::<u8, u8>::new()
///     .ttl(Duration::from_secs(90))
///     .clock(clock.clone());
/// store.insert(1, 10);
/// clock.advance(Duration::from_secs(89));
/// assert_eq!(store.get(&1), Some(10));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(store.get(&1), None); // expired at exactly 90 s
/// ```
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    /// The raw reading of [`system_clock`] at this clock's creation.
    System(u64),
    Manual(Arc<AtomicU64>),
}

/// One calibrated `quanta` clock per process: calibrating takes milliseconds, so every
/// [`Clock::system`] shares it. Its raw reading is the time-stamp counter where that is
/// reliable; the instance (unlike `quanta::Instant::now`) skips quanta's per-thread mock check.
fn system_clock() -> &'static quanta::Clock {
    static SYSTEM: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    SYSTEM.get_or_init(quanta::Clock::new)
}

impl Clock {
    /// The real, monotonic time.
    ///
    /// ```
    /// # use memoflight::Clock;
    /// let clock = Clock::system();
    /// # let _ = clock;
    /// ```
    pub fn system() -> Self {
        Clock(Source::System(system_clock().raw()))
    }

    /// A clock that starts at zero and moves only when [`advance`](Clock::advance)d.
    ///
    /// ```
    /// # use memoflight::Clock;
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// clock.advance(Duration::from_millis(5));
    /// ```
    pub fn manual() -> Self {
        Clock(Source::Manual(Arc::new(AtomicU64::new(0))))
    }

    /// Moves a manual clock (and all its clones) forward by `by`.
    ///
    /// # Panics
    ///
    /// If the clock is the [`system`](Clock::system) clock, which cannot be moved.
    ///
    /// ```
    /// # use memoflight::Clock;
    /// # use std::time::Duration;
    /// let clock = Clock::manual();
    /// let shared = clock.clone();
    /// clock.advance(Duration::from_secs(1));
    /// # let _ = shared;
    /// ```
    pub fn advance(&self, by: Duration) {
        match &self.0 {
            Source::Manual(now) => {
                now.fetch_add(nanos(by), Relaxed);
            }
            Source::System(_) => panic!("memoflight: the system clock cannot be advanced"),
        }
    }

    /// Nanoseconds since this clock's origin.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match &self.0 {
            Source::System(origin) => {
                let clock = system_clock();
                clock.delta_as_nanos(*origin, clock.raw())
            }
            Source::Manual(now) => now.load(Relaxed),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A duration in nanoseconds, saturating (about 584 years).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
