//! Whether the calling thread is being torn down: then the thread-locals of the crates the
//! stores use (seize's epoch slot, `thread_local`'s thread id) may already be destroyed, and
//! touching one panics inside a destructor, which aborts the process.
//!
//! A memoized function may be called from a thread-local destructor (a connection pool's,
//! a logger's). The first call of each thread touches those crates' thread-locals, then
//! registers a destructor of its own. Destructors run in the reverse order of their
//! registration, so ours runs before theirs: from then on [`thread_alive`] says `false`, and
//! the stores take paths that need no thread-local (an owned epoch guard, a shared counter).
//!
//! The flag itself is a `const` thread-local without a destructor: reading it is a plain load,
//! valid at any point of the thread's life.

use std::cell::Cell;

const UNSEEN: u8 = 0;
const ALIVE: u8 = 1;
const ENDING: u8 = 2;

thread_local! {
    static STATE: Cell<u8> = const { Cell::new(UNSEEN) };
    static WATCH: Watch = const { Watch };
}

/// Sets the state to `ENDING` when the thread's destructors reach it.
struct Watch;

impl Drop for Watch {
    fn drop(&mut self) {
        STATE.set(ENDING);
    }
}

/// Whether the calling thread may use other crates' thread-locals: `false` once its
/// thread-local destructors have started on ours.
#[inline(always)]
pub(crate) fn thread_alive() -> bool {
    match STATE.get() {
        ALIVE => true,
        ENDING => false,
        _ => first_call(),
    }
}

#[cold]
#[inline(never)]
fn first_call() -> bool {
    // Their destructors first, so that they run after ours. On a thread whose first call comes
    // from a destructor run after those crates' own thread-locals are gone, touching them
    // panics: caught here (a panic escaping a destructor aborts), and the thread is ending.
    if std::panic::catch_unwind(dependencies::touch).is_err() {
        STATE.set(ENDING);
        return false;
    }
    match WATCH.try_with(|_| ()) {
        Ok(()) => {
            STATE.set(ALIVE);
            true
        }
        Err(_) => {
            STATE.set(ENDING);
            false
        }
    }
}

#[cfg(not(memoflight_loom))]
mod dependencies {
    use std::sync::LazyLock;

    static EPOCHS: LazyLock<seize::Collector> = LazyLock::new(seize::Collector::new);
    static IDS: LazyLock<thread_local::ThreadLocal<()>> =
        LazyLock::new(thread_local::ThreadLocal::new);

    /// Initializes seize's (the stores' epochs) and `thread_local`'s thread-locals on this
    /// thread.
    pub(super) fn touch() {
        drop(EPOCHS.enter());
        IDS.get_or(|| ());
    }
}

#[cfg(memoflight_loom)]
mod dependencies {
    pub(super) fn touch() {}
}
