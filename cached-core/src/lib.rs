#![warn(missing_docs)]
//! The runtime of [memoflight](https://docs.rs/memoflight): the [`Cache`] engine with its
//! single-flight table, the [`Store`] trait and its stores, and [`Stats`].
//!
//! Use it through the `memoflight` crate, which re-exports everything here together with the
//! `#[cached]` attribute.

#[cfg(feature = "async")]
mod async_cache;
#[cfg(feature = "async")]
mod async_store;
#[cfg(feature = "async")]
mod blocking;
mod cache;
mod cached_flag;
mod clock;
#[cfg(feature = "disk")]
mod disk_store;
#[cfg(all(feature = "disk", not(any(target_os = "linux", target_os = "android"))))]
compile_error!(
    "memoflight's `disk` feature needs Linux: its per-key locks are byte-range locks of open \
     file descriptions (F_OFD_SETLK)"
);
mod engine;
mod flight;
#[cfg(feature = "async")]
mod future;
mod key;
mod macro_support;
mod origin;
mod output;
#[cfg(feature = "async")]
mod polling;
mod protocol;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(any(feature = "redis", feature = "disk"))]
mod shared_store;
mod stats;
mod store;
mod sync;
mod teardown;
#[cfg(feature = "testing")]
pub mod testing;
mod trace;
mod wait_graph;

#[cfg(feature = "async")]
pub use async_cache::AsyncCache;
#[cfg(feature = "async")]
pub use async_store::{AsyncStore, Lead, Lease, Refresh};
pub use cache::Cache;
pub use cached_flag::Return;
pub use clock::Clock;
#[cfg(feature = "disk")]
pub use disk_store::{DiskStore, DiskStoreError};
pub use equivalent::Equivalent;
pub use origin::Origin;
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, RedisStoreError};
pub use stats::Stats;
pub use store::{Bounded, Expires, Expiring, Store, Unbounded};

/// What generated code needs and users do not (see `macro_support.rs`); re-exported as
/// `memoflight::__private`.
#[doc(hidden)]
pub mod __macro_support {
    pub use crate::macro_support::*;
}
