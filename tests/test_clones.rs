//! The stores copy a value only to hand one to a caller: a miss keeps the computed value and
//! returns one clone, a hit returns one clone, `remove` returns one clone, and `invalidate`,
//! `invalidate_if` and `clear` copy nothing (the default-store issue's "no value is
//! deep-copied by the store beyond the one clone a hit returns and the one the leader keeps").

use memoflight::{Bounded, Cache, Expires, Expiring, Store, Unbounded};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    /// Clones made on this thread (every operation below runs on the test's thread).
    static CLONES: Cell<usize> = const { Cell::new(0) };
}

/// A value that counts its clones.
#[derive(Debug, PartialEq)]
struct Counted(u64);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.set(CLONES.get() + 1);
        Counted(self.0)
    }
}

impl Expires for Counted {
    fn is_expired(&self) -> bool {
        false
    }
}

/// The clones `operation` made.
fn clones(operation: impl FnOnce()) -> usize {
    let before = CLONES.get();
    operation();
    CLONES.get() - before
}

fn copies_only_what_callers_get<S: Store<Key = u64, Value = Counted>>(store: S) {
    let name = std::any::type_name::<S>();
    let cache = Cache::new("clones", store);
    for key in 0..4 {
        let miss = clones(|| assert_eq!(cache.get_or_compute(key, || Counted(key)), Counted(key)));
        assert_eq!(miss, 1, "{name}: a miss");
    }
    let hit = clones(|| assert_eq!(cache.get_or_compute(0, || Counted(99)), Counted(0)));
    assert_eq!(hit, 1, "{name}: a hit");
    assert_eq!(
        clones(|| assert_eq!(cache.get(&0), Some(Counted(0)))),
        1,
        "{name}: get"
    );
    assert_eq!(
        clones(|| assert!(cache.invalidate(&0))),
        0,
        "{name}: invalidate"
    );
    assert_eq!(
        clones(|| assert!(!cache.invalidate(&0))),
        0,
        "{name}: invalidate, absent"
    );
    let removed = clones(|| assert_eq!(cache.remove(&1), Some(Counted(1))));
    assert_eq!(removed, 1, "{name}: remove returns a copy");
    let retained = clones(|| cache.invalidate_if(|key, value| *key == value.0 && *key == 2));
    assert_eq!(retained, 0, "{name}: invalidate_if");
    assert_eq!(cache.len(), 1, "{name}");
    assert_eq!(clones(|| cache.clear()), 0, "{name}: clear");
    assert!(cache.is_empty(), "{name}");
}

#[test]
fn a_store_copies_a_value_only_to_hand_one_to_a_caller() {
    copies_only_what_callers_get(Unbounded::new());
    copies_only_what_callers_get(Bounded::new().max_size(100));
    copies_only_what_callers_get(Bounded::new().ttl(Duration::from_secs(3600)));
    copies_only_what_callers_get(Expiring::new(Unbounded::new()));
    copies_only_what_callers_get(Expiring::new(Bounded::new().max_size(100)));
    // A store behind a pointer forwards every method.
    copies_only_what_callers_get(Arc::new(Unbounded::new()));
    let shared = Bounded::new().max_size(100);
    copies_only_what_callers_get(&shared);
}
