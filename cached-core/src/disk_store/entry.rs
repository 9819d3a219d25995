//! An entry file of the disk store: where a key's file lives, and what it holds.
//!
//! A key's file is named by the xxh3 hash of the key's postcard bytes, under one of 256
//! directories (the hash's first byte), so that no directory grows past a few thousand files
//! per million keys. It holds the key, its expiry and the value, as postcard with a CRC-32C
//! after them (postcard's `use-crc`): bytes cut short or changed fail the check, and the key
//! stored in the file tells two keys of one hash apart.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of an entry file the first read asks for: most entries fit.
const FIRST_READ: usize = 4096;

/// CRC-32C (Castagnoli), as iSCSI and ext4 use.
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Where a key lives, found from its bytes.
pub(super) struct Place {
    /// The hash of the key's bytes: the file's name, its lock's offset, its epoch slot.
    pub(super) hash: u64,
    /// The entry file.
    pub(super) path: PathBuf,
}

impl Place {
    pub(super) fn of(data: &Path, key_bytes: &[u8]) -> Self {
        let hash = xxhash_rust::xxh3::xxh3_64(key_bytes);
        let path = data
            .join(format!("{:02x}", hash >> 56))
            .join(format!("{hash:016x}"));
        Place { hash, path }
    }

    /// The entry file's directory.
    pub(super) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(&self.path)
    }
}

/// An entry's bytes: the key, the expiry (ms since the Unix epoch; 0 for none) and the value.
pub(super) fn encode<K: Serialize, V: Serialize>(
    key: &K,
    expires_ms: u64,
    value: &V,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec_crc32(&(key, expires_ms, value), CRC.digest())
}

/// What an entry file held.
pub(super) enum Found<K, V> {
    /// A key and its value, not expired.
    Live(K, V),
    /// A value that expired.
    Expired,
    /// No file.
    Absent,
    /// Bytes that are not an entry of this namespace's types: cut short, changed, or longer
    /// than the limit.
    Corrupt(String),
}

/// Reads the entry file at `path`, at most `max_bytes` long.
pub(super) fn read<K: DeserializeOwned, V: DeserializeOwned>(
    path: &Path,
    max_bytes: usize,
) -> std::io::Result<Found<K, V>> {
    // Non-blocking: a FIFO put where an entry belongs would block an open for reading (and
    // reads nothing: a miss). It changes nothing for a regular file.
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(error) => return Err(error),
    };
    // An entry file is never written after it is renamed into place. A small one is read
    // whole by one read that returns less than asked (the end of a regular file); a larger
    // one is measured and read to its length. No read loop: each system call costs about a
    // microsecond here (`benches/README.md`).
    let mut bytes = vec![0; FIRST_READ];
    let read = file.read(&mut bytes)?;
    if read < FIRST_READ {
        bytes.truncate(read);
    } else {
        let length = file.metadata()?.len();
        if length > u64::try_from(max_bytes).unwrap_or(u64::MAX) {
            return Ok(Found::Corrupt(format!("longer than {max_bytes} bytes")));
        }
        bytes.resize(
            usize::try_from(length)
                .unwrap_or(usize::MAX)
                .max(FIRST_READ),
            0,
        );
        if let Err(error) = file.read_exact(&mut bytes[FIRST_READ..]) {
            return match error.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    Ok(Found::Corrupt("shorter than its length".into()))
                }
                _ => Err(error),
            };
        }
    }
    if bytes.len() > max_bytes {
        return Ok(Found::Corrupt(format!("longer than {max_bytes} bytes")));
    }
    Ok(
        match postcard::from_bytes_crc32::<(K, u64, V)>(&bytes, CRC.digest()) {
            Ok((_, expires_ms, _)) if expires_ms != 0 && expires_ms <= now_ms() => Found::Expired,
            Ok((key, _, value)) => Found::Live(key, value),
            Err(error) => Found::Corrupt(error.to_string()),
        },
    )
}

/// The expiry of a value written now that lives `ttl`: ms since the Unix epoch (wall-clock,
/// so that it holds across restarts), or 0 for none.
pub(super) fn expiry(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => now_ms()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .max(1),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
