//! Keys stored with their hash, so that a map never runs the user's `Hash` itself.
//!
//! papaya rehashes every entry it copies into a grown (or tombstone-cleared) table, and the
//! thread that copies may be inside any operation. If that rehash ran the key's `Hash` (user
//! code) and the `Hash` called the memoized function, whose insert then waited for the copy
//! to finish, the thread would wait for itself: a hang, seen in
//! `tests/test_reentrant_user_code.rs`. So the stores hash a key once, before they enter the
//! map, and keep the hash next to the key: the map's hasher only passes it through.
//! A key's `Eq` still runs inside the map, but only to compare a probe with a stored key, never
//! while a copy is in progress on the thread.

use equivalent::Equivalent;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// How the stores hash keys (once, outside the map).
#[cfg(not(memoflight_loom))]
pub(crate) type KeyHasher = foldhash::fast::RandomState;
/// Under loom, a fixed hasher: every replay of a model must place keys in the same slots.
#[cfg(memoflight_loom)]
pub(crate) type KeyHasher = foldhash::fast::FixedState;

/// The map's hasher: the hash already computed.
pub(crate) type PassThrough = BuildHasherDefault<Precomputed>;

/// A stored key and its hash.
pub(crate) struct Hashed<K> {
    pub(crate) hash: u64,
    pub(crate) key: K,
}

/// A key looked up (or removed) by reference, with its hash.
pub(crate) struct Probe<'q, Q: ?Sized> {
    hash: u64,
    key: &'q Q,
}

impl<'q, Q: ?Sized> Probe<'q, Q> {
    pub(crate) fn new(hasher: &KeyHasher, key: &'q Q) -> Self
    where
        Q: Hash,
    {
        Probe {
            hash: hasher.hash_one(key),
            key,
        }
    }

    /// A probe for a key whose hash is known.
    pub(crate) fn with_hash(hash: u64, key: &'q Q) -> Self {
        Probe { hash, key }
    }
}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<K: Eq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

impl<Q: ?Sized> Hash for Probe<'_, Q> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<K, Q: ?Sized + Equivalent<K>> Equivalent<Hashed<K>> for Probe<'_, Q> {
    fn equivalent(&self, stored: &Hashed<K>) -> bool {
        self.hash == stored.hash && self.key.equivalent(&stored.key)
    }
}

/// The hasher of a map keyed by [`Hashed`]: it receives the precomputed hash and returns it.
#[derive(Default)]
pub(crate) struct Precomputed(u64);

impl Hasher for Precomputed {
    fn write(&mut self, bytes: &[u8]) {
        // Only `Hashed` and `Probe` are hashed with it, and they write one `u64`.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
