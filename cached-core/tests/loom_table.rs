//! Model check of the default store's table (`src/store/table.rs`): lock-free reads against
//! writers that reuse removed slots, rebuild off the lock, and clear. Under loom the table has
//! one shard and a fixed hasher, so every model's keys share one array.
//!
//! What loom explores here: every interleaving of the writers around the shard's mutex and
//! its version check (dropping the check from `remove` fails `a_rebuild_off_the_lock_loses_nothing`).
//! What it does not: loom 0.7's DPOR keeps one last access per atomic, so when a writer loads
//! an atomic and then stores it, a reader's earlier load of it is not reordered after the
//! store. The reader/writer races are covered by the stress tests of
//! `tests/test_default_store.rs` (run under valgrind in CI).
//!
//! ```sh
//! RUSTFLAGS="--cfg memoflight_loom" LOOM_MAX_PREEMPTIONS=3 \
//!   cargo test -p memoflight-core --features async --test loom_table --release --target-dir target/loom
//! ```
#![cfg(memoflight_loom)]

use loom::sync::Arc;
use loom::thread;
use memoflight_core::{Store, Unbounded};

type Table = Unbounded<u8, u32>;

fn filled(keys: std::ops::RangeInclusive<u8>) -> Arc<Table> {
    let store = Table::new();
    for key in keys {
        store.insert(key, u32::from(key) * 10);
    }
    Arc::new(store)
}

/// A removed slot is reused by another key while a reader probes through it: the reader sees
/// each key's own value or nothing, and a key present throughout is never missed.
#[test]
fn a_reused_slot_never_shows_a_wrong_value_or_hides_a_key() {
    loom::model(|| {
        let store = filled(1..=2);
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                assert_eq!(store.remove(&1), Some(10));
                store.insert(3, 30);
            })
        };
        assert_eq!(
            store.get(&2),
            Some(20),
            "a key present throughout was missed"
        );
        let three = store.get(&3);
        assert!(three.is_none() || three == Some(30), "{three:?}");
        let one = store.get(&1);
        assert!(one.is_none() || one == Some(10), "{one:?}");
        writer.join().unwrap();
        assert_eq!(
            (store.get(&1), store.get(&3), store.len()),
            (None, Some(30), 2)
        );
    });
}

/// Two writers insert into one shard at once, one of them reusing a removed slot: both
/// entries land, once each.
#[test]
fn concurrent_inserts_both_land_once() {
    loom::model(|| {
        let store = filled(1..=1);
        store.remove(&1);
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.insert(2, 20))
        };
        store.insert(3, 30);
        writer.join().unwrap();
        assert_eq!(
            (store.get(&2), store.get(&3), store.len()),
            (Some(20), Some(30), 2)
        );
        let mut seen = Vec::new();
        store.retain(&mut |key, _| {
            seen.push(*key);
            true
        });
        seen.sort_unstable();
        assert_eq!(seen, [2, 3]);
    });
}

/// A replacement is atomic and never undone for a reader: once the new value is read, the
/// old one is never read again.
#[test]
fn a_replacement_is_never_read_backwards() {
    loom::model(|| {
        let store = filled(1..=1);
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.insert(1, 11))
        };
        let first = store.get(&1);
        let second = store.get(&1);
        assert!(matches!(first, Some(10 | 11)), "{first:?}");
        assert!(
            first != Some(11) || second == Some(11),
            "{first:?} then {second:?}"
        );
        writer.join().unwrap();
        assert_eq!(store.get(&1), Some(11));
    });
}

/// An insert passes the rebuild mark (6 of 8 slots) and rebuilds the array off the lock while
/// another writer removes a key and a reader reads: no key is lost or duplicated, and a key
/// present throughout is always found.
#[test]
fn a_rebuild_off_the_lock_loses_nothing() {
    loom::model(|| {
        let store = filled(1..=5);
        let remover = {
            let store = store.clone();
            thread::spawn(move || assert_eq!(store.remove(&1), Some(10)))
        };
        let grower = {
            let store = store.clone();
            thread::spawn(move || store.insert(6, 60))
        };
        assert_eq!(
            store.get(&5),
            Some(50),
            "a key present throughout was missed"
        );
        remover.join().unwrap();
        grower.join().unwrap();
        for key in 2..=6 {
            assert_eq!(store.get(&key), Some(u32::from(key) * 10), "key {key}");
        }
        assert_eq!((store.get(&1), store.len()), (None, 5));
    });
}

/// `clear` racing an insert: afterwards the old keys are gone, and the new key is either
/// stored (counted by `len`) or not, consistently.
#[test]
fn clear_racing_an_insert_is_consistent() {
    loom::model(|| {
        let store = filled(1..=2);
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.insert(3, 30))
        };
        store.clear();
        writer.join().unwrap();
        assert_eq!((store.get(&1), store.get(&2)), (None, None));
        match store.get(&3) {
            Some(30) => assert_eq!(store.len(), 1),
            None => assert_eq!(store.len(), 0),
            other => panic!("{other:?}"),
        }
    });
}
