//! [`DiskStore`] (feature `disk`, Linux): an [`AsyncStore`] in a directory, whose values
//! survive restarts, with one computation per key across the processes of one machine.
//!
//! # Layout
//!
//! A function's namespace is `{dir}/{function}/v{schema}.{type}/`, where `type` is a
//! fingerprint of the key and value types' names (a changed type reads none of the old files)
//! and `schema` is yours to bump when a type keeps its name but changes its fields. In it:
//!
//! - `data/xx/HASH`: one file per key (`entry.rs`), written whole to a temporary file in the
//!   same directory and renamed over the old one, so a reader sees the old bytes or the new
//!   ones, never a mix. A process killed mid-write leaves a temporary file, never a torn entry.
//! - `locks`: an empty file on which a key's leader holds a one-byte lock at the key's hash
//!   (`locks.rs`: byte-range locks of open file descriptions, released by the kernel when the
//!   holder closes the file or dies). Locks lie past the end of the file: it never grows.
//! - `epochs`: 4,097 counters of 8 bytes. Counter 0 is the namespace's, bumped by `clear` and
//!   `invalidate_if`; counter `1 + hash % 4096` is the key's slot, bumped by `invalidate`. Each
//!   counter is guarded by a byte-range lock on its own 8 bytes.
//!
//! # The protocol, across processes
//!
//! In each process the cache's own single-flight runs first: one leader per key per process.
//! That leader tries the key's lock. If it gets it, it reads the two counters of its key
//! (under their locks), reads the entry again (another process may have written it just
//! before) and, if there is none, computes while it holds the lock. To write, it locks the
//! namespace counter shared and the slot counter exclusively, renames its file into place
//! only if both counters are still what it read, and then closes the lock file: the next
//! process to take the lock finds the value. An invalidation bumps the slot counter and
//! deletes the file under the slot's lock, so a leader that read the counter before it
//! writes nothing (no repopulation window); `clear` bumps the namespace counter under its
//! exclusive lock and renames `data` away, so that no leader of any key that began before it
//! writes.
//!
//! A leader that finds the lock held polls, from 0.5 ms doubling to 10 ms: the entry (the
//! holder's value is written) and the lock (the holder released it without a value, or died;
//! the kernel released it at once). No lock held across a computation is ever waited for
//! without polling, so `wait_timeout` bounds every wait.
//!
//! # Faults
//!
//! Nothing read from the directory can panic: a file cut short, changed, too long, or of
//! another shape fails its CRC or its decoding and is a miss (the read reports it as an error,
//! which the cache counts and traces, and the value computed then replaces the file). A
//! directory that cannot be created or written fails the operation; the cache computes and
//! returns the value.
//!
//! Something in the way inside the namespace (a directory where an entry, `locks` or `epochs`
//! belongs, a file where `data` or `data/xx` belongs: `EISDIR`, `ENOTDIR`) is removed once and
//! the operation tried again; a read that removed something reports it as a damaged entry.
//! Nothing outside the namespace directory, nor the namespace directory itself, is ever
//! removed, and nothing is followed through a symlink (a symlink in the way is removed, not
//! what it points to).

mod entry;
mod locks;

use crate::async_store::{AsyncStore, Lead, Lease};
use crate::sync::lock_std as lock;
use entry::{Found, Place};
use locks::Kind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::Hash;
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The deadline of a brief lock whose timeout is too long to add to the clock.
const ONE_DAY: Duration = Duration::from_secs(24 * 3600);
/// One write in this many also sweeps its directory (`data/xx`, 1/256 of the entries) of
/// expired entries and of temporary files left by writers that died.
const SWEEP_EVERY: u64 = 64;
/// How many slot counters a namespace has (keys share them by hash).
const SLOTS: u64 = 4096;
/// The first pause of a process waiting for another's computation.
const FIRST_POLL: Duration = Duration::from_micros(500);
/// The longest pause of a process waiting for another's computation.
const MAX_POLL: Duration = Duration::from_millis(10);
/// Temporary files older than this, left by a process that died while it wrote, are deleted
/// by sweeps, `invalidate_if` and `len`.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// An [`AsyncStore`] in a directory on this machine, shared by every process that names the
/// same directory, function and schema: values survive restarts, and a key is computed once
/// across all of them (the module docs of `disk_store.rs` give the layout and protocol).
///
/// Keys and values are serialized with serde as [postcard](https://docs.rs/postcard), with a
/// CRC. Use it with `#[cached(async_store = DiskStore::new(dir))]` on sync and `async`
/// functions; the store takes the function's path (`module::function`) from the cache it is
/// given to, and panics if given to a second one (give each function a store of its own).
/// `async` callers need a tokio runtime with its timer enabled (`#[tokio::main]` has it): a
/// wait for a lock sleeps on it. Sync callers need nothing.
///
/// Processes of several users may share a directory if the umask lets the group write the
/// files and directories the store creates (`umask 002`); a process that cannot write them
/// computes without the store.
///
/// Linux only: its per-key locks are byte-range locks of open file descriptions
/// (`F_OFD_SETLK`).
///
/// # Concurrency and guarantees
///
/// - In each process one caller per key reads and locks the files; the others wait for it
///   in-process.
/// - Across processes, one computes while it holds the key's lock; the others wait (polling,
///   0.5 ms doubling to 10 ms) until its value is written or the lock is free. The kernel
///   releases the lock of a process that dies, even by SIGKILL, so one waiter takes over
///   within one poll, without any expiry to wait for.
/// - [`AsyncCache::invalidate`](crate::AsyncCache::invalidate),
///   [`invalidate_if`](crate::AsyncCache::invalidate_if) and
///   [`clear`](crate::AsyncCache::clear) are seen by every process when they return, and a
///   computation in any process that began before them does not write its value. A caller in
///   another process that joins a computation its own process began before the invalidation
///   still gets that computation's value (not written), as its process cannot be told.
/// - `ttl` is wall-clock time written in each entry: it holds across restarts.
/// - Writes are atomic (a temporary file renamed into place) but not flushed to the device
///   unless [`durable`](DiskStore::durable): after a power loss an entry may be lost or cut
///   short, and a cut one fails its CRC and is a miss.
/// - File I/O runs on the calling thread (an `async` caller's executor thread): a few system
///   calls per hit, a file creation and a rename per write. The deletion of a cleared
///   namespace runs on a blocking thread.
///
/// # Errors and faults
///
/// Every failure is a [`DiskStoreError`], which the cache turns into a local computation whose
/// value is returned (counted in [`Stats::store_errors`](crate::Stats::store_errors) and
/// traced): a directory that cannot be created or written (read-only, full), a corrupt or
/// truncated file, or one of another value type (it is then replaced by the value computed),
/// a value longer than [`max_value_bytes`](DiskStore::max_value_bytes), a brief lock not taken
/// within [`timeout`](DiskStore::timeout). Something in the way inside the function's
/// namespace directory (a directory where one of its files belongs, a file where one of its
/// directories does) is removed, once, and the operation tried again.
///
/// # Example
///
/// ```
/// use memoflight::{cached, DiskStore};
/// use std::time::Duration;
///
/// #[cached(async_store = DiskStore::new(std::env::temp_dir().join("memoflight-doc"))
///     .ttl(Duration::from_secs(600)))]
/// fn rules(tenant: u32) -> Vec<String> {
///     vec![format!("rules of {tenant}")]
/// }
///
/// assert_eq!(rules(7), vec!["rules of 7".to_string()]);
/// rules_cache().block_on(rules_cache().clear()).unwrap();
/// ```
pub struct DiskStore<K, V> {
    dir: PathBuf,
    schema: u32,
    ttl: Option<Duration>,
    timeout: Duration,
    max_value_bytes: usize,
    durable: bool,
    /// `{dir}/{function}/v{schema}.{type}`, once the cache told its name.
    namespace: OnceLock<PathBuf>,
    /// The key locks this process's leaders hold, by lease token.
    leases: Mutex<HashMap<String, KeyLock>>,
    types: PhantomData<fn(K) -> V>,
}

/// A key's lock, held by this process's leader, and the counters it read when it took it.
struct KeyLock {
    /// The lock file, opened for this lock alone: closing it releases the lock.
    _file: File,
    counters: Counters,
}

/// A key's two counters: the namespace's and its slot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    namespace: u64,
    slot: u64,
}

/// Why a [`DiskStore`] operation failed.
#[derive(Debug)]
pub enum DiskStoreError {
    /// A file or directory could not be read, written, created or locked.
    Io {
        /// What the store was doing.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// An entry file holds bytes that are not an entry of this function's key and value types
    /// (cut short, changed, of another type, or longer than [`DiskStore::max_value_bytes`]),
    /// or something stood where it belongs (a directory in its place, a file in place of its
    /// directory: removed). The value computed instead replaces it.
    Corrupt {
        /// The entry file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A lock that is only ever held briefly was not taken within [`DiskStore::timeout`]: a
    /// process holding it is stopped, or the disk is very slow.
    Busy(PathBuf),
    /// A value encodes longer than [`DiskStore::max_value_bytes`]: it is returned to its
    /// callers and not written.
    TooLarge {
        /// Its length, encoded with its key and expiry.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A key or value could not be serialized.
    Encode(postcard::Error),
}

impl std::fmt::Display for DiskStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskStoreError::Io {
                operation,
                path,
                source,
            } => write!(
                f,
                "disk store: cannot {operation} {}: {source}",
                path.display()
            ),
            DiskStoreError::Corrupt { path, reason } => write!(
                f,
                "disk store: {} is not a valid entry ({reason}); it will be replaced",
                path.display()
            ),
            DiskStoreError::Busy(path) => {
                write!(
                    f,
                    "disk store: a lock on {} is held too long",
                    path.display()
                )
            }
            DiskStoreError::TooLarge { bytes, limit } => write!(
                f,
                "disk store: a value of {bytes} bytes is longer than max_value_bytes ({limit}); \
                 not written"
            ),
            DiskStoreError::Encode(error) => write!(f, "disk store: cannot serialize: {error}"),
        }
    }
}

impl std::error::Error for DiskStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DiskStoreError::Io { source, .. } => Some(source),
            DiskStoreError::Encode(error) => Some(error),
            _ => None,
        }
    }
}

/// `Result<T, io::Error>` → `Result<T, DiskStoreError>` naming what failed.
trait Context<T> {
    fn doing(self, operation: &'static str, path: &Path) -> Result<T, DiskStoreError>;
}

impl<T> Context<T> for io::Result<T> {
    fn doing(self, operation: &'static str, path: &Path) -> Result<T, DiskStoreError> {
        self.map_err(|source| DiskStoreError::Io {
            operation,
            path: path.to_owned(),
            source,
        })
    }
}

impl<K, V> DiskStore<K, V> {
    /// A store in `dir` (created on first use, as are its subdirectories). Several functions
    /// and processes may share `dir`: each function has a namespace of its own in it.
    ///
    /// Defaults: schema 1, no expiry, brief locks waited for up to 1 s, values up to 16 MiB,
    /// not durable.
    ///
    /// ```
    /// # use memoflight::DiskStore;
    /// use std::time::Duration;
    /// let store = DiskStore::<u32, String>::new("/var/cache/my-app")
    ///     .schema(2)
    ///     .ttl(Duration::from_secs(600))
    ///     .timeout(Duration::from_millis(200))
    ///     .max_value_bytes(1 << 20)
    ///     .durable(true);
    /// # let _ = store;
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskStore {
            dir: dir.into(),
            schema: 1,
            ttl: None,
            timeout: Duration::from_secs(1),
            max_value_bytes: 16 << 20,
            durable: false,
            namespace: OnceLock::new(),
            leases: Mutex::new(HashMap::new()),
            types: PhantomData,
        }
    }

    /// The schema version in the namespace: bump it when the value type changes its fields but
    /// not its name, so that no process reads files of the old shape.
    ///
    /// See [`new`](DiskStore::new) for an example.
    pub fn schema(mut self, schema: u32) -> Self {
        self.schema = schema;
        self
    }

    /// Values expire `ttl` after they were written (wall-clock time, written in the entry: it
    /// holds across restarts and across processes).
    ///
    /// See [`new`](DiskStore::new) for an example.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long an operation waits for a lock that is only ever held briefly (while a file is
    /// renamed, or a counter bumped); past it, the operation fails. Waiting for another
    /// process's computation is not bounded by this but by the cache's `wait_timeout`.
    ///
    /// See [`new`](DiskStore::new) for an example.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest entry file, counting the key and expiry it holds with the value: a longer
    /// file is read as corrupt, and a value that encodes longer is not written (both counted
    /// as store errors; the call still returns its value).
    ///
    /// See [`new`](DiskStore::new) for an example.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Flushes every write to the device (`fsync` of the file before it is renamed, and of its
    /// directory after): entries then survive a power loss, at the cost of a device flush per
    /// write. Without it, writes survive the process's death but not the machine's.
    /// Invalidations are not flushed either way: after a power loss, a value invalidated just
    /// before may be back.
    ///
    /// See [`new`](DiskStore::new) for an example.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The directory of this store's function (`{dir}/{function}/v{schema}.{type}`): its
    /// entries, lock file and counters.
    ///
    /// ```
    /// # use memoflight::DiskStore;
    /// let store = DiskStore::<u32, String>::new("/var/cache/my-app");
    /// let dir = store.namespace_dir();
    /// // `unnamed` until a cache binds it to its function (`my_crate::rules` → `my_crate--rules`).
    /// assert!(dir.to_string_lossy().starts_with("/var/cache/my-app/unnamed/v1."));
    /// ```
    pub fn namespace_dir(&self) -> PathBuf {
        match self.namespace.get() {
            Some(namespace) => namespace.clone(),
            None => self.namespace_for("unnamed"),
        }
    }

    fn namespace_for(&self, function: &str) -> PathBuf {
        // A function's name is a Rust path; anything else is kept out of the file name.
        let function: String = function
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || c == '_' {
                true => c,
                false => '-',
            })
            .collect();
        let fingerprint = crate::shared_store::type_fingerprint::<K, V>();
        self.dir
            .join(function)
            .join(format!("v{}.{fingerprint:08x}", self.schema))
    }

    fn data_dir(&self) -> PathBuf {
        self.namespace_dir().join("data")
    }

    /// Opens one of the namespace's lock files for a lock of its own (creating the namespace
    /// if needed).
    fn open_lock_file(&self, name: &str) -> Result<File, DiskStoreError> {
        let namespace = self.namespace_dir();
        let path = namespace.join(name);
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        match open() {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.create_dirs(&namespace)?;
                open().doing("open", &path)
            }
            // A directory where the file belongs: removed, once.
            Err(error) if in_the_way(&error) && self.clear_the_way(&path, Want::File) => {
                open().doing("open", &path)
            }
            opened => opened.doing("open", &path),
        }
    }

    /// Creates `dir` and its missing parents, clearing once what stands in the way inside the
    /// namespace (a file where a directory belongs). When durable, flushes the directory that
    /// holds each one it created: a file flushed later in a new directory is then not lost
    /// with the directory's own entry.
    fn create_dirs(&self, dir: &Path) -> Result<(), DiskStoreError> {
        let missing = || -> Vec<PathBuf> {
            dir.ancestors()
                .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists())
                .map(Path::to_owned)
                .collect()
        };
        let mut created = missing();
        match std::fs::create_dir_all(dir) {
            Err(error)
                if (in_the_way(&error) || error.kind() == io::ErrorKind::AlreadyExists)
                    && self.clear_the_way(dir, Want::Dir) =>
            {
                created = missing();
                std::fs::create_dir_all(dir).doing("create", dir)?;
            }
            made => made.doing("create", dir)?,
        }
        if self.durable {
            for created in &created {
                let parent = match created.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Removes what stands in the way of `path`, inside the namespace only: a file (or
    /// symlink) where one of its directories below the namespace belongs, or a directory at
    /// `path` where a file belongs. Never the namespace directory itself, nothing outside it,
    /// and nothing reached through a symlink. Whether it removed anything (then the caller
    /// tries once more).
    fn clear_the_way(&self, path: &Path, want: Want) -> bool {
        let namespace = self.namespace_dir();
        let Ok(inside) = path.strip_prefix(&namespace) else {
            return false;
        };
        let parts: Vec<_> = inside.components().collect();
        let mut current = namespace;
        for (index, part) in parts.iter().enumerate() {
            let std::path::Component::Normal(part) = part else {
                return false;
            };
            current.push(part);
            let Ok(found) = std::fs::symlink_metadata(&current) else {
                // Nothing there (or unreadable): nothing in the way below it either.
                return false;
            };
            let file_wanted = index + 1 == parts.len() && want == Want::File;
            match (file_wanted, found.is_dir()) {
                (false, false) => return std::fs::remove_file(&current).is_ok(),
                (true, true) => return std::fs::remove_dir_all(&current).is_ok(),
                _ => {}
            }
        }
        false
    }

    /// Takes a brief lock on `len` bytes at `start` of `file` (at `path`), within the timeout.
    async fn lock_briefly(
        &self,
        file: &File,
        path: &Path,
        (start, len): (u64, u64),
        kind: Kind,
    ) -> Result<(), DiskStoreError> {
        let now = Instant::now();
        let deadline = now.checked_add(self.timeout).unwrap_or(now + ONE_DAY);
        match locks::lock_briefly(file, start, len, kind, deadline).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DiskStoreError::Busy(path.to_owned())),
            Err(error) => Err(error).doing("lock", path),
        }
    }

    /// The counters file, with the namespace counter locked `namespace` and, when given, the
    /// slot counter locked `slot` (both released when the file is dropped).
    async fn lock_counters(
        &self,
        namespace: Kind,
        slot: Option<(u64, Kind)>,
    ) -> Result<(File, PathBuf), DiskStoreError> {
        let file = self.open_lock_file("epochs")?;
        let path = self.namespace_dir().join("epochs");
        self.lock_briefly(&file, &path, (0, 8), namespace).await?;
        if let Some((slot, kind)) = slot {
            self.lock_briefly(&file, &path, (counter_offset(slot), 8), kind)
                .await?;
        }
        Ok((file, path))
    }

    /// The namespace counter and `slot`'s, read from the locked counters file.
    fn counters(file: &File, path: &Path, slot: u64) -> Result<Counters, DiskStoreError> {
        Ok(Counters {
            namespace: read_counter(file, 0).doing("read", path)?,
            slot: read_counter(file, counter_offset(slot)).doing("read", path)?,
        })
    }

    /// Deletes the temporary files in `data/xx` that a process that died while it wrote left
    /// behind.
    fn remove_stale_temporary(path: &Path) {
        let stale = std::fs::metadata(path)
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > STALE_TEMPORARY));
        if stale {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Every entry file of the namespace (temporary files left out; stale ones deleted).
    fn entry_files(&self) -> Result<Vec<PathBuf>, DiskStoreError> {
        let data = self.data_dir();
        let shards = match std::fs::read_dir(&data) {
            // No namespace (or a file where its directory would be): no entries.
            Err(_) if !data.is_dir() => return Ok(Vec::new()),
            listed => listed.doing("list", &data)?,
        };
        let mut files = Vec::new();
        for shard in shards {
            let shard = shard.doing("list", &data)?.path();
            let entries = match std::fs::read_dir(&shard) {
                // Not a directory, or gone since (a concurrent `clear`).
                Err(_) => continue,
                Ok(entries) => entries,
            };
            for entry in entries {
                let Ok(entry) = entry else { continue };
                let path = entry.path();
                match entry.file_name().as_encoded_bytes().first() {
                    Some(b'.') => Self::remove_stale_temporary(&path),
                    _ => files.push(path),
                }
            }
        }
        Ok(files)
    }
}

impl<K: Serialize + DeserializeOwned + Eq, V: Serialize + DeserializeOwned> DiskStore<K, V> {
    fn place(&self, key: &K) -> Result<Place, DiskStoreError> {
        let bytes = postcard::to_allocvec(key).map_err(DiskStoreError::Encode)?;
        Ok(Place::of(&self.data_dir(), &bytes))
    }

    /// The entry of `key` at `place`: its value if it is there, of this key and not expired.
    fn read(&self, key: &K, place: &Place) -> Result<Option<V>, DiskStoreError> {
        let found = match entry::read::<K, V>(&place.path, self.max_value_bytes) {
            // A directory where the entry belongs, or a file where its directory does: removed
            // (once: it is then absent), and reported as a damaged entry.
            Err(error) if in_the_way(&error) && self.clear_the_way(&place.path, Want::File) => {
                return Err(DiskStoreError::Corrupt {
                    path: place.path.clone(),
                    reason: format!("{error}; what was in the way was removed"),
                });
            }
            found => found,
        };
        match found.doing("read", &place.path)? {
            Found::Live(stored, value) if stored == *key => Ok(Some(value)),
            // Another key of the same hash, an expired value, or none.
            Found::Live(..) | Found::Expired | Found::Absent => Ok(None),
            Found::Corrupt(reason) => Err(DiskStoreError::Corrupt {
                path: place.path.clone(),
                reason,
            }),
        }
    }

    /// Like [`read`](Self::read), but a corrupt entry is a miss: for a leader, whose value
    /// will replace it.
    fn read_for_leader(&self, key: &K, place: &Place) -> Result<Option<V>, DiskStoreError> {
        match self.read(key, place) {
            Err(DiskStoreError::Corrupt { .. }) => Ok(None),
            read => read,
        }
    }

    /// Writes `value` to a temporary file next to `key`'s entry, ready to be renamed over it.
    fn stage(
        &self,
        key: &K,
        value: &V,
        place: &Place,
    ) -> Result<tempfile::NamedTempFile, DiskStoreError> {
        let bytes =
            entry::encode(key, entry::expiry(self.ttl), value).map_err(DiskStoreError::Encode)?;
        if bytes.len() > self.max_value_bytes {
            return Err(DiskStoreError::TooLarge {
                bytes: bytes.len(),
                limit: self.max_value_bytes,
            });
        }
        let dir = place.dir();
        // Readable by every user the umask lets read it (tempfile's default is 0600): processes
        // of several users may share a directory.
        let create = || {
            tempfile::Builder::new()
                .prefix(".tmp")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(dir)
        };
        let mut file = match create() {
            // Its directories missing, or a file in their way (removed by `create_dirs`).
            Err(error) if error.kind() == io::ErrorKind::NotFound || in_the_way(&error) => {
                self.create_dirs(dir)?;
                create().doing("create a file in", dir)?
            }
            made => made.doing("create a file in", dir)?,
        };
        io::Write::write_all(&mut file, &bytes).doing("write", file.path())?;
        if self.durable {
            file.as_file().sync_all().doing("flush", file.path())?;
        }
        Ok(file)
    }

    /// Renames a staged file over `place`'s entry, under the counter locks the caller holds
    /// (a directory in the entry's place is removed, once).
    fn commit(&self, staged: tempfile::NamedTempFile, place: &Place) -> Result<(), DiskStoreError> {
        let staged = match staged.persist(&place.path) {
            Ok(_) => return Ok(()),
            Err(error)
                if in_the_way(&error.error) && self.clear_the_way(&place.path, Want::File) =>
            {
                error.file
            }
            Err(error) => return Err(error.error).doing("rename a file to", &place.path),
        };
        staged
            .persist(&place.path)
            .map_err(|error| error.error)
            .doing("rename a file to", &place.path)
            .map(drop)
    }

    /// After a commit, with the counter locks released: flushes the directory if durable, and
    /// now and then sweeps it.
    fn after_commit(&self, place: &Place) -> Result<(), DiskStoreError> {
        if place.hash.rotate_left(17) % SWEEP_EVERY == 0 {
            self.sweep(place.dir());
        }
        if self.durable {
            sync_dir(place.dir())?;
        }
        Ok(())
    }

    /// Deletes, in one `data/xx` directory, the expired entries and the temporary files that
    /// writers that died left. Best effort: a file that cannot be read or deleted stays. An
    /// entry rewritten between its read here and its deletion is deleted too (it is then
    /// computed again).
    fn sweep(&self, dir: &Path) {
        let Ok(files) = std::fs::read_dir(dir) else {
            return;
        };
        for file in files.flatten() {
            let path = file.path();
            match file.file_name().as_encoded_bytes().first() {
                Some(b'.') => Self::remove_stale_temporary(&path),
                _ => {
                    if let Ok(Found::Expired) = entry::read::<K, V>(&path, self.max_value_bytes) {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
    }

    /// Stages `value` and renames it over `key`'s entry under the namespace counter (shared)
    /// and the slot counter (exclusive) locks, if `check` passes on the counters; whether it
    /// was written.
    async fn write(
        &self,
        key: &K,
        value: &V,
        check: impl FnOnce(Counters) -> bool,
    ) -> Result<bool, DiskStoreError> {
        let place = self.place(key)?;
        let staged = self.stage(key, value, &place)?;
        let slot = place.hash % SLOTS;
        {
            let (counters, path) = self
                .lock_counters(Kind::Shared, Some((slot, Kind::Exclusive)))
                .await?;
            if !check(Self::counters(&counters, &path, slot)?) {
                // Invalidated or cleared since the leader began: the staged file is deleted.
                return Ok(false);
            }
            self.commit(staged, &place)?;
        }
        self.after_commit(&place)?;
        Ok(true)
    }

    /// Bumps the namespace counter under its exclusive lock, then runs `then` with the lock
    /// still held: every computation that began before stores nothing.
    async fn bump_namespace<T>(
        &self,
        then: impl FnOnce() -> Result<T, DiskStoreError>,
    ) -> Result<T, DiskStoreError> {
        let (file, path) = self.lock_counters(Kind::Exclusive, None).await?;
        let counter = read_counter(&file, 0).doing("read", &path)?;
        write_counter(&file, 0, counter.wrapping_add(1)).doing("write", &path)?;
        then()
    }
}

impl<K, V> AsyncStore for DiskStore<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync,
    V: Serialize + DeserializeOwned + Clone + Send + Sync,
{
    type Key = K;
    type Value = V;
    type Error = DiskStoreError;

    async fn get(&self, key: &K) -> Result<Option<V>, DiskStoreError> {
        self.read(key, &self.place(key)?)
    }

    /// Writes `value` unconditionally (the cache writes through
    /// [`insert_leased`](AsyncStore::insert_leased) instead), ordered with invalidations as
    /// the cache's writes are.
    async fn insert(&self, key: K, value: V) -> Result<(), DiskStoreError> {
        self.write(&key, &value, |_| true).await.map(|_| ())
    }

    async fn remove(&self, key: &K) -> Result<(), DiskStoreError> {
        let place = self.place(key)?;
        let slot = place.hash % SLOTS;
        let (file, path) = self
            .lock_counters(Kind::Shared, Some((slot, Kind::Exclusive)))
            .await?;
        let offset = counter_offset(slot);
        let counter = read_counter(&file, offset).doing("read", &path)?;
        write_counter(&file, offset, counter.wrapping_add(1)).doing("write", &path)?;
        match std::fs::remove_file(&place.path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(error).doing("delete", &place.path)
            }
            _ => Ok(()),
        }
    }

    async fn clear(&self) -> Result<(), DiskStoreError> {
        let data = self.data_dir();
        let trash = self
            .namespace_dir()
            .join(format!("trash.{}", crate::shared_store::token()));
        self.bump_namespace(|| match std::fs::rename(&data, &trash) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            renamed => renamed.doing("rename", &data),
        })
        .await?;
        // The clear is done: what was moved aside (and what a clear that died left there) is
        // deleted off the lock, on a blocking thread when there is a runtime, at best effort
        // (another process's clear may be deleting the same).
        let namespace = self.namespace_dir();
        let delete = move || {
            let Ok(entries) = std::fs::read_dir(namespace) else {
                return;
            };
            for entry in entries.flatten() {
                if entry.file_name().as_encoded_bytes().starts_with(b"trash.") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(delete)),
            Err(_) => delete(),
        }
        Ok(())
    }

    /// Counts the entry files, expired ones included (O(entries): it lists the directory).
    async fn len(&self) -> Result<usize, DiskStoreError> {
        Ok(self.entry_files()?.len())
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
                "memoflight: one DiskStore was given to two functions ({} and {name}); give \
                 each function a store of its own",
                self.namespace
                    .get()
                    .map_or(String::new(), |n| n.display().to_string()),
            );
        }
    }

    async fn lead(&self, key: &K, wait: Option<Duration>) -> Result<Lead<V>, DiskStoreError> {
        let place = self.place(key)?;
        let lock_path = self.namespace_dir().join("locks");
        let file = self.open_lock_file("locks")?;
        // Any offset a file can have can be locked, past its end too.
        let lock_at = place.hash % (nix::libc::off_t::MAX as u64);
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            if locks::try_lock(&file, lock_at, 1, Kind::Exclusive).doing("lock", &lock_path)? {
                let slot = place.hash % SLOTS;
                let counters = {
                    let (counters, path) = self
                        .lock_counters(Kind::Shared, Some((slot, Kind::Shared)))
                        .await?;
                    Self::counters(&counters, &path, slot)?
                };
                // Read after the counters: an invalidation that deleted the file before is
                // counted in them, and one after makes the write fail.
                match self.read(key, &place) {
                    Ok(Some(value)) => return Ok(Lead::Computed(value)),
                    Ok(None) => {}
                    // Deleted while this leader holds the key: no other writes it meanwhile,
                    // and a value that cannot be written (too long) leaves no damage behind.
                    Err(DiskStoreError::Corrupt { .. }) => {
                        let _ = std::fs::remove_file(&place.path);
                    }
                    Err(error) => return Err(error),
                }
                let token = crate::shared_store::token();
                let held = KeyLock {
                    _file: file,
                    counters,
                };
                lock(&self.leases).insert(token.clone(), held);
                return Ok(Lead::Compute(Lease::new(token)));
            }
            // Held by another process: its value, once written, is returned.
            if let Some(value) = self.read_for_leader(key, &place)? {
                return Ok(Lead::Computed(value));
            }
            let waited = started.elapsed();
            if wait.is_some_and(|wait| waited >= wait) {
                return Ok(Lead::Compute(Lease::unshared()));
            }
            let left = wait.map_or(Duration::MAX, |wait| wait - waited);
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn insert_leased(&self, key: K, value: V, lease: &Lease) -> Result<bool, DiskStoreError> {
        let Some(token) = lease.token() else {
            return Ok(false);
        };
        // Released (the lock file closed) when this returns, after the value is in place.
        let Some(held) = lock(&self.leases).remove(token) else {
            return Ok(false);
        };
        let written = self.write(&key, &value, |now| now == held.counters).await;
        drop(held);
        written
    }

    async fn release(&self, key: &K, lease: &Lease) -> Result<(), DiskStoreError> {
        self.abandon(key, lease.clone());
        Ok(())
    }

    /// Closes the key's lock file: the kernel releases the lock at once.
    fn abandon(&self, _key: &K, lease: Lease) {
        if let Some(token) = lease.token() {
            let released = lock(&self.leases).remove(token);
            drop(released);
        }
    }

    /// Bumps the namespace counter (no computation in flight in any process writes), then
    /// reads every entry and deletes those `keep` rejects, and the expired and corrupt ones.
    /// O(entries) reads; `keep` runs with no lock held. An entry rewritten, by a computation
    /// that began after the bump, between its read and its deletion is deleted too (it is then
    /// computed again). A file that cannot be read is deleted; the first error met is returned
    /// once the scan is done.
    async fn retain<F>(&self, mut keep: F) -> Result<(), DiskStoreError>
    where
        F: FnMut(&K, &V) -> bool + Send,
    {
        self.bump_namespace(|| Ok(())).await?;
        let mut first_error = None;
        for path in self.entry_files()? {
            let remove = match entry::read::<K, V>(&path, self.max_value_bytes) {
                Ok(Found::Live(key, value)) => !keep(&key, &value),
                Ok(Found::Absent) => false,
                Ok(Found::Expired | Found::Corrupt(_)) | Err(_) => true,
            };
            if remove {
                match std::fs::remove_file(&path) {
                    Err(error) if in_the_way(&error) && self.clear_the_way(&path, Want::File) => {}
                    Err(error) if error.kind() != io::ErrorKind::NotFound => {
                        first_error.get_or_insert(Err(error).doing("delete", &path));
                    }
                    _ => {}
                }
            }
        }
        first_error.unwrap_or(Ok(()))
    }
}

/// What belongs at a path [`DiskStore::clear_the_way`] clears the way to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    File,
    Dir,
}

/// Whether `error` says something stands where the store's file or directory belongs: a
/// directory where a file does (`EISDIR`) or a file where a directory does (`ENOTDIR`).
fn in_the_way(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(nix::libc::EISDIR | nix::libc::ENOTDIR)
    )
}

/// Flushes a directory's entries to the device.
fn sync_dir(dir: &Path) -> Result<(), DiskStoreError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .doing("flush", dir)
}

/// Where `slot`'s counter lies in the counters file (counter 0 is the namespace's).
fn counter_offset(slot: u64) -> u64 {
    8 * (1 + slot)
}

/// The counter at `offset`; 0 past the end of the file (a counter never bumped).
fn read_counter(file: &File, offset: u64) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    match file.read_exact_at(&mut bytes, offset) {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        read => read.map(|()| u64::from_le_bytes(bytes)),
    }
}

fn write_counter(file: &File, offset: u64, value: u64) -> io::Result<()> {
    file.write_all_at(&value.to_le_bytes(), offset)
}
