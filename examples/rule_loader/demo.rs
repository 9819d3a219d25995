//! The logic of the `rule_loader` example, shared with `tests/test_rule_loader.rs`.
//!
//! The scenario is a real bug. A hand-rolled `@cached` decorator checked its cache under a lock,
//! released the lock, ran the function and stored the result. Four threads called
//! `get_all_rules()` at once: all four missed, all four read the 53 rule files (212 reads
//! instead of 53, four times the CPU, last write wins).
//!
//! This module runs the same load both ways, N threads released together by a [`Barrier`]:
//!
//! - [`run_memoflight`]: through [`load_all_rules`], memoized with `#[memoflight::cached]`. One
//!   thread loads, the others wait for its result and share it.
//! - [`run_naive`]: through [`NaiveCache`], the check-then-act cache of the bug report.
//!
//! Each run returns a [`Report`]: what the cache counted, how many files were read, what
//! every thread did and when, and every thread's result.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use memoflight::cached;

// `rules.rs` is a sibling of this file whether this file is the example's module or is
// included by the test with `#[path]`. Not every part of the rule model is used by both.
#[allow(dead_code)]
#[path = "rules.rs"]
pub mod rules;

pub use rules::{LoadError, RuleSet};

/// What a load returns: the shared rule set, or why it could not be built.
pub type LoadResult = Result<Arc<RuleSet>, LoadError>;

/// Loads every `*.json` rule file in `dir`, memoized per directory (the key is `dir` as a
/// `PathBuf`).
///
/// Only `Ok` is cached; a failed load is retried by the next call. Callers that arrive while a
/// load is running wait for it and get a clone of its result, its error included
/// (`LoadError: Clone`).
///
/// The return type is spelled out rather than written as [`LoadResult`]: `#[cached]` sees
/// that a function returns a `Result` (and caches only `Ok`) from the type's name.
#[cached]
pub fn load_all_rules(dir: &Path) -> Result<Arc<RuleSet>, LoadError> {
    let started = Instant::now();
    let result = read_rule_dir(dir);
    // Tell the calling thread that the body ran on it, and for how long.
    BODY.set(Some((started, Instant::now())));
    hold_until_others_wait();
    result
}

/// The body of [`load_all_rules`]: list, read (counting each read), parse, assemble, and log
/// the start and end of the load on behalf of the run in progress.
fn read_rule_dir(dir: &Path) -> LoadResult {
    let files = rules::list_rule_files(dir).inspect_err(|_| log("load failed".into()))?;
    log(format!("loading {} rule files", files.len()));
    let mut parsed = Vec::with_capacity(files.len());
    for path in files {
        count_file_read();
        let latency = Duration::from_micros(IO_LATENCY_US.load(Ordering::Relaxed));
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let loaded = std::fs::read_to_string(&path)
            .map_err(|error| LoadError::read_file(&path, error))
            .and_then(|text| rules::parse_rule_file(&path, &text));
        match loaded {
            Ok(rule) => parsed.push((path, rule)),
            Err(error) => {
                log(format!("load failed after {} file reads", parsed.len() + 1));
                return Err(error);
            }
        }
    }
    let rule_set = rules::build_rule_set(parsed).inspect_err(|_| log("load failed".into()))?;
    let by_severity = rule_set
        .count_by_severity()
        .map(|(s, n)| format!("{n} {s}"));
    log(format!(
        "{} rules loaded ({})",
        rule_set.len(),
        by_severity.join(", ")
    ));
    Ok(Arc::new(rule_set))
}

/// The hand-rolled cache from the bug report: check under the lock, unlock, load, lock again and
/// store. Nothing stops several callers from missing at once, and the last store wins.
pub struct NaiveCache {
    slot: Mutex<Option<Arc<RuleSet>>>,
    /// Holds the check-then-act gap open: every caller passes this barrier between its check
    /// and its load, so all N callers have checked (and missed) before any of them stores.
    /// Without it the race needs unlucky timing; with it, it reproduces on every run. It is
    /// sized for one round of N concurrent calls, which is all a run makes.
    gap: Barrier,
    hits: AtomicU64,
}

impl NaiveCache {
    /// An empty cache whose check-then-act gap is held open for `callers` concurrent calls.
    pub fn new(callers: usize) -> Self {
        NaiveCache {
            slot: Mutex::new(None),
            gap: Barrier::new(callers),
            hits: AtomicU64::new(0),
        }
    }

    /// The cached rule set, or a fresh load of `dir` (stored unless it failed).
    pub fn get(&self, dir: &Path) -> LoadResult {
        // Check (the lock is released at the end of this statement)...
        if let Some(rules) = lock(&self.slot).clone() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(rules);
        }
        // ...the gap, where other callers check and miss too...
        self.gap.wait();
        // ...and act: load without any cache, then store. Last write wins.
        let rules = load_all_rules_no_cache(dir)?;
        *lock(&self.slot) = Some(Arc::clone(&rules));
        Ok(rules)
    }

    /// The rule set the cache holds now.
    pub fn cached(&self) -> Option<Arc<RuleSet>> {
        lock(&self.slot).clone()
    }
}

/// A time interval, measured from the instant the threads were released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Duration,
    pub end: Duration,
}

impl Span {
    fn between(epoch: Instant, (start, end): (Instant, Instant)) -> Self {
        Span {
            start: start.saturating_duration_since(epoch),
            end: end.saturating_duration_since(epoch),
        }
    }

    /// How long the interval lasted.
    pub fn len(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// One log line written by the body of [`load_all_rules`].
#[derive(Clone, Debug)]
pub struct LogLine {
    /// When, from the instant the threads were released.
    pub at: Duration,
    /// The name of the thread the body ran on.
    pub thread: String,
    pub message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.at.as_secs_f64() * 1e3;
        write!(f, "{ms:8.3} ms  {:<9} {}", self.thread, self.message)
    }
}

/// What one worker thread did.
#[derive(Debug)]
pub struct ThreadRecord {
    /// `worker-0`, `worker-1`, ...
    pub name: String,
    /// Its call, from entering the cache to getting a result.
    pub call: Span,
    /// When the load itself (the function's body) ran on this thread, if it did.
    pub body: Option<Span>,
    pub result: LoadResult,
}

impl ThreadRecord {
    /// Whether the function's body ran on this thread (rather than it getting someone else's
    /// result).
    pub fn computed(&self) -> bool {
        self.body.is_some()
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Executions of the body: loads of the whole directory.
    pub executions: u64,
    /// Rule files read, summed over every load.
    pub file_reads: usize,
    /// Calls that waited for another caller's load instead of loading (coalesced).
    pub waits: u64,
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that missed the cache (memoflight counts a wait as a miss first).
    #[allow(dead_code)] // read by the test
    pub misses: u64,
    /// One record per thread, in thread order.
    pub records: Vec<ThreadRecord>,
    /// The log lines the loads wrote, in order (the example prints them as they are written).
    #[allow(dead_code)] // read by the test
    pub log: Vec<LogLine>,
    /// The rule set the cache held at the end of the run.
    pub cached: Option<Arc<RuleSet>>,
}

impl Report {
    /// A memoflight run's report: the cache's counters as differences between `before` and
    /// `after`, so that runs in one process are independent.
    fn counted(
        before: memoflight::Stats,
        after: memoflight::Stats,
        records: Vec<ThreadRecord>,
        probe: &Probe,
        cached: Option<Arc<RuleSet>>,
    ) -> Report {
        Report {
            executions: after.executions - before.executions,
            file_reads: probe.file_reads.load(Ordering::SeqCst),
            waits: after.waits - before.waits,
            hits: after.hits - before.hits,
            misses: after.misses - before.misses,
            records,
            log: lock(&probe.log).clone(),
            cached,
        }
    }

    /// Time spent inside the function's body, summed over every thread that ran it.
    pub fn work_time(&self) -> Duration {
        self.records
            .iter()
            .filter_map(|r| r.body)
            .map(|b| b.len())
            .sum()
    }

    /// Every thread's result, in thread order.
    pub fn results(&self) -> impl Iterator<Item = &LoadResult> {
        self.records.iter().map(|r| &r.result)
    }

    /// The first error any thread got, if any did.
    pub fn first_error(&self) -> Option<&LoadError> {
        self.results().find_map(|r| r.as_ref().err())
    }

    /// How many different rule sets (by address, not content) the threads got.
    pub fn distinct_rule_sets(&self) -> usize {
        let mut seen: Vec<&Arc<RuleSet>> = Vec::new();
        for rules in self.results().flatten() {
            if !seen.iter().any(|s| Arc::ptr_eq(s, rules)) {
                seen.push(rules);
            }
        }
        seen.len()
    }
}

/// Runs `threads` concurrent calls of the memoized [`load_all_rules`] on `dir`.
///
/// The cache is a `static` shared by the whole process: the run clears it first and reports
/// its counters as differences, so repeated runs are independent (but must not overlap).
pub fn run_memoflight(dir: &Path, threads: usize) -> Report {
    memoflight_run(dir, threads, false)
}

/// Like [`run_memoflight`], but the thread that loads does not return before every other
/// caller is waiting for it. The count of waits is then exact (`threads - 1`, no hits), and a
/// failing load reaches every caller; otherwise a caller that arrives after a load failed
/// starts a new one. For tests: it turns timing into a guarantee.
#[allow(dead_code)] // used by tests/test_rule_loader.rs, not by the example
pub fn run_memoflight_coalesced(dir: &Path, threads: usize) -> Report {
    memoflight_run(dir, threads, true)
}

fn memoflight_run(dir: &Path, threads: usize, hold: bool) -> Report {
    let cache = load_all_rules_cache();
    cache.clear();
    let before = cache.stats();
    let hold = hold.then(|| before.waits + threads.saturating_sub(1) as u64);
    let key = dir.to_path_buf();
    let (records, probe) = run_threads(threads, hold, move || load_all_rules(&key));
    Report::counted(before, cache.stats(), records, &probe, cache.get(dir))
}

/// Runs `threads` concurrent calls of the same load through a fresh [`NaiveCache`], whose
/// check-then-act gap is held open so that every thread misses and loads.
pub fn run_naive(dir: &Path, threads: usize) -> Report {
    let naive = Arc::new(NaiveCache::new(threads));
    let key = dir.to_path_buf();
    let calls = Arc::clone(&naive);
    let (records, probe) = run_threads(threads, None, move || calls.get(&key));
    let executions = records.iter().filter(|r| r.computed()).count() as u64;
    let hits = naive.hits.load(Ordering::Relaxed);
    let log = lock(&probe.log).clone();
    Report {
        executions,
        file_reads: probe.file_reads.load(Ordering::SeqCst),
        waits: 0,
        hits,
        misses: threads as u64 - hits,
        records,
        log,
        cached: naive.cached(),
    }
}

/// Whether the body prints its log lines as it writes them (the example turns this on; tests
/// read them from the [`Report`]).
static ECHO: AtomicBool = AtomicBool::new(false);

/// Extra time added to each file read, in microseconds (0 in tests).
static IO_LATENCY_US: AtomicU64 = AtomicU64::new(0);

/// Adds `latency` to every file read, standing in for a slower filesystem, so that a load takes
/// long enough for concurrent callers to find it in flight on any machine.
#[allow(dead_code)] // used by the example, not by the test
pub fn set_io_latency(latency: Duration) {
    IO_LATENCY_US.store(latency.as_micros() as u64, Ordering::Relaxed);
}

/// Makes the body of [`load_all_rules`] print its log lines as it writes them.
#[allow(dead_code)] // used by the example, not by the test
pub fn echo_log(on: bool) {
    ECHO.store(on, Ordering::Relaxed);
}

/// What one run observes. The memoized function takes only its cache key, so its body finds
/// the run that called it through the thread-local [`PROBE`] each worker installs.
struct Probe {
    /// The instant the threads were released: time zero of the run.
    epoch: OnceLock<Instant>,
    /// Rule files read during the run, by any thread.
    file_reads: AtomicUsize,
    log: Mutex<Vec<LogLine>>,
    /// For [`run_memoflight_coalesced`]: the loading thread returns once the cache has
    /// counted this many waits.
    hold_until_waits: Option<u64>,
}

thread_local! {
    /// The run this thread works for.
    static PROBE: RefCell<Option<Arc<Probe>>> = const { RefCell::new(None) };
    /// The name log lines give instead of the thread's: the task's, when a task's load runs
    /// on a blocking thread of the runtime.
    static NAME: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set by the body of [`load_all_rules`] on the thread it ran on: when it started and ended.
    static BODY: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
}

fn with_probe(f: impl FnOnce(&Probe)) {
    PROBE.with_borrow(|probe| {
        if let Some(probe) = probe {
            f(probe);
        }
    });
}

fn count_file_read() {
    with_probe(|probe| {
        probe.file_reads.fetch_add(1, Ordering::SeqCst);
    });
}

/// Writes a log line, stamped with the time since the release and the thread's name.
fn log(message: String) {
    with_probe(|probe| {
        // Stamp and print under the lock, so that lines come out in time order.
        let mut log = lock(&probe.log);
        let line = LogLine {
            at: probe.epoch.get().map_or(Duration::ZERO, Instant::elapsed),
            thread: NAME
                .with_borrow(Clone::clone)
                .unwrap_or_else(|| std::thread::current().name().unwrap_or("?").to_owned()),
            message,
        };
        if ECHO.load(Ordering::Relaxed) {
            println!("{line}");
        }
        log.push(line);
    });
}

/// For [`run_memoflight_coalesced`]: waits until every other caller waits for this load.
/// Gives up after a minute rather than hang if they never come.
fn hold_until_others_wait() {
    let Some(target) = PROBE.with_borrow(|p| p.as_ref().and_then(|p| p.hold_until_waits)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while load_all_rules_cache().stats().waits < target && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// Spawns `threads` workers named `worker-0`.., releases them at once with a [`Barrier`] and
/// has each make one `call`. Returns their records, in thread order, and the run's probe.
///
/// # Panics
///
/// If a worker cannot be spawned, or with a worker's panic.
fn run_threads(
    threads: usize,
    hold_until_waits: Option<u64>,
    call: impl Fn() -> LoadResult + Send + Sync + 'static,
) -> (Vec<ThreadRecord>, Arc<Probe>) {
    let probe = Arc::new(Probe {
        epoch: OnceLock::new(),
        file_reads: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
        hold_until_waits,
    });
    let call = Arc::new(call);
    // The workers and this thread: it sets time zero once every worker is about to wait.
    let start = Arc::new(Barrier::new(threads + 1));
    let ready = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (probe, call) = (Arc::clone(&probe), Arc::clone(&call));
            let (start, ready) = (Arc::clone(&start), Arc::clone(&ready));
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    PROBE.set(Some(Arc::clone(&probe)));
                    ready.fetch_add(1, Ordering::SeqCst);
                    start.wait();
                    let started = Instant::now();
                    let result = call();
                    let ended = Instant::now();
                    let epoch = probe.epoch.get().copied().unwrap_or(started);
                    ThreadRecord {
                        name: format!("worker-{i}"),
                        call: Span::between(epoch, (started, ended)),
                        body: BODY.take().map(|body| Span::between(epoch, body)),
                        result,
                    }
                })
                .expect("cannot spawn a worker thread")
        })
        .collect();
    while ready.load(Ordering::SeqCst) < threads {
        std::thread::yield_now();
    }
    // Every worker is at (or entering) the barrier: this thread's arrival releases them.
    probe.epoch.get_or_init(Instant::now);
    start.wait();
    let records = workers
        .into_iter()
        .map(|worker| {
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .collect();
    (records, probe)
}

/// `--async`: the same load as an `async fn`, called by tokio tasks instead of threads.
#[cfg(feature = "async")]
pub mod tasks {
    use super::*;

    tokio::task_local! {
        /// The run this task works for, and the task's name.
        static TASK: (Arc<Probe>, String);
        /// Set by the body of [`load_all_rules_async`] in the task it ran in.
        static TASK_BODY: Cell<Option<(Instant, Instant)>>;
    }

    /// [`load_all_rules`](super::load_all_rules) as an `async fn`, memoized the same way: one
    /// task loads, the others await its result. The file reads are blocking, so the body runs
    /// them on a blocking thread of the runtime.
    #[cached]
    pub async fn load_all_rules_async(dir: &Path) -> Result<Arc<RuleSet>, LoadError> {
        let started = Instant::now();
        let task = TASK.try_with(Clone::clone).ok();
        let dir = dir.to_path_buf();
        let load = tokio::task::spawn_blocking(move || {
            if let Some((probe, name)) = task {
                PROBE.set(Some(probe));
                NAME.set(Some(name));
            }
            let result = read_rule_dir(&dir);
            PROBE.set(None);
            NAME.set(None);
            result
        });
        let result = match load.await {
            Ok(result) => result,
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        };
        let _ = TASK_BODY.try_with(|body| body.set(Some((started, Instant::now()))));
        result
    }

    /// [`run_memoflight`](super::run_memoflight) with `tasks` tokio tasks on a multi-thread
    /// runtime, released together by a `tokio::sync::Barrier`.
    pub fn run_memoflight_async(dir: &Path, tasks: usize) -> Report {
        let cache = load_all_rules_async_cache();
        cache.clear();
        let before = cache.stats();
        let probe = Arc::new(Probe {
            epoch: OnceLock::new(),
            file_reads: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            hold_until_waits: None,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot start a tokio runtime");
        let records = runtime.block_on(run_tasks(dir, tasks, &probe));
        Report::counted(before, cache.stats(), records, &probe, cache.get(dir))
    }

    async fn run_tasks(dir: &Path, tasks: usize, probe: &Arc<Probe>) -> Vec<ThreadRecord> {
        let start = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let (start, probe, dir) = (Arc::clone(&start), Arc::clone(probe), dir.to_owned());
                let name = format!("task-{i}");
                let call = async move {
                    start.wait().await;
                    let started = Instant::now();
                    let result = load_all_rules_async(&dir).await;
                    let ended = Instant::now();
                    let (probe, name) = TASK.with(Clone::clone);
                    let epoch = probe.epoch.get().copied().unwrap_or(started);
                    ThreadRecord {
                        name,
                        call: Span::between(epoch, (started, ended)),
                        body: TASK_BODY.with(Cell::take).map(|b| Span::between(epoch, b)),
                        result,
                    }
                };
                let call = TASK_BODY.scope(Cell::new(None), call);
                tokio::spawn(TASK.scope((probe, name), call))
            })
            .collect();
        probe.epoch.get_or_init(Instant::now);
        start.wait().await;
        let mut records = Vec::with_capacity(tasks);
        for handle in handles {
            match handle.await {
                Ok(record) => records.push(record),
                Err(failed) => std::panic::resume_unwind(failed.into_panic()),
            }
        }
        records
    }
}

/// Locks `mutex`, ignoring poisoning: every value guarded here stays consistent on a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
