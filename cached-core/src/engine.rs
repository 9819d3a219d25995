//! [`Engine`]: what every cache handle owns besides its store. A [`Cache`](crate::Cache) and an
//! [`AsyncCache`](crate::AsyncCache) each hold one; the caller protocol
//! ([`crate::protocol`]) runs against it, whatever the store and however the caller waits.

use crate::flight::InFlight;
use crate::stats::Counters;
use std::time::Duration;

/// One memoized function's name, table of computations in flight, counters and settings.
pub(crate) struct Engine<K, V> {
    /// The function's name, for panic messages and traces.
    pub(crate) name: &'static str,
    pub(crate) flights: InFlight<K, V>,
    pub(crate) counters: Counters,
    /// The key's `Debug` form, when it has one (set by generated code).
    describe_key: fn(&K) -> Option<String>,
    /// How long a caller waits for another's computation before computing on its own.
    pub(crate) wait_timeout: Option<Duration>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Engine<K, V> {
    pub(crate) fn new(name: &'static str) -> Self {
        Engine {
            name,
            flights: InFlight::new(),
            counters: Counters::default(),
            describe_key: |_| None,
            wait_timeout: None,
        }
    }
}

impl<K, V> Engine<K, V> {
    pub(crate) fn set_describe_key(&mut self, describe: fn(&K) -> Option<String>) {
        self.describe_key = describe;
    }

    /// The key as panic messages and traces show it.
    pub(crate) fn key_text(&self, key: &K) -> String {
        (self.describe_key)(key).unwrap_or_else(|| "(a key without Debug)".to_owned())
    }

    /// A computation as deadlock reports show it: `` `function`(key) ``.
    pub(crate) fn describe(&self, key: &K) -> String {
        format!("`{}`({})", self.name, self.key_text(key))
    }
}
