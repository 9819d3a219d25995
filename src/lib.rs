//! `#[cached]` memoization that stays correct under concurrency.
//!
//! ```
//! use memoflight::cached;
//!
//! #[cached]
//! fn fib(n: u64) -> u128 {
//!     if n < 2 { n as u128 } else { fib(n - 1) + fib(n - 2) }
//! }
//!
//! assert_eq!(fib(150), 9_969_216_677_189_303_386_214_405_760_200);
//! assert_eq!(fib_cache().stats().executions, 151); // each n computed once
//! ```
//!
//! # Guarantees
//!
//! - **One execution per key at a time.** When several threads miss the same key at once, the
//!   first runs the function and the others wait for it and receive a clone of its result
//!   (they do not re-read the store). N concurrent misses: one execution.
//! - **Different keys never wait on each other.** No lock is held while the function runs;
//!   memoized recursion works.
//! - **Hits take no lock and never wait; writes cost O(1).** The default store is a lock-free
//!   map: an insert, a replacement and an `invalidate` touch one bucket whatever the store's
//!   size, and removed values are freed once no reader can still see them, so a thread that
//!   stops calling keeps nothing alive (see `benches/README.md`).
//! - **User code never runs under a lock of the cache.** A key's `Hash`/`Eq`, a value's
//!   `Clone`/`Drop` and an `invalidate_if` predicate may call memoized functions; a call that
//!   would wait for its own computation panics with a clear message instead. A panic in them
//!   loses no stored entry.
//! - **Failures are not cached, but are shared.** A `Result` caches only `Ok` and an `Option`
//!   only `Some` (opt in with `cache_err` / `cache_none`). The callers waiting on a
//!   computation that failed receive its error when the error type is `Clone`; otherwise they
//!   take over one at a time (never two executions of one key at once).
//! - **Panics stay with their thread.** A panic propagates to the caller whose computation
//!   panicked; one waiting caller takes over, the others receive its value; no lock is
//!   poisoned.
//! - **Same-key recursion panics instead of hanging.** A computation that asks for its own key
//!   (directly or through other memoized functions) on the thread, or in the task, computing
//!   it would wait for itself forever; that call panics at once, naming the function and the
//!   key. So does the call that would close a wait cycle across threads (thread 1 computes `a`
//!   and waits for `b`, thread 2 computes `b` and asks for `a`), and an invalidation or clear
//!   that would wait for a write whose user code waits for it. What no library can see is a
//!   computation that hands its own key to a helper thread and waits for it (spawn, then
//!   join): that hangs, as it would around any lock; `wait_timeout` bounds such a wait.
//! - **A forgotten leader holds nobody for long.** An async leader whose future is dropped
//!   hands its key to a waiter; one that is `mem::forget`-ed can never be observed, so its
//!   waiters wait until `invalidate` of its key, `invalidate_if` or `clear` releases them (they
//!   compute afresh), or until their `wait_timeout`.
//! - **No repopulation window.** After `invalidate(&key)` or `clear()` returns, a computation
//!   that was in flight never stores its (stale) value, and new calls compute afresh.
//! - **The in-flight table holds only keys being computed now**; it is empty when no call runs.
//! - **Bounded means bounded.** With `max_size = n` a cache never holds more than `n` entries;
//!   with `ttl` an expired entry is never returned. Expired entries are reclaimed by later
//!   writes, with no background thread.
//!
//! # What `#[cached]` generates
//!
//! For `fn f(..) -> R` it keeps `f` (now memoized) and adds `f_cache()`, the function's
//! [`Cache`] (stats, invalidate, clear, len), `f_no_cache(..)`, the original body without
//! the cache, and `f_with_origin(..) -> (R, Origin)`, which also tells whether this call ran
//! the function ([`Origin`]).
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `convert = expr` | the key is `expr` (any expression over the arguments) instead of all the arguments |
//! | `key = Type` | names the type `convert` yields (needed only to invalidate by key through the handle) |
//! | `max_size = n` | keep at most `n` entries ([`Bounded`] store, S3-FIFO eviction: better than LRU on skewed and scanning workloads) |
//! | `ttl = "90s"` | an entry is never returned once this old ([`Bounded`] store; a `Duration` expression works too; checked at compile time) |
//! | `refresh_after = "60s"` | once an entry is this old, one caller recomputes it while the others still get it at once ([`Bounded::refresh_after`]) |
//! | `refresh = true` | with `ttl`: a hit renews the TTL, so an entry expires once unread that long ([`Bounded::time_to_idle`]) |
//! | `max_weight = n, weigher = f` | keep at most `n` of total weight, `f(&key, &value) -> u64` weighing each entry ([`Bounded::max_weight`]) |
//! | `expires` | each value says when it has expired ([`Expires`], [`Expiring`]); sweep with [`Cache::evict_expired`] |
//! | `result_fallback` | with `ttl` or `expires`: when computing a fresh value fails, return the expired one still held ([`Origin::Fallback`]) |
//! | `with_cached_flag` | the function returns [`Return<T>`](Return), whose `was_cached()` tells the calls that did not run it |
//! | `force_refresh = expr` | when the `bool` expression (over the arguments) is true, invalidate the key first, then compute |
//! | `name = "NAME"` | the cache's name in stats, traces and panic messages |
//! | `companions_vis = "pub(crate)"`, `companions = false` | the visibility of `f_no_cache`, `f_with_origin`, `f_prime_cache` (false: private and hidden) |
//! | `crate = path` | the path memoflight is reached by, for crates that re-export it |
//! | `store = expr` | keep values in this [`Store`] instead of an [`Unbounded`] one |
//! | `async_store = expr` | keep the values in this `AsyncStore` (storage behind I/O; feature `async`, and `tokio` for a sync function): see below |
//! | `cache_err = true` | cache `Err` results too |
//! | `cache_none = true` | cache `None` results too |
//! | `wait_timeout = "2s"` | a caller that has waited this long for another's computation of its key computes on its own (a `Duration` expression works too; see [`Cache::with_wait_timeout`]) |
//!
//! Names and string forms (`key = "String"`, `convert = r#"{ .. }"#`) match the `cached`
//! crate's, so switching is mostly a change of `use` line.
//!
//! ## Keys
//!
//! By default the key is every argument. Arguments taken by reference are stored owned
//! (`&str` as `String`, `&[T]` as `Vec<T>`, `&T` as `T`) and looked up borrowed: a hit
//! allocates nothing.
//!
//! ```
//! use memoflight::cached;
//!
//! #[cached]
//! fn greeting(name: &str, times: usize) -> String {
//!     format!("hello {name}! ").repeat(times)
//! }
//!
//! greeting("ada", 2);
//! greeting("ada", 2); // a hit, without allocating a key
//! assert_eq!(greeting_cache().stats().hits, 1);
//! assert!(greeting_cache().invalidate(&("ada".to_string(), 2)));
//! ```
//!
//! `convert` picks the key. Naming arguments leaves the others (a database handle, a logger)
//! out of the key; any other expression works too, and its type is inferred:
//!
//! ```
//! use memoflight::cached;
//!
//! struct Db;
//!
//! #[cached(convert = id)]
//! fn user_name(db: &Db, id: u64) -> String {
//!     format!("user {id}")
//! }
//!
//! #[cached(convert = word.to_lowercase())]
//! fn letters(word: &str) -> usize {
//!     word.len()
//! }
//!
//! assert_eq!(user_name(&Db, 7), "user 7");
//! assert_eq!(user_name_cache().remove(&7), Some("user 7".to_string()));
//! letters("Memo");
//! letters("MEMO"); // same key
//! assert_eq!(letters_cache().stats().executions, 1);
//! ```
//!
//! ## Errors
//!
//! ```
//! use memoflight::cached;
//!
//! #[cached]
//! fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
//!     text.parse()
//! }
//!
//! assert!(parse("x").is_err()); // not cached: the next call tries again
//! assert_eq!(parse("42"), Ok(42)); // cached
//! assert_eq!(parse_cache().len(), 1);
//! ```
//!
//! A return type is recognised as a `Result` or an `Option` by its name (`Result<T, E>`,
//! `io::Result<T>`, a crate's own `type Result<T> = std::result::Result<T, Error>`,
//! `Option<T>`); behind a type alias with another name it is treated as a plain value and every
//! result is cached. A type of your own named `Result` or `Option` that is not std's is a
//! compile error saying so; add `cache_err` (or `cache_none`) to cache it as a plain value.
//!
//! ## Stores
//!
//! ```
//! use memoflight::{cached, Store, Unbounded};
//! use std::sync::LazyLock;
//!
//! static SQUARES: LazyLock<Unbounded<u64, u64>> = LazyLock::new(Unbounded::new);
//!
//! #[cached(store = &*SQUARES)]
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! square(9);
//! assert_eq!(SQUARES.get(&9), Some(81));
//! ```
//!
//! Bounded and expiring caches. Time comes from a [`Clock`]; tests pass a manual one (with
//! `store = Bounded::new().ttl(..).clock(..)`) instead of sleeping:
//!
//! ```
//! use memoflight::cached;
//!
//! #[cached(max_size = 10_000, ttl = "10m")]
//! fn thumbnail(path: &str) -> Vec<u8> {
//!     path.bytes().collect()
//! }
//!
//! thumbnail("a.png");
//! assert_eq!(thumbnail_cache().stats().entries, 1);
//! ```
//!
//! # Async functions (feature `async`)
//!
//! `#[cached]` on an `async fn` gives the same guarantees, on any executor: concurrent calls
//! on one key await one execution, and the function's future is `Send` whenever its body's
//! is.
//!
//! ```
//! # #[cfg(feature = "async")] {
//! use memoflight::cached;
//!
//! #[cached]
//! async fn download(song: u64) -> Vec<u8> {
//!     song.to_le_bytes().to_vec()
//! }
//!
//! let both = futures::future::join(download(7), download(7));
//! let (a, b) = futures::executor::block_on(both);
//! assert_eq!(a, b);
//! assert_eq!(download_cache().stats().executions, 1);
//! # }
//! ```
//!
//! **Cancellation.** When the future of the call that computes a key is dropped midway (a
//! timeout, a `select!` that took another branch, an aborted task), one of the tasks waiting
//! for that key takes over and the others keep waiting for it, as after a panic; nothing is
//! left in flight, and [`Stats::cancellations`] counts it. A dropped waiter leaves nothing
//! behind. A future that awaits its own key panics at once instead of waiting forever.
//! `wait_timeout` on an `async fn` needs the `tokio` feature (a timer); waiting itself needs
//! no particular runtime.
//!
//! **Stores behind I/O.** `#[cached(async_store = expr)]` keeps a function's values in an
//! `AsyncStore`, whose operations are async and may fail (a remote cache, a database); the
//! handle is then an `AsyncCache`, whose `invalidate`, `clear`, `len` and `stats` are async.
//! A sync function can use one too, with the `tokio` feature: its call runs on the caller's
//! thread and the store's I/O on a one-thread runtime of the process's own, and
//! `cache.block_on(cache.invalidate(&key))` runs the handle's methods from sync code.
//! Single-flight holds among the tasks of the process. A failing store degrades to computing
//! without it (counted in [`Stats::store_errors`]); an invalidation waits for a value being
//! written before it removes it, so a stale write cannot land after it.
//!
//! ```
//! # #[cfg(feature = "async")] {
//! use memoflight::{cached, AsyncStore};
//! use std::collections::HashMap;
//! use std::sync::{LazyLock, Mutex};
//!
//! /// Stands for a remote cache: a map behind async operations.
//! #[derive(Default)]
//! struct Remote(Mutex<HashMap<u64, String>>);
//!
//! impl AsyncStore for Remote {
//!     type Key = u64;
//!     type Value = String;
//!     type Error = std::io::Error;
//!
//!     async fn get(&self, key: &u64) -> std::io::Result<Option<String>> {
//!         Ok(self.0.lock().unwrap().get(key).cloned())
//!     }
//!     async fn insert(&self, key: u64, value: String) -> std::io::Result<()> {
//!         self.0.lock().unwrap().insert(key, value);
//!         Ok(())
//!     }
//!     async fn remove(&self, key: &u64) -> std::io::Result<()> {
//!         self.0.lock().unwrap().remove(key);
//!         Ok(())
//!     }
//!     async fn clear(&self) -> std::io::Result<()> {
//!         self.0.lock().unwrap().clear();
//!         Ok(())
//!     }
//!     async fn len(&self) -> std::io::Result<usize> {
//!         Ok(self.0.lock().unwrap().len())
//!     }
//! }
//!
//! static REMOTE: LazyLock<Remote> = LazyLock::new(Remote::default);
//!
//! #[cached(async_store = &*REMOTE)]
//! async fn profile(user: u64) -> String {
//!     format!("user {user}")
//! }
//!
//! futures::executor::block_on(async {
//!     assert_eq!(profile(7).await, "user 7");
//!     assert_eq!(REMOTE.get(&7).await.unwrap().as_deref(), Some("user 7"));
//!     profile_cache().invalidate(&7).await.unwrap();
//!     assert_eq!(profile_cache().stats().await.unwrap().entries, 0);
//! });
//! # }
//! ```
//!
//! # Requirements
//!
//! Keys are `Hash + Eq + Send + Sync + 'static` (and `Clone`, as arguments are cloned into
//! the key on a miss); values are `Clone + Send + Sync + 'static` and are cloned on every hit,
//! so wrap large values in an `Arc`. A memoized function cannot be generic or `const`, and must
//! return a value. In an `impl` block, methods (with a `self` receiver) are supported as shown
//! below; associated functions without one are not yet.
//!
//! # Methods
//!
//! A method's cache is one for its type, shared by every instance, so the key is said with
//! `convert`: a selection of arguments shares results across instances; an expression reading
//! `self` keeps them apart, and its type is named with `key` (the cache is a `static` inside
//! `Type::method_cache()`, whose type must be written out).
//!
//! ```
//! use memoflight::cached;
//!
//! struct Db {
//!     id: u64,
//! }
//!
//! impl Db {
//!     #[cached(convert = (self.id, user), key = (u64, u32))]
//!     fn user_name(&self, user: u32) -> String {
//!         format!("db{}:user{user}", self.id)
//!     }
//! }
//!
//! let db = Db { id: 1 };
//! assert_eq!(db.user_name(7), "db1:user7");
//! assert_eq!(db.user_name(7), "db1:user7"); // a hit
//! assert_eq!(Db::user_name_cache().stats().executions, 1);
//! ```
//!
//! Async methods work the same way, and so do methods of a trait impl under `#[async_trait]`
//! (put `#[cached]` on the method): the value is cached, not the boxed future `#[async_trait]`
//! makes of it. A trait impl cannot hold other items, so such a method's cache has no handle
//! (`_cache()`, `_with_origin`, `_no_cache` are not generated).
//!
//! # Testing your caches (feature `testing`)
//!
//! `memoflight::testing` writes the race regression tests users want in their own crate:
//! `stampede(n, ..)` releases `n` callers at the same instant on threads and reports each
//! one's value and [`Origin`], its panic caught, and the wall time (`stampede_async` polls
//! futures in turn on one task, on any executor; with the `tokio` feature, `stampede_tokio`
//! runs each caller as a tokio task, in parallel); `invalidation_race` counts stale reads
//! while a key is invalidated under readers; and `cache.stats() - before` is what happened in
//! between, even when other tests share the cache (`clear()` first for a fresh one). Its
//! module docs reproduce the stampede of a hand-rolled check-then-act cache (several loads for
//! 8 callers) next to `#[cached]` (1).
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use memoflight::{cached, testing::stampede};
//!
//! #[cached]
//! fn rules(tenant: u32) -> Vec<String> {
//!     std::thread::sleep(std::time::Duration::from_millis(20));
//!     vec![format!("rules of {tenant}")]
//! }
//!
//! let before = rules_cache().stats();
//! let report = stampede(8, |_| rules_with_origin(1));
//! assert_eq!((report.computed(), report.panics()), (1, 0));
//! assert_eq!(report.waited() + report.hits(), 7);
//! assert_eq!((rules_cache().stats() - before).executions, 1);
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "testing")]
pub use memoflight_core::testing;
#[cfg(feature = "async")]
pub use memoflight_core::{AsyncCache, AsyncStore, Lead, Lease, Refresh};
pub use memoflight_core::{
    Bounded, Cache, Clock, Equivalent, Expires, Expiring, Origin, Return, Stats, Store, Unbounded,
};
#[cfg(feature = "disk")]
pub use memoflight_core::{DiskStore, DiskStoreError};
#[cfg(feature = "redis")]
pub use memoflight_core::{RedisStore, RedisStoreError};

// The README's code blocks run as doc-tests (its "Testing your caches" example needs the kit).
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Re-exports, as `cached`, the attribute that matches this crate's features: the macro crate
/// has no features of its own (they would be unified across a build), the facade decides.
macro_rules! cached_attribute {
    ($attribute:ident) => {
        /// Memoizes a function: see the [crate documentation](crate) for the guarantees and options.
        ///
        /// ```
        /// #[memoflight::cached]
        /// fn double(n: u32) -> u32 {
        ///     n * 2
        /// }
        ///
        /// assert_eq!(double(4), 8);
        /// assert_eq!(double_no_cache(4), 8); // bypasses the cache
        /// assert_eq!(double_cache().len(), 1);
        /// ```
        pub use memoflight_macros::$attribute as cached;
    };
}

#[cfg(feature = "tokio")]
cached_attribute!(cached);
#[cfg(all(feature = "async", not(feature = "tokio")))]
cached_attribute!(cached_without_tokio);
#[cfg(not(feature = "async"))]
cached_attribute!(cached_without_async);

/// What generated code uses. Not part of the public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use memoflight_core::__macro_support::*;
}
