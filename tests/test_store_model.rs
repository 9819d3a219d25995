//! Model-based property tests: random sequences of operations on each store, checked step by
//! step against a sequential `HashMap` reference model, and the same sequences through a
//! `Cache` (whose `get_or_compute` must return the stored value or compute and store once).

use memoflight::{Cache, Store, Unbounded};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8, u16),
    Remove(u8),
    /// Keeps the entries whose key is below the bound.
    RetainBelow(u8),
    Clear,
    Len,
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
                Op::Remove(k) => prop_assert_eq!(cache.invalidate(&k), model.remove(&k)),
                Op::RetainBelow(bound) => {
                    cache.invalidate_if(|k, _| *k >= bound);
                    model.retain(|k, _| *k < bound);
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
                Op::Len => prop_assert_eq!(cache.len(), model.len()),
            }
        }
        let stats = cache.stats();
        prop_assert_eq!(stats.executions, executions);
        prop_assert_eq!(stats.entries, model.len() as u64);
        prop_assert_eq!(stats.in_flight, 0);
    }
}
