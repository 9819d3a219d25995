//! How the stores hash keys: once, before they enter the table, which keeps the hash next to
//! the key (`table::Entry`).
//!
//! A table that rehashed its keys when it grows would run the key's `Hash` (user code) inside
//! the grow; if that `Hash` called the memoized function, whose insert then waited for the grow
//! to finish, the thread would wait for itself: a hang, seen in
//! `tests/test_reentrant_user_code.rs`. So a key is hashed once, by the store, with no lock
//! held, and a rebuild places entries by their stored hash (`table.rs`, invariant 6).

/// The stores' key hasher (randomly seeded per store).
#[cfg(not(memoflight_loom))]
pub(crate) type KeyHasher = foldhash::fast::RandomState;
/// Under loom, a fixed hasher: every replay of a model must place keys in the same slots.
#[cfg(memoflight_loom)]
pub(crate) type KeyHasher = foldhash::fast::FixedState;
