//! Deadlock detection across threads: who waits for whom.
//!
//! When thread 1 leads key A and waits for key B while thread 2 leads B and waits for A (two
//! memoized functions calling each other from two threads), neither computation can ever
//! finish. Before a caller blocks on a computation, it records the edge "this thread waits for
//! the thread leading that computation" and follows the edges from that leader: if they lead
//! back to the caller, it panics instead of blocking, naming every function and key in the
//! cycle. Only callers about to block pay for this; hits and leaders never touch it.
//!
//! The graph is one global mutex-protected map, because cycles can span caches. A thread has
//! at most one outgoing edge (it waits for one computation at a time), so a walk is a chain.

use crate::sync::ThreadId;
use std::collections::HashMap;
use std::sync::Mutex;

/// What a blocked thread waits for.
struct Edge {
    /// The thread leading the computation it waits for.
    leader: ThreadId,
    /// That computation's flight (its address), so that the edge can be dropped as soon as the
    /// flight settles, before the waiter wakes: a leader that finished is no longer waited for.
    flight: usize,
    /// That computation, as `function(key)`.
    computation: String,
}

/// thread → the computation it is blocked on. A std mutex even under loom: it is held only
/// for map operations, never across a wait, so it adds no interleavings worth exploring.
static WAITING: Mutex<Option<HashMap<ThreadId, Edge>>> = Mutex::new(None);

/// The record of a thread blocked on a computation; dropping it removes the edge.
pub(crate) struct Blocked {
    me: ThreadId,
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let mut graph = WAITING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(graph) = graph.as_mut() {
            graph.remove(&self.me);
        }
    }
}

/// Records that `me` is about to block on `computation` (the flight at address `flight`), led
/// by `leader`; or, if `leader` is (transitively) blocked on a computation `me` leads, returns
/// the cycle as text. No user code runs under the graph's lock: `computation` was described
/// (with the key's `Debug`) before.
pub(crate) fn block_on(
    me: ThreadId,
    leader: ThreadId,
    flight: usize,
    computation: String,
) -> Result<Blocked, String> {
    let mut guard = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    let graph = guard.get_or_insert_with(HashMap::new);
    let mut chain = Vec::new();
    let mut next = leader;
    while let Some(edge) = graph.get(&next) {
        chain.push(&edge.computation);
        if edge.leader == me {
            let mut text = format!("this thread waits for {computation}");
            for (i, link) in chain.iter().enumerate() {
                let who = if i == 0 {
                    "whose leader"
                } else {
                    "whose leader in turn"
                };
                text.push_str(&format!(", {who} waits for {link}"));
            }
            text.push_str(", which this thread is computing");
            return Err(text);
        }
        next = edge.leader;
        if chain.len() > graph.len() {
            break; // defensive: edges always end or close a cycle through `me`
        }
    }
    graph.insert(
        me,
        Edge {
            leader,
            flight,
            computation,
        },
    );
    Ok(Blocked { me })
}

/// Drops the edges of the threads blocked on the flight at address `flight`, which has just
/// settled (its leader no longer computes it). Called before its waiters wake; each waiter's
/// own [`Blocked`] then finds nothing left to remove. The texts are dropped after the lock.
pub(crate) fn settled(flight: usize) {
    let mut stale = Vec::new();
    {
        let mut guard = WAITING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(graph) = guard.as_mut() {
            graph.retain(|_, edge| {
                let keep = edge.flight != flight;
                if !keep {
                    stale.push(std::mem::take(&mut edge.computation));
                }
                keep
            });
        }
    }
    drop(stale);
}
