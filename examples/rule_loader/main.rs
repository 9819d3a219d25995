//! Four threads load the same 53 rule files at the same instant: with a hand-rolled
//! check-then-act cache, all four load them; with `#[memoflight::cached]`, one does and the
//! others share its result.
//!
//! ```sh
//! cargo run --release --example rule_loader              # memoflight, 4 threads
//! cargo run --release --example rule_loader -- --naive   # the check-then-act cache
//! cargo run --release --example rule_loader -- --compare # both, side by side
//! cargo run --release --example rule_loader --features async -- --async  # tokio tasks
//! ```
//!
//! The logic lives in `demo.rs` (shared with `tests/test_rule_loader.rs`); this file parses the
//! flags and draws the output.

mod demo;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use demo::{Report, ThreadRecord};

/// The rule files that ship with the example.
const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rule_loader/rules");

const USAGE: &str = "\
usage: rule_loader [--threads N] [--dir PATH] [--io-latency-us N] [--naive | --compare | --async]

Calls load_all_rules(PATH) from N threads released at the same instant.

  --threads N   number of threads (default 4, at most 1024)
  --dir PATH    folder of *.json rule files (default: the example's rules/)
  --io-latency-us N
                added to each file read, standing in for a network filesystem
                (default 200; 0 reads the local files at full speed)
  --verbose     print memoflight's tracing events (needs `--features tracing`)
  --naive       use a hand-rolled check-then-act cache instead of #[memoflight::cached]
  --compare     run the naive cache, then memoflight, and compare their figures
  --async       N tokio tasks call an `async fn` version instead (needs `--features async`)
  -h, --help    show this help";

const MAX_THREADS: usize = 1024;
/// Width of a timeline bar, in characters.
const BAR_WIDTH: usize = 40;
/// Timeline rows drawn before the rest are summarized in one line.
const MAX_ROWS: usize = 8;

/// What the command line asks for.
struct Options {
    verbose: bool,
    dir: PathBuf,
    threads: usize,
    io_latency: Duration,
    runs: Runs,
}

/// Which cache a run goes through.
#[derive(Clone, Copy)]
enum Mode {
    /// `demo::NaiveCache`: check, unlock, load, store.
    Naive,
    /// `demo::load_all_rules`: `#[memoflight::cached]`.
    Memoflight,
    /// `demo::tasks::load_all_rules_async`: `#[memoflight::cached] async fn`, on tokio tasks.
    MemoflightAsync,
}

/// Which runs the command line asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runs {
    Memoflight,
    Naive,
    Compare,
    Async,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("error: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.verbose {
        show_tracing_events();
    }
    demo::echo_log(true);
    demo::set_io_latency(options.io_latency);

    let (function, callers) = match options.runs {
        Runs::Async => ("load_all_rules_async", "tasks"),
        _ => ("load_all_rules", "threads"),
    };
    println!(
        "{function}({:?}) called by {} {callers} at the same instant",
        shown(&options.dir),
        options.threads
    );
    if !options.io_latency.is_zero() {
        println!(
            "(each file read takes {} µs more, as on a network filesystem; --io-latency-us 0 to skip)",
            options.io_latency.as_micros()
        );
    }
    let modes: &[Mode] = match options.runs {
        Runs::Memoflight => &[Mode::Memoflight],
        Runs::Naive => &[Mode::Naive],
        Runs::Compare => &[Mode::Naive, Mode::Memoflight],
        Runs::Async => &[Mode::MemoflightAsync],
    };
    let mut reports = Vec::new();
    for &mode in modes {
        let report = run(mode, &options);
        if let Some(error) = report.first_error() {
            report_error(mode, &report, error);
            return ExitCode::FAILURE;
        }
        print_timeline(&report);
        if options.runs != Runs::Compare {
            println!();
            print_figures(&report);
        }
        reports.push(report);
    }
    if let [naive, memoflight] = reports.as_slice() {
        println!();
        print_comparison(naive, memoflight);
    }
    ExitCode::SUCCESS
}

/// Prints memoflight's `tracing` events (misses, computations, waits) to stderr.
#[cfg(feature = "tracing")]
fn show_tracing_events() {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(not(feature = "tracing"))]
fn show_tracing_events() {
    eprintln!("(--verbose shows memoflight's tracing events: run with `--features tracing`)");
}

/// Parses the flags; `Ok(None)` asks for the help text.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Options>, String> {
    let mut options = Options {
        verbose: false,
        dir: PathBuf::from(DEFAULT_DIR),
        threads: 4,
        io_latency: Duration::from_micros(200),
        runs: Runs::Memoflight,
    };
    let mut naive = false;
    let mut compare = false;
    let mut asynchronous = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.to_str() else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match flag.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(OsString::from(value))),
            _ => (flag, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--naive" => naive = true,
            "--verbose" => options.verbose = true,
            "--compare" => compare = true,
            "--async" if cfg!(feature = "async") => asynchronous = true,
            "--async" => return Err("--async needs `--features async`".into()),
            "--dir" => options.dir = PathBuf::from(value("--dir")?),
            "--threads" => {
                let given = value("--threads")?;
                options.threads = given
                    .to_str()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=MAX_THREADS).contains(n))
                    .ok_or_else(|| {
                        format!("--threads needs a number from 1 to {MAX_THREADS}, got {given:?}")
                    })?;
            }
            "--io-latency-us" => {
                let given = value("--io-latency-us")?;
                let micros: u64 = given
                    .to_str()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n <= 1_000_000)
                    .ok_or_else(|| {
                        format!(
                            "--io-latency-us needs microseconds from 0 to 1000000, got {given:?}"
                        )
                    })?;
                options.io_latency = Duration::from_micros(micros);
            }
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    options.runs = match (naive, compare, asynchronous) {
        (false, false, false) => Runs::Memoflight,
        (true, false, false) => Runs::Naive,
        (false, true, false) => Runs::Compare,
        (false, false, true) => Runs::Async,
        _ => return Err("--naive, --compare and --async cannot be combined".into()),
    };
    Ok(Some(options))
}

/// Runs one mode, after a heading that says what it is; the loads print their log lines live.
fn run(mode: Mode, options: &Options) -> Report {
    println!();
    match mode {
        Mode::Memoflight => {
            println!("── memoflight #[cached]: one load, concurrent callers wait for it ──");
            demo::run_memoflight(&options.dir, options.threads)
        }
        Mode::MemoflightAsync => {
            println!("── memoflight #[cached] async fn: one load, concurrent tasks await it ──");
            run_async(&options.dir, options.threads)
        }
        Mode::Naive => {
            println!("── naive cache: lock, check, unlock, load, lock, store ──");
            println!(
                "(a barrier holds the check-then-act gap open, so the race happens every run)"
            );
            demo::run_naive(&options.dir, options.threads)
        }
    }
}

#[cfg(feature = "async")]
fn run_async(dir: &Path, tasks: usize) -> Report {
    demo::tasks::run_memoflight_async(dir, tasks)
}

#[cfg(not(feature = "async"))]
fn run_async(_: &Path, _: usize) -> Report {
    unreachable!("--async is refused without the `async` feature")
}

/// Draws one row per thread: `█` while the load runs on it, `░` while it is in the call
/// otherwise (waiting), scaled so that the latest call end reaches the right edge.
fn print_timeline(report: &Report) {
    let end = report
        .records
        .iter()
        .map(|r| r.call.end)
        .max()
        .unwrap_or_default()
        .max(Duration::from_micros(1));
    let rows = rows_to_draw(&report.records);
    let hits = rows
        .iter()
        .any(|&i| role(report, &report.records[i]) == "hit");
    println!(
        "\ntimeline, 0 to {}:  █ loading  ░ waiting{}",
        ms(end),
        if hits { "  · cache hit" } else { "" }
    );
    for record in rows.iter().map(|&i| &report.records[i]) {
        let role = role(report, record);
        let time = record.body.map_or(record.call.len(), |body| body.len());
        println!(
            "  {:<9} {}  {role:<8} {:>9}",
            record.name,
            bar(record, role, end),
            ms(time)
        );
    }
    let hidden = report.records.len() - rows.len();
    if hidden > 0 {
        let rest = (0..report.records.len())
            .filter(|i| !rows.contains(i))
            .map(|i| &report.records[i]);
        let (mut waited, mut hit, mut computed, mut longest) = (0, 0, 0, Duration::ZERO);
        for record in rest {
            match role(report, record) {
                "computed" => computed += 1,
                "waited" => waited += 1,
                _ => hit += 1,
            }
            longest = longest.max(record.call.len());
        }
        let mut counts = vec![];
        for (n, what) in [(computed, "computed"), (waited, "waited"), (hit, "hit")] {
            if n > 0 {
                counts.push(format!("{n} {what}"));
            }
        }
        println!(
            "  … {hidden} more threads: {} (longest call {})",
            counts.join(", "),
            ms(longest)
        );
    }
}

/// The indices of the rows worth drawing, in thread order: every thread when they fit, else
/// the threads that loaded first, then the others in order, up to [`MAX_ROWS`].
fn rows_to_draw(records: &[ThreadRecord]) -> Vec<usize> {
    let loaded = |i: &usize| records[*i].computed();
    let computed = (0..records.len()).filter(loaded);
    let others = (0..records.len()).filter(|i| !loaded(i));
    let mut rows: Vec<_> = computed.chain(others).take(MAX_ROWS).collect();
    rows.sort_unstable();
    rows
}

/// What a thread did: ran the load, waited for another thread's load, or found the result
/// already cached. The cache's counters are exact; this per-thread label is read from the
/// timestamps (a call that started before a load ended waited for it).
fn role(report: &Report, record: &ThreadRecord) -> &'static str {
    let last_load_end = report
        .records
        .iter()
        .filter_map(|r| r.body.map(|b| b.end))
        .max();
    if record.computed() {
        "computed"
    } else if last_load_end.is_some_and(|end| record.call.start < end) {
        "waited"
    } else {
        "hit"
    }
}

/// One timeline bar, sampled at the middle of each character cell.
fn bar(record: &ThreadRecord, role: &str, end: Duration) -> String {
    let cell = end.as_secs_f64() / BAR_WIDTH as f64;
    let idle = if role == "hit" { '·' } else { '░' };
    let col = |t: Duration| ((t.as_secs_f64() / cell) as usize).min(BAR_WIDTH - 1);
    // A thread that loaded is drawn up to the end of its load: the rest of its call is the
    // cache storing the result and waking the waiters.
    let waiting = match record.body {
        Some(body) => demo::Span {
            start: record.call.start,
            end: body.end,
        },
        None => record.call,
    };
    let mut cells = [' '; BAR_WIDTH];
    for (i, c) in cells.iter_mut().enumerate() {
        let mid = Duration::from_secs_f64((i as f64 + 0.5) * cell);
        let inside = |span: demo::Span| span.start <= mid && mid < span.end;
        if record.body.is_some_and(inside) {
            *c = '█';
        } else if inside(waiting) {
            *c = idle;
        }
    }
    // Draw very short intervals as one character rather than not at all.
    if cells[col(record.call.start)] == ' ' {
        cells[col(record.call.start)] = idle;
    }
    if let Some(body) = record.body {
        cells[col(body.start)] = '█';
    }
    cells.iter().collect()
}

fn print_figures(report: &Report) {
    let threads = report.records.len();
    println!("executions      {:>7}", report.executions);
    println!(
        "file reads      {:>7}   ({} per load)",
        report.file_reads,
        per_load(report)
    );
    println!(
        "coalesced waits {:>7}   (called while the load ran: waited for it)",
        report.waits
    );
    println!(
        "hits            {:>7}   (called after it: answered from the cache)",
        report.hits
    );
    println!(
        "work time       {:>10}   (inside the load, summed over threads)",
        ms(report.work_time())
    );
    let rules = report.results().flatten().next().map_or(0, |r| r.len());
    let distinct = report.distinct_rule_sets();
    let kept = report
        .records
        .iter()
        .find(|r| matches!((&r.result, &report.cached), (Ok(a), Some(b)) if Arc::ptr_eq(a, b)));
    if distinct == 1 {
        println!("results: {threads} × Ok({rules} rules), one Arc<RuleSet> shared by all");
    } else {
        let kept = kept.map_or("none".into(), |r| format!("{}'s", r.name));
        println!(
            "results: {threads} × Ok({rules} rules) in {distinct} different Arc<RuleSet>; \
             the cache kept {kept} (last write wins)"
        );
    }
}

fn print_comparison(naive: &Report, memoflight: &Report) {
    println!("                      naive   memoflight");
    let rows = [
        (
            "executions",
            naive.executions.to_string(),
            memoflight.executions.to_string(),
        ),
        (
            "file reads",
            naive.file_reads.to_string(),
            memoflight.file_reads.to_string(),
        ),
        (
            "coalesced waits",
            naive.waits.to_string(),
            memoflight.waits.to_string(),
        ),
        (
            "work time",
            ms(naive.work_time()),
            ms(memoflight.work_time()),
        ),
        (
            "distinct results",
            naive.distinct_rule_sets().to_string(),
            memoflight.distinct_rule_sets().to_string(),
        ),
    ];
    for (what, a, b) in rows {
        println!("{what:<16} {a:>10} {b:>12}");
    }
}

/// Prints a failed run's error (the threads that failed all got this one) and how it spread.
fn report_error(mode: Mode, report: &Report, error: &demo::LoadError) {
    let threads = report.records.len();
    let failed = report.results().filter(|r| r.is_err()).count();
    let loads = match report.executions {
        1 => "1 load".to_owned(),
        n => format!("{n} loads"),
    };
    eprintln!("error: {error}");
    eprintln!(
        "({loads}, {} file reads; {failed} of {threads} threads received this error)",
        report.file_reads
    );
    if matches!(mode, Mode::Memoflight | Mode::MemoflightAsync) && report.executions > 1 {
        eprintln!(
            "(an error reaches the callers waiting on its load but is not cached: \
             a caller that came after the failure loaded again)"
        );
    }
}

/// File reads per load, as a whole number when they divide evenly.
fn per_load(report: &Report) -> String {
    match report.executions {
        0 => "0".into(),
        n if report.file_reads as u64 % n == 0 => (report.file_reads as u64 / n).to_string(),
        n => format!("{:.1}", report.file_reads as f64 / n as f64),
    }
}

/// `1.234 ms`.
fn ms(time: Duration) -> String {
    format!("{:.2} ms", time.as_secs_f64() * 1e3)
}

/// The directory as shown to the user: relative to the crate when it is inside it.
fn shown(dir: &Path) -> &Path {
    dir.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(dir)
}
