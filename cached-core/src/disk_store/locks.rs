//! Byte-range locks of open file descriptions (`F_OFD_SETLK`, Linux), the disk store's
//! cross-process locks.
//!
//! A lock belongs to the open file description it was taken through (a `File` opened for it):
//! two `File`s of one process conflict as two processes do, and closing the `File` (dropping
//! it) releases its locks. The kernel releases them too when the process dies, even by
//! SIGKILL, so a dead holder never blocks anyone. A lock may lie past the end of the file: the
//! lock file stays empty however many keys are locked.
//!
//! # Why `F_OFD_SETLK` byte ranges of one file, through `nix`
//!
//! A key needs a lock of its own that no thread of any process can take while its leader
//! holds it, that the kernel drops when the leader dies, and that costs no file per key. None
//! of the lock crates we checked offers open-file-description locks on byte ranges:
//! `fd-lock`, `fs4`, `fs2` and the standard library's `File::lock` lock whole files
//! (`flock`), which would take one lock file per key, a number that grows with the keys and
//! that no process can safely delete while another may be about to lock it; `file-lock` takes
//! classic POSIX record locks. Those (`F_SETLK`) do lock byte ranges, but they belong to the
//! process, not the file description: two threads of one
//! process never exclude each other (a `clear` would not keep out a write of the same process
//! under way, nor would two stores of one function in one process exclude each other), and
//! closing *any* descriptor of the file anywhere in the process drops every lock the process
//! holds on it (this store opens and closes the file for each operation, so one thread's
//! brief operation would release another thread's key lock mid-computation). OFD locks have
//! neither flaw, so this module calls `fcntl(F_OFD_SETLK)` through `nix` (safe bindings, no
//! `unsafe` here), on one file per namespace whose length stays 0.

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

/// Whether other holders may hold the range too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// With other shared holders.
    Shared,
    /// Alone.
    Exclusive,
}

/// The first pause between two tries of a lock held by someone else.
const FIRST_PAUSE: Duration = Duration::from_micros(50);
/// The longest pause between two tries of a lock that is held briefly (never across a
/// computation).
const LONGEST_PAUSE: Duration = Duration::from_millis(2);

/// Takes the lock on `len` bytes at `start` of `file` if nobody else holds a conflicting one.
/// Returns whether it was taken.
pub(super) fn try_lock(file: &File, start: u64, len: u64, kind: Kind) -> io::Result<bool> {
    let request = libc::flock {
        l_type: match kind {
            Kind::Shared => libc::F_RDLCK,
            Kind::Exclusive => libc::F_WRLCK,
        } as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset(start)?,
        l_len: offset(len)?,
        // Must be zero for open file description locks.
        l_pid: 0,
    };
    match fcntl(file, FcntlArg::F_OFD_SETLK(&request)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Takes a lock that its holders hold briefly (no computation runs under it), trying again
/// until `deadline`. Returns whether it was taken.
pub(super) async fn lock_briefly(
    file: &File,
    start: u64,
    len: u64,
    kind: Kind,
    deadline: Instant,
) -> io::Result<bool> {
    let mut pause = FIRST_PAUSE;
    loop {
        if try_lock(file, start, len, kind)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

fn offset(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}
