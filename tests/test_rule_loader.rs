//! The `rule_loader` example's scenario, counted: N threads load the same 53 rule files at the
//! same instant. Through `#[cached]` the files are read once and every thread shares one result
//! (or one error); through the naive check-then-act cache every thread reads them all.
//!
//! The tests count; none asserts on time.

// The example's logic; the test uses only part of it (not its printing switch, for one).
#[allow(dead_code)]
#[path = "../examples/rule_loader/demo.rs"]
mod demo;

use demo::rules::LoadError;
use demo::Report;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

const RULE_FILES: usize = 53;

/// `load_all_rules`'s cache is a `static`: tests that run it take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/rule_loader/rules"
    ))
}

/// Log lines whose message starts with `prefix`.
fn logged(report: &Report, prefix: &str) -> usize {
    report
        .log
        .iter()
        .filter(|line| line.message.starts_with(prefix))
        .count()
}

/// Calls that did not run the load: each got the result of the one that did, by waiting for
/// it or, arriving after it, from the cache.
fn served_by_another_call(report: &Report) -> u64 {
    assert_eq!(report.hits + report.misses, report.records.len() as u64);
    report.waits + report.hits
}

/// Checks that every thread got `Ok` with all the rules, all in the same `Arc`, and returns it.
fn one_shared_rule_set(report: &Report) -> Arc<demo::RuleSet> {
    let mut results = report.results();
    let first = match results.next() {
        Some(Ok(rules)) => Arc::clone(rules),
        other => panic!("worker-0 got {other:?}"),
    };
    assert_eq!(first.len(), RULE_FILES);
    for (i, result) in results.enumerate() {
        let rules = result
            .as_ref()
            .unwrap_or_else(|e| panic!("worker-{} failed: {e}", i + 1));
        assert!(
            Arc::ptr_eq(rules, &first),
            "worker-{} got a rule set of its own",
            i + 1
        );
    }
    first
}

#[test]
fn four_threads_load_the_rules_once_and_share_them() {
    let _serial = serial();
    let report = demo::run_memoflight(&rules_dir(), 4);

    assert_eq!(report.executions, 1);
    assert_eq!(report.file_reads, RULE_FILES);
    assert_eq!(served_by_another_call(&report), 3);
    assert_eq!(report.records.iter().filter(|r| r.computed()).count(), 1);
    assert_eq!(logged(&report, "loading 53 rule files"), 1);
    assert_eq!(logged(&report, "53 rules loaded"), 1);

    let shared = one_shared_rule_set(&report);
    let cached = report.cached.as_ref().expect("the rule set is cached");
    assert!(Arc::ptr_eq(cached, &shared));
    assert_eq!(report.distinct_rule_sets(), 1);
}

#[test]
fn four_threads_that_all_wait_get_three_coalesced_waits() {
    let _serial = serial();
    let report = demo::run_memoflight_coalesced(&rules_dir(), 4);

    assert_eq!(report.executions, 1);
    assert_eq!(report.file_reads, RULE_FILES);
    assert_eq!(report.waits + report.hits, 3);
    assert_eq!((report.waits, report.hits), (3, 0));
    one_shared_rule_set(&report);
}

#[test]
fn sixty_four_threads_still_load_the_rules_once() {
    let _serial = serial();
    let report = demo::run_memoflight(&rules_dir(), 64);

    assert_eq!(report.executions, 1);
    assert_eq!(report.file_reads, RULE_FILES);
    assert_eq!(served_by_another_call(&report), 63);
    assert_eq!(logged(&report, "loading"), 1);
    one_shared_rule_set(&report);
}

#[test]
fn runs_in_one_process_are_independent() {
    let _serial = serial();
    let first = demo::run_memoflight(&rules_dir(), 4);
    // The cache was full after the first run; the second starts from empty and counts afresh.
    let second = demo::run_memoflight(&rules_dir(), 4);
    for report in [&first, &second] {
        assert_eq!((report.executions, report.file_reads), (1, RULE_FILES));
    }
    let (a, b) = (one_shared_rule_set(&first), one_shared_rule_set(&second));
    assert!(
        !Arc::ptr_eq(&a, &b),
        "the second run reused the first's value"
    );
    assert_eq!(a, b);
}

#[test]
fn the_naive_cache_loads_once_per_thread() {
    let _serial = serial();
    let report = demo::run_naive(&rules_dir(), 4);

    assert_eq!(report.executions, 4);
    assert_eq!(report.file_reads, 4 * RULE_FILES);
    assert_eq!((report.waits, report.hits), (0, 0));
    assert!(report.records.iter().all(|r| r.computed()));
    assert_eq!(logged(&report, "loading 53 rule files"), 4);
    assert_eq!(logged(&report, "53 rules loaded"), 4);

    // Equal contents, four copies; the cache keeps whichever was stored last.
    assert_eq!(report.distinct_rule_sets(), 4);
    let cached = report.cached.as_ref().expect("a rule set is cached");
    let kept = report
        .results()
        .filter(|r| r.as_ref().is_ok_and(|rules| Arc::ptr_eq(rules, cached)))
        .count();
    assert_eq!(kept, 1);
    for result in report.results() {
        let rules = result.as_ref().expect("a naive load failed");
        assert_eq!(**rules, **cached);
    }
}

/// A folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "memoflight-rule-loader-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Three good rule files and `099-broken.json`, which lacks a comma (line 4, column 3).
fn dir_with_a_broken_file(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    for file in [
        "001-ssh-bruteforce.json",
        "002-root-login-over-ssh.json",
        "003-disk-usage-warning.json",
    ] {
        std::fs::copy(rules_dir().join(file), dir.0.join(file)).expect("copy a rule file");
    }
    let broken = "{\n  \"id\": \"R099\",\n  \"name\": \"broken\"\n  \"severity\": \"high\"\n}\n";
    std::fs::write(dir.0.join("099-broken.json"), broken).expect("write the broken file");
    dir
}

fn assert_names_the_broken_file(error: &LoadError, dir: &Path) {
    assert!(matches!(error, LoadError::Parse { .. }), "{error:?}");
    let message = error.to_string();
    let path = dir.join("099-broken.json");
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "{message}"
    );
    assert!(
        message.contains("line 4, column 3: expected `,` or `}`"),
        "{message}"
    );
}

#[test]
fn a_malformed_file_fails_the_load_and_names_the_file() {
    let _serial = serial();
    let dir = dir_with_a_broken_file("malformed");
    let report = demo::run_memoflight(&dir.0, 1);

    assert_eq!(report.executions, 1);
    assert_eq!(report.file_reads, 4);
    let error = report.first_error().expect("the load fails");
    assert_names_the_broken_file(error, &dir.0);
    assert!(report.cached.is_none(), "an error was cached");
    assert_eq!(logged(&report, "load failed"), 1);
}

#[test]
fn every_waiting_thread_gets_the_same_error_from_one_load() {
    let _serial = serial();
    let dir = dir_with_a_broken_file("shared-error");
    // Coalesced: the failing load returns only once the three others wait for it. (A thread
    // that arrived after the failure would load again: errors are shared, not cached.)
    let report = demo::run_memoflight_coalesced(&dir.0, 4);

    assert_eq!(report.executions, 1);
    assert_eq!(report.file_reads, 4);
    assert_eq!(report.waits, 3);
    let first = report.first_error().expect("the load fails").to_string();
    for result in report.results() {
        let error = result.as_ref().expect_err("a thread got rules");
        assert_names_the_broken_file(error, &dir.0);
        assert_eq!(error.to_string(), first);
    }
    assert!(report.cached.is_none(), "an error was cached");
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let _serial = serial();
    let dir = TempDir::new("missing");
    let missing = dir.0.join("no-such-folder");
    let report = demo::run_memoflight_coalesced(&missing, 4);

    assert_eq!((report.executions, report.file_reads), (1, 0));
    for result in report.results() {
        let error = result.as_ref().expect_err("a thread got rules");
        assert!(matches!(error, LoadError::MissingDir { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "{}: cannot list rules directory: ",
                missing.display()
            )),
            "{message}"
        );
    }
}

/// `--async`: 4 and 64 tokio tasks call the `async fn` version at the same instant: one load,
/// 53 file reads, one shared rule set, logged under the loading task's name.
#[cfg(feature = "async")]
#[test]
fn tasks_load_the_rules_once_through_the_async_fn() {
    let _serial = serial();
    for tasks in [4, 64] {
        let report = demo::tasks::run_memoflight_async(&rules_dir(), tasks);
        assert_eq!(report.executions, 1, "{tasks} tasks");
        assert_eq!(report.file_reads, RULE_FILES);
        assert_eq!(served_by_another_call(&report), tasks as u64 - 1);
        assert_eq!(report.records.iter().filter(|r| r.computed()).count(), 1);
        assert_eq!(logged(&report, "loading 53 rule files"), 1);
        let loader = report.records.iter().find(|r| r.computed()).unwrap();
        assert!(report.log.iter().all(|line| line.thread == loader.name));
        one_shared_rule_set(&report);
    }
}
