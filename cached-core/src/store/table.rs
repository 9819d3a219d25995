//! The concurrent hash table under the default store: lock-free reads, per-shard writers,
//! removed slots reused in place, growth built off the lock.
//!
//! # Why not a ready-made map
//!
//! The store sat on papaya, whose removals leave tombstones that no insert reuses: under
//! remove-and-insert churn the table is copied into a new one of the *same* size every ~850k
//! operations at 1M entries, and the copy shows up as 20–35× dashmap's p99.9 on misses and
//! invalidations (`benches/README.md`, "Where papaya's write tail comes from"). No lock-free
//! read map measured there keeps both tails near dashmap's. This table keeps papaya's good
//! parts (reads that take no lock and write no shared memory, epoch reclamation by seize) and
//! changes the write side: writers of a shard serialize on its mutex for a few stores, reuse
//! a removed slot in place, and build a grown table *off* the lock.
//!
//! # Layout
//!
//! The table has [`SHARDS`] shards, chosen by the top bits of a key's hash. A shard owns an
//! open-addressed array of slots (linear probing from `hash & mask`), in groups of 8: per slot a one-byte
//! tag ([`EMPTY`], [`REMOVED`], or seven bits of the hash with the top bit set) and a pointer
//! to an immutable [`Entry`] (hash, key, value). A value is never changed in place: a
//! replacement stores a pointer to a new entry, so a reader holds either the old or the new
//! entry, whole. A shard's entries live in its arena (`arena.rs`), packed in chunks, so that
//! `retain` reads them in memory order; the arena marks each entry linked while a slot holds
//! it: set under the shard's lock before the pointer is stored, and cleared after it is taken
//! out (under the lock, or by `clear` once no array holds it), always before it is retired.
//!
//! # The contract (numbered invariants; `SAFETY:` comments cite them)
//!
//! 1. **Writers serialize per shard.** Every store to a shard's slots, its array pointer, its
//!    `live` count and its `version` is made with the shard's `write` mutex held, and every
//!    such critical section bumps `version` before it ends. No user code runs under that
//!    mutex: a key's `Eq` runs in a lock-free scan *before* the lock is taken, and the scan's
//!    result is used only if `version` is unchanged once the lock is held (else the writer
//!    scans again: a retry means another write to the shard completed, so the table as a whole
//!    makes progress). A retry reuses the answers of the comparisons already made
//!    ([`Compared`]): a key whose `Eq` itself writes to the store is compared once per entry,
//!    so its own writes cannot make its writer retry forever.
//! 2. **A slot never becomes empty again** within one array: removal writes [`REMOVED`].
//!    An entry is stored at the first free slot (removed or empty) of its probe sequence, so
//!    every slot between a stored key's home and its slot is non-empty for as long as the key
//!    stays: a reader that stops at the first empty slot cannot miss it.
//! 3. **An array always has an empty slot**: `used` (slots not empty) stays at most 7/8 of
//!    the capacity; a writer that would go past it rebuilds the array first. Every probe
//!    therefore ends, and is bounded by the capacity anyway.
//! 4. **Publication.** A writer stores an entry's pointer before its tag (both `Release`);
//!    a reader loads the tag, then the pointer (`Acquire`), and reads an entry only through a
//!    non-null pointer, checking the full hash and the key: a stale tag costs a comparison,
//!    never a wrong answer.
//! 5. **Reclamation.** Every pointer that is dereferenced is loaded inside a guard with
//!    [`PROTECT`] ordering (seize's protocol). An entry or array unlinked by a writer is
//!    retired to seize only after the writer has released the lock, and is freed once no thread that could have loaded
//!    it is still inside a read (every access to a shard's slots happens inside a guard). A
//!    retired array owns no entries (they moved to its successor) unless `clear` retired it
//!    whole. Freeing runs the user's `Drop` of keys and values, never under a lock of ours.
//! 6. **Rebuilds** copy entry pointers into a fresh array, placed by their stored hash: no
//!    user code runs. A rebuild is built from a snapshot outside the lock and published only
//!    if `version` did not move meanwhile; after [`REBUILD_ATTEMPTS`] failed attempts (the
//!    shard's writers kept it moving), it is built under the lock, O(entries of one shard).
//!
//! Reads are linearizable: a reader that loaded an array pointer reads that array as it was
//! when the array was current or later (old arrays are frozen once replaced), and a write is
//! visible to every read that starts after it returns.
//!
//! This module and `arena.rs` are the only ones of memoflight with `unsafe` code (the
//! workspace denies it elsewhere): raw entry pointers shared between readers and epoch
//! reclamation, in cells of the arena. The tests
//! that break each invariant if it fails (`tests/test_default_store.rs`) run under valgrind in CI,
//! and `cached-core/tests/loom_table.rs` model-checks the slot protocol (see its header for
//! what loom explores there).
#![allow(unsafe_code)]

use crate::store::arena::Arena;
use crate::sync::{lock, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Mutex, MutexGuard};
use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release, SeqCst};

/// How a pointer that will be dereferenced is loaded inside a guard: `SeqCst`, as seize's own
/// `Guard::protect` does without its `fast-barrier` feature. Entering a guard is a `SeqCst`
/// store and a retiring thread fences with `SeqCst` before it reads the guards; only a
/// `SeqCst` load after the enter is ordered after that store (an `Acquire` load may be
/// satisfied earlier on AArch64, and the retirer could then miss this reader and free what it
/// loads). Free on x86; tags, never dereferenced, stay `Acquire`.
const PROTECT: Ordering = SeqCst;

/// Number of shards (a power of two): writers of different shards never wait on each other,
/// and a rebuild under the lock copies 1/64 of the table.
#[cfg(not(memoflight_loom))]
const SHARDS: usize = 64;
/// One shard under loom: the model explores one shard's writers and readers, rebuilds included.
#[cfg(memoflight_loom)]
const SHARDS: usize = 1;
/// The hash bits above it choose the shard; the seven below them make the tag.
const SHARD_SHIFT: u32 = 64 - SHARDS.trailing_zeros();
/// The smallest array a shard allocates.
const MIN_CAPACITY: usize = GROUP;
/// A slot never written.
const EMPTY: u8 = 0;
/// A slot whose entry was removed (reusable by any insert that probes through it).
const REMOVED: u8 = 1;
/// Attempts to build a rebuilt array off the lock before building it under the lock.
const REBUILD_ATTEMPTS: usize = 2;

/// A stored key and value, with the key's hash. Immutable once published (invariant 4).
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// One shard's open-addressed array, in groups of [`GROUP`] slots: a slot's tag and entry
/// pointer share a group (a probe reads one or two cache lines), at 9 bytes a slot.
struct Slots<K, V> {
    mask: usize,
    groups: Box<[Group<K, V>]>,
}

/// Slots per group; the smallest array is one group.
const GROUP: usize = 8;

struct Group<K, V> {
    tags: [AtomicU8; GROUP],
    entries: [AtomicPtr<Entry<K, V>>; GROUP],
}

/// The writer side of a shard, behind its mutex.
#[derive(Default)]
struct Writer {
    /// Slots of the current array that are not empty (live or removed).
    used: usize,
    /// A thread is building a rebuilt array off the lock.
    rebuilding: bool,
}

#[repr(align(64))]
struct Shard<K, V> {
    /// The current array; null until the first insert.
    slots: AtomicPtr<Slots<K, V>>,
    /// Bumped by every write (invariant 1).
    version: AtomicU64,
    live: AtomicUsize,
    write: Mutex<Writer>,
    /// Where the shard's entries live (`arena.rs`).
    arena: Arena<Entry<K, V>>,
}

/// The table: see the module docs.
pub(crate) struct Table<K, V> {
    /// Declared first so that it drops first: freeing what was retired gives cells back to
    /// the shards' arenas, which must still exist.
    reclaim: reclaim::Collector,
    shards: Box<[Shard<K, V>; SHARDS]>,
}

/// The key comparisons (user code: `Eq`) a writer made, by entry, kept across its retries. A
/// writer retries when its shard changed between its scan and its lock; if the change was made
/// by the key's own `Eq` (it writes to the store), comparing again would write again and retry
/// forever. Entries are immutable and stay allocated while the writer's pin lives (invariant
/// 5), so a pointer names one key for the writer's whole call, and its answer is reused:
/// the second scan runs no user code on the entries the first one compared.
/// The first answer is kept inline: entries of one full 64-bit hash are rarely more than one,
/// so a write allocates nothing for this.
struct Compared<K, V> {
    first: Option<(*mut Entry<K, V>, bool)>,
    more: Vec<(*mut Entry<K, V>, bool)>,
}

impl<K, V> Compared<K, V> {
    fn new() -> Self {
        Compared {
            first: None,
            more: Vec::new(),
        }
    }

    /// Whether `entry` is the key sought, by the answer given before or by `is`.
    fn is(&mut self, entry: *mut Entry<K, V>, is: impl FnOnce() -> bool) -> bool {
        let known = self.first.iter().chain(&self.more);
        if let Some(&(_, answer)) = known.into_iter().find(|(seen, _)| *seen == entry) {
            return answer;
        }
        let answer = is();
        match self.first {
            None => self.first = Some((entry, answer)),
            Some(_) => self.more.push((entry, answer)),
        }
        answer
    }
}

/// An entry allocated in its shard's arena and not linked yet: freed if its writer unwinds
/// (a key's `Eq` panicked in the scan).
struct Unlinked<K, V>(*mut Entry<K, V>);

impl<K, V> Drop for Unlinked<K, V> {
    fn drop(&mut self) {
        // SAFETY: never linked, so no other thread saw it (arena invariants 2 and 4).
        unsafe { Arena::free(self.0) };
    }
}

/// What a scan of a shard found for a key.
enum Scan<K, V> {
    /// The key's entry, at this slot.
    Found(usize, *mut Entry<K, V>),
    /// Not present: the slot an insert would use, and whether it is empty (not a removed one).
    Absent { free: usize, empty: bool },
}

fn tag_of(hash: u64) -> u8 {
    0x80 | ((hash >> (SHARD_SHIFT - 7)) as u8 & 0x7f)
}

impl<K, V> Slots<K, V> {
    fn with_capacity(capacity: usize) -> Box<Self> {
        debug_assert!(capacity.is_power_of_two());
        Box::new(Slots {
            mask: capacity - 1,
            groups: (0..capacity / GROUP)
                .map(|_| Group {
                    tags: std::array::from_fn(|_| AtomicU8::new(EMPTY)),
                    entries: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
                })
                .collect(),
        })
    }

    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The most slots that may be used (invariant 3), and the use at which a rebuild starts.
    fn limits(&self) -> (usize, usize) {
        let capacity = self.capacity();
        (capacity - capacity / 8, capacity - capacity / 4)
    }

    /// The tag and entry pointer of slot `index & mask`.
    #[inline(always)]
    fn slot(&self, index: usize) -> (&AtomicU8, &AtomicPtr<Entry<K, V>>) {
        let index = index & self.mask;
        // SAFETY: there are `(mask + 1) / GROUP` groups (`with_capacity`, never resized), and
        // `index` is masked below `mask + 1`.
        let group = unsafe { self.groups.get_unchecked(index / GROUP) };
        (&group.tags[index % GROUP], &group.entries[index % GROUP])
    }

    /// The entry of `hash` that `is` accepts: a reader's scan, which stops at the first empty
    /// slot (invariant 2). Lock-free; `is` is user code.
    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(&K) -> bool) -> Option<*mut Entry<K, V>> {
        let tag = tag_of(hash);
        let mut index = hash as usize;
        for _ in 0..=self.mask {
            let (slot_tag, slot_entry) = self.slot(index);
            match slot_tag.load(Acquire) {
                EMPTY => return None,
                found if found == tag => {
                    let entry = slot_entry.load(PROTECT);
                    // SAFETY: invariants 4 and 5: a non-null pointer loaded inside a guard
                    // points to a live entry.
                    if let Some(entry_ref) = unsafe { entry.as_ref() } {
                        if entry_ref.hash == hash && is(&entry_ref.key) {
                            return Some(entry);
                        }
                    }
                }
                _ => {}
            }
            index = index.wrapping_add(1);
        }
        None
    }

    /// Scans for the entry of `hash` that `is` accepts. Lock-free; `is` is user code.
    fn scan(
        &self,
        hash: u64,
        compared: &mut Compared<K, V>,
        mut is: impl FnMut(&K, &V) -> bool,
    ) -> Scan<K, V> {
        let tag = tag_of(hash);
        let mut index = hash as usize & self.mask;
        let mut free = None;
        for _ in 0..=self.mask {
            match self.slot(index).0.load(Acquire) {
                EMPTY => {
                    return match free {
                        Some(free) => Scan::Absent { free, empty: false },
                        None => Scan::Absent {
                            free: index,
                            empty: true,
                        },
                    }
                }
                REMOVED => {
                    free.get_or_insert(index);
                }
                found if found == tag => {
                    let entry = self.slot(index).1.load(PROTECT);
                    // SAFETY: invariants 4 and 5: a non-null pointer loaded inside a guard
                    // points to a live entry.
                    if let Some(entry_ref) = unsafe { entry.as_ref() } {
                        if entry_ref.hash == hash
                            && compared.is(entry, || is(&entry_ref.key, &entry_ref.value))
                        {
                            return Scan::Found(index, entry);
                        }
                    }
                }
                _ => {}
            }
            index = (index + 1) & self.mask;
        }
        // Unreachable by invariant 3, but a scan racing writers of an old array must still
        // answer something sound: nothing found, and no free slot claimed (`empty` is false
        // and the caller's version check fails).
        Scan::Absent {
            free: 0,
            empty: false,
        }
    }

    /// Stores `entry` at the first empty slot of its probe sequence, in an array no reader
    /// sees yet or under the shard's lock with the key known to be absent.
    fn place(&self, entry: *mut Entry<K, V>, hash: u64) -> usize {
        let mut index = hash as usize & self.mask;
        while self.slot(index).0.load(Relaxed) != EMPTY {
            index = (index + 1) & self.mask;
        }
        self.slot(index).1.store(entry, Release);
        self.slot(index).0.store(tag_of(hash), Release);
        index
    }

    /// A copy of the live entries into an array sized for them (invariant 6), and their number.
    ///
    /// Sized by the entries it copies, not by the shard's count read earlier: built off the
    /// lock, the array may gain entries while it is read (the copy is then discarded by the
    /// version check, but it must still fit, or `place` would never find an empty slot).
    fn rebuilt(&self) -> (Box<Self>, usize) {
        let live: Vec<_> = self.live_entries().collect();
        let capacity = (live.len() * 2 + 1).next_power_of_two().max(MIN_CAPACITY);
        let fresh = Slots::with_capacity(capacity);
        for &entry in &live {
            // SAFETY: invariant 5: the entry is allocated while the caller's guard lives.
            fresh.place(entry, unsafe { (*entry).hash });
        }
        (fresh, live.len())
    }

    /// The pointers of the live entries.
    fn live_entries(&self) -> impl Iterator<Item = *mut Entry<K, V>> + '_ {
        (0..self.capacity())
            .map(|index| self.slot(index))
            .filter(|(tag, _)| tag.load(Acquire) >= 0x80)
            .map(|(_, entry)| entry.load(PROTECT))
            .filter(|entry| !entry.is_null())
    }
}

impl<K, V> Shard<K, V> {
    fn new() -> Self {
        Shard {
            slots: AtomicPtr::new(std::ptr::null_mut()),
            version: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            write: Mutex::new(Writer::default()),
            arena: Arena::new(),
        }
    }

    /// The current array, if any. The reference lives as long as `pin` (invariant 5).
    fn current<'g>(&self, _pin: &'g reclaim::Pin<'_>) -> Option<&'g Slots<K, V>> {
        // SAFETY: invariant 5: an array loaded inside a guard stays allocated until the guard
        // ends.
        unsafe { self.slots.load(PROTECT).as_ref() }
    }

    /// Replaces the current array with `fresh` (a rebuild holding `used` entries), releases
    /// the lock, then retires the old array (invariants 5 and 6).
    fn publish(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        fresh: Box<Slots<K, V>>,
        used: usize,
        pin: &reclaim::Pin<'_>,
    ) {
        writer.used = used;
        writer.rebuilding = false;
        let old = self.slots.swap(Box::into_raw(fresh), Release);
        self.bump();
        drop(writer);
        // SAFETY: invariant 5: unlinked under the lock, retired after it.
        unsafe { pin.retire_slots(old) };
    }

    /// Ends a write: invariant 1's version bump.
    fn bump(&self) {
        self.version.store(self.version.load(Relaxed) + 1, Release);
    }
}

impl<K, V> Table<K, V> {
    pub(crate) fn new() -> Self {
        Table {
            reclaim: reclaim::Collector::new(),
            shards: Box::new(std::array::from_fn(|_| Shard::new())),
        }
    }

    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // The top bits: below `SHARDS` (none when there is one shard).
        &self.shards[(hash.checked_shr(SHARD_SHIFT).unwrap_or(0) as usize) % SHARDS]
    }

    /// Reads the entry of `hash` that `is` accepts. Takes no lock.
    #[inline]
    pub(crate) fn get<R>(
        &self,
        hash: u64,
        is: impl FnMut(&K) -> bool,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let pin = self.reclaim.pin();
        let entry = self.shard(hash).current(&pin)?.find(hash, is)?;
        // SAFETY: invariant 5: the entry stays allocated while `pin` lives.
        Some(read(unsafe { &(*entry).value }))
    }

    /// Stores `value` for `key`, replacing (and retiring) the value stored for an equal key,
    /// which `replaced` reads after the lock is released. `Eq` of the stored keys runs outside
    /// the lock (invariant 1).
    pub(crate) fn insert(&self, hash: u64, key: K, value: V, replaced: impl FnOnce(&V))
    where
        K: Eq,
    {
        let shard = self.shard(hash);
        let pin = self.reclaim.pin();
        let unlinked = Unlinked(shard.arena.alloc(Entry { hash, key, value }));
        let mut compared = Compared::new();
        loop {
            let version = shard.version.load(Acquire);
            let scan = match shard.current(&pin) {
                Some(slots) => {
                    // SAFETY: the entry is this writer's until it is linked (arena invariant 2).
                    let key = unsafe { &(*unlinked.0).key };
                    Some((
                        slots,
                        slots.scan(hash, &mut compared, |stored, _| stored == key),
                    ))
                }
                None => None,
            };
            let mut writer = lock(&shard.write);
            if shard.version.load(Relaxed) != version {
                continue;
            }
            let stored = unlinked.0;
            std::mem::forget(unlinked);
            // SAFETY: arena invariant 4: the entry is linked below, under the shard's lock.
            unsafe { Arena::set_linked(stored, true) };
            let (old, maintain) = match scan {
                Some((slots, Scan::Found(index, old))) => {
                    slots.slot(index).1.store(stored, Release);
                    // SAFETY: arena invariant 4: unlinked under the lock, retired after it.
                    unsafe { Arena::set_linked(old, false) };
                    (Some(old), false)
                }
                Some((slots, Scan::Absent { free, empty })) => {
                    let (most, rebuild_at) = slots.limits();
                    if !empty {
                        slots.slot(free).1.store(stored, Release);
                        slots.slot(free).0.store(tag_of(hash), Release);
                    } else if writer.used < most {
                        slots.place_at(free, stored, hash);
                        writer.used += 1;
                    } else {
                        // Invariant 3 would break: rebuild under the lock (6).
                        let (fresh, live) = slots.rebuilt();
                        fresh.place(stored, hash);
                        shard.live.fetch_add(1, Relaxed);
                        shard.publish(writer, fresh, live + 1, &pin);
                        return;
                    }
                    shard.live.fetch_add(1, Relaxed);
                    let maintain = writer.used >= rebuild_at && !writer.rebuilding;
                    writer.rebuilding |= maintain;
                    (None, maintain)
                }
                None => {
                    let fresh = Slots::with_capacity(MIN_CAPACITY);
                    fresh.place(stored, hash);
                    writer.used = 1;
                    shard.slots.store(Box::into_raw(fresh), Release);
                    shard.live.fetch_add(1, Relaxed);
                    (None, false)
                }
            };
            shard.bump();
            drop(writer);
            if let Some(old) = old {
                // Retired first (a panic in `replaced` then leaks nothing); allocated while
                // `pin` lives.
                // SAFETY: invariant 5: unlinked under the lock, retired after it.
                unsafe { pin.retire_entry(old) };
                // SAFETY: invariant 5: the entry stays allocated while `pin` lives.
                replaced(unsafe { &(*old).value });
            }
            if maintain {
                self.rebuild(shard, &pin);
            }
            return;
        }
    }

    /// Rebuilds a shard's array that passed its rebuild mark: off the lock first, under it
    /// after [`REBUILD_ATTEMPTS`] (invariant 6).
    #[cold]
    fn rebuild(&self, shard: &Shard<K, V>, pin: &reclaim::Pin<'_>) {
        for attempt in 0..=REBUILD_ATTEMPTS {
            let version = {
                let mut writer = lock(&shard.write);
                let Some(slots) = shard.current(pin) else {
                    writer.rebuilding = false;
                    return;
                };
                if writer.used < slots.limits().1 {
                    // Someone rebuilt it meanwhile.
                    writer.rebuilding = false;
                    return;
                }
                if attempt == REBUILD_ATTEMPTS {
                    let (fresh, live) = slots.rebuilt();
                    shard.publish(writer, fresh, live, pin);
                    return;
                }
                shard.version.load(Relaxed)
            };
            let Some(slots) = shard.current(pin) else {
                continue;
            };
            let (fresh, live) = slots.rebuilt();
            let writer = lock(&shard.write);
            if shard.version.load(Relaxed) == version {
                // Unchanged since the lock was released: `fresh` holds exactly the shard's
                // entries.
                shard.publish(writer, fresh, live, pin);
                return;
            }
            drop(writer);
            // The snapshot moved: `fresh` was never published; free the array only (its
            // entries belong to the current one).
            drop(fresh);
        }
    }

    /// Removes the entry of `hash` that `is` accepts (given its key and value) and reads it
    /// with `read` after the lock, once it is retired (it stays allocated while this call's
    /// guard lives). `is` runs outside the lock (invariant 1).
    pub(crate) fn remove<R>(
        &self,
        hash: u64,
        mut is: impl FnMut(&K, &V) -> bool,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let shard = self.shard(hash);
        let pin = self.reclaim.pin();
        let mut compared = Compared::new();
        loop {
            let version = shard.version.load(Acquire);
            let slots = shard.current(&pin)?;
            let Scan::Found(index, entry) = slots.scan(hash, &mut compared, &mut is) else {
                return None;
            };
            let writer = lock(&shard.write);
            if shard.version.load(Relaxed) != version {
                continue;
            }
            slots.slot(index).0.store(REMOVED, Release);
            slots.slot(index).1.store(std::ptr::null_mut(), Release);
            // SAFETY: arena invariant 4: unlinked under the lock, retired after it.
            unsafe { Arena::set_linked(entry, false) };
            shard.live.fetch_sub(1, Relaxed);
            shard.bump();
            drop(writer);
            // Retired before user code reads it, so that a panic there leaks nothing; it stays
            // allocated while `pin` lives.
            // SAFETY: invariant 5: unlinked under the lock, retired after it.
            unsafe { pin.retire_entry(entry) };
            // SAFETY: invariant 5: the entry stays allocated while `pin` lives.
            return Some(read(unsafe { &(*entry).value }));
        }
    }

    /// Removes every entry `keep` rejects, and shows each one removed to `removed` (after the
    /// lock). `keep` runs outside every lock, over the shard's linked entries in the order of
    /// its arena (memory order, not slot order); per shard, the rejected entries are unlinked
    /// in one critical section of O(their number), each found again by pointer (no user code).
    /// An entry replaced after `keep` saw it stays.
    pub(crate) fn retain(
        &self,
        keep: &mut dyn FnMut(&K, &V) -> bool,
        removed: &mut dyn FnMut(&K, &V),
    ) {
        let pin = self.reclaim.pin();
        let mut rejected = Vec::new();
        for shard in self.shards.iter() {
            rejected.clear();
            let walk = shard.arena.walk();
            for entry in walk.linked() {
                // SAFETY: arena invariant 4 and invariant 5: seen linked inside `pin`, so
                // allocated while `pin` lives.
                let entry_ref = unsafe { &*entry };
                if !keep(&entry_ref.key, &entry_ref.value) {
                    rejected.push(entry);
                }
            }
            drop(walk);
            if rejected.is_empty() {
                continue;
            }
            let writer = lock(&shard.write);
            let mut unlinked = Vec::with_capacity(rejected.len());
            if let Some(slots) = shard.current(&pin) {
                for &entry in &rejected {
                    // SAFETY: as above.
                    let hash = unsafe { (*entry).hash };
                    if let Some(index) = slots.find_pointer(entry, hash) {
                        slots.slot(index).0.store(REMOVED, Release);
                        slots.slot(index).1.store(std::ptr::null_mut(), Release);
                        // SAFETY: arena invariant 4: unlinked under the lock, retired after.
                        unsafe { Arena::set_linked(entry, false) };
                        unlinked.push(entry);
                    }
                }
            }
            shard.live.fetch_sub(unlinked.len(), Relaxed);
            shard.bump();
            drop(writer);
            for &entry in &unlinked {
                // SAFETY: invariant 5: unlinked under the lock, retired after it (all of them
                // before user code runs, so a panic there leaks nothing).
                unsafe { pin.retire_entry(entry) };
            }
            for entry in unlinked {
                // SAFETY: invariant 5: the entry stays allocated while `pin` lives.
                let entry_ref = unsafe { &*entry };
                removed(&entry_ref.key, &entry_ref.value);
            }
        }
        pin.flush();
    }

    /// Removes every entry: per shard, the array is unlinked under the lock and retired whole
    /// after it (its entries are freed with it, invariant 5); `removed` sees each entry after
    /// the lock.
    pub(crate) fn clear(&self, removed: &mut dyn FnMut(&K, &V)) {
        let pin = self.reclaim.pin();
        for shard in self.shards.iter() {
            let mut writer = lock(&shard.write);
            let old = shard.slots.swap(std::ptr::null_mut(), Release);
            writer.used = 0;
            shard.live.store(0, Relaxed);
            shard.bump();
            drop(writer);
            if !old.is_null() {
                // SAFETY: the array is allocated while `pin` lives (invariant 5), and no
                // writer reaches it any more: it was unlinked under the lock.
                for entry in unsafe { &*old }.live_entries() {
                    // SAFETY: arena invariant 4: in no array any more, and not retired yet.
                    unsafe { Arena::set_linked(entry, false) };
                }
                // SAFETY: invariant 5: unlinked under the lock, retired after it, with its
                // entries, which no other array holds.
                unsafe { pin.retire_slots_with_entries(old) };
                // SAFETY: invariant 5: the array and its entries stay allocated while `pin`
                // lives.
                let slots = unsafe { &*old };
                for entry in slots.live_entries() {
                    // SAFETY: as above.
                    let entry_ref = unsafe { &*entry };
                    removed(&entry_ref.key, &entry_ref.value);
                }
            }
        }
        pin.flush();
    }

    /// The number of live entries (a sum of per-shard counts; exact when no write runs).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.live.load(Relaxed))
            .sum()
    }
}

impl<K, V> Slots<K, V> {
    /// Stores `entry` at `index`, an empty slot found by a scan validated under the lock.
    fn place_at(&self, index: usize, entry: *mut Entry<K, V>, hash: u64) {
        self.slot(index).1.store(entry, Release);
        self.slot(index).0.store(tag_of(hash), Release);
    }

    /// The slot holding `entry`, found by pointer from its hash's home (no user code).
    fn find_pointer(&self, entry: *mut Entry<K, V>, hash: u64) -> Option<usize> {
        let mut index = hash as usize & self.mask;
        for _ in 0..=self.mask {
            if self.slot(index).0.load(Relaxed) == EMPTY {
                return None;
            }
            if self.slot(index).1.load(Relaxed) == entry {
                return Some(index);
            }
            index = (index + 1) & self.mask;
        }
        None
    }
}

impl<K, V> Drop for Table<K, V> {
    fn drop(&mut self) {
        for shard in self.shards.iter() {
            let slots = shard.slots.swap(std::ptr::null_mut(), Relaxed);
            if !slots.is_null() {
                // SAFETY: `&mut self`: no reader or writer remains; the array and its live
                // entries are owned by the table alone.
                unsafe { reclaim::free_slots_with_entries(slots) };
            }
        }
        // The collector, dropped next, frees what was retired.
    }
}

// SAFETY: the table owns its keys and values (entries in its arenas) and hands out only shared
// references to them, from any thread: the bounds of `Send`/`Sync` of a map.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Table<K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Table<K, V> {}

/// Epoch-based reclamation: seize's, or, under loom, a list freed when the table drops (seize
/// is not loom-aware; the model checks the slot protocol, not the reclamation).
mod reclaim {
    use super::Slots;
    use crate::store::arena::Arena;

    /// Frees an array and the entries it holds.
    ///
    /// # Safety
    /// No other thread can reach the array or its entries, and no other array holds them.
    pub(super) unsafe fn free_slots_with_entries<K, V>(slots: *mut Slots<K, V>) {
        // SAFETY: the caller's contract.
        let slots = unsafe { Box::from_raw(slots) };
        let mut arena = None;
        for entry in slots.live_entries() {
            // SAFETY: the caller's contract: the entries are owned by this array alone, and
            // in no other; the array is gone, so the entry is unlinked (arena invariant 4).
            // The arena outlives the entries it holds (`Table`'s field order).
            unsafe {
                arena.get_or_insert(Arena::of(entry));
                Arena::set_linked(entry, false);
                Arena::free(entry);
            }
        }
        if let Some(arena) = arena {
            // Whole chunks are free now, but for the few entries retired one by one that
            // still wait for reclamation.
            // SAFETY: as above.
            unsafe { (*arena).sweep() };
        }
    }

    #[cfg(not(memoflight_loom))]
    pub(super) use seize_backed::{Collector, Pin};

    #[cfg(not(memoflight_loom))]
    mod seize_backed {
        use super::super::{Entry, Slots};
        use crate::store::arena::Arena;
        use seize::Guard as _;

        /// Removed entries wait in a batch per thread before they are handed to reclamation:
        /// a small batch keeps few removed values alive (a thread that stops calling holds at
        /// most this many, or as many as there are threads active if that is more) and frees
        /// them in small steps: 2 rather than 8 cut the 2-thread remove p99.9 by 3×
        /// (`benches/README.md`).
        const BATCH: usize = 2;

        pub(crate) struct Collector(seize::Collector);

        /// A thread inside a read or write: retired memory it could see stays allocated.
        pub(crate) enum Pin<'c> {
            Thread(seize::LocalGuard<'c>),
            /// During thread teardown (`crate::teardown`), when the thread's seize slot may be
            /// gone: a guard with a slot of its own.
            Owned(seize::OwnedGuard<'c>),
        }

        impl Collector {
            pub(crate) fn new() -> Self {
                Collector(seize::Collector::new().batch_size(BATCH))
            }

            #[inline(always)]
            pub(crate) fn pin(&self) -> Pin<'_> {
                if crate::teardown::thread_alive() {
                    Pin::Thread(self.0.enter())
                } else {
                    Pin::Owned(self.0.enter_owned())
                }
            }
        }

        unsafe fn reclaim_entry<K, V>(entry: *mut Entry<K, V>, _: &seize::Collector) {
            // SAFETY: retired once, after it was unlinked (invariant 5); its arena lives
            // while the collector does (`Table`'s field order).
            unsafe { Arena::free(entry) };
        }

        unsafe fn reclaim_slots<K, V>(slots: *mut Slots<K, V>, _: &seize::Collector) {
            // SAFETY: retired once; its entries moved to its successor (invariant 5).
            drop(unsafe { Box::from_raw(slots) });
        }

        unsafe fn reclaim_slots_with_entries<K, V>(slots: *mut Slots<K, V>, _: &seize::Collector) {
            // SAFETY: retired once by `clear`, which unlinked it with its entries.
            unsafe { super::free_slots_with_entries(slots) };
        }

        impl Pin<'_> {
            /// # Safety
            /// `entry` was unlinked under the shard lock, is retired once, and the lock is
            /// released (invariant 5).
            pub(crate) unsafe fn retire_entry<K, V>(&self, entry: *mut Entry<K, V>) {
                // SAFETY: the caller's contract.
                unsafe { self.retire(entry, reclaim_entry::<K, V>) }
            }

            /// # Safety
            /// As [`Pin::retire_entry`]; the array's entries are held by its successor.
            pub(crate) unsafe fn retire_slots<K, V>(&self, slots: *mut Slots<K, V>) {
                // SAFETY: the caller's contract.
                unsafe { self.retire(slots, reclaim_slots::<K, V>) }
            }

            /// # Safety
            /// As [`Pin::retire_entry`]; no other array holds the array's entries.
            pub(crate) unsafe fn retire_slots_with_entries<K, V>(&self, slots: *mut Slots<K, V>) {
                // SAFETY: the caller's contract.
                unsafe { self.retire(slots, reclaim_slots_with_entries::<K, V>) }
            }

            unsafe fn retire<T>(&self, ptr: *mut T, reclaim: unsafe fn(*mut T, &seize::Collector)) {
                // SAFETY: the callers' contract; `defer_retire` frees nothing before this
                // guard ends, so the caller may still read what it retired.
                unsafe {
                    match self {
                        Pin::Thread(guard) => guard.defer_retire(ptr, reclaim),
                        Pin::Owned(guard) => {
                            guard.defer_retire(ptr, reclaim);
                            // An owned guard's batch is nobody's to flush later.
                            guard.flush();
                        }
                    }
                }
            }

            /// Hands this thread's batch to reclamation now (after bulk removals).
            pub(crate) fn flush(&self) {
                match self {
                    Pin::Thread(guard) => guard.flush(),
                    Pin::Owned(guard) => guard.flush(),
                }
            }
        }
    }

    #[cfg(memoflight_loom)]
    pub(super) use list_backed::{Collector, Pin};

    #[cfg(memoflight_loom)]
    mod list_backed {
        use super::super::{Entry, Slots};
        use crate::store::arena::Arena;
        use crate::sync::{lock, Mutex};

        /// A retired pointer and the function that frees it.
        struct Retired(*mut (), unsafe fn(*mut ()));
        // SAFETY: only freed when the table drops, by the thread that drops it.
        unsafe impl Send for Retired {}

        /// Retired memory, freed when the table drops.
        pub(crate) struct Collector(Mutex<Vec<Retired>>);

        pub(crate) struct Pin<'c>(&'c Collector);

        unsafe fn free_entry<K, V>(entry: *mut ()) {
            // SAFETY: retired once; freed when no thread remains, before the arenas drop.
            unsafe { Arena::free(entry.cast::<Entry<K, V>>()) };
        }

        unsafe fn free_slots<K, V>(slots: *mut ()) {
            // SAFETY: as above; its entries moved to its successor.
            drop(unsafe { Box::from_raw(slots.cast::<Slots<K, V>>()) });
        }

        unsafe fn free_slots_with_entries<K, V>(slots: *mut ()) {
            // SAFETY: as above; no other array holds its entries.
            unsafe { super::free_slots_with_entries(slots.cast::<Slots<K, V>>()) };
        }

        impl Collector {
            pub(crate) fn new() -> Self {
                Collector(Mutex::new(Vec::new()))
            }

            pub(crate) fn pin(&self) -> Pin<'_> {
                Pin(self)
            }
        }

        impl Drop for Collector {
            fn drop(&mut self) {
                for Retired(ptr, free) in lock(&self.0).drain(..) {
                    // SAFETY: `&mut self`: no thread can reach retired memory any more.
                    unsafe { free(ptr) };
                }
            }
        }

        impl Pin<'_> {
            fn push(&self, retired: Retired) {
                lock(&(self.0).0).push(retired);
            }

            pub(crate) unsafe fn retire_entry<K, V>(&self, entry: *mut Entry<K, V>) {
                self.push(Retired(entry.cast(), free_entry::<K, V>));
            }

            pub(crate) unsafe fn retire_slots<K, V>(&self, slots: *mut Slots<K, V>) {
                self.push(Retired(slots.cast(), free_slots::<K, V>));
            }

            pub(crate) unsafe fn retire_slots_with_entries<K, V>(&self, slots: *mut Slots<K, V>) {
                self.push(Retired(slots.cast(), free_slots_with_entries::<K, V>));
            }

            pub(crate) fn flush(&self) {}
        }
    }
}

#[cfg(all(test, not(memoflight_loom)))]
mod tests {
    use super::*;

    /// `clear`, then the reclamation of what it retired, frees every shard's cells; a walk
    /// (`retain`) that removes everything does too.
    #[test]
    fn clear_and_retain_give_the_entries_memory_back() {
        let table = Table::new();
        let fill = || {
            for k in 0..10_000u64 {
                table.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k, k, |_| {});
            }
        };
        let held = || {
            let cells: usize = table.shards.iter().map(|s| s.arena.held().1).sum();
            let in_use: usize = table.shards.iter().map(|s| s.arena.in_use()).sum();
            (cells, in_use)
        };
        fill();
        assert!(held().0 >= 10_000 && held().1 == 10_000, "{:?}", held());
        table.clear(&mut |_, _| {});
        assert_eq!(held(), (0, 0));
        fill();
        table.retain(&mut |_, _| false, &mut |_, _| {});
        assert_eq!(held(), (0, 0));
    }

    /// Entries retired by threads that then exit may wait in their epoch batches long after
    /// `clear`; each keeps its own chunk, not its shard's every chunk.
    #[test]
    fn entries_still_retired_after_a_clear_keep_only_their_chunks() {
        let table = Table::new();
        let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..100_000u64 {
            table.insert(hash(k), k, k, |_| {});
        }
        let all = std::sync::Barrier::new(32);
        std::thread::scope(|s| {
            for t in 0..32u64 {
                let (table, all) = (&table, &all);
                s.spawn(move || {
                    let k = t * 3000;
                    table.remove(hash(k), |stored, _| *stored == k, |_| ());
                    table.insert(hash(k), k, k, |_| {});
                    all.wait();
                });
            }
        });
        table.clear(&mut |_, _| {});
        let cells: usize = table.shards.iter().map(|s| s.arena.held().1).sum();
        // At most 32 shards keep a retired entry's chunk (at most an eighth of the shard's
        // 1,600 cells) and their newest chunk, whose unused cells keep it: without the sweep,
        // 32 shards kept all 1,600.
        assert!(cells <= 32 * 2 * 1_600 / 8, "{cells} cells kept");
    }
}
