//! `DiskStore` in temporary directories, across processes: the test binary run again as
//! children (`tests/common/children.rs`), killed for real where a test says so. Executions are
//! counted in a file each execution appends a line to, across every process.
#![cfg(all(feature = "disk", target_os = "linux"))]

mod common;

use common::children::{self, results_of, role, sleep_until_released, KillOnDrop};
use common::multi_thread;
use memoflight::{cached, AsyncCache, DiskStore, DiskStoreError, Origin};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A test's directory, `{base}/{test}`: removed when dropped (in the parent only).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path = dir(test);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // The last test out removes the base.
        let _ = std::fs::remove_dir(base());
    }
}

/// The directory of this test process's tests: its own, or the one a child's parent gave it.
fn base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| match std::env::var_os("MEMOFLIGHT_DISK_DIR") {
        Some(base) => PathBuf::from(base),
        None => std::env::temp_dir().join(format!(
            "memoflight-disk-{}-{}",
            std::process::id(),
            children::now_ms()
        )),
    })
    .clone()
}

/// The directory of `test`, the same in the parent and its children.
fn dir(test: &str) -> PathBuf {
    base().join(test)
}

/// What a child needs to find its parent's directories.
fn env() -> Vec<(&'static str, String)> {
    vec![("MEMOFLIGHT_DISK_DIR", base().display().to_string())]
}

/// Counts one execution: a line appended to `counter` in `test`'s directory (an append of a
/// few bytes is atomic among processes).
fn count_execution(test: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir(test).join("executions"))
        .expect("the counter file");
    writeln!(file, "{}", std::process::id()).expect("an appended line");
}

/// Records when a computation starts: a line `pid microseconds` appended to `starts` in
/// `test`'s directory (wall-clock, shared by every process).
fn record_start(test: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir(test).join("starts"))
        .expect("the starts file");
    writeln!(file, "{} {}", std::process::id(), children::now_us()).expect("an appended line");
}

/// The starts [`record_start`] recorded: (pid, wall-clock microseconds).
fn starts(test: &str) -> Vec<(u32, u128)> {
    std::fs::read_to_string(dir(test).join("starts"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let (pid, at) = line.split_once(' ').expect("pid and time");
            (pid.parse().unwrap(), at.parse().unwrap())
        })
        .collect()
}

fn executions(test: &str) -> usize {
    std::fs::read_to_string(dir(test).join("executions")).map_or(0, |text| text.lines().count())
}

/// Waits (bounded) until `path` exists: a child's signal.
fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < common::HANG,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every entry file of a store's namespace.
fn entry_files(namespace: &Path) -> Vec<PathBuf> {
    let Ok(shards) = std::fs::read_dir(namespace.join("data")) else {
        return Vec::new();
    };
    shards
        .flatten()
        .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten())
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

/// The one namespace directory (`{function}/v{schema}.{type}`) under `test`'s directory.
fn only_namespace(test: &str) -> PathBuf {
    let namespaces: Vec<PathBuf> = std::fs::read_dir(dir(test))
        .unwrap()
        .flatten()
        .filter(|function| function.path().is_dir())
        .flat_map(|function| std::fs::read_dir(function.path()).unwrap().flatten())
        .map(|namespace| namespace.path())
        .collect();
    let [namespace] = namespaces.as_slice() else {
        panic!("one namespace: {namespaces:?}")
    };
    namespace.clone()
}

/// The longest the counters file can be: the namespace's counter and 4,096 slot counters of
/// 8 bytes (`disk_store.rs`, "Layout").
const EPOCHS_BYTES: u64 = 8 * (1 + 4096);

/// The parent's half of the 8 × 8 stampedes: every process got one value, one execution in
/// all, one call says it computed; the lock file stayed empty and the counters file within
/// its bound.
fn assert_one_execution_in_a_stampede(test: &str, results: &[String]) {
    assert_eq!(results.len(), 8, "every process returned");
    let value = |r: &String| r.split(" computed=").next().unwrap().to_owned();
    assert!(
        results.iter().all(|r| value(r) == value(&results[0])),
        "{results:?}"
    );
    let namespace = only_namespace(test);
    let length = |name: &str| std::fs::metadata(namespace.join(name)).unwrap().len();
    assert_eq!(length("locks"), 0, "key locks lie past the lock file's end");
    assert!(length("epochs") <= EPOCHS_BYTES, "{}", length("epochs"));
    assert_eq!(executions(test), 1, "one execution in 64 calls");
    let computed: usize = results
        .iter()
        .map(|r| r.rsplit('=').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(computed, 1, "one call says it computed: {results:?}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rule {
    id: u32,
    pattern: String,
    weights: Vec<f64>,
}

#[test]
fn values_round_trip_and_a_stampede_in_one_process_runs_once() {
    const TEST: &str = "round-trip";
    let _temp = TempDir::new(TEST);
    multi_thread().block_on(async {
        let rules = AsyncCache::new("rules", DiskStore::<u32, Rule>::new(dir(TEST)));
        let rule = |id| Rule {
            id,
            pattern: "a*b".to_owned(),
            weights: vec![0.5, 1.5],
        };
        let calls = (0..16).map(|_| {
            rules.get_or_compute(1, || async {
                count_execution(TEST);
                tokio::time::sleep(Duration::from_millis(100)).await;
                rule(1)
            })
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| *r == rule(1)));
        assert_eq!(executions(TEST), 1);
        assert_eq!(rules.get(&1).await.unwrap(), Some(rule(1)));

        // Another store on the same directory, as the next run of the program would open.
        let next_run = AsyncCache::new("rules", DiskStore::<u32, Rule>::new(dir(TEST)));
        assert_eq!(next_run.get(&1).await.unwrap(), Some(rule(1)));
        let stats = rules.stats().await.unwrap();
        assert_eq!(
            (stats.misses, stats.waits, stats.executions, stats.entries),
            (16, 15, 1, 1)
        );
        assert_eq!(stats.store_errors, 0);

        // A function's values are its own; another value type reads none of them.
        let other_function = AsyncCache::new("other", DiskStore::<u32, Rule>::new(dir(TEST)));
        assert_eq!(other_function.get(&1).await.unwrap(), None);
        let other_type = AsyncCache::new("rules", DiskStore::<u32, String>::new(dir(TEST)));
        assert_eq!(other_type.get(&1).await.unwrap(), None);
        let other_schema =
            AsyncCache::new("rules", DiskStore::<u32, Rule>::new(dir(TEST)).schema(2));
        assert_eq!(other_schema.get(&1).await.unwrap(), None);
    });
}

/// A caller process's part of a stampede: every caller got the same value; prints it and how
/// many of them computed it, for `assert_one_execution_in_a_stampede`.
fn print_callers_results(results: &[(String, Origin)]) {
    let first = &results[0].0;
    assert!(results.iter().all(|(r, _)| r == first));
    let computed = results
        .iter()
        .filter(|(_, o)| *o == Origin::Computed)
        .count();
    println!("RESULT {first} computed={computed}");
}

/// The attribute form on a sync function, 8 processes × 8 threads on one key released at the
/// same instant: one execution in all.
#[test]
fn a_stampede_of_eight_processes_by_eight_threads_runs_once() {
    const TEST: &str = "a_stampede_of_eight_processes_by_eight_threads_runs_once";
    #[cached(async_store = DiskStore::new(dir(TEST)))]
    fn report(id: u32) -> String {
        count_execution(TEST);
        std::thread::sleep(Duration::from_millis(300));
        format!("report {id} computed by {}", std::process::id())
    }

    if role().as_deref() == Some("caller") {
        sleep_until_released();
        let results: Vec<(String, Origin)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8).map(|_| s.spawn(|| report_with_origin(42))).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        print_callers_results(&results);
        return;
    }
    let _temp = TempDir::new(TEST);
    let results = children::callers_released_together(TEST, 8, &env());
    assert_one_execution_in_a_stampede(TEST, &results);
}

/// The attribute form on an `async fn`, 8 processes × 8 tokio tasks (on a multi-thread
/// runtime) on one key released at the same instant: one execution in all.
#[test]
fn an_async_stampede_of_eight_processes_by_eight_tasks_runs_once() {
    const TEST: &str = "an_async_stampede_of_eight_processes_by_eight_tasks_runs_once";
    #[cached(async_store = DiskStore::new(dir(TEST)))]
    async fn report(id: u32) -> String {
        count_execution(TEST);
        tokio::time::sleep(Duration::from_millis(300)).await;
        format!("report {id} computed by {}", std::process::id())
    }

    if role().as_deref() == Some("caller") {
        sleep_until_released();
        let results: Vec<(String, Origin)> = multi_thread().block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| tokio::spawn(report_with_origin(42)))
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            results
        });
        print_callers_results(&results);
        return;
    }
    let _temp = TempDir::new(TEST);
    let results = children::callers_released_together(TEST, 8, &env());
    assert_one_execution_in_a_stampede(TEST, &results);
}

/// A child process that never ends fails the wait for it within the wait's bound, and is
/// killed and reaped, instead of hanging the test run (`children::results_within`).
#[test]
fn a_hung_child_fails_its_wait_instead_of_hanging_the_run() {
    const TEST: &str = "a_hung_child_fails_its_wait_instead_of_hanging_the_run";
    if role().is_some() {
        std::thread::sleep(Duration::from_secs(3600));
        return;
    }
    let child = children::spawn(TEST, "hung", &[]);
    let pid = child.id();
    let waited = common::run_bounded_for(Duration::from_secs(30), move || {
        children::results_within(vec![child], Duration::from_millis(500))
    });
    let message = waited.expect_err("the wait for a hung child fails");
    assert!(message.contains("still running"), "{message}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the hung child was killed and reaped"
    );
}

/// The leader process is SIGKILLed mid-computation: the kernel releases its lock, exactly one
/// of the waiting processes takes over, and every one of them returns its value.
#[test]
fn a_killed_leader_is_taken_over_once() {
    const TEST: &str = "a_killed_leader_is_taken_over_once";
    if let Some(role) = role() {
        multi_thread().block_on(async {
            let cache = AsyncCache::new("takeover", DiskStore::<u32, String>::new(dir(TEST)));
            let value = cache
                .get_or_compute(9, || async {
                    count_execution(TEST);
                    record_start(TEST);
                    if role == "doomed" {
                        // Killed here by the parent.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    format!("computed by {}", std::process::id())
                })
                .await;
            println!("RESULT {value}");
        });
        return;
    }
    let _temp = TempDir::new(TEST);
    // Killed however the test ends (and by the test, mid-computation).
    let mut doomed = KillOnDrop(children::spawn(TEST, "doomed", &env()));
    let started = Instant::now();
    while executions(TEST) == 0 {
        assert!(started.elapsed() < common::HANG, "the leader never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    let waiters: Vec<Child> = (0..3)
        .map(|_| children::spawn(TEST, "waiter", &env()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let doomed_pid = doomed.0.id();
    let killed_at = children::now_us();
    doomed.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = doomed.0.wait();
    let results = children::results_within(waiters, common::HANG);
    let done = killed.elapsed();
    assert_eq!(results.len(), 3, "every waiter returned");
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    assert_eq!(executions(TEST), 2, "the doomed leader and one taker");
    let takers: Vec<u128> = starts(TEST)
        .into_iter()
        .filter(|(pid, _)| *pid != doomed_pid)
        .map(|(_, at)| at)
        .collect();
    let [taker_started] = takers.as_slice() else {
        panic!("one taker started: {takers:?}")
    };
    // Wall-clock: parent and children share the clock.
    let takeover = Duration::from_micros(taker_started.saturating_sub(killed_at) as u64);
    eprintln!(
        "takeover (SIGKILL to the taker's computation starting): {takeover:?}; \
         the taker's 200 ms computation done {done:?} after the kill"
    );
    // Only a guard against a hang: the time is reported, not asserted on.
    assert!(takeover < common::HANG, "takeover took {takeover:?}");
}

/// A value computed by one process run is a hit in the next run; once its wall-clock `ttl`
/// passed, it is not.
#[test]
fn a_value_outlives_its_process_until_it_expires() {
    const TEST: &str = "a_value_outlives_its_process_until_it_expires";
    #[cached(async_store = DiskStore::new(dir(TEST)).ttl(Duration::from_millis(600)))]
    fn greeting(name: String) -> String {
        count_execution(TEST);
        format!("hello {name}")
    }

    if role().is_some() {
        let (value, origin) = greeting_with_origin("ada".to_owned());
        println!("RESULT {value} {origin:?}");
        return;
    }
    let _temp = TempDir::new(TEST);
    let run = || results_of(children::spawn(TEST, "run", &env()));
    assert_eq!(run(), ["hello ada Computed"]);
    assert_eq!(
        run(),
        ["hello ada Hit"],
        "the second run reads the first's value"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(run(), ["hello ada Computed"], "expired: computed again");
    assert_eq!(executions(TEST), 2);
}

/// Files cut short, overwritten, emptied: every call still returns its computed value, the
/// error is counted, and the file is replaced by the value computed.
#[test]
fn corrupt_and_truncated_files_are_misses_that_get_replaced() {
    const TEST: &str = "corrupt";
    let _temp = TempDir::new(TEST);
    multi_thread().block_on(async {
        let cache = AsyncCache::new("corrupt", DiskStore::<u32, Vec<u8>>::new(dir(TEST)));
        let namespace = cache.store().namespace_dir().to_owned();
        let value = vec![7u8; 1000];
        let compute = |value: Vec<u8>| {
            let value = value.clone();
            move || async move {
                count_execution(TEST);
                value
            }
        };
        assert_eq!(cache.get_or_compute(1, compute(value.clone())).await, value);
        let files = entry_files(&namespace);
        let [file] = files.as_slice() else {
            panic!("one entry file: {files:?}")
        };
        let bytes = std::fs::read(file).unwrap();
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("cut short", bytes[..bytes.len() / 2].to_vec()),
            ("emptied", Vec::new()),
            ("one byte changed", {
                let mut changed = bytes.clone();
                changed[bytes.len() / 2] ^= 0x40;
                changed
            }),
            ("garbage", (0..5000u32).map(|i| (i * 7919) as u8).collect()),
            (
                "a length prefix of 2^60",
                vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10],
            ),
        ];
        for (round, (damage, bytes)) in damages.into_iter().enumerate() {
            std::fs::write(file, bytes).unwrap();
            let errors = cache.stats().await.unwrap().store_errors;
            let got = cache.get_or_compute(1, compute(value.clone())).await;
            assert_eq!(got, value, "{damage}: the computed value is returned");
            assert_eq!(executions(TEST), round + 2, "{damage}: computed again");
            assert!(
                cache.stats().await.unwrap().store_errors > errors,
                "{damage}: the error is counted"
            );
            assert_eq!(
                cache.get(&1).await.unwrap(),
                Some(value.clone()),
                "{damage}: the file was replaced"
            );
        }
        // The counters file cut short or filled with garbage changes nothing a caller sees.
        std::fs::write(namespace.join("epochs"), b"xyz").unwrap();
        cache.invalidate(&1).await.unwrap();
        assert_eq!(cache.get_or_compute(1, compute(value.clone())).await, value);
        assert_eq!(cache.get(&1).await.unwrap(), Some(value));
    });
}

/// Three calls of one key on a store in `path`: each computes and returns its value. Returns
/// the cache's executions and store errors.
fn three_calls_on(path: &Path) -> (u64, u64) {
    multi_thread().block_on(async {
        let cache = AsyncCache::new("unwritable", DiskStore::<u32, String>::new(path));
        for round in 0..3 {
            let value = cache
                .get_or_compute(1, || async move { format!("round {round}") })
                .await;
            assert_eq!(value, format!("round {round}"), "computed every time");
        }
        let stats = cache.stats().await.unwrap();
        (stats.executions, stats.store_errors)
    })
}

/// A directory that cannot be created or written: calls compute and return, and count it.
/// Root writes into a read-only directory, so as root the read-only half runs in a child
/// process as `nobody` (uid and gid 65534), where `EACCES` is real.
#[test]
fn an_unwritable_directory_still_returns_computed_values() {
    const TEST: &str = "an_unwritable_directory_still_returns_computed_values";
    if role().as_deref() == Some("read-only") {
        let read_only = dir(TEST).join("read-only");
        let denied = std::fs::write(read_only.join("probe"), b"")
            .is_err_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied);
        let (executions, errors) = three_calls_on(&read_only);
        println!("RESULT denied={denied} executions={executions} errors={errors}");
        return;
    }
    let temp = TempDir::new(TEST);
    // A path under a regular file can be created by nobody, root included.
    let file = temp.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let read_only = temp.0.join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (executions, errors) = three_calls_on(&file.join("cache"));
    assert_eq!(executions, 3);
    assert!(errors >= 3, "{errors} store errors");
    // Root (or a process with CAP_DAC_OVERRIDE) writes into a read-only directory.
    let privileged = std::fs::write(read_only.join("probe"), b"").is_ok();
    let result = match privileged {
        false => {
            let (executions, errors) = three_calls_on(&read_only);
            format!("denied=true executions={executions} errors={errors}")
        }
        true => {
            use std::os::unix::process::CommandExt;
            let _ = std::fs::remove_file(read_only.join("probe"));
            // `nobody` reads the test's directory and runs a copy of the test binary there (the
            // build's directory may be closed to other users).
            for open in [base(), temp.0.clone()] {
                std::fs::set_permissions(open, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let binary = temp.0.join("test-binary");
            std::fs::copy(std::env::current_exe().unwrap(), &binary).unwrap();
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut nobody = children::command_of(&binary, TEST, "read-only", &env(), &[]);
            nobody.uid(65534).gid(65534);
            let results = results_of(nobody.spawn().expect("a child process as nobody"));
            let [result] = results.as_slice() else {
                panic!("one result: {results:?}")
            };
            result.clone()
        }
    };
    let fields: Vec<&str> = result.split(' ').collect();
    let [denied, executions, errors] = fields.as_slice() else {
        panic!("{result}")
    };
    assert_eq!(
        *denied, "denied=true",
        "the directory refuses writes (EACCES)"
    );
    assert_eq!(*executions, "executions=3", "{result}");
    let errors: u64 = errors.trim_start_matches("errors=").parse().unwrap();
    assert!(errors >= 3, "{result}");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A full disk: a child process whose files may not grow past 512 bytes (`RLIMIT_FSIZE`,
/// with `SIGXFSZ` ignored, so a longer write fails with `EFBIG` instead of killing it). Calls
/// compute and return, the errors are counted, and the temporary files are removed.
#[test]
fn a_full_disk_still_returns_computed_values_and_leaves_no_temporary_files() {
    const TEST: &str = "a_full_disk_still_returns_computed_values_and_leaves_no_temporary_files";
    if role().is_some() {
        // SIGXFSZ is signal 25: bit 24 of the ignored signals' mask.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ignored = status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap());
        let xfsz_ignored = ignored.is_some_and(|mask| mask & (1 << 24) != 0);
        let (executions, errors) = multi_thread().block_on(async {
            let cache = AsyncCache::new("full", DiskStore::<u32, Vec<u8>>::new(dir(TEST)));
            for key in 0..3u8 {
                let value = vec![key; 4000];
                let got = cache
                    .get_or_compute(u32::from(key), || async { vec![key; 4000] })
                    .await;
                assert_eq!(got, value, "the computed value is returned");
                assert_eq!(cache.get(&u32::from(key)).await.unwrap(), None);
            }
            let stats = cache.stats().await.unwrap();
            (stats.executions, stats.store_errors)
        });
        println!("RESULT ignored={xfsz_ignored} executions={executions} errors={errors}");
        return;
    }
    let temp = TempDir::new(TEST);
    // Through `sh`: `trap '' XFSZ` ignores the signal (kept across `exec`), `ulimit -f 1`
    // limits files to one block of 512 bytes.
    let limited = children::command(
        TEST,
        "full",
        &env(),
        &["sh", "-c", "trap '' XFSZ; ulimit -f 1 && exec \"$@\"", "sh"],
    )
    .spawn()
    .expect("a child process");
    let results = results_of(limited);
    assert_eq!(results, ["ignored=true executions=3 errors=3"]);
    // Nothing left in the namespace's data: no entry, no temporary file.
    let mut left = Vec::new();
    let mut dirs = vec![temp.0.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => dirs.push(entry.path()),
                false => left.push(entry.path()),
            }
        }
    }
    left.retain(|path| !["locks", "epochs"].contains(&path.file_name().unwrap().to_str().unwrap()));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An entry written by a store of another value type, copied where this store's entry of the
/// same key belongs: a miss, counted as a store error (its bytes are not an entry of this
/// type), and replaced by the value computed.
#[test]
fn an_entry_of_another_type_is_a_counted_miss_and_gets_replaced() {
    const TEST: &str = "changed-type";
    let _temp = TempDir::new(TEST);
    multi_thread().block_on(async {
        let old = AsyncCache::new("changed", DiskStore::<u32, String>::new(dir(TEST)));
        old.get_or_compute(1, || async { "a string value".to_owned() })
            .await;
        let new = AsyncCache::new("changed", DiskStore::<u32, Rule>::new(dir(TEST)));
        let (old_namespace, new_namespace) =
            (old.store().namespace_dir(), new.store().namespace_dir());
        assert_ne!(
            old_namespace, new_namespace,
            "the types are in the namespace"
        );
        let files = entry_files(&old_namespace);
        let [old_file] = files.as_slice() else {
            panic!("one entry file: {files:?}")
        };
        let file = new_namespace.join(old_file.strip_prefix(&old_namespace).unwrap());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::copy(old_file, &file).unwrap();
        let copied = std::fs::read(&file).unwrap();

        let read = new.get(&1).await;
        assert!(
            matches!(read, Err(DiskStoreError::Corrupt { .. })),
            "{read:?}"
        );
        let rule = Rule {
            id: 1,
            pattern: "a*b".to_owned(),
            weights: vec![0.5],
        };
        let value = new.get_or_compute(1, || async { rule.clone() }).await;
        assert_eq!(value, rule, "computed");
        let stats = new.stats().await.unwrap();
        assert_eq!(stats.executions, 1);
        assert!(stats.store_errors >= 1, "{stats:?}");
        assert_ne!(
            std::fs::read(&file).unwrap(),
            copied,
            "the file was replaced"
        );
        assert_eq!(new.get(&1).await.unwrap(), Some(rule));
        assert_eq!(
            old.get(&1).await.unwrap().as_deref(),
            Some("a string value"),
            "the old type's entry is left alone"
        );
    });
}

/// Invalidation by another process: `invalidate`, `invalidate_if` and `clear`, each called in
/// the parent while a child process computes the key; the child's value, computed from before
/// the invalidation, is not written, and a third process sees nothing.
#[test]
fn invalidation_reaches_every_process_with_no_repopulation_window() {
    const TEST: &str = "invalidation_reaches_every_process_with_no_repopulation_window";
    let cache = |test: &str| AsyncCache::new("inv", DiskStore::<u32, String>::new(dir(test)));
    if let Some(role) = role() {
        let test = std::env::var("MEMOFLIGHT_SUBTEST").expect("set by the parent");
        multi_thread().block_on(async {
            let cache = cache(&test);
            match role.as_str() {
                "slow" => {
                    let value = cache
                        .get_or_compute(1, || async {
                            count_execution(&test);
                            std::fs::write(dir(&test).join("started"), b"").unwrap();
                            // Bounded: a parent that failed before its signal leaves no
                            // process behind.
                            let started = Instant::now();
                            while !dir(&test).join("go").exists() {
                                assert!(started.elapsed() < common::HANG, "no signal to go");
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            "old".to_owned()
                        })
                        .await;
                    println!("RESULT {value}");
                }
                _ => println!("RESULT {:?}", cache.get(&1).await.unwrap()),
            }
        });
        return;
    }
    for operation in ["invalidate", "invalidate_if", "clear"] {
        let test = format!("invalidation-{operation}");
        let _temp = TempDir::new(&test);
        let mut env = env();
        env.push(("MEMOFLIGHT_SUBTEST", test.clone()));
        let slow = children::spawn(TEST, "slow", &env);
        wait_for_file(&dir(&test).join("started"));
        multi_thread().block_on(async {
            let cache = cache(&test);
            match operation {
                "invalidate" => cache.invalidate(&1).await.unwrap(),
                "invalidate_if" => cache.invalidate_if(|key, _| *key == 1).await.unwrap(),
                _ => cache.clear().await.unwrap(),
            }
        });
        std::fs::write(dir(&test).join("go"), b"").unwrap();
        assert_eq!(
            results_of(slow),
            ["old"],
            "{operation}: the caller got its value"
        );
        let seen = results_of(children::spawn(TEST, "reader", &env));
        assert_eq!(seen, ["None"], "{operation}: the old value was not written");
        multi_thread().block_on(async {
            let cache = cache(&test);
            let fresh = cache.get_or_compute(1, || async { "new".to_owned() }).await;
            assert_eq!(fresh, "new", "{operation}");
            assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
        });
        assert_eq!(executions(&test), 1, "{operation}");
    }
}

/// A leader process that never finishes (stuck) holds its key: a caller with `wait_timeout`
/// waits that long, then computes its own value and returns it.
#[test]
fn wait_timeout_bounds_a_wait_for_a_stuck_process() {
    const TEST: &str = "wait_timeout_bounds_a_wait_for_a_stuck_process";
    let store = || DiskStore::<u32, String>::new(dir(TEST));
    if role().is_some() {
        multi_thread().block_on(async {
            AsyncCache::new("stuck", store())
                .get_or_compute(1, || async {
                    count_execution(TEST);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "never".to_owned()
                })
                .await;
        });
        return;
    }
    let _temp = TempDir::new(TEST);
    // Killed however the test ends.
    let _stuck = KillOnDrop(children::spawn(TEST, "stuck", &env()));
    let started = Instant::now();
    while executions(TEST) == 0 {
        assert!(started.elapsed() < common::HANG, "the leader never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    // A regression that ignores `wait_timeout` fails here within 30 s instead of hanging.
    let waited = common::run_bounded_for(Duration::from_secs(30), move || {
        multi_thread().block_on(async {
            let cache =
                AsyncCache::new("stuck", store()).with_wait_timeout(Duration::from_millis(200));
            let value = cache
                .get_or_compute(1, || async {
                    count_execution(TEST);
                    "mine".to_owned()
                })
                .await;
            assert_eq!(value, "mine");
            // Computed alone: not written over the stuck leader's key.
            assert_eq!(cache.get(&1).await.unwrap(), None);
        })
    });
    waited.expect("no panic");
    assert_eq!(executions(TEST), 2);
}

/// `../shared/SCENARIOS.md` §4 across processes: 10 hook processes fire at once in each
/// window; exactly one plays.
#[test]
fn ten_hook_processes_play_once_per_window() {
    const TEST: &str = "ten_hook_processes_play_once_per_window";
    #[cached(async_store = DiskStore::new(dir(TEST)).ttl(Duration::from_millis(1000)))]
    fn play(sound: String) -> u32 {
        count_execution(TEST);
        let _ = sound;
        std::process::id()
    }

    if role().is_some() {
        sleep_until_released();
        let (_, origin) = play_with_origin("bell.wav".to_owned());
        println!("RESULT {}", origin == Origin::Computed);
        return;
    }
    let _temp = TempDir::new(TEST);
    for window in 1..=2 {
        let played = children::callers_released_together(TEST, 10, &env());
        assert_eq!(played.len(), 10);
        let plays = played.iter().filter(|p| *p == "true").count();
        assert_eq!(plays, 1, "window {window}: {played:?}");
        assert_eq!(executions(TEST), window);
        // The window ends (the value expires) before the next one fires.
        std::thread::sleep(Duration::from_millis(1100));
    }
}

/// User code with no lock held: a predicate of `invalidate_if` that calls the memoized
/// function works, and only the values it picks are removed.
#[test]
fn a_predicate_may_call_the_memoized_function() {
    const TEST: &str = "predicate";
    #[cached(async_store = DiskStore::new(dir(TEST)))]
    fn square(n: u32) -> u64 {
        u64::from(n) * u64::from(n)
    }

    let _temp = TempDir::new(TEST);
    let remaining = common::run_bounded(|| {
        for n in 1..=4 {
            square(n);
        }
        let cache = square_cache();
        cache
            .block_on(cache.invalidate_if(|n, value| {
                assert_eq!(square(*n), *value, "a call from the predicate");
                n % 2 == 0
            }))
            .unwrap();
        (1..=4)
            .filter(|n| cache.block_on(cache.get(n)).unwrap().is_some())
            .collect::<Vec<_>>()
    })
    .expect("no panic");
    assert_eq!(remaining, [1, 3]);
}

mod billing {
    use super::*;
    #[cached(async_store = DiskStore::new(dir("namesakes")))]
    pub fn total(id: u32) -> String {
        format!("billing total {id}")
    }
}

mod shipping {
    use super::*;
    #[cached(async_store = DiskStore::new(dir("namesakes")))]
    pub fn total(id: u32) -> String {
        format!("shipping total {id}")
    }
}

/// Two functions of one name and types in two modules, on one directory: each reads its own
/// values (the store is bound to the function's path).
#[test]
fn namesakes_in_two_modules_keep_their_values_apart() {
    let _temp = TempDir::new("namesakes");
    assert_eq!(billing::total(1), "billing total 1");
    assert_eq!(shipping::total(1), "shipping total 1");
    assert_eq!(billing::total_with_origin(1).1, Origin::Hit);
    assert_eq!(
        shipping::total_with_origin(1),
        ("shipping total 1".to_owned(), Origin::Hit)
    );
}

/// One store given to two caches: the second panics with a message that says why, instead
/// of letting two functions read each other's values.
#[test]
fn one_store_given_to_two_functions_panics_clearly() {
    let _temp = TempDir::new("shared-store");
    let store = std::sync::Arc::new(DiskStore::<u32, String>::new(dir("shared-store")));
    let _first = AsyncCache::new("first", std::sync::Arc::clone(&store));
    let second = std::panic::catch_unwind(|| AsyncCache::new("second", store));
    let message = common::panic_message(&*second.err().expect("a panic"));
    assert!(message.contains("given to two functions"), "{message}");
}

/// Things that are not entries where an entry belongs: a FIFO (which would block an open for
/// reading), a directory, an entry longer than the limit; a file where an entry's directory
/// belongs, directories where the lock and counters files belong. Calls return computed
/// values and never hang; what is in the way inside the namespace is removed and the value
/// written; a value too long to write is counted and not written. A file where the namespace
/// directory itself belongs is never removed.
#[test]
fn foreign_files_and_values_past_the_limit_never_hang_or_fail_a_call() {
    const TEST: &str = "foreign";
    let _temp = TempDir::new(TEST);
    let result = common::run_bounded(|| {
        multi_thread().block_on(async {
            let cache = AsyncCache::new(
                "foreign",
                DiskStore::<u32, Vec<u8>>::new(dir(TEST)).max_value_bytes(200),
            );
            let namespace = cache.store().namespace_dir();
            cache.get_or_compute(1, || async { vec![1] }).await;
            let files = entry_files(&namespace);
            let [file] = files.as_slice() else {
                panic!("one entry file: {files:?}")
            };
            // A FIFO in its place.
            std::fs::remove_file(file).unwrap();
            let made = std::process::Command::new("mkfifo").arg(file).status();
            assert!(made.is_ok_and(|status| status.success()), "mkfifo");
            let value = cache.get_or_compute(1, || async { vec![2] }).await;
            assert_eq!(value, vec![2], "a FIFO is a miss");
            assert_eq!(cache.get(&1).await.unwrap(), Some(vec![2]), "and replaced");
            // A value longer than the limit: returned, counted, not written.
            let errors = cache.stats().await.unwrap().store_errors;
            let long = cache.get_or_compute(3, || async { vec![7; 500] }).await;
            assert_eq!(long.len(), 500);
            assert_eq!(cache.get(&3).await.unwrap(), None);
            assert!(cache.stats().await.unwrap().store_errors > errors);
            // A file longer than the limit where key 1's entry is: a miss, then replaced.
            std::fs::write(file, vec![0u8; 1000]).unwrap();
            let value = cache.get_or_compute(1, || async { vec![4] }).await;
            assert_eq!(value, vec![4]);
            assert_eq!(cache.get(&1).await.unwrap(), Some(vec![4]));
            // A directory, with a file in it, where key 1's entry belongs: a counted miss, the
            // directory removed and the value written.
            std::fs::remove_file(file).unwrap();
            std::fs::create_dir_all(file.join("inside")).unwrap();
            let errors = cache.stats().await.unwrap().store_errors;
            let value = cache.get_or_compute(1, || async { vec![5] }).await;
            assert_eq!(value, vec![5], "a directory is a miss");
            assert!(cache.stats().await.unwrap().store_errors > errors);
            assert!(file.is_file(), "the directory was replaced by the entry");
            assert_eq!(cache.get(&1).await.unwrap(), Some(vec![5]));
            // A file where key 1's directory (`data/xx`) belongs.
            let shard = file.parent().unwrap();
            std::fs::remove_dir_all(shard).unwrap();
            std::fs::write(shard, b"in the way").unwrap();
            let value = cache.get_or_compute(1, || async { vec![6] }).await;
            assert_eq!(value, vec![6]);
            assert_eq!(cache.get(&1).await.unwrap(), Some(vec![6]));
            // Directories where the lock file and the counters file belong: an `invalidate`
            // (which bumps a counter) and a computation (which takes a key lock) still work.
            for (round, name) in (7u8..).zip(["locks", "epochs"]) {
                let path = namespace.join(name);
                std::fs::remove_file(&path).unwrap();
                std::fs::create_dir_all(path.join("inside")).unwrap();
                cache.invalidate(&1).await.unwrap();
                let value = cache.get_or_compute(1, || async move { vec![round] }).await;
                assert_eq!(value, vec![round]);
                assert_eq!(cache.get(&1).await.unwrap(), Some(vec![round]), "{name}");
                assert!(path.is_file(), "{name} is a file again");
            }
            // A file where the namespace directory belongs: every call computes, and the file
            // (outside what the store may remove) is left alone.
            let blocked = AsyncCache::new("blocked", DiskStore::<u32, Vec<u8>>::new(dir(TEST)));
            let blocked_namespace = blocked.store().namespace_dir();
            std::fs::create_dir_all(blocked_namespace.parent().unwrap()).unwrap();
            std::fs::write(&blocked_namespace, b"not the store's").unwrap();
            for round in 0..2u8 {
                let value = blocked
                    .get_or_compute(1, || async move { vec![round] })
                    .await;
                assert_eq!(value, vec![round], "computed every time");
            }
            assert_eq!(
                std::fs::read(&blocked_namespace).unwrap(),
                b"not the store's"
            );
        });
    });
    result.expect("no panic");
}
