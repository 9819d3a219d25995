//! Wake-ups of waiting processes: the store subscribes (once, lazily) to its namespace's channel,
//! where every write, release and invalidation of a key publishes the key's name; a process
//! waiting for that key (polling the lease script) is woken at once instead of at its next poll.
//!
//! A message can be lost (the subscription is being made, or its connection dropped): every
//! wait is also bounded by a backstop timer, after which the waiter polls again. While the
//! subscription is down the backstop is the polling interval of `redis_store.rs`; while it is up,
//! [`SUBSCRIBED_BACKSTOP`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a subscribed waiter waits for a message before it polls anyway.
pub(super) const SUBSCRIBED_BACKSTOP: Duration = Duration::from_millis(500);

/// The waiters of one store, by the Redis name of the key they wait for.
#[derive(Default)]
pub(super) struct Wakeups {
    shared: Arc<Shared>,
    /// Held while a subscription is being made, so that one caller makes it.
    subscribing: tokio::sync::Mutex<()>,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Whether messages arrive now; if not, tries once (within `timeout`) to subscribe to
    /// `channel` on a connection of its own, read by a task on the current tokio runtime.
    pub(super) async fn subscribed(&self, url: &str, channel: &str, timeout: Duration) -> bool {
        if self.shared.live.load(Ordering::Acquire) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let Ok(_subscribing) = self.subscribing.try_lock() else {
            // Another waiter is subscribing: this one polls meanwhile.
            return false;
        };
        let subscribe = async {
            let client = redis::Client::open(url).ok()?;
            let mut pubsub = client.get_async_pubsub().await.ok()?;
            pubsub.subscribe(channel).await.ok()?;
            Some(pubsub.into_on_message())
        };
        let Ok(Some(mut messages)) = tokio::time::timeout(timeout, subscribe).await else {
            return false;
        };
        self.shared.live.store(true, Ordering::Release);
        let shared = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            loop {
                let next = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(Pin::new(&mut messages), cx)
                });
                let message = next.await;
                // The store is gone: stop reading.
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let Some(message) = message else {
                    // The connection ended: waiters poll until a new subscription is made.
                    shared.live.store(false, Ordering::Release);
                    return;
                };
                let notify = lock(&shared.waiters)
                    .get(message.get_payload_bytes())
                    .map(|(notify, _)| Arc::clone(notify));
                if let Some(notify) = notify {
                    notify.notify_waiters();
                }
            }
        });
        true
    }
}

/// Waits for `notified` (already enabled) or `backstop`, whichever comes first.
pub(super) async fn woken_or(
    notified: Pin<&mut (impl Future<Output = ()> + ?Sized)>,
    backstop: Duration,
) {
    let _ = tokio::time::timeout(backstop, notified).await;
}
