//! Where the table's entries live: packed in chunks per shard, so that a walk over a shard's
//! entries (`Table::retain`, behind `invalidate_if`) reads memory in order instead of chasing
//! one heap pointer per entry.
//!
//! # Why not a `Box` per entry
//!
//! Boxed one by one, a store's entries are scattered through the heap among their values; a
//! walk in slot order fetched each from a random address (a cache and TLB miss per entry), and
//! `invalidate_if` over 1M entries took 3–5× dashmap's `retain`, which reads its keys in place
//! (`benches/README.md`, "Entries in chunks"). Here a shard's entries share chunks, and a walk
//! reads them chunk after chunk. A new chunk holds an eighth of the cells the shard has (4 at
//! least, 1,024 and 64 KB at most): few chunks for a big shard (1,024 cells each at 1M entries,
//! where 64-cell chunks walked 1.5× slower), little unused room for a small one, and a small
//! chunk kept by an entry that waits for reclamation after `clear`.
//!
//! # Layout
//!
//! A cell is one word, its *head*, followed by the entry (uninitialized while free). The head
//! of a cell in use is the arena's address, with the low bit set while the table links the
//! entry ([`LINKED`]); the head of a free cell is the next free cell (the arena's stack of
//! returned cells, linked through their heads), so its low bit is clear. A cell is taken from
//! that stack, or else from the unused end of the newest chunk; a freed entry's cell is pushed
//! back on the stack without a lock (one compare-and-swap), so the cell last freed is the next
//! one used, still in cache. A chunk is allocated uninitialized, and a cell's head is written
//! when the cell is first handed out (under the book's mutex); a walk reads only the cells
//! handed out before it started.
//!
//! Chunks are kept until no cell of the arena is in use (after `clear`, or once every entry of
//! the shard is gone), then freed together: like dashmap's buckets, the cells of a store that
//! shrank stay allocated for the entries that come next. After `clear`, a few entries retired
//! one by one may still wait for reclamation (in the epoch batch of a thread that went idle
//! or exited); [`Arena::sweep`], run once the cleared entries are freed, then frees every chunk
//! but theirs.
//!
//! # The contract (numbered invariants; `SAFETY:` comments cite them)
//!
//! 1. **Chunks live while used.** Chunks leave the book only with its mutex held and no walk
//!    running ([`Walk`] counts itself in the book for as long as it reads chunks, and so does
//!    a sweep), and are freed after the mutex is released: all of them when no cell is in use
//!    (`in_use` is zero), or, by a sweep, those whose every cell it holds off the stack. A
//!    cell in use therefore keeps its chunk allocated, and so does a cell on the stack.
//! 2. **A cell holds an entry from [`Arena::alloc`] to [`Arena::free`]**: written before `alloc`
//!    returns its address, dropped by `free` before the cell is pushed on the stack. Between the
//!    two, the table decides who reads it (the table's invariant 5). `free` pushes the cell
//!    before it counts it out of `in_use`, so no chunk is freed under a push.
//! 3. **One popper.** Cells are popped off the stack only with the book's mutex held; pushes
//!    need no lock. A cell on the stack is popped by nobody else, so its head (the next cell)
//!    does not change while it is there, and a pop cannot see a stale top come back (no ABA).
//! 4. **The linked mark.** The table sets it when it stores the entry's pointer in its array and
//!    clears it when it takes the pointer out, before the entry is retired; a walker reads an
//!    entry only if it saw the mark set, loaded inside its epoch guard with `SeqCst` (the table's
//!    invariant 5 then keeps the entry allocated until the guard ends, as for a pointer loaded
//!    from a slot). Only a shard's writers, or `clear` for entries no array holds any more,
//!    change the mark.
//!
//! No user code runs under the book's mutex: an entry is written after its cell is taken and
//! dropped before its cell is given back.
#![allow(unsafe_code)]

use crate::sync::{lock, AtomicPtr, AtomicUsize, Mutex};
use std::cell::UnsafeCell;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// The low bit of a cell's head: the table links the entry.
const LINKED: usize = 1;
/// The most cells in a chunk.
const MOST_CELLS: usize = 1024;
/// A chunk holds up to this many bytes of cells (at least one cell), so that big entries do not
/// come 1,024 to a chunk.
const CHUNK_BYTES: usize = 65536;
/// The fewest cells in a chunk; a new chunk has an eighth of the shard's cells, up to the most.
const FEWEST_CELLS: usize = 4;

/// One shard's entries.
pub(crate) struct Arena<T> {
    /// The stack of returned cells (invariants 2 and 3); null when empty.
    returned: AtomicPtr<Cell<T>>,
    /// Cells taken and not given back yet.
    in_use: AtomicUsize,
    book: Mutex<Book<T>>,
}

/// What the arena's mutex guards.
struct Book<T> {
    /// Allocated uninitialized: a cell's head is written when the cell is first handed out
    /// (a 1,024-cell chunk initialized whole took a page fault per 4 KB at once, and showed
    /// in the p99.9 of inserts).
    chunks: Vec<Box<[MaybeUninit<Cell<T>>]>>,
    /// Cells of the newest chunk never used yet: that chunk's cells from here on.
    unused: usize,
    /// Cells in all chunks.
    cells: usize,
    /// Walks running (invariant 1).
    walkers: usize,
}

/// An entry's place.
#[repr(C)]
struct Cell<T> {
    /// In use: the arena's address, with [`LINKED`]. Free: the next free cell.
    head: AtomicUsize,
    entry: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Cell<T> {
    fn of(entry: *mut T) -> *const Cell<T> {
        entry
            .cast::<u8>()
            .wrapping_sub(offset_of!(Cell<T>, entry))
            .cast::<Cell<T>>()
    }

    fn entry(cell: *const Cell<T>) -> *mut T {
        cell.cast::<u8>()
            .wrapping_add(offset_of!(Cell<T>, entry))
            .cast::<T>()
            .cast_mut()
    }
}

impl<T> Arena<T> {
    pub(crate) fn new() -> Self {
        Arena {
            returned: AtomicPtr::new(std::ptr::null_mut()),
            in_use: AtomicUsize::new(0),
            book: Mutex::new(Book {
                chunks: Vec::new(),
                unused: 0,
                cells: 0,
                walkers: 0,
            }),
        }
    }

    /// Stores `entry` in a free cell and returns its address, valid until [`Arena::free`].
    ///
    /// The arena must not move while it holds entries (the table keeps it in a boxed shard).
    pub(crate) fn alloc(&self, entry: T) -> *mut T {
        let cell = {
            let mut book = lock(&self.book);
            self.in_use.fetch_add(1, Relaxed);
            match self.pop() {
                Some(cell) => cell,
                None => book.fresh(),
            }
        };
        // SAFETY: invariant 2: the cell was free and is now this caller's alone; its chunk
        // stays allocated while it is in use (invariant 1).
        unsafe {
            (*cell)
                .head
                .store(std::ptr::from_ref(self) as usize, Relaxed);
            (*(*cell).entry.get()).write(entry);
        }
        Cell::entry(cell)
    }

    /// Pops a returned cell. The caller holds the book's mutex (invariant 3).
    fn pop(&self) -> Option<*const Cell<T>> {
        let mut top = self.returned.load(Acquire);
        while !top.is_null() {
            // SAFETY: invariants 1 and 3: a cell on the stack is in a live chunk, and its head
            // is stable while it is there.
            let next = unsafe { (*top).head.load(Relaxed) } as *mut Cell<T>;
            match self
                .returned
                .compare_exchange_weak(top, next, Acquire, Acquire)
            {
                Ok(_) => return Some(top),
                Err(now) => top = now,
            }
        }
        None
    }

    /// Drops the entry at `entry` (user code, outside every lock) and frees its cell, even if
    /// the drop panics.
    ///
    /// # Safety
    /// `entry` came from [`Arena::alloc`] of an arena that still exists, is freed once, and
    /// nothing reads it any more (the table's invariant 5); it is not linked.
    pub(crate) unsafe fn free(entry: *mut T) {
        /// Hands the cell back when dropped: after the entry's drop, or during its panic.
        struct GiveBack<T>(*const Cell<T>);
        impl<T> Drop for GiveBack<T> {
            fn drop(&mut self) {
                // SAFETY: the caller's contract: the cell came from `alloc` and its entry is
                // dropped.
                unsafe { give_back(self.0) };
            }
        }
        let give_back = GiveBack(Cell::of(entry));
        // SAFETY: the caller's contract and invariant 2: the cell holds an entry nobody reads.
        unsafe { std::ptr::drop_in_place(entry) };
        drop(give_back);
    }

    /// Marks the entry at `entry` linked or not (invariant 4).
    ///
    /// # Safety
    /// `entry` came from [`Arena::alloc`] and is not freed; the caller is the shard's writer
    /// (it holds the shard's lock) or the entry is in no array any more.
    pub(crate) unsafe fn set_linked(entry: *mut T, linked: bool) {
        // SAFETY: the caller's contract: the cell is in use, so its chunk is allocated
        // (invariant 1).
        let head = unsafe { &(*Cell::of(entry)).head };
        let arena = head.load(Relaxed) & !LINKED;
        head.store(arena | usize::from(linked), Release);
    }

    /// Starts a walk over the entries the table links, chunk after chunk.
    pub(crate) fn walk(&self) -> Walk<'_, T> {
        let mut book = lock(&self.book);
        book.walkers += 1;
        let newest = book.chunks.len().wrapping_sub(1);
        let chunks = book
            .chunks
            .iter()
            .enumerate()
            .map(|(at, chunk)| {
                // The cells handed out so far: their heads are written.
                let handed_out = chunk.len() - if at == newest { book.unused } else { 0 };
                (chunk.as_ptr().cast::<Cell<T>>(), handed_out)
            })
            .collect();
        Walk {
            arena: self,
            chunks,
        }
    }

    /// The arena of an entry it holds.
    ///
    /// # Safety
    /// `entry` came from [`Arena::alloc`] and is not freed.
    pub(crate) unsafe fn of(entry: *mut T) -> *const Arena<T> {
        // SAFETY: the caller's contract: the cell is in use, so its head names its arena.
        (unsafe { (*Cell::of(entry)).head.load(Relaxed) } & !LINKED) as *const Arena<T>
    }

    /// Frees the chunks whose cells are all free, keeping the others: after `clear`, when a
    /// few retired entries still wait for reclamation (each in some thread's epoch batch) and
    /// would otherwise keep every chunk of their shard. O(free cells), with the book's mutex
    /// held only to take the stack, to give back what stays, and to drop the freed chunks from
    /// the book; nothing is freed while a walk runs. It runs where the cleared entries are
    /// freed (epoch reclamation, on whichever thread ends the last read that could see them),
    /// and inserts into the shard meanwhile take fresh cells rather than wait for it.
    pub(crate) fn sweep(&self) {
        let (chunks, mut free) = {
            let mut book = lock(&self.book);
            if book.walkers > 0 {
                return;
            }
            // Counted as a walk: no `trim` frees a chunk while its cells are off the stack.
            book.walkers += 1;
            let chunks: Vec<(usize, usize)> = book
                .chunks
                .iter()
                .map(|chunk| {
                    let start = chunk.as_ptr() as usize;
                    (start, start + size_of::<Cell<T>>() * chunk.len())
                })
                .collect();
            // Invariant 3: taken whole by the popper, so no pop is half done.
            (chunks, self.returned.swap(std::ptr::null_mut(), Acquire))
        };
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        order.sort_unstable_by_key(|&at| chunks[at].0);
        let chunk_of = |cell: *mut Cell<T>| {
            let at = order.partition_point(|&at| chunks[at].0 <= cell as usize) - 1;
            order[at]
        };
        let mut free_in = vec![0usize; chunks.len()];
        let mut cell = free;
        while !cell.is_null() {
            free_in[chunk_of(cell)] += 1;
            // SAFETY: invariant 1: a cell off the stack is in a chunk this sweep keeps alive.
            cell = unsafe { (*cell).head.load(Relaxed) } as *mut Cell<T>;
        }
        let empty: Vec<bool> = chunks
            .iter()
            .zip(&free_in)
            .map(|(&(start, end), &free)| free * size_of::<Cell<T>>() == end - start)
            .collect();
        // The cells of the chunks that stay, and those of the empty ones, relinked apart.
        let (mut stay, mut go) = (List::default(), List::default());
        while !free.is_null() {
            // SAFETY: as above.
            let next = unsafe { (*free).head.load(Relaxed) } as *mut Cell<T>;
            if empty[chunk_of(free)] {
                // SAFETY: as above.
                unsafe { go.append(free) };
            } else {
                // SAFETY: as above.
                unsafe { stay.append(free) };
            }
            free = next;
        }
        let freed: Vec<Box<[MaybeUninit<Cell<T>>]>> = {
            let mut book = lock(&self.book);
            // SAFETY: the cells are off the stack, in chunks kept alive by this sweep.
            unsafe { self.push_list(stay) };
            if book.walkers > 1 {
                // A walk started meanwhile and may read the empty chunks: keep them.
                // SAFETY: as above.
                unsafe { self.push_list(go) };
                book.walkers -= 1;
                return;
            }
            // Matched by address: a chunk added since the snapshot is not in it, and stays.
            // An empty chunk has no cell left to use (none on the stack, and the newest
            // chunk's unused cells would have kept it), so `unused` still names the last one.
            let mut emptied: Vec<usize> = (0..chunks.len())
                .filter(|&at| empty[at])
                .map(|at| chunks[at].0)
                .collect();
            emptied.sort_unstable();
            let (kept, freed): (Vec<_>, Vec<_>) = std::mem::take(&mut book.chunks)
                .into_iter()
                .partition(|chunk| emptied.binary_search(&(chunk.as_ptr() as usize)).is_err());
            book.chunks = kept;
            book.cells -= freed.iter().map(|chunk| chunk.len()).sum::<usize>();
            book.walkers -= 1;
            freed
        };
        drop(freed);
        if self.in_use.load(Acquire) == 0 {
            self.trim();
        }
    }

    /// Pushes a list of free cells on the stack. The caller holds the book's mutex, so that no
    /// pop is half done (invariant 3).
    ///
    /// # Safety
    /// The cells are free, off the stack, and in chunks that stay allocated.
    unsafe fn push_list(&self, list: List<T>) {
        if list.last.is_null() {
            return;
        }
        let mut top = self.returned.load(Relaxed);
        loop {
            // SAFETY: the caller's contract.
            unsafe { (*list.last).head.store(top as usize, Relaxed) };
            match self
                .returned
                .compare_exchange_weak(top, list.first, Release, Relaxed)
            {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Frees every chunk if no cell is in use and no walk runs (invariant 1).
    fn trim(&self) {
        let chunks = {
            let mut book = lock(&self.book);
            if book.walkers > 0 || self.in_use.load(Acquire) > 0 {
                return;
            }
            // Every cell is on the stack: empty it with them.
            self.returned.store(std::ptr::null_mut(), Relaxed);
            book.unused = 0;
            book.cells = 0;
            std::mem::take(&mut book.chunks)
        };
        drop(chunks);
    }
}

/// Free cells linked through their heads, in a sweep's hands.
struct List<T> {
    first: *mut Cell<T>,
    last: *mut Cell<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            first: std::ptr::null_mut(),
            last: std::ptr::null_mut(),
        }
    }
}

impl<T> List<T> {
    /// Appends a free cell.
    ///
    /// # Safety
    /// The cell and the list's are free, off the stack, and in chunks that stay allocated.
    unsafe fn append(&mut self, cell: *mut Cell<T>) {
        if self.last.is_null() {
            self.first = cell;
        } else {
            // SAFETY: the caller's contract.
            unsafe { (*self.last).head.store(cell as usize, Relaxed) };
        }
        self.last = cell;
    }
}

/// Pushes `cell` on its arena's stack, then counts it out of use (invariant 2), freeing the
/// chunks if it was the last.
///
/// # Safety
/// The cell came from `alloc` of an arena that still exists, and its entry is dropped.
unsafe fn give_back<T>(cell: *const Cell<T>) {
    // SAFETY: invariant 1: the cell is in use, so its chunk exists; its head names its arena,
    // which outlives its cells (the caller's contract).
    let (cell, arena) = unsafe {
        (
            &*cell,
            &*(((*cell).head.load(Relaxed) & !LINKED) as *const Arena<T>),
        )
    };
    let mut top = arena.returned.load(Relaxed);
    loop {
        cell.head.store(top as usize, Relaxed);
        match arena.returned.compare_exchange_weak(
            top,
            std::ptr::from_ref(cell).cast_mut(),
            Release,
            Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => top = now,
        }
    }
    if arena.in_use.fetch_sub(1, Release) == 1 {
        arena.trim();
    }
}

impl<T> Book<T> {
    /// A cell never used, from a new chunk if the newest has none left.
    fn fresh(&mut self) -> *const Cell<T> {
        if self.unused == 0 {
            let most = (CHUNK_BYTES / size_of::<Cell<T>>()).clamp(1, MOST_CELLS);
            let cells = (self.cells / 8).clamp(FEWEST_CELLS.min(most), most);
            // Uninitialized cells: collecting them writes nothing (`Box::new_uninit_slice` is
            // newer than the crate's MSRV).
            self.chunks.push(
                std::iter::repeat_with(MaybeUninit::uninit)
                    .take(cells)
                    .collect(),
            );
            self.cells += cells;
            self.unused = cells;
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just added");
        let cell = chunk[chunk.len() - self.unused].as_mut_ptr();
        self.unused -= 1;
        // SAFETY: a cell of a live chunk, never handed out: this writes its head before any
        // walk can read it (walks read the cells handed out before they started).
        unsafe { std::ptr::addr_of_mut!((*cell).head).write(AtomicUsize::new(0)) };
        cell
    }
}

#[cfg(test)]
impl<T> Arena<T> {
    /// Chunks and cells the book holds.
    pub(crate) fn held(&self) -> (usize, usize) {
        let book = lock(&self.book);
        (book.chunks.len(), book.cells)
    }

    /// Cells in use.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }
}

/// A walk over an arena's linked entries: the chunks that existed when it started stay
/// allocated until it ends (invariant 1).
pub(crate) struct Walk<'a, T> {
    arena: &'a Arena<T>,
    /// Each chunk's first cell, and the number of its cells handed out when the walk started.
    chunks: Vec<(*const Cell<T>, usize)>,
}

impl<T> Walk<'_, T> {
    /// The entries linked when their mark is read, chunk after chunk (in address order within
    /// a chunk). The caller is inside an epoch guard, and reads an entry only while it lives
    /// (invariant 4).
    pub(crate) fn linked(&self) -> impl Iterator<Item = *mut T> + '_ {
        self.chunks.iter().flat_map(|&(first, handed_out)| {
            // SAFETY: invariant 1: listed when the walk started, and kept while it runs; the
            // first `handed_out` cells have their heads written (`Book::fresh`).
            let cells = unsafe { std::slice::from_raw_parts(first, handed_out) };
            cells
                .iter()
                .filter(|cell| cell.head.load(SeqCst) & LINKED != 0)
                .map(|cell| Cell::entry(cell))
        })
    }
}

impl<T> Drop for Walk<'_, T> {
    /// Ends the walk; the last one frees the chunks if every cell was freed meanwhile.
    fn drop(&mut self) {
        let last = {
            let mut book = lock(&self.arena.book);
            book.walkers -= 1;
            book.walkers == 0
        };
        if last {
            self.arena.trim();
        }
    }
}

#[cfg(all(test, not(memoflight_loom)))]
mod tests {
    use super::*;

    fn linked(arena: &Arena<u64>) -> Vec<u64> {
        let walk = arena.walk();
        // SAFETY: the tests free no entry they see linked.
        walk.linked().map(|entry| unsafe { *entry }).collect()
    }

    #[test]
    fn chunks_grow_with_the_arena_and_are_freed_once_empty() {
        let arena = Arena::new();
        let entries: Vec<*mut u64> = (0..1000).map(|n| arena.alloc(n)).collect();
        let (chunks, cells) = arena.held();
        assert!(
            (1000..=1000 + 1000 / 8 + FEWEST_CELLS).contains(&cells),
            "{cells}"
        );
        assert!(chunks <= 48, "{chunks} chunks");
        for &entry in &entries {
            // SAFETY: allocated above, freed once, never linked.
            unsafe { Arena::free(entry) };
        }
        assert_eq!(arena.held(), (0, 0), "an empty chunk is freed");
    }

    #[test]
    fn a_walk_sees_the_linked_entries_in_memory_order_and_keeps_chunks_emptied_meanwhile() {
        let arena = Arena::new();
        let entries: Vec<*mut u64> = (0..200).map(|n| arena.alloc(n)).collect();
        for &entry in entries.iter().filter(|&&entry| unsafe { *entry } % 2 == 0) {
            // SAFETY: allocated above.
            unsafe { Arena::set_linked(entry, true) };
        }
        assert_eq!(linked(&arena), (0..200).step_by(2).collect::<Vec<_>>());

        let walk = arena.walk();
        let chunks = arena.held().0;
        for &entry in &entries {
            // SAFETY: allocated above, freed once; unlinked first.
            unsafe {
                Arena::set_linked(entry, false);
                Arena::free(entry);
            }
        }
        assert_eq!(arena.held().0, chunks, "a walk keeps its chunks");
        assert_eq!(walk.linked().count(), 0);
        drop(walk);
        assert_eq!(arena.held(), (0, 0), "the walk frees them when it ends");
    }

    #[test]
    fn a_sweep_frees_the_chunks_left_empty_and_keeps_the_others_usable() {
        let arena = Arena::new();
        let entries: Vec<*mut u64> = (0..2000).map(|n| arena.alloc(n)).collect();
        let (kept, gone): (Vec<_>, Vec<_>) = entries
            .iter()
            .copied()
            // SAFETY: allocated above, not freed yet.
            .partition(|&entry| unsafe { *entry } % 500 == 0);
        for entry in gone {
            // SAFETY: allocated above, freed once.
            unsafe { Arena::free(entry) };
        }
        assert!(
            arena.held().1 >= 2000,
            "nothing freed while 4 cells are in use"
        );
        arena.sweep();
        let (chunks, cells) = arena.held();
        // The chunks of the 4 entries, and the newest, whose unused cells keep it.
        assert!(
            chunks <= 5 && cells <= 1000,
            "{chunks} chunks, {cells} cells"
        );
        // SAFETY: the kept entries are untouched.
        let values: Vec<u64> = kept.iter().map(|&entry| unsafe { *entry }).collect();
        assert_eq!(values, [0, 500, 1000, 1500]);
        let more: Vec<*mut u64> = (0..300).map(|n| arena.alloc(n)).collect();
        // SAFETY: allocated above, not freed yet.
        assert!(more
            .iter()
            .enumerate()
            .all(|(n, &entry)| unsafe { *entry } == n as u64));
        for &entry in kept.iter().chain(&more) {
            // SAFETY: allocated above, freed once.
            unsafe { Arena::free(entry) };
        }
        assert_eq!(arena.held(), (0, 0));
    }

    #[test]
    fn a_panicking_drop_still_gives_its_cell_back() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("user Drop");
            }
        }
        let arena = Arena::new();
        let bomb = arena.alloc(Bomb);
        let kept = arena.alloc(Bomb);
        // SAFETY: allocated above, freed once.
        let panicked = std::panic::catch_unwind(|| unsafe { Arena::free(bomb) });
        assert!(panicked.is_err());
        assert_eq!(
            arena.held().1,
            FEWEST_CELLS,
            "one chunk, still holding `kept`"
        );
        // SAFETY: as above.
        let panicked = std::panic::catch_unwind(|| unsafe { Arena::free(kept) });
        assert!(panicked.is_err());
        assert_eq!(arena.held(), (0, 0));
    }

    #[test]
    fn big_entries_take_small_chunks() {
        let arena = Arena::new();
        let entry = arena.alloc([0u8; 40_000]);
        assert_eq!(arena.held(), (1, 1), "a 64 KB chunk holds one 40 KB entry");
        // SAFETY: allocated above, freed once.
        unsafe { Arena::free(entry) };
        let arena = Arena::new();
        let entry = arena.alloc(());
        assert_eq!(arena.held(), (1, FEWEST_CELLS));
        // SAFETY: as above.
        unsafe { Arena::free(entry) };
    }
}

/// Model checks of the stack of returned cells: pushes without a lock against the one popper,
/// and the chunks' lifetime against walks (invariants 1–3). Run by CI with the loom tests:
/// `RUSTFLAGS="--cfg memoflight_loom" cargo test -p memoflight-core --lib store::arena --release`.
#[cfg(all(test, memoflight_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A pointer sent to another model thread.
    struct Sent(*mut u32);
    // SAFETY: each model hands an entry to one thread at a time.
    unsafe impl Send for Sent {}

    /// Another thread frees `theirs_first` and allocates while this one runs `here` and
    /// allocates: the two get distinct cells, and freeing both frees the chunks.
    fn allocations_racing(
        arena: Arc<Arena<u32>>,
        theirs_first: Sent,
        here: impl FnOnce(&Arena<u32>),
    ) {
        let other = {
            let arena = arena.clone();
            thread::spawn(move || {
                // SAFETY: allocated by the model, freed once.
                unsafe { Arena::free(theirs_first.0) };
                Sent(arena.alloc(2))
            })
        };
        here(&arena);
        let mine = arena.alloc(1);
        let theirs = other.join().unwrap().0;
        assert_ne!(mine, theirs, "one cell handed out twice");
        // SAFETY: both allocated, neither freed yet.
        assert_eq!(unsafe { (*mine, *theirs) }, (1, 2));
        // SAFETY: freed once each.
        unsafe {
            Arena::free(mine);
            Arena::free(theirs);
        }
        assert_eq!(arena.held(), (0, 0), "the last free frees the chunks");
    }

    #[test]
    fn frees_and_allocations_racing_never_share_a_cell() {
        loom::model(|| {
            let arena = Arc::new(Arena::new());
            let (a, b) = (Sent(arena.alloc(0)), Sent(arena.alloc(0)));
            // SAFETY: allocated above, freed once.
            allocations_racing(arena, b, move |_| unsafe { Arena::free(a.0) });
        });
    }

    #[test]
    fn a_sweep_racing_a_free_and_an_allocation_loses_no_cell() {
        loom::model(|| {
            let arena = Arc::new(Arena::new());
            let (a, b) = (arena.alloc(0), Sent(arena.alloc(0)));
            // SAFETY: allocated above, freed once.
            unsafe { Arena::free(a) };
            allocations_racing(arena, b, Arena::sweep);
        });
    }

    #[test]
    fn a_sweep_frees_no_chunk_a_walk_started_during_it_reads() {
        loom::model(|| {
            let arena = Arc::new(Arena::new());
            // The first chunk's cells, all freed; `kept` in the second chunk.
            let first: Vec<*mut u32> = (0..FEWEST_CELLS as u32).map(|n| arena.alloc(n)).collect();
            let kept = arena.alloc(9);
            // SAFETY: allocated above; each freed once.
            unsafe {
                Arena::set_linked(kept, true);
                first.iter().for_each(|&entry| Arena::free(entry));
            }
            let sweeper = {
                let arena = arena.clone();
                thread::spawn(move || arena.sweep())
            };
            let walk = arena.walk();
            let seen = walk.linked().count();
            sweeper.join().unwrap();
            assert_eq!(
                arena.held().0,
                walk.chunks.len(),
                "a chunk a walk reads was freed"
            );
            assert_eq!(seen, 1);
            drop(walk);
            // SAFETY: unlinked, then freed once.
            unsafe {
                Arena::set_linked(kept, false);
                Arena::free(kept);
            }
            assert_eq!(arena.held(), (0, 0));
        });
    }

    #[test]
    fn a_walk_keeps_the_chunks_of_an_entry_freed_under_it() {
        loom::model(|| {
            let arena = Arc::new(Arena::new());
            let entry = Sent(arena.alloc(7));
            // SAFETY: allocated above, not freed.
            unsafe { Arena::set_linked(entry.0, true) };
            let walk = arena.walk();
            let freer = thread::spawn(move || {
                // SAFETY: unlinked, then freed once.
                unsafe {
                    Arena::set_linked(entry.0, false);
                    Arena::free(entry.0);
                }
            });
            assert!(walk.linked().count() <= 1);
            assert_eq!(arena.held().0, 1, "a walk keeps its chunks");
            freer.join().unwrap();
            drop(walk);
            assert_eq!(arena.held(), (0, 0), "the walk's end frees them");
        });
    }
}
