//! Model check of the bounded store (`src/store/bounded.rs`): the contract that every entry is
//! taken out of its shard's count exactly once (its `Meta::gone` flag, set by whichever of a
//! removal, a replacement or an eviction gets there first), that an insert makes room before
//! it counts itself (so the count never exceeds `max_size`), and that victims chosen under the
//! queue lock are removed from the map after it, by pointer, without removing a newer value.
//! Under loom the store has one shard (its capacity is small) and its map one shard as well.
//!
//! What is checked after each model: the store's count (`len`) equals the number of keys a
//! read returns, it is within `max_size`, and the evictions counted are exactly those the
//! model forces. (A `Meta::claim` made of a load and a store instead of one swap fails
//! `an_eviction_racing_a_removal_of_its_victim_counts_it_once`: the victim is counted out
//! twice.) The hit path's renewals and expiry run on the clock, which loom does not model:
//! `tests/test_bounded_policies.rs` covers them with a manual clock.
//!
//! ```sh
//! RUSTFLAGS="--cfg memoflight_loom" LOOM_MAX_PREEMPTIONS=3 \
//!   cargo test -p memoflight-core --features async --test loom_bounded --release --target-dir target/loom
//! ```
#![cfg(memoflight_loom)]

use loom::sync::Arc;
use loom::thread;
use memoflight_core::{Bounded, Store};

type Store8 = Bounded<u8, u32>;

/// The keys among `keys` a read returns, each checked to hold its own value (`key * 10`).
fn readable(store: &Store8, keys: std::ops::RangeInclusive<u8>) -> usize {
    keys.filter(|&key| match store.get(&key) {
        Some(value) => {
            assert_eq!(value, u32::from(key) * 10, "key {key} read another's value");
            true
        }
        None => false,
    })
    .count()
}

/// Two inserts of new keys race into a full store of one: each makes room by evicting, so
/// exactly one entry remains, two evictions are counted, and the count matches the map.
#[test]
fn racing_inserts_into_a_full_store_evict_exactly_and_keep_the_bound() {
    loom::model(|| {
        let store = Arc::new(Store8::new().max_size(1));
        store.insert(1, 10);
        let other = {
            let store = store.clone();
            thread::spawn(move || store.insert(2, 20))
        };
        store.insert(3, 30);
        other.join().unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(readable(&store, 1..=3), 1);
        assert_eq!(store.evictions(), 2);
    });
}

/// A replacement races with a removal of the same key: whichever order they take, the key's
/// old entry leaves the count once, and the count matches the map (0 or 1 entry).
#[test]
fn a_replacement_racing_a_removal_counts_each_entry_once() {
    loom::model(|| {
        let store = Arc::new(Store8::new().max_size(2));
        store.insert(1, 10);
        let remover = {
            let store = store.clone();
            thread::spawn(move || {
                store.remove(&1);
            })
        };
        store.insert(1, 10);
        remover.join().unwrap();
        let held = readable(&store, 1..=1);
        assert_eq!(store.len(), held);
        assert_eq!(store.evictions(), 0);
    });
}

/// An insert that must evict races with a removal of the entry it would evict: the victim
/// leaves the count once (an eviction or a removal, never both), nothing else is evicted
/// wrongly, and the new key is stored.
#[test]
fn an_eviction_racing_a_removal_of_its_victim_counts_it_once() {
    loom::model(|| {
        let store = Arc::new(Store8::new().max_size(1));
        store.insert(1, 10);
        let remover = {
            let store = store.clone();
            thread::spawn(move || {
                store.remove(&1);
            })
        };
        store.insert(2, 20);
        remover.join().unwrap();
        assert_eq!(store.get(&2), Some(20), "the new key was lost");
        assert_eq!(store.len(), 1);
        assert_eq!(readable(&store, 1..=2), 1);
        assert!(store.evictions() <= 1, "{} evictions", store.evictions());
    });
}

type Weighted = Bounded<u8, u32>;

/// A store weighing each entry by its key, bounded to a weight of 4.
fn weighted() -> Weighted {
    Weighted::new()
        .max_weight(4)
        .weigher(|key: &u8, _: &u32| u64::from(*key))
}

/// Two weighted inserts race into a full weighted store (key 3, weight 3, of 4): each must
/// evict to make room before it counts its own weight, so the weight is within the bound at
/// every observation (each thread reads it right after its insert, while the other may be
/// inserting) and at the end, where it equals the weight of the keys a read returns.
#[test]
fn racing_weighted_inserts_into_a_full_store_keep_the_weight_bound() {
    loom::model(|| {
        let store = Arc::new(weighted());
        store.insert(3, 30);
        let other = {
            let store = store.clone();
            thread::spawn(move || {
                store.insert(2, 20);
                let weight = store.weight();
                assert!(weight <= 4, "weight {weight} observed after inserting 2");
            })
        };
        store.insert(4, 40);
        let weight = store.weight();
        assert!(weight <= 4, "weight {weight} observed after inserting 4");
        other.join().unwrap();
        let held: u64 = (1..=4u8)
            .filter(|key| store.get(key).is_some())
            .map(u64::from)
            .sum();
        assert!(store.weight() <= 4, "weight {}", store.weight());
        assert_eq!(
            store.weight(),
            held,
            "the weight counted is not the weight held"
        );
        assert_eq!(store.len(), readable(&store, 1..=4));
    });
}
