//! [`RedisStore`] (feature `redis`): an [`AsyncStore`] on a Redis server that every process of
//! a fleet shares, with one computation per key across the fleet.
//!
//! # The protocol, across processes
//!
//! In each process, the cache's own single-flight runs first: one leader per key per process.
//! That leader then runs one script ([`LEAD`]) that, atomically, returns the value if one is
//! stored, or takes the key's lease (`SET lease token NX PX lease`) if nobody holds it, or says
//! that another process holds it. A process that got the lease computes, renews the lease every
//! third of its duration while it computes ([`RENEW`]), and writes the value with [`STORE`],
//! which writes only if the lease is still its own (a fence: a leader paused past its lease,
//! or whose key was invalidated meanwhile, writes nothing) and ends the lease in the same step.
//! A process that may wait subscribes to its namespace's wake-up channel before its first lease
//! try (`wakeups.rs`: once per store, on a connection of its own; the write, a release and an
//! invalidation publish the key's name there, and `clear` and `invalidate_if`, which delete
//! every lease, publish the empty name, which wakes every waiter). One that found the lease held
//! then waits for the key's wake-up and reads the value with a plain `GET`; only if there is
//! none (the leader failed or was fenced out, or the key was invalidated) does it run [`LEAD`]
//! again, which takes the lease (exactly one `SET NX` wins) or finds it held anew. A leader
//! that dies stops renewing, so its lease expires and one waiter takes over.
//!
//! Why pub/sub with polling behind it: with only polling, a waiting process makes one round
//! trip per poll (in the 8-process test, 79 script calls for a 300 ms computation). With
//! wake-ups, and the subscription made before the lease try, a stampede makes one lease round
//! trip per process and one `GET` per waiting process: 9 script calls in that test (8 lease
//! tries and the write; 23 while the subscription was made after the first try, which then
//! needed a second try, and a third to read once woken). A message can be lost (the
//! subscription's connection dropped), so every wait is also bounded: by
//! [`RedisStore::recheck_after`] (half a second) while there is a subscription, and by the
//! polling interval (2 ms doubling to [`MAX_POLL`], the lease script each time) while there is
//! none (it could not be made: the process retries at most once a second).
//!
//! # Keys
//!
//! `{prefix}:{function}:v{schema}.{type}:{KEY}` holds the value, and the same name with `:lease`
//! appended holds the lease: `KEY` is the key's bytes (postcard, base64url), inside braces so that
//! both share a hash tag (the scripts touch both; Redis Cluster requires them in one slot:
//! `tests/test_redis.rs` checks it with `CLUSTER KEYSLOT`). The wake-up channel,
//! `{prefix}:{function}:v{schema}.{type}:~wake`, needs no tag: a channel is not a key (the scripts
//! get it as an argument, not in `KEYS`), and Cluster delivers a `PUBLISH` to every node's
//! subscribers. `type` is a fingerprint of the value's type name, so that a changed type reads none
//! of the old bytes; `schema` is yours to bump when a type keeps its name but changes its fields.
//!
//! # Faults
//!
//! Every operation has a deadline ([`RedisStore::timeout`]), waiting for a connection
//! included; once a first connection attempt failed, none is tried for a second. A lost
//! reply to the lease script, or a failed write, releases the lease in the background. A
//! failure is an error of the store, which the cache turns into a local computation
//! ([`AsyncCache`](crate::AsyncCache)'s "store failures", counted in `store_errors`, readable
//! during the outage with [`AsyncCache::counters`](crate::AsyncCache::counters)). Bytes that do
//! not decode, or longer than [`RedisStore::max_value_bytes`], are a plain miss (not a store
//! error), and the value computed then overwrites them. Nothing read from Redis can panic.

mod wakeups;

use crate::async_store::{AsyncStore, Lead, Lease, Refresh};
use crate::sync::lock_std as lock;
use base64::Engine as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use wakeups::Subscription;

/// Returns the value, or takes the lease (or finds it already the caller's: a retried run),
/// or reports it held. KEYS: value, lease; ARGV: token, lease in ms.
const LEAD: &str = r"
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
if redis.call('GET', KEYS[2]) == ARGV[1] then return {2} end
return {0}
";

/// Extends the lease if it is still the caller's. KEYS: lease; ARGV: token, lease in ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Writes the value if the lease is still the caller's, ends the lease, and wakes the key's
/// waiters. KEYS: value, lease; ARGV: token, value, expiry in ms (0: none), channel.
const STORE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[4], KEYS[1])
return 1
";

/// Ends the lease if it is still the caller's, and wakes the key's waiters (one takes over).
/// KEYS: lease; ARGV: token, channel, the value's key.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// The value and its remaining expiry in ms (nil when absent). KEYS: value.
const LOOK: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return nil end
return {value, redis.call('PTTL', KEYS[1])}
";

/// For a value read as due: {3} if it is gone, {2, value} if it is no longer due (refreshed
/// since), {1} if the caller takes (or already holds) the lease, {0} if another holds it.
/// KEYS: value, lease; ARGV: token, lease in ms, the writes' expiry in ms, refresh age in ms.
const LEAD_REFRESH: &str = r"
local remaining = redis.call('PTTL', KEYS[1])
if remaining == -2 then return {3} end
if remaining >= 0 and tonumber(ARGV[3]) - remaining < tonumber(ARGV[4]) then
  return {2, redis.call('GET', KEYS[1])}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
if redis.call('GET', KEYS[2]) == ARGV[1] then return {1} end
return {0}
";

/// Deletes the value if it is still the given bytes. KEYS: value; ARGV: bytes.
const DROP_IF_SAME: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The longest interval between two polls of a waiting process.
const MAX_POLL: Duration = Duration::from_millis(50);
/// How long a failed connection attempt keeps the store from trying again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// An [`AsyncStore`] on a Redis server, shared by every process that names the same server,
/// prefix, function and schema: a key is computed once across all of them (see the module
/// docs of `redis_store.rs` for the protocol).
///
/// Keys and values are serialized with serde as [postcard](https://docs.rs/postcard), a
/// compact binary format (`benches/README.md` compares it). Use it with
/// `#[cached(async_store = RedisStore::new(url))]`; the store takes the function's path
/// (`module::function`) from the cache it is given to, and panics if given to a second one
/// (give each function a store of its own). It needs a tokio
/// runtime with its timer enabled (`#[tokio::main]` has it).
///
/// # Concurrency and guarantees
///
/// - In each process, one caller per key talks to Redis; the others wait for it in-process.
/// - Across processes, one computes while it holds the key's lease; the others wait (woken by
///   pub/sub, polling behind it) until its value is written or its lease is gone. A leader that dies (even by SIGKILL) stops
///   renewing its lease, and one waiter takes over once it expires (within
///   [`lease`](RedisStore::lease) and the waiters' [`recheck_after`](RedisStore::recheck_after)).
/// - A leader writes only while it still holds its lease (an atomic check in Redis), so a
///   leader paused past its lease, or whose key was invalidated by any process meanwhile,
///   does not overwrite what happened since.
/// - [`AsyncCache::invalidate`](crate::AsyncCache::invalidate) deletes the value and the lease
///   for every process; [`clear`](crate::AsyncCache::clear) deletes the function's whole
///   namespace with `SCAN` + `UNLINK` (O(keys in the database)), every lease before any
///   value, so that no computation begun before it writes a value that survives it.
///
/// # Errors and faults
///
/// Redis unreachable, or slower than [`timeout`](RedisStore::timeout): the operation fails
/// with [`RedisStoreError`], and the cache computes locally and returns the value (counted in
/// [`Stats::store_errors`](crate::Stats::store_errors), which
/// [`AsyncCache::counters`](crate::AsyncCache::counters) reads while Redis is down).
/// Undecodable or oversized bytes are a miss, not an error. Credentials go in the URL
/// (`redis://user:password@host/`) and never appear in errors.
/// With the `redis-tls` feature, `rediss://` URLs connect over TLS (rustls), verified against
/// the system's roots or a CA given to [`tls_root_cert`](RedisStore::tls_root_cert).
///
/// # Example
///
/// ```no_run
/// use memoflight::{cached, RedisStore};
/// use std::time::Duration;
///
/// #[cached(async_store = RedisStore::new("redis://127.0.0.1:6379").ttl(Duration::from_secs(600)))]
/// async fn rules(tenant: u32) -> Vec<String> {
///     vec![format!("rules of {tenant}")]
/// }
/// ```
pub struct RedisStore<K, V> {
    url: String,
    prefix: String,
    schema: u32,
    ttl: Option<Duration>,
    refresh_after: Option<Duration>,
    lease: Duration,
    timeout: Duration,
    recheck: Duration,
    max_value_bytes: usize,
    #[cfg(feature = "redis-tls")]
    tls_root_cert: Option<Vec<u8>>,
    /// `prefix:function:vSCHEMA.TYPE:`, once the cache told its function's path.
    namespace: OnceLock<String>,
    link: tokio::sync::OnceCell<ConnectionManager>,
    /// When the last connection attempt failed.
    failed_at: Mutex<Option<Instant>>,
    wakeups: wakeups::Wakeups,
    renewals: Renewals,
    types: PhantomData<fn(K) -> V>,
}

/// Why a [`RedisStore`] operation failed. Never includes the URL (it may hold a password).
#[derive(Debug)]
pub enum RedisStoreError {
    /// Redis answered with an error, or the connection failed.
    Redis(redis::RedisError),
    /// No answer within [`RedisStore::timeout`].
    Timeout(&'static str),
    /// The last connection attempt failed less than a second ago.
    Unreachable,
    /// A key or value could not be serialized.
    Encode(postcard::Error),
}

impl std::fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisStoreError::Redis(error) => write!(f, "redis: {}", error.kind_text()),
            RedisStoreError::Timeout(operation) => {
                write!(f, "redis: no answer to {operation} in time")
            }
            RedisStoreError::Unreachable => {
                f.write_str("redis: unreachable (the last connection attempt failed)")
            }
            RedisStoreError::Encode(error) => write!(f, "redis: cannot serialize: {error}"),
        }
    }
}

impl std::error::Error for RedisStoreError {}

/// The part of a Redis error that is safe to show: its kind and code, not its detail (which
/// may quote the URL).
trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_text(&self) -> String {
        match self.code() {
            Some(code) => format!("{:?} ({code})", self.kind()),
            None => format!("{:?}", self.kind()),
        }
    }
}

impl<K, V> RedisStore<K, V> {
    /// A store on the Redis server at `url` (`redis://[user:password@]host[:port][/db]`). It
    /// connects on first use; a bad URL or an unreachable server makes every operation fail
    /// (the cache then computes locally).
    ///
    /// Defaults: prefix `memoflight`, schema 1, no expiry, lease 10 s, timeout 1 s, recheck
    /// after 500 ms, values up to 16 MiB.
    ///
    /// ```
    /// # use memoflight::RedisStore;
    /// use std::time::Duration;
    /// let store = RedisStore::<u32, String>::new("redis://127.0.0.1:6379")
    ///     .prefix("billing")
    ///     .schema(2)
    ///     .ttl(Duration::from_secs(600))
    ///     .refresh_after(Duration::from_secs(60))
    ///     .lease(Duration::from_secs(30))
    ///     .timeout(Duration::from_millis(200))
    ///     .recheck_after(Duration::from_secs(1))
    ///     .max_value_bytes(1 << 20);
    /// # let _ = store;
    /// ```
    ///
    /// Keep the password out of the code: take the URL from the environment (or a secret
    /// store). The URL is never shown: not in [`RedisStoreError`]'s `Display` or `Debug`, not
    /// in the `tracing` events of the cache.
    ///
    /// ```no_run
    /// # use memoflight::{AsyncCache, RedisStore};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // REDIS_URL=redis://app:s3cret@cache.internal:6379/0
    /// let store = RedisStore::<u32, String>::new(std::env::var("REDIS_URL")?);
    /// let cache = AsyncCache::new("reports", store);
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        RedisStore {
            url: url.into(),
            prefix: "memoflight".to_owned(),
            schema: 1,
            ttl: None,
            refresh_after: None,
            lease: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            recheck: wakeups::SUBSCRIBED_BACKSTOP,
            max_value_bytes: 16 << 20,
            #[cfg(feature = "redis-tls")]
            tls_root_cert: None,
            namespace: OnceLock::new(),
            link: tokio::sync::OnceCell::new(),
            failed_at: Mutex::new(None),
            wakeups: wakeups::Wakeups::default(),
            renewals: Renewals::default(),
            types: PhantomData,
        }
    }

    /// The first part of every key: one per application sharing a server.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The schema version in every key: bump it when the value type changes its fields but
    /// not its name, so that no process reads bytes of the old shape.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn schema(mut self, schema: u32) -> Self {
        self.schema = schema;
        self
    }

    /// Values expire after `ttl` (a Redis expiry, the same for every process).
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Values older than this are refreshed: a call that reads one gets it at once, and one
    /// process in the fleet recomputes it meanwhile (the others keep serving the old value
    /// until the new one is written). Ages are measured by Redis (from the key's remaining
    /// expiry), so the processes' clocks do not matter.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn refresh_after(mut self, refresh_after: Duration) -> Self {
        self.refresh_after = Some(refresh_after);
        self
    }

    /// The expiry every write sets, in ms (0: none). With `refresh_after` and no `ttl`, a
    /// century: the age of a value is read from its remaining expiry.
    fn expiry_ms(&self) -> u64 {
        match (self.ttl, self.refresh_after) {
            (Some(ttl), _) => Self::millis(ttl),
            (None, Some(_)) => Self::millis(Duration::MAX),
            (None, None) => 0,
        }
    }

    /// How long a lease lives without renewal: a dead leader's key is taken over after at most
    /// this long. A live leader renews it every third of it.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The deadline of every operation (connecting included); past it, the operation fails.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a process waiting for another's computation waits for a wake-up message before
    /// it checks Redis again (at least 10 ms). Every write, release, invalidation and `clear`
    /// publishes one, so this bounds the wait only where no message comes: a leader that died
    /// (its lease expires silently: a waiter takes over at its first recheck after the
    /// expiry, so within `lease` plus this), or a message lost with the subscription's
    /// connection. While the process has no subscription it polls every 2 ms, doubling up to
    /// 50 ms.
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn recheck_after(mut self, recheck: Duration) -> Self {
        self.recheck = recheck.max(Duration::from_millis(10));
        self
    }

    /// With the `redis-tls` feature, a `rediss://` URL's server is verified against this CA
    /// certificate (PEM) instead of the system's roots: a private CA, or a test's.
    ///
    /// ```
    /// # use memoflight::RedisStore;
    /// let ca = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".to_vec();
    /// let store = RedisStore::<u32, String>::new("rediss://cache.internal:6380/").tls_root_cert(ca);
    /// # let _ = store;
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn tls_root_cert(mut self, pem: Vec<u8>) -> Self {
        self.tls_root_cert = Some(pem);
        self
    }

    /// Stored values longer than this are read as a miss (and not written).
    ///
    /// See [`new`](RedisStore::new) for an example.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// `prefix:function:vSCHEMA.TYPE:` of the function the store was bound to (`unnamed`
    /// before).
    fn namespace(&self) -> std::borrow::Cow<'_, str> {
        match self.namespace.get() {
            Some(namespace) => std::borrow::Cow::Borrowed(namespace),
            None => std::borrow::Cow::Owned(self.namespace_for("unnamed")),
        }
    }

    fn namespace_for(&self, function: &str) -> String {
        let fingerprint = crate::shared_store::type_fingerprint::<K, V>();
        format!(
            "{}:{function}:v{}.{fingerprint:08x}:",
            self.prefix, self.schema
        )
    }

    /// A client for the URL: with the `redis-tls` feature and a
    /// [`tls_root_cert`](RedisStore::tls_root_cert), one that trusts that CA.
    fn client(&self) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "redis-tls")]
        if let Some(root_cert) = &self.tls_root_cert {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert.clone()),
            };
            return redis::Client::build_with_tls(self.url.as_str(), certificates);
        }
        redis::Client::open(self.url.as_str())
    }

    fn recently_failed(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|at| at.elapsed() < RECONNECT_AFTER)
    }

    /// Releases the lease `token` may hold on `names` when dropped, unless disarmed: for a
    /// script whose reply was lost, or a caller dropped while it waited for one.
    fn guard<'s>(&'s self, names: Names, token: &str) -> LeaseGuard<'s, K, V> {
        LeaseGuard {
            store: self,
            release: Some((names, token.to_owned())),
        }
    }

    /// Renews the lease `token` holds on `lease_name` every third of its duration, from a task
    /// on the current tokio runtime, until the leader ends it (write, release, abandon) or it
    /// is lost. A task rather than a future polled next to the computation: a sync
    /// computation holds its thread, and the renewal must go on meanwhile.
    fn renew_while_held(&self, lease_name: Vec<u8>, token: &str) {
        let (Some(link), Ok(runtime)) = (
            self.link.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let (lease, timeout, owned_token) = (self.lease, self.timeout, token.to_owned());
        let renewal = runtime.spawn(async move {
            let mut link = link;
            loop {
                tokio::time::sleep(lease / 3).await;
                let mut command = redis::cmd("EVAL");
                command
                    .arg(RENEW)
                    .arg(1)
                    .arg(&lease_name)
                    .arg(&owned_token)
                    .arg(Self::millis(lease));
                let renewed = tokio::time::timeout(timeout, command.query_async::<i64>(&mut link));
                // Lost (expired, or revoked by an invalidation): the write will be fenced
                // out; renewing cannot bring it back.
                if matches!(renewed.await, Ok(Ok(0))) {
                    return;
                }
            }
        });
        self.renewals.start(token, renewal.abort_handle());
    }

    /// The channel on which this namespace's writes, releases and invalidations wake waiters.
    fn channel(&self) -> String {
        format!("{}~wake", self.namespace())
    }

    /// Ends the lease `token` holds on the key named `name` from a task on the current tokio runtime
    /// (when there is one and the store is connected): for a destructor, or a reply lost.
    fn release_in_background(&self, (name, lease_name): Names, token: String) {
        let (Some(link), Ok(runtime)) = (
            self.link.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let (timeout, channel) = (self.timeout, self.channel());
        runtime.spawn(async move {
            let mut link = link;
            let mut command = redis::cmd("EVAL");
            command
                .arg(RELEASE)
                .arg(1)
                .arg(&lease_name)
                .arg(&token)
                .arg(&channel)
                .arg(&name);
            let release = command.query_async::<i64>(&mut link);
            let _ = tokio::time::timeout(timeout, release).await;
        });
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisStoreError> {
        if let Some(link) = self.link.get() {
            return Ok(link.clone());
        }
        if self.recently_failed() {
            return Err(RedisStoreError::Unreachable);
        }
        let connect = async {
            let client = self.client().map_err(RedisStoreError::Redis)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(0);
            client
                .get_connection_manager_with_config(config)
                .await
                .map_err(RedisStoreError::Redis)
        };
        // The whole wait is under the deadline, queueing behind another caller's attempt
        // included; an attempt that starts after one failed recently fails at once.
        let made = tokio::time::timeout(
            self.timeout,
            self.link.get_or_try_init(|| async {
                if self.recently_failed() {
                    return Err(RedisStoreError::Unreachable);
                }
                connect.await
            }),
        )
        .await
        .unwrap_or(Err(RedisStoreError::Timeout("connect")));
        match made {
            Ok(link) => Ok(link.clone()),
            Err(error) => {
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// Runs `command` on the connection within the deadline.
    async fn run<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        command: impl FnOnce(&mut redis::Pipeline),
    ) -> Result<T, RedisStoreError> {
        let mut link = self.connection().await?;
        let mut pipe = redis::pipe();
        command(&mut pipe);
        // A connection found broken (the server restarted) is re-made by the manager for the
        // next request: the command is sent once more, within the same deadline. Every script
        // is safe to run twice.
        let attempts = async {
            match pipe.query_async::<(T,)>(&mut link).await {
                Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                    pipe.query_async::<(T,)>(&mut link).await
                }
                reply => reply,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok((value,))) => Ok(value),
            Ok(Err(error)) => Err(RedisStoreError::Redis(error)),
            Err(_) => Err(RedisStoreError::Timeout(operation)),
        }
    }

    /// Milliseconds for `PX`/`PEXPIRE`, at least 1 and at most 100 years (Redis refuses
    /// expiries past `i64`).
    fn millis(duration: Duration) -> u64 {
        const CENTURY_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
        u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, CENTURY_MS)
    }
}

impl<K: Serialize, V: Serialize + DeserializeOwned> RedisStore<K, V> {
    /// The Redis key that holds `key`'s value, as `redis-cli` would name it (for inspection).
    ///
    /// # Errors
    ///
    /// If the key cannot be serialized.
    ///
    /// ```
    /// # use memoflight::RedisStore;
    /// let store = RedisStore::<u32, String>::new("redis://127.0.0.1:6379").prefix("app");
    /// let name = String::from_utf8(store.redis_key(&7).unwrap()).unwrap();
    /// assert!(name.starts_with("app:unnamed:v1."));
    /// assert!(name.ends_with(":{Bw}"));
    ///
    /// // A key of no bytes still has a hash tag.
    /// let unit = RedisStore::<(), String>::new("redis://127.0.0.1:6379");
    /// assert!(String::from_utf8(unit.redis_key(&()).unwrap()).unwrap().ends_with(":{.}"));
    /// ```
    pub fn redis_key(&self, key: &K) -> Result<Vec<u8>, RedisStoreError> {
        let bytes = postcard::to_allocvec(key).map_err(RedisStoreError::Encode)?;
        let mut name = self.namespace().as_bytes().to_vec();
        name.push(b'{');
        // An empty hash tag (`{}`, a unit key's) would not be one: its value and lease could
        // land in different Cluster slots. `.` is outside base64url, so no key encodes to it.
        match bytes.is_empty() {
            true => name.push(b'.'),
            false => name.extend(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(bytes)
                    .bytes(),
            ),
        }
        name.push(b'}');
        Ok(name)
    }

    fn names(&self, key: &K) -> Result<Names, RedisStoreError> {
        let value = self.redis_key(key)?;
        let mut lease = value.clone();
        lease.extend_from_slice(b":lease");
        Ok((value, lease))
    }

    /// The key a value's Redis name holds (see [`redis_key`](Self::redis_key)); `None` for a
    /// name that is not one of this namespace's.
    fn key_of(&self, name: &[u8]) -> Option<K>
    where
        K: DeserializeOwned,
    {
        let tag = name.strip_prefix(self.namespace().as_bytes())?;
        let encoded = tag.strip_prefix(b"{")?.strip_suffix(b"}")?;
        let bytes = match encoded {
            b"." => Vec::new(),
            _ => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .ok()?,
        };
        postcard::from_bytes(&bytes).ok()
    }

    /// Stored bytes as a value: `None` for bytes that do not decode or are too long.
    fn decode(&self, bytes: &[u8]) -> Option<V> {
        if bytes.len() > self.max_value_bytes {
            return None;
        }
        postcard::from_bytes(bytes).ok()
    }

    fn encode(&self, value: &V) -> Result<Option<Vec<u8>>, RedisStoreError> {
        let bytes = postcard::to_allocvec(value).map_err(RedisStoreError::Encode)?;
        Ok((bytes.len() <= self.max_value_bytes).then_some(bytes))
    }

    /// One page of `SCAN cursor MATCH pattern`: the next cursor (0 at the end) and the keys.
    async fn scan_page(
        &self,
        operation: &'static str,
        pattern: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), RedisStoreError> {
        self.run(operation, |pipe| {
            pipe.cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
        })
        .await
    }

    /// Publishes the empty name, which wakes every process waiting for a key of the
    /// namespace: after `clear` or `invalidate_if` deleted every lease, each waiter takes the
    /// lease of its key at once instead of at its next recheck. Best effort: a waiter that
    /// misses it rechecks later, so a failure here fails nothing.
    async fn wake_every_waiter(&self, operation: &'static str) {
        let _ = self
            .run::<i64>(operation, |pipe| {
                pipe.cmd("PUBLISH")
                    .arg(self.channel())
                    .arg(wakeups::EVERY_KEY);
            })
            .await;
    }

    /// Every key of this store's namespace matching `pattern` (a glob after the namespace),
    /// deleted in batches found by `SCAN`.
    async fn unlink_matching(
        &self,
        operation: &'static str,
        pattern: &str,
    ) -> Result<(), RedisStoreError> {
        let pattern = format!("{}{pattern}", glob_escape(&self.namespace()));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = self.scan_page(operation, &pattern, cursor).await?;
            if !keys.is_empty() {
                self.run::<()>(operation, |pipe| {
                    pipe.cmd("UNLINK").arg(&keys);
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// The renewal tasks of the leases this store's leaders hold, by token; each is aborted when
/// its lease ends, and all of them with the store.
#[derive(Default)]
struct Renewals(Mutex<HashMap<String, tokio::task::AbortHandle>>);

impl Renewals {
    fn start(&self, token: &str, renewal: tokio::task::AbortHandle) {
        lock(&self.0).insert(token.to_owned(), renewal);
    }

    fn stop(&self, token: &str) {
        if let Some(renewal) = lock(&self.0).remove(token) {
            renewal.abort();
        }
    }
}

impl Drop for Renewals {
    fn drop(&mut self) {
        for (_, renewal) in lock(&self.0).drain() {
            renewal.abort();
        }
    }
}

/// The Redis names of a key's value and of its lease.
type Names = (Vec<u8>, Vec<u8>);

/// See [`RedisStore::guard`].
struct LeaseGuard<'s, K, V> {
    store: &'s RedisStore<K, V>,
    release: Option<(Names, String)>,
}

impl<K, V> LeaseGuard<'_, K, V> {
    /// The lease is handed over (or was never taken): nothing to release.
    fn disarm(mut self) {
        self.release = None;
    }
}

impl<K, V> Drop for LeaseGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some((names, token)) = self.release.take() {
            self.store.release_in_background(names, token);
        }
    }
}

/// `text` with the characters `SCAN MATCH` treats as a pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What the [`LEAD`] script answered.
enum Answer {
    Value(Vec<u8>),
    Leased,
    Held,
}

/// What the [`LEAD_REFRESH`] script answered.
enum RefreshAnswer {
    Leased,
    Held,
    Fresh(Vec<u8>),
    Gone,
}

impl redis::FromRedisValue for RefreshAnswer {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        let unexpected = || String::from("unexpected reply to LEAD_REFRESH").into();
        let redis::Value::Array(items) = value else {
            return Err(unexpected());
        };
        let mut items = items.into_iter();
        match (items.next(), items.next(), items.next()) {
            (Some(redis::Value::Int(1)), None, None) => Ok(RefreshAnswer::Leased),
            (Some(redis::Value::Int(0)), None, None) => Ok(RefreshAnswer::Held),
            (Some(redis::Value::Int(2)), Some(redis::Value::BulkString(bytes)), None) => {
                Ok(RefreshAnswer::Fresh(bytes))
            }
            (Some(redis::Value::Int(3)), None, None) => Ok(RefreshAnswer::Gone),
            _ => Err(unexpected()),
        }
    }
}

/// What the [`LOOK`] script answered: the bytes and the remaining expiry.
struct Looked(Option<(Vec<u8>, i64)>);

impl redis::FromRedisValue for Looked {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        match value {
            redis::Value::Nil => Ok(Looked(None)),
            redis::Value::Array(items) => {
                let mut items = items.into_iter();
                match (items.next(), items.next(), items.next()) {
                    (
                        Some(redis::Value::BulkString(bytes)),
                        Some(redis::Value::Int(pttl)),
                        None,
                    ) => Ok(Looked(Some((bytes, pttl)))),
                    _ => Err(String::from("unexpected reply to LOOK").into()),
                }
            }
            _ => Err(String::from("unexpected reply to LOOK").into()),
        }
    }
}

impl redis::FromRedisValue for Answer {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        let redis::Value::Array(items) = value else {
            return Err(String::from("unexpected reply to LEAD").into());
        };
        let mut items = items.into_iter();
        match (items.next(), items.next(), items.next()) {
            (Some(redis::Value::Int(1)), Some(redis::Value::BulkString(bytes)), None) => {
                Ok(Answer::Value(bytes))
            }
            (Some(redis::Value::Int(2)), None, None) => Ok(Answer::Leased),
            (Some(redis::Value::Int(0)), None, None) => Ok(Answer::Held),
            _ => Err(String::from("unexpected reply to LEAD").into()),
        }
    }
}

impl<K, V> AsyncStore for RedisStore<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync,
    V: Serialize + DeserializeOwned + Clone + Send + Sync,
{
    type Key = K;
    type Value = V;
    type Error = RedisStoreError;

    async fn get(&self, key: &K) -> Result<Option<V>, RedisStoreError> {
        let (name, _) = self.names(key)?;
        let bytes: Option<Vec<u8>> = self
            .run("get", |pipe| {
                pipe.cmd("GET").arg(&name);
            })
            .await?;
        Ok(bytes.and_then(|bytes| self.decode(&bytes)))
    }

    /// Writes without a lease (the cache itself writes through
    /// [`insert_leased`](AsyncStore::insert_leased)), and ends the key's lease, if any: a
    /// computation in flight anywhere does not overwrite this newer value. Waiters are woken.
    async fn insert(&self, key: K, value: V) -> Result<(), RedisStoreError> {
        let (name, lease) = self.names(&key)?;
        let Some(bytes) = self.encode(&value)? else {
            return Ok(());
        };
        let expiry = self.expiry_ms();
        self.run("insert", |pipe| {
            pipe.atomic();
            let set = pipe.cmd("SET").arg(&name).arg(&bytes);
            if expiry > 0 {
                set.arg("PX").arg(expiry);
            }
            set.ignore();
            pipe.cmd("DEL").arg(&lease).ignore();
            pipe.cmd("PUBLISH").arg(self.channel()).arg(&name);
        })
        .await
        .map(|_: i64| ())
    }

    /// Deletes the value and the lease: a computation in flight anywhere does not write.
    async fn remove(&self, key: &K) -> Result<(), RedisStoreError> {
        let (name, lease) = self.names(key)?;
        self.run("remove", |pipe| {
            pipe.cmd("DEL").arg(&name).arg(&lease).ignore();
            pipe.cmd("PUBLISH").arg(self.channel()).arg(&name);
        })
        .await
        .map(|_: i64| ())
    }

    /// Deletes every lease of the namespace first, then every value, then wakes every waiter.
    ///
    /// The order is what makes `clear` whole: `SCAN` walks the keyspace while leaders write,
    /// so in one pass over values and leases together a leader could write its value after
    /// the scan went past that value's place and before its lease was reached (its write
    /// still fenced in), and the value would survive the clear. Once every lease that existed
    /// when `clear` began is gone, no computation begun before it can write (the write checks
    /// its lease in the same script); a value such a leader wrote meanwhile exists when the
    /// second pass starts, and `SCAN` returns every key present for its whole duration, so it
    /// is deleted. A lease taken after the first pass belongs to a call made during `clear`,
    /// whose value may stay.
    async fn clear(&self) -> Result<(), RedisStoreError> {
        let cleared = async {
            self.unlink_matching("clear", "*}:lease").await?;
            self.unlink_matching("clear", "*}").await
        }
        .await;
        // Even after a partial failure: the leases deleted so far are free.
        self.wake_every_waiter("clear").await;
        cleared
    }

    /// Counts the namespace's values with `SCAN` (O(keys in the database)).
    async fn len(&self) -> Result<usize, RedisStoreError> {
        let pattern = format!("{}*}}", glob_escape(&self.namespace()));
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next, keys) = self.scan_page("len", &pattern, cursor).await?;
            count += keys.len();
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    /// Deletes every lease of the namespace (no computation in flight in any process writes
    /// its value), then reads every value (`SCAN` + `MGET`, decoding each key from its name)
    /// and deletes those `keep` rejects. O(keys in the database) in round trips of 1,000, and
    /// every value of the namespace in transfer: for a large namespace, prefer `invalidate`
    /// per key or `clear`. Bytes that do not decode are left for the next read to replace.
    async fn retain<F>(&self, mut keep: F) -> Result<(), RedisStoreError>
    where
        F: FnMut(&K, &V) -> bool + Send,
    {
        let unleased = self.unlink_matching("invalidate_if", "*}:lease").await;
        self.wake_every_waiter("invalidate_if").await;
        unleased?;
        let pattern = format!("{}*}}", glob_escape(&self.namespace()));
        let mut cursor: u64 = 0;
        loop {
            let (next, names) = self.scan_page("invalidate_if", &pattern, cursor).await?;
            if !names.is_empty() {
                let values: Vec<Option<Vec<u8>>> = self
                    .run("invalidate_if", |pipe| {
                        pipe.cmd("MGET").arg(&names);
                    })
                    .await?;
                let rejected: Vec<&Vec<u8>> = names
                    .iter()
                    .zip(values)
                    .filter_map(|(name, bytes)| {
                        let key = self.key_of(name)?;
                        let value = self.decode(&bytes?)?;
                        (!keep(&key, &value)).then_some(name)
                    })
                    .collect();
                if !rejected.is_empty() {
                    self.run::<()>("invalidate_if", |pipe| {
                        pipe.cmd("UNLINK").arg(&rejected);
                    })
                    .await?;
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// With [`refresh_after`](RedisStore::refresh_after), one script reads the value and its
    /// remaining expiry; without, a plain `GET`.
    async fn look(&self, key: &K) -> Result<Option<(V, bool)>, RedisStoreError> {
        let Some(refresh_after) = self.refresh_after else {
            return Ok(self.get(key).await?.map(|value| (value, false)));
        };
        let (name, _) = self.names(key)?;
        let Looked(found) = self
            .run("get", |pipe| {
                pipe.cmd("EVAL").arg(LOOK).arg(1).arg(&name);
            })
            .await?;
        Ok(found.and_then(|(bytes, remaining)| {
            // No expiry (-1): written by a store without `refresh_after`; its age is unknown.
            let age = u64::try_from(remaining)
                .ok()
                .map(|remaining| self.expiry_ms().saturating_sub(remaining));
            let due = age.is_some_and(|age| age >= Self::millis(refresh_after));
            self.decode(&bytes).map(|value| (value, due))
        }))
    }

    async fn lead_refresh(&self, key: &K) -> Result<Refresh<V>, RedisStoreError> {
        let Some(refresh_after) = self.refresh_after else {
            return Ok(Refresh::Lead(Lease::unshared()));
        };
        let (name, lease_name) = self.names(key)?;
        let token = crate::shared_store::token();
        let guard = self.guard((name.clone(), lease_name.clone()), &token);
        let answer: RefreshAnswer = self
            .run("lead", |pipe| {
                pipe.cmd("EVAL")
                    .arg(LEAD_REFRESH)
                    .arg(2)
                    .arg(&name)
                    .arg(&lease_name)
                    .arg(&token)
                    .arg(Self::millis(self.lease))
                    .arg(self.expiry_ms())
                    .arg(Self::millis(refresh_after));
            })
            .await?;
        guard.disarm();
        Ok(match answer {
            RefreshAnswer::Leased => {
                self.renew_while_held(lease_name, &token);
                Refresh::Lead(Lease::new(token))
            }
            RefreshAnswer::Held => Refresh::Refreshing,
            RefreshAnswer::Fresh(bytes) => match self.decode(&bytes) {
                Some(value) => Refresh::Refreshed(value),
                None => Refresh::Gone,
            },
            RefreshAnswer::Gone => Refresh::Gone,
        })
    }

    /// # Panics
    ///
    /// If the store was bound to another function already: two functions sharing one store
    /// would read each other's values.
    fn bind(&self, name: &'static str) {
        let namespace = self.namespace_for(name);
        if let Err(namespace) = self.namespace.set(namespace) {
            assert!(
                self.namespace.get() == Some(&namespace),
                "memoflight: one RedisStore was given to two functions ({} and {name}); give \
                 each function a store of its own",
                self.namespace.get().map_or("", String::as_str),
            );
        }
    }

    async fn lead(&self, key: &K, wait: Option<Duration>) -> Result<Lead<V>, RedisStoreError> {
        let (name, lease_name) = self.names(key)?;
        let token = crate::shared_store::token();
        let lease_ms = Self::millis(self.lease);
        let started = Instant::now();
        let mut interval = Duration::from_millis(2);
        let waiting = self.wakeups.wait_for(&name);
        // A caller that may wait subscribes before its first lease try (once per store: the
        // subscription then stays): a write published after the try is then heard, and a
        // waiting process makes one lease round trip, not a second one as it subscribes.
        // Not while the server was just found unreachable: the call then computes locally
        // after one failed look, not after a second wait for a subscription.
        let mut subscription = Subscription::Down;
        if wait.map_or(true, |wait| wait > interval) && !self.recently_failed() {
            let budget = wait.map_or(self.timeout, |wait| self.timeout.min(wait));
            subscription = self
                .wakeups
                .subscribed(|| self.client().ok(), &self.channel(), budget)
                .await;
        }
        // A caller dropped while a script may have given it the lease releases it.
        let guard = self.guard((name.clone(), lease_name.clone()), &token);
        loop {
            // Listening before the script runs: a write published after it is not missed.
            let mut woken = std::pin::pin!(waiting.notify.notified());
            woken.as_mut().enable();
            let answer: Result<Answer, _> = self
                .run("lead", |pipe| {
                    pipe.cmd("EVAL")
                        .arg(LEAD)
                        .arg(2)
                        .arg(&name)
                        .arg(&lease_name)
                        .arg(&token)
                        .arg(lease_ms);
                })
                .await;
            // An error: the script may have taken the lease and its reply been lost; the
            // guard ends it.
            let answer = answer?;
            match answer {
                Answer::Leased => {
                    guard.disarm();
                    self.renew_while_held(lease_name, &token);
                    return Ok(Lead::Compute(Lease::new(token)));
                }
                Answer::Value(bytes) => {
                    if let Some(value) = self.decode(&bytes) {
                        guard.disarm();
                        return Ok(Lead::Computed(value));
                    }
                    // Bytes that do not decode: a miss, computed here and written over them
                    // (this process takes the lease once nobody holds it).
                    // Deleted only if they are still the bytes read: a value written since
                    // stays.
                    self.run::<()>("lead", |pipe| {
                        pipe.cmd("EVAL")
                            .arg(DROP_IF_SAME)
                            .arg(1)
                            .arg(&name)
                            .arg(&bytes);
                    })
                    .await?;
                    continue;
                }
                Answer::Held => {}
            }
            // Waits until woken, or the backstop, or `wait` (after which the caller computes
            // on its own), then looks again.
            if wait.is_some_and(|wait| started.elapsed() >= wait) {
                guard.disarm();
                return Ok(Lead::Compute(Lease::unshared()));
            }
            let left = wait.map_or(Duration::MAX, |wait| wait.saturating_sub(started.elapsed()));
            if subscription == Subscription::Down && left > interval {
                subscription = self
                    .wakeups
                    .subscribed(
                        || self.client().ok(),
                        &self.channel(),
                        self.timeout.min(left),
                    )
                    .await;
                if subscription != Subscription::Down {
                    // Made (by this caller or another) after the lease try: a write published
                    // before it was not heard. Try again, listening.
                    continue;
                }
            }
            if subscription == Subscription::Down {
                // Polling: the lease script again, at a growing interval.
                wakeups::woken_or(woken, interval.min(left)).await;
                interval = (interval * 2).min(MAX_POLL);
                continue;
            }
            let notified = wakeups::woken_or(woken, self.recheck.min(left)).await;
            if !self.wakeups.live() {
                // The subscription dropped while this caller waited: a message may be lost.
                // The lease script again (then a new subscription, or polling).
                subscription = Subscription::Down;
                continue;
            }
            if !notified {
                // The backstop: the value is most likely not there yet; the lease script,
                // which returns it if it is, is the one round trip.
                continue;
            }
            // Woken: a plain read finds the value in the common case; the lease script runs
            // again only if there is none (the leader failed, or the key was invalidated:
            // whoever takes the lease computes).
            let bytes: Option<Vec<u8>> = self
                .run("lead", |pipe| {
                    pipe.cmd("GET").arg(&name);
                })
                .await?;
            if let Some(value) = bytes.and_then(|bytes| self.decode(&bytes)) {
                guard.disarm();
                return Ok(Lead::Computed(value));
            }
        }
    }

    async fn insert_leased(
        &self,
        key: K,
        value: V,
        lease: &Lease,
    ) -> Result<bool, RedisStoreError> {
        let Some(token) = lease.token() else {
            return Ok(false);
        };
        self.renewals.stop(token);
        let (name, lease_name) = self.names(&key)?;
        let Some(bytes) = self.encode(&value)? else {
            self.release(&key, lease).await?;
            return Ok(false);
        };
        let ttl = self.expiry_ms();
        let written: Result<i64, _> = self
            .run("insert", |pipe| {
                pipe.cmd("EVAL")
                    .arg(STORE)
                    .arg(2)
                    .arg(&name)
                    .arg(&lease_name)
                    .arg(token)
                    .arg(&bytes)
                    .arg(ttl)
                    .arg(self.channel());
            })
            .await;
        if written.is_err() {
            // Not written, perhaps not even run: the lease must not outlive the leader.
            self.release_in_background((name, lease_name), token.to_owned());
        }
        Ok(written? == 1)
    }

    /// Releases the lease from a task on the current tokio runtime, if there is one and the
    /// store is connected; otherwise the lease expires.
    fn abandon(&self, key: &K, lease: Lease) {
        if let (Some(token), Ok(names)) = (lease.token(), self.names(key)) {
            self.renewals.stop(token);
            self.release_in_background(names, token.to_owned());
        }
    }

    async fn release(&self, key: &K, lease: &Lease) -> Result<(), RedisStoreError> {
        let Some(token) = lease.token() else {
            return Ok(());
        };
        self.renewals.stop(token);
        let (name, lease_name) = self.names(key)?;
        self.run("release", |pipe| {
            pipe.cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(&lease_name)
                .arg(token)
                .arg(self.channel())
                .arg(&name);
        })
        .await
        .map(|_: i64| ())
    }
}
