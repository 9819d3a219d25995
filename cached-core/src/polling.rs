//! Which flights' leaders are polling their computation on this thread: how a future that
//! awaits its own key is told from a waiter (a task cannot be told by its thread, which may
//! change between polls). The leader's poll pushes its flight here (`crate::future`); a
//! waiter that finds the flight it would wait for is being polled from inside that very
//! computation, and panics instead of waiting forever (`crate::future`).

use std::cell::RefCell;

thread_local! {
    /// The flights whose leaders are polling their computation on this thread, innermost last.
    static POLLING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A flight's identity here: its address.
pub(crate) fn address<T>(flight: &T) -> usize {
    flight as *const T as usize
}

/// Whether `flight`'s computation is being polled on this thread, around the caller.
pub(crate) fn is_polled<T>(flight: &T) -> bool {
    let me = address(flight);
    POLLING
        .try_with(|polling| polling.borrow().contains(&me))
        .unwrap_or(false)
}

/// Marks a flight as being polled until dropped.
pub(crate) struct Polling(usize);

impl Polling {
    pub(crate) fn enter(id: usize) -> Self {
        let _ = POLLING.try_with(|polling| polling.borrow_mut().push(id));
        Polling(id)
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        let _ = POLLING.try_with(|polling| {
            let mut polling = polling.borrow_mut();
            if let Some(at) = polling.iter().rposition(|id| *id == self.0) {
                polling.remove(at);
            }
        });
    }
}
