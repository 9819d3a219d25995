//! Model-based property tests: random sequences of operations on each store, checked step by
//! step against a sequential `HashMap` reference model, and the same sequences through a
//! `Cache` (whose `get_or_compute` must return the stored value or compute and store once).

use memoflight::{Bounded, Cache, Clock, Store, Unbounded};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8, u16),
    Remove(u8),
    /// Keeps the entries whose key is below the bound.
    RetainBelow(u8),
    Clear,
    Len,
    /// Moves the clock of expiring stores forward by this many seconds.
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    // A key space small enough for operations to meet on the same keys and large enough for
    // every merge trigger of the store (32 pending entries, 64 locked reads, removals).
    prop_oneof![
        4 => (0..64u8).prop_map(Op::Get),
        4 => (0..64u8, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0..64u8).prop_map(Op::Remove),
        1 => (0..64u8).prop_map(Op::RetainBelow),
        1 => Just(Op::Clear),
        1 => Just(Op::Len),
    ]
}

/// The operations of [`op`] plus time passing, for expiring stores.
fn timed_op() -> impl Strategy<Value = Op> {
    prop_oneof![8 => op(), 1 => (0..20u8).prop_map(Op::Advance)]
}

/// A sequential model of an expiring map: each value with the time it was written.
#[derive(Default)]
struct TimedModel {
    now: u64,
    ttl: u64,
    entries: HashMap<u8, (u16, u64)>,
}

impl TimedModel {
    fn get(&self, k: u8) -> Option<u16> {
        let (value, written) = *self.entries.get(&k)?;
        (self.now < written + self.ttl).then_some(value)
    }

    fn live(&self) -> usize {
        (0..=u8::MAX).filter(|k| self.get(*k).is_some()).count()
    }
}

proptest! {
    #[test]
    fn unbounded_store_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..400)) {
        let store = Unbounded::<u8, u16>::new();
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Get(k) => prop_assert_eq!(store.get(&k), model.get(&k).copied()),
                Op::Insert(k, v) => {
                    store.insert(k, v);
                    model.insert(k, v);
                }
                // Odd keys through `remove_with`, whose `read` sees the removed value.
                Op::Remove(k) if k % 2 == 1 => {
                    prop_assert_eq!(store.remove_with(&k, |v| *v), model.remove(&k));
                }
                Op::Remove(k) => prop_assert_eq!(store.remove(&k), model.remove(&k)),
                Op::RetainBelow(bound) => {
                    store.retain(&mut |k, _| *k < bound);
                    model.retain(|k, _| *k < bound);
                }
                Op::Clear => {
                    store.clear();
                    model.clear();
                }
                Op::Len => prop_assert_eq!(store.len(), model.len()),
                Op::Advance(_) => {}
            }
            prop_assert_eq!(store.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn cache_behaves_like_a_memo_table(ops in proptest::collection::vec(op(), 1..400)) {
        let cache = Cache::new("model", Unbounded::<u8, u16>::new());
        let mut model: HashMap<u8, u16> = HashMap::new();
        let mut executions = 0_u64;
        for op in ops {
            match op {
                Op::Get(k) => prop_assert_eq!(cache.get(&k), model.get(&k).copied()),
                Op::Insert(k, v) => {
                    // get_or_compute: the stored value if any, else computes `v` once.
                    let present = model.contains_key(&k);
                    let mut ran = false;
                    let got = cache.get_or_compute(k, || { ran = true; v });
                    let expected = *model.entry(k).or_insert(v);
                    prop_assert_eq!(got, expected);
                    prop_assert_eq!(ran, !present, "computed iff the key was absent");
                    executions += u64::from(ran);
                }
                // Odd keys through `invalidate`, which tells only whether a value was there.
                Op::Remove(k) if k % 2 == 1 => {
                    prop_assert_eq!(cache.invalidate(&k), model.remove(&k).is_some());
                }
                Op::Remove(k) => prop_assert_eq!(cache.remove(&k), model.remove(&k)),
                Op::RetainBelow(bound) => {
                    cache.invalidate_if(|k, _| *k >= bound);
                    model.retain(|k, _| *k < bound);
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
                Op::Len => prop_assert_eq!(cache.len(), model.len()),
                Op::Advance(_) => {}
            }
        }
        let stats = cache.stats();
        prop_assert_eq!(stats.executions, executions);
        prop_assert_eq!(stats.entries, model.len() as u64);
        prop_assert_eq!(stats.in_flight, 0);
    }

    /// With only a ttl the store drops nothing on its own before expiry: it must match the
    /// expiring model exactly.
    #[test]
    fn expiring_store_behaves_like_an_expiring_map(
        ops in proptest::collection::vec(timed_op(), 1..400)
    ) {
        let clock = Clock::manual();
        let store = Bounded::<u8, u16>::new().ttl(Duration::from_secs(10)).clock(clock.clone());
        let mut model = TimedModel { ttl: 10, ..TimedModel::default() };
        for op in ops {
            match op {
                Op::Get(k) => prop_assert_eq!(store.get(&k), model.get(k)),
                Op::Insert(k, v) => {
                    store.insert(k, v);
                    model.entries.insert(k, (v, model.now));
                }
                Op::Remove(k) => {
                    let expected = model.get(k);
                    model.entries.remove(&k);
                    // Odd keys through `remove_with`: an expired value is not shown to `read`.
                    if k % 2 == 1 {
                        prop_assert_eq!(store.remove_with(&k, |v| *v), expected);
                    } else {
                        prop_assert_eq!(store.remove(&k), expected);
                    }
                }
                Op::RetainBelow(bound) => {
                    store.retain(&mut |k, _| *k < bound);
                    model.entries.retain(|k, _| *k < bound);
                }
                Op::Clear => {
                    store.clear();
                    model.entries.clear();
                }
                Op::Len => prop_assert_eq!(store.len(), model.live()),
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(u64::from(secs)));
                    model.now += u64::from(secs);
                }
            }
        }
    }

    /// With a size bound the store may drop any entry, but never holds more than the bound,
    /// never returns a value that is not the latest written for its key (nor an expired one),
    /// and always holds the entry just written.
    #[test]
    fn bounded_store_never_returns_a_wrong_value_nor_exceeds_its_bound(
        ops in proptest::collection::vec(timed_op(), 1..400),
        max_size in 1..20usize,
    ) {
        let clock = Clock::manual();
        let store = Bounded::<u8, u16>::new()
            .max_size(max_size)
            .ttl(Duration::from_secs(10))
            .clock(clock.clone());
        let mut model = TimedModel { ttl: 10, ..TimedModel::default() };
        for op in ops {
            match op {
                Op::Get(k) => {
                    let got = store.get(&k);
                    prop_assert!(got.is_none() || got == model.get(k), "{:?} vs {:?}", got, model.get(k));
                }
                Op::Insert(k, v) => {
                    store.insert(k, v);
                    model.entries.insert(k, (v, model.now));
                    prop_assert_eq!(store.get(&k), Some(v));
                }
                Op::Remove(k) => {
                    let got = store.remove(&k);
                    prop_assert!(got.is_none() || got == model.get(k));
                    model.entries.remove(&k);
                }
                Op::RetainBelow(bound) => {
                    store.retain(&mut |k, _| *k < bound);
                    model.entries.retain(|k, _| *k < bound);
                }
                Op::Clear => {
                    store.clear();
                    model.entries.clear();
                }
                Op::Len => {
                    let held = (0..64u8).filter(|k| store.get(k).is_some()).count();
                    let len = store.len();
                    prop_assert!(len <= max_size);
                    prop_assert_eq!(len, held);
                    prop_assert!(len <= model.live());
                }
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(u64::from(secs)));
                    model.now += u64::from(secs);
                }
            }
            prop_assert!(store.len() <= max_size);
        }
    }
}
