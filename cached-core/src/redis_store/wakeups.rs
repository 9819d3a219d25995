//! Wake-ups of waiting processes: the store subscribes (once, before its first lease try that
//! may wait) to its namespace's channel, where every write, release and invalidation of a key
//! publishes the key's name; a process waiting for that key is woken at once, reads the value,
//! and runs the lease script again only if there is none. [`EVERY_KEY`] (no key's name is
//! empty) wakes every waiter: `clear` and `invalidate_if` publish it after deleting every lease.
//!
//! The channel has no hash tag, and needs none: it is not a key. The scripts that publish on
//! it name it as an argument, not in `KEYS` (Redis Cluster's one-slot rule is about `KEYS`),
//! and Cluster delivers a `PUBLISH` to the subscribers of every node.
//!
//! A message can be lost (the subscription's connection dropped, or one made after the caller
//! looked at Redis): every wait is also bounded by a backstop timer, after which the waiter looks
//! at Redis again. While the subscription is down the backstop is the polling interval of
//! `redis_store.rs`; while it is up, `RedisStore::recheck_after` ([`SUBSCRIBED_BACKSTOP`] by
//! default).

// std's types even under loom: I/O code, never model-checked.
use crate::sync::lock_std as lock;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Weak;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a subscribed waiter waits for a message before it polls anyway (a half-open
/// connection delivers nothing and is not noticed), unless `RedisStore::recheck_after` says.
pub(super) const SUBSCRIBED_BACKSTOP: Duration = Duration::from_millis(500);
/// The message that wakes the waiters of every key.
pub(super) const EVERY_KEY: &[u8] = b"";

/// How long a failed attempt to subscribe keeps the store from trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The waiters of one store, by the Redis name of the key they wait for.
#[derive(Default)]
pub(super) struct Wakeups {
    shared: Arc<Shared>,
    /// Held while a subscription is being made, so that one caller makes it.
    subscribing: tokio::sync::Mutex<()>,
    /// When the last attempt to subscribe failed.
    failed_at: Mutex<Option<Instant>>,
    /// The task reading the subscription's messages, aborted when the store is dropped.
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Default)]
struct Shared {
    /// Each key's notifier and how many waiters hold it.
    waiters: Mutex<HashMap<Vec<u8>, Waiters>>,
    /// Whether messages arrive (the subscription is made and its connection alive).
    live: AtomicBool,
}

/// A key's notifier and how many waiters hold it.
type Waiters = (Arc<Notify>, usize);

/// A waiter's registration: its notifier, removed from the map with the last waiter.
pub(super) struct Waiting {
    shared: Arc<Shared>,
    name: Vec<u8>,
    pub(super) notify: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waiters = lock(&self.shared.waiters);
        if let Some((_, count)) = waiters.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                waiters.remove(&self.name);
            }
        }
    }
}

impl Shared {
    /// Wakes the waiters of the key named `name`, or every waiter for [`EVERY_KEY`]. The
    /// notifiers are taken out of the lock first.
    fn wake(&self, name: &[u8]) {
        let notifiers: Vec<Arc<Notify>> = {
            let waiters = lock(&self.waiters);
            match name == EVERY_KEY {
                true => waiters
                    .values()
                    .map(|(notify, _)| Arc::clone(notify))
                    .collect(),
                false => waiters
                    .get(name)
                    .map(|(notify, _)| Arc::clone(notify))
                    .into_iter()
                    .collect(),
            }
        };
        for notify in notifiers {
            notify.notify_waiters();
        }
    }
}

impl Wakeups {
    /// Registers a waiter for the key named `name`.
    pub(super) fn wait_for(&self, name: &[u8]) -> Waiting {
        let mut waiters = lock(&self.shared.waiters);
        let (notify, count) = waiters
            .entry(name.to_vec())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        *count += 1;
        Waiting {
            shared: Arc::clone(&self.shared),
            name: name.to_vec(),
            notify: Arc::clone(notify),
        }
    }

    /// Whether messages arrive now (the subscription is made and its reader running).
    pub(super) fn live(&self) -> bool {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Whether messages arrive: [`Subscription::Live`] (they did when this was called), or
    /// [`Subscription::Made`] during this call (a message published before is lost: a caller
    /// that looked at Redis before looks again), or [`Subscription::Down`]. When down, tries
    /// (within `timeout`, at most once a second after a failure) to subscribe to `channel` on
    /// a connection of its own (from `client`), read by a task on the current tokio runtime.
    /// One caller subscribes; the others wait for it (within their `timeout`) rather than
    /// poll meanwhile.
    pub(super) async fn subscribed(
        &self,
        client: impl FnOnce() -> Option<redis::Client>,
        channel: &str,
        timeout: Duration,
    ) -> Subscription {
        if self.live() {
            return Subscription::Live;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Subscription::Down;
        };
        // Whether this caller got to try (a timeout then counts as its failure).
        let mut tried = false;
        let attempt = async {
            let _subscribing = self.subscribing.lock().await;
            if self.live() {
                // Made by the caller waited for.
                return Some(Subscription::Made);
            }
            if lock(&self.failed_at).is_some_and(|at| at.elapsed() < RETRY_AFTER) {
                return None;
            }
            tried = true;
            let client = client()?;
            let mut pubsub = client.get_async_pubsub().await.ok()?;
            pubsub.subscribe(channel).await.ok()?;
            let messages = pubsub.into_on_message();
            self.read(&runtime, messages);
            Some(Subscription::Made)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Some(made)) => made,
            Ok(None) | Err(_) => {
                if tried {
                    *lock(&self.failed_at) = Some(Instant::now());
                }
                Subscription::Down
            }
        }
    }

    /// Marks the subscription live and reads its `messages` from a task on `runtime`, waking
    /// the waiters of the key each names.
    fn read(
        &self,
        runtime: &tokio::runtime::Handle,
        mut messages: impl futures_core::Stream<Item = redis::Msg> + Unpin + Send + 'static,
    ) {
        self.shared.live.store(true, Ordering::Release);
        let shared = Arc::downgrade(&self.shared);
        let reader = runtime.spawn(async move {
            // However the task ends (the connection closed, the runtime shut down, the store
            // dropped), waiters stop counting on messages.
            let _down = Down(shared.clone());
            loop {
                let next = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(Pin::new(&mut messages), cx)
                });
                let Some(message) = next.await else {
                    return;
                };
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.wake(message.get_payload_bytes());
            }
        });
        if let Some(old) = lock(&self.reader).replace(reader.abort_handle()) {
            old.abort();
        }
    }
}

impl Drop for Wakeups {
    /// The store is dropped: its subscription's reader and connection end with it.
    fn drop(&mut self) {
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }
}

/// Marks the subscription down when the reader task ends.
struct Down(Weak<Shared>);

impl Drop for Down {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.live.store(false, Ordering::Release);
            // The waiters sleeping on the subscription hear nothing from now on: woken, they
            // look again and poll (or subscribe anew) instead of sleeping to their backstop.
            shared.wake(EVERY_KEY);
        }
    }
}

/// What [`Wakeups::subscribed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subscription {
    /// Messages arrive.
    Live,
    /// Made by this call: messages arrive from now on.
    Made,
    /// No messages: poll.
    Down,
}

/// Waits for `notified` (already enabled) or `backstop`, whichever comes first; says whether
/// it was notified.
pub(super) async fn woken_or(
    notified: Pin<&mut (impl Future<Output = ()> + ?Sized)>,
    backstop: Duration,
) -> bool {
    tokio::time::timeout(backstop, notified).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// A key's name wakes its waiters only; [`EVERY_KEY`] wakes every waiter.
    #[test]
    fn a_name_wakes_its_waiters_and_the_empty_name_wakes_all() {
        let wakeups = Wakeups::default();
        let (a, b) = (wakeups.wait_for(b"a"), wakeups.wait_for(b"b"));
        let mut woken_a = std::pin::pin!(a.notify.notified());
        let mut woken_b = std::pin::pin!(b.notify.notified());
        woken_a.as_mut().enable();
        woken_b.as_mut().enable();
        wakeups.shared.wake(b"a");
        assert!(woken_a.now_or_never().is_some(), "a's waiter woken");
        assert!(
            woken_b.as_mut().now_or_never().is_none(),
            "b's waiter still waits"
        );
        wakeups.shared.wake(EVERY_KEY);
        assert!(woken_b.now_or_never().is_some(), "every waiter woken");
    }
}
