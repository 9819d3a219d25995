//! Memoized recursion works with single-flight on; a call that would wait for its own thread's
//! computation of the same key panics at once with a message naming the function and the key.

mod common;

use common::run_bounded;
use memoflight::cached;

#[cached]
fn fib(n: u64) -> u128 {
    if n < 2 {
        n as u128
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn fib_computes_each_n_once() {
    let value = run_bounded(|| fib(150)).unwrap();
    assert_eq!(value, 9_969_216_677_189_303_386_214_405_760_200);
    let stats = fib_cache().stats();
    // fib(150) .. fib(0): 151 executions. Each n >= 2 asks for n-1 (a miss) then n-2, a hit
    // except for fib(2), which asks for fib(0) before anything computed it.
    assert_eq!((stats.executions, stats.entries), (151, 151));
    assert_eq!((stats.hits, stats.misses), (148, 151));
    assert_eq!(stats.in_flight, 0);
}

#[cached]
fn selfish(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        selfish(n) + 1
    }
}

#[test]
fn same_key_recursion_panics_naming_function_and_key() {
    let message = run_bounded(|| selfish(3)).unwrap_err();
    assert!(message.contains("`selfish`"), "{message}");
    assert!(message.contains("key 3"), "{message}");
    assert!(message.contains("same-key recursion"), "{message}");
    assert_eq!(selfish_cache().stats().in_flight, 0);
    // The cache still works for other keys.
    assert_eq!(run_bounded(|| selfish(0)).unwrap(), 0);
}

#[cached]
fn ping(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        pong(n)
    }
}

#[cached]
fn pong(n: u64) -> u64 {
    ping(n) + 1
}

#[test]
fn same_key_recursion_through_another_function_panics() {
    let message = run_bounded(|| ping(2)).unwrap_err();
    assert!(
        message.contains("`ping`") && message.contains("key 2"),
        "{message}"
    );
    assert_eq!(
        (
            ping_cache().stats().in_flight,
            pong_cache().stats().in_flight
        ),
        (0, 0)
    );
}

struct NoDebug(u8);

#[cached(convert = n.0, key = u8)]
fn opaque_key(n: &NoDebug) -> u8 {
    opaque_key(n)
}

#[cached]
fn undebuggable(key: Wrapper) -> u8 {
    undebuggable(key.clone())
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Wrapper(u8);

#[test]
fn keys_without_debug_are_described_generically() {
    let message = run_bounded(|| undebuggable(Wrapper(1))).unwrap_err();
    assert!(message.contains("(a key without Debug)"), "{message}");
    let message = run_bounded(|| opaque_key(&NoDebug(9))).unwrap_err();
    assert!(message.contains("key 9"), "{message}");
}
