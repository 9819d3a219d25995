//! What the stores that several processes share (`RedisStore`, `DiskStore`) have in common:
//! the fingerprint of a function's key and value types in its namespace, and lease tokens.

/// A fingerprint of `K` and `V`'s type names: part of a namespace, so that a process whose
/// key or value type changed reads none of the bytes of the old one. xxh3 is specified, so the
/// fingerprint is the same in every build of the program.
pub(crate) fn type_fingerprint<K, V>() -> u32 {
    let names = format!(
        "{}\u{0}{}",
        std::any::type_name::<K>(),
        std::any::type_name::<V>()
    );
    xxhash_rust::xxh3::xxh3_64(names.as_bytes()) as u32
}

/// A lease token unique among the processes sharing a store: 128 bits from the standard
/// library's hasher, randomly seeded from the OS, over the pid, the time and a counter.
pub(crate) fn token() -> String {
    use std::hash::BuildHasher;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let seed = (std::process::id(), nanos, count);
    let random = std::collections::hash_map::RandomState::new();
    let (high, low) = (random.hash_one((1u8, seed)), random.hash_one((2u8, seed)));
    format!("{high:016x}{low:016x}")
}
