//! The `cached` crate's spellings, accepted with the same meaning (or, for what memoflight
//! always does, accepted as they are), with no warning in the user's crate.
#![deny(warnings)]

use memoflight::{cached, Origin, Unbounded};
use std::time::Duration;

#[cached(ttl_secs = 60)]
fn in_seconds(n: u64) -> u64 {
    n
}

#[cached(ttl_millis = 1500, max_size = 10)]
fn in_milliseconds(n: u64) -> u64 {
    n
}

#[cached(ttl = "core::time::Duration::from_millis(50)")]
fn quoted_duration(n: u64) -> u64 {
    n
}

#[cached(name = "squares cache", sync_writes = "by_key", sync_writes_buckets = 64)]
fn named(n: u64) -> u64 {
    n * n
}

#[cached(sync_writes, sync_lock = "rwlock", unsync_reads)]
fn locks(n: u64) -> u64 {
    n
}

#[cached(sync_writes = true, unbound)]
fn defaults(n: u64) -> u64 {
    n
}

#[cached(sync_writes = "default")]
fn default_writes(n: u64) -> u64 {
    n
}

/// Every string spelling of `sync_writes` in `cached` (and `"disabled"`, its name for
/// `false`): single-flight stays on whatever is written.
#[cached(sync_writes = "true", sync_lock = "rw_lock")]
fn writes_true(n: u64) -> u64 {
    n
}

#[cached(sync_writes = "false")]
fn writes_false(n: u64) -> u64 {
    n
}

#[cached(sync_writes = "disabled", sync_lock = "mutex")]
fn writes_disabled(n: u64) -> u64 {
    n
}

#[cached(ty = "Unbounded<u64, u64>", create = "{ Unbounded::new() }")]
fn created(n: u64) -> u64 {
    n
}

#[cached(store = { Unbounded::new() })]
fn braced_store(n: u64) -> u64 {
    n
}

mod inner {
    use memoflight::cached;

    #[cached(companions_vis = "pub(crate)")]
    pub fn visible(n: u64) -> u64 {
        n
    }
}

#[cached(convert = { n }, key = u64, force_refresh = { refresh })]
fn refreshable(n: u64, refresh: bool) -> u64 {
    let _ = refresh;
    n
}

#[cached(with_cached_flag)]
fn flagged(n: u64) -> memoflight::Return<u64> {
    memoflight::Return::new(n)
}

#[cached(with_cached_flag = true, result_fallback = true, ttl = "1m")]
fn flagged_fallback(n: u64) -> Result<memoflight::Return<u64>, String> {
    Ok(memoflight::Return::new(n))
}

/// Errors cached too: the flag is on the `Ok` value.
#[cached(with_cached_flag, cache_err)]
fn flagged_with_errors(n: u64) -> Result<memoflight::Return<u64>, String> {
    Ok(memoflight::Return::new(n))
}

/// A flag set to `false` configures nothing, so it goes with anything.
#[cached(refresh = false, expires = false, store = Unbounded::new())]
fn flags_off(n: u64) -> u64 {
    n
}

#[cached(cache_err = false, cache_none = false, result_fallback = false)]
fn more_flags_off(n: u64) -> u64 {
    n
}

#[derive(Clone)]
struct Token(u64);

impl memoflight::Expires for Token {
    fn is_expired(&self) -> bool {
        false
    }
}

#[cached(expires, result_fallback, max_size = 100)]
fn expiring(n: u64) -> Result<Token, String> {
    Ok(Token(n))
}

#[cached(ttl = "10m", refresh = true, companions = false)]
fn renewed(n: u64) -> u64 {
    n
}

#[cached(max_weight = 1024, weigher = |key: &u64, value: &Vec<u8>| *key + value.len() as u64)]
fn weighed(n: u64) -> Vec<u8> {
    vec![0; n as usize]
}

mod facade {
    pub use memoflight as memo;
}

#[facade::memo::cached(crate = crate::facade::memo)]
fn through_facade(n: u64) -> u64 {
    n
}

struct Service;

impl Service {
    #[cached(in_impl = true, convert = { n }, key = u64)]
    fn method(&self, n: u64) -> u64 {
        n
    }
}

fn main() {
    assert_eq!(in_seconds(1), 1);
    assert_eq!(in_milliseconds(2), 2);
    assert_eq!(quoted_duration(3), 3);
    assert_eq!(named(4), 16);
    assert_eq!(named_with_origin(4), (16, Origin::Hit));
    assert_eq!(named_cache().name(), "squares cache");
    assert_eq!(locks(5) + defaults(6) + default_writes(7) + created(8) + braced_store(9), 35);
    assert_eq!(inner::visible_no_cache(10), 10);
    assert_eq!(inner::visible_with_origin(10), (10, Origin::Computed));
    assert_eq!(Service.method(11), 11);
    assert_eq!(refreshable(12, true), 12);
    assert_eq!(named_prime_cache(4), 16);
    assert!(!flagged(13).was_cached());
    assert!(flagged(13).was_cached());
    assert_eq!(flagged_fallback(14).map(|r| r.value), Ok(14));
    assert_eq!(expiring(15).map(|t| t.0), Ok(15));
    assert_eq!(renewed(16) + through_facade(17), 33);
    assert_eq!(weighed(18).len(), 18);
    assert!(flagged_with_errors(19).unwrap().was_cached() == flagged_with_errors_cache().is_empty());
    assert_eq!(flags_off(20) + more_flags_off(21), 41);
    assert_eq!(writes_true(1) + writes_false(2) + writes_disabled(3), 6);
    let _ = Duration::ZERO;
}
