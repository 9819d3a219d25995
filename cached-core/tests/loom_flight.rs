//! Model check of the single-flight protocol (`src/flight.rs`) under every interleaving loom
//! explores. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg memoflight_loom" cargo test -p memoflight-core --features async --test loom_flight --release
//! ```
#![cfg(memoflight_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use memoflight_core::__macro_support::{CacheOk, Compute as _, KeepFailure as _, SharingOf};
use memoflight_core::{Cache, Unbounded};

type Memo = Cache<Unbounded<u8, u32>>;

/// Two concurrent misses on one key: one execution, both get the value, nothing left in flight.
#[test]
fn concurrent_misses_run_once() {
    loom::model(|| {
        let cache = Arc::new(Memo::new("f", Unbounded::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let call = {
            let (cache, runs) = (cache.clone(), runs.clone());
            move || {
                cache.get_or_compute(1, || {
                    runs.fetch_add(1, SeqCst);
                    7
                })
            }
        };
        let other = thread::spawn(call.clone());
        assert_eq!(call(), 7);
        assert_eq!(other.join().unwrap(), 7);
        assert_eq!(runs.load(SeqCst), 1);
        assert_eq!(cache.stats().in_flight, 0);
        assert_eq!(cache.len(), 1);
    });
}

/// A leader whose failure cannot be shared vacates its flight: the waiter goes around and
/// computes once more. At most two executions, no caller hangs, the table ends empty.
#[test]
fn vacated_flight_is_taken_over() {
    loom::model(|| {
        let cache = Arc::new(Memo::new("f", Unbounded::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let call = {
            let (cache, runs) = (cache.clone(), runs.clone());
            move || -> Result<u32, ()> {
                let compute = || match runs.fetch_add(1, SeqCst) {
                    0 => Err(()),
                    _ => Ok(9),
                };
                let sharing = (&SharingOf::<Result<u32, ()>>::new()).__memo_sharing();
                cache.__memo_compute::<_, CacheOk>(1, compute, sharing).0
            }
        };
        let other = thread::spawn(call.clone());
        let mine = call();
        let theirs = other.join().unwrap();
        // Exactly one caller saw the failure; the other got the retry's value.
        assert_eq!([mine, theirs].iter().filter(|r| r.is_err()).count(), 1);
        assert_eq!(runs.load(SeqCst), 2);
        assert_eq!(cache.stats().in_flight, 0);
    });
}

/// A leader that cannot finish until the end (as good as a forgotten async leader) and a
/// second caller of the same key, with the key invalidated once a computation has started:
/// the second caller never waits for the stuck leader past the invalidation, so it always
/// returns a value of its own computation (or of a computation that was not stuck); nothing
/// is left in flight.
#[test]
fn invalidation_releases_the_waiters_of_a_stuck_leader() {
    loom::model(|| {
        let cache = Arc::new(Memo::new("f", Unbounded::new()));
        let started = Arc::new(Signal::default());
        let release = Arc::new(Signal::default());
        let stuck = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            thread::spawn(move || {
                cache.get_or_compute(1, || {
                    started.raise();
                    release.wait();
                    10
                })
            })
        };
        let second = {
            let (cache, started) = (cache.clone(), started.clone());
            thread::spawn(move || {
                cache.get_or_compute(1, || {
                    started.raise();
                    20
                })
            })
        };
        started.wait();
        cache.invalidate(&1);
        // Returns without the stuck leader, which does not finish before `release`.
        assert_eq!(second.join().unwrap(), 20);
        release.raise();
        let first = stuck.join().unwrap();
        assert!(first == 10 || first == 20);
        assert_eq!(cache.stats().in_flight, 0);
    });
}

/// A flag one thread waits for (loom's `Notify` may wake spuriously: the flag decides).
#[derive(Default)]
struct Signal {
    raised: loom::sync::atomic::AtomicBool,
    notify: loom::sync::Notify,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, SeqCst);
        self.notify.notify();
    }

    fn wait(&self) {
        while !self.raised.load(SeqCst) {
            self.notify.wait();
        }
    }
}

/// Invalidation racing a computation: once `invalidate` returned, the store never holds a value
/// computed from the data as it was before (no repopulation window).
#[test]
fn invalidation_never_resurrects_a_stale_value() {
    drop_racing_a_computation(
        |cache| {
            cache.invalidate(&1);
        },
        None,
    );
}

/// The same with `clear`, which unregisters every flight at once.
#[test]
fn clear_never_resurrects_a_stale_value() {
    drop_racing_a_computation(|cache| cache.clear(), None);
}

/// A key's invalidation and a clear at once: the clear's wait for a writing flight keeps it
/// registered, so the invalidation finds it and waits for its write too.
#[test]
fn a_key_invalidation_racing_a_clear_never_resurrects_a_stale_value() {
    drop_racing_a_computation(
        |cache| {
            cache.invalidate(&1);
        },
        Some(|cache| cache.clear()),
    );
}

/// Two clears at once, racing a computation: the second waits for the first on the lock
/// that serializes clears (with an edge of the wait graph), and neither lets the stale value
/// be stored.
#[test]
fn two_clears_racing_a_computation_never_resurrect_a_stale_value() {
    drop_racing_a_computation(|cache| cache.clear(), Some(|cache| cache.clear()));
}

/// Runs `drop_values` (an invalidation) against a computation of key 1 whose data changes
/// just before it, and, if given, `meanwhile` (another invalidation) on a third thread.
fn drop_racing_a_computation(drop_values: fn(&Memo), meanwhile: Option<fn(&Memo)>) {
    loom::model(move || {
        let cache = Arc::new(Memo::new("f", Unbounded::new()));
        let version = Arc::new(AtomicUsize::new(1));
        let reader = {
            let (cache, version) = (cache.clone(), version.clone());
            thread::spawn(move || cache.get_or_compute(1, || version.load(SeqCst) as u32))
        };
        let other = meanwhile.map(|meanwhile| {
            let cache = cache.clone();
            thread::spawn(move || meanwhile(&cache))
        });
        version.store(2, SeqCst);
        drop_values(&cache);
        assert_ne!(
            cache.get(&1),
            Some(1),
            "stale value after invalidate returned"
        );
        reader.join().unwrap();
        if let Some(other) = other {
            other.join().unwrap();
        }
        assert_ne!(
            cache.get(&1),
            Some(1),
            "stale value stored after invalidate"
        );
        assert_eq!(cache.stats().in_flight, 0);
    });
}

/// A store whose values below 10 are due for a refresh.
struct DueBelowTen(Unbounded<u8, u32>);

impl memoflight_core::Store for DueBelowTen {
    type Key = u8;
    type Value = u32;

    fn get<Q: ?Sized + std::hash::Hash + memoflight_core::Equivalent<u8>>(
        &self,
        key: &Q,
    ) -> Option<u32> {
        self.0.get(key)
    }
    fn get_aged<Q: ?Sized + std::hash::Hash + memoflight_core::Equivalent<u8>>(
        &self,
        key: &Q,
    ) -> Option<(u32, bool)> {
        self.0.get(key).map(|value| (value, value < 10))
    }
    fn insert(&self, key: u8, value: u32) {
        self.0.insert(key, value)
    }
    fn remove_with<Q: ?Sized + std::hash::Hash + memoflight_core::Equivalent<u8>, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&u32) -> R,
    ) -> Option<R> {
        self.0.remove_with(key, read)
    }
    fn retain(&self, keep: &mut dyn FnMut(&u8, &u32) -> bool) {
        self.0.retain(keep)
    }
    fn clear(&self) {
        self.0.clear()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Two callers read a value due for a refresh: exactly one refresh runs, nobody waits (a
/// caller gets the old value or the new one), and the new value ends up stored.
#[test]
fn a_due_value_is_refreshed_once_and_nobody_waits() {
    loom::model(|| {
        let store = DueBelowTen(Unbounded::new());
        memoflight_core::Store::insert(&store, 1, 1);
        let cache = Arc::new(Cache::new("f", store));
        let runs = Arc::new(AtomicUsize::new(0));
        let call = {
            let (cache, runs) = (cache.clone(), runs.clone());
            move || {
                cache.get_or_compute(1, || {
                    runs.fetch_add(1, SeqCst);
                    10
                })
            }
        };
        let other = thread::spawn(call.clone());
        let results = [call(), other.join().unwrap()];
        assert!(results.iter().all(|r| *r == 1 || *r == 10));
        assert!(results.contains(&10), "the refresher gets the new value");
        assert_eq!(runs.load(SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.waits, stats.in_flight), (0, 0));
        assert_eq!(cache.get(&1), Some(10));
    });
}

/// The async-store protocol (`src/async_cache.rs`): a leader keeps its flight registered while
/// it writes (`Storing`), and an invalidation waits for that write before it removes the value.
#[cfg(feature = "async")]
mod async_store {
    use super::*;
    use loom::future::block_on;
    use memoflight_core::{AsyncCache, AsyncStore};

    /// An async store of one key's value.
    #[derive(Default)]
    struct Slot(loom::sync::Mutex<Option<u32>>);

    impl AsyncStore for Slot {
        type Key = u8;
        type Value = u32;
        type Error = std::io::Error;

        async fn get(&self, _: &u8) -> std::io::Result<Option<u32>> {
            Ok(*self.0.lock().unwrap())
        }
        async fn insert(&self, _: u8, value: u32) -> std::io::Result<()> {
            *self.0.lock().unwrap() = Some(value);
            Ok(())
        }
        async fn remove(&self, _: &u8) -> std::io::Result<()> {
            *self.0.lock().unwrap() = None;
            Ok(())
        }
        async fn clear(&self) -> std::io::Result<()> {
            *self.0.lock().unwrap() = None;
            Ok(())
        }
        async fn len(&self) -> std::io::Result<usize> {
            Ok(usize::from(self.0.lock().unwrap().is_some()))
        }
    }

    /// A caller computes from the source while another changes the source and invalidates:
    /// whatever the interleaving, no value computed from the old source is stored once the
    /// invalidation returned, and a call made after it gets the new one.
    #[test]
    fn an_invalidation_never_lets_a_stale_write_land_after_it() {
        loom::model(|| {
            let cache = Arc::new(AsyncCache::new("f", Slot::default()));
            let source = Arc::new(AtomicUsize::new(0));
            let call = {
                let (cache, source) = (cache.clone(), source.clone());
                move || {
                    let source = source.clone();
                    block_on(cache.get_or_compute(1, || async move { source.load(SeqCst) as u32 }))
                }
            };
            let early = thread::spawn(call.clone());
            source.store(1, SeqCst);
            block_on(cache.invalidate(&1)).unwrap();
            assert_eq!(call(), 1, "a call after the invalidation got the old value");
            early.join().unwrap();
            assert_ne!(
                block_on(cache.get(&1)).unwrap(),
                Some(0),
                "stale write landed"
            );
            assert_eq!(block_on(cache.stats()).unwrap().in_flight, 0);
        });
    }
}
