//! `RedisStore` against a real `redis-server`, started by each test on a free loopback port
//! with a temporary directory, and killed at its end. Processes are this test binary run again
//! as children (`tests/common/children.rs`), killed for real where a test says so. Executions are
//! counted in Redis (`INCR`), across every process. Without `redis-server` on `PATH` the tests
//! say they were skipped; with `CI` set its absence fails them.
#![cfg(feature = "redis")]

mod common;

use common::children::{self, results_of, role, sleep_until_released};
use common::multi_thread;
use memoflight::{cached, AsyncCache, AsyncStore, Origin, RedisStore, Refresh};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A `redis-server` of one test: killed and its directory removed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    /// Starts one, or returns `None` (after saying so) when `redis-server` is not installed and
    /// this is not CI.
    fn start() -> Option<Server> {
        Server::start_with(&[])
    }

    /// [`start`](Server::start) with more arguments for `redis-server`.
    fn start_with(args: &[&str]) -> Option<Server> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed; CI must install it (apt-get install redis-server)"
            );
            say_skipped();
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        Some(Server::start_on(port, args))
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A fresh server on the same port, after [`kill`](Server::kill).
    fn restart(&mut self) {
        let fresh = Server::start_on(self.port, &[]);
        drop(std::mem::replace(self, fresh));
    }

    fn start_on(port: u16, args: &[&str]) -> Server {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memoflight-redis-{}-{port}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Server { child, port, dir };
        let started = Instant::now();
        // Any answer: with `requirepass`, PING is refused until AUTH.
        while server.command(&["PING"]).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// One command over a plain connection (RESP written by hand: the test's own probe, not
    /// the store's client); the first line of the answer.
    fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_owned();
        if let Some(length) = line.strip_prefix('$') {
            let length: i64 = length.parse().ok()?;
            if length < 0 {
                return Some("(nil)".to_owned());
            }
            let mut body = vec![0; length as usize + 2];
            reader.read_exact(&mut body).ok()?;
            return Some(String::from_utf8_lossy(&body[..length as usize]).into_owned());
        }
        Some(line)
    }

    /// The integer a counter key holds (0 when absent).
    fn counter(&self, key: &str) -> i64 {
        let answer = self.command(&["GET", key]).expect("redis answers");
        answer.parse().unwrap_or(0)
    }
}

/// Says, once per test binary, that the Redis tests were skipped. Written to the process's
/// stderr itself: libtest captures what `eprintln!` prints in a test (and shows it only for a
/// failed one), but not writes to `std::io::stderr()`, so this shows in a plain `cargo test`.
fn say_skipped() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-server is not on PATH, so the Redis tests of tests/test_redis.rs \
             did not run (they pass without checking anything); install it (apt-get install \
             redis-server) to run them. With CI set, its absence fails them."
        );
    });
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counts one execution in Redis (every process's executions land in the same counter).
async fn count_execution(url: &str, counter: &str) {
    let client = redis::Client::open(url).expect("a valid URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test's own connection");
    let _: i64 = redis::cmd("INCR")
        .arg(counter)
        .query_async(&mut connection)
        .await
        .expect("INCR");
}

fn store<V>(url: &str, prefix: &str) -> RedisStore<u32, V> {
    RedisStore::new(url).prefix(prefix)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rule {
    id: u32,
    pattern: String,
    weights: Vec<f64>,
    parent: Option<Box<Rule>>,
}

#[test]
fn values_round_trip_and_a_stampede_in_one_process_runs_once() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let strings = AsyncCache::new("strings", store::<String>(&url, "rt"));
        let bytes = AsyncCache::new("bytes", store::<Vec<u8>>(&url, "rt"));
        let rules = AsyncCache::new("rules", store::<Rule>(&url, "rt"));
        let rule = Rule {
            id: 7,
            pattern: "a*b".to_owned(),
            weights: vec![0.5, 1.5],
            parent: Some(Box::new(Rule {
                id: 1,
                pattern: String::new(),
                weights: vec![],
                parent: None,
            })),
        };
        let calls = (0..16).map(|_| {
            strings.get_or_compute(1, || async {
                count_execution(&url, "rt:executions").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                "one".to_owned()
            })
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r == "one"));
        assert_eq!(server.counter("rt:executions"), 1);
        assert_eq!(strings.get(&1).await.unwrap().as_deref(), Some("one"));

        bytes.get_or_compute(2, || async { vec![0, 255, 7] }).await;
        assert_eq!(bytes.get(&2).await.unwrap(), Some(vec![0, 255, 7]));
        rules.get_or_compute(3, || async { rule.clone() }).await;
        assert_eq!(rules.get(&3).await.unwrap(), Some(rule.clone()));
        let stats = rules.stats().await.unwrap();
        assert_eq!((stats.misses, stats.executions, stats.entries), (1, 1, 1));
        assert_eq!(stats.store_errors, 0);
    });
}

/// The attribute form: `#[cached(async_store = RedisStore::new(..))]`; the key of a value is
/// namespaced by the function's name.
#[test]
fn the_attribute_form_names_keys_after_the_function() {
    static URL: OnceLock<String> = OnceLock::new();
    fn url() -> String {
        URL.get().expect("set by the test").clone()
    }
    #[cached(async_store = RedisStore::new(url()).prefix("attr"))]
    async fn greeting(id: u32) -> String {
        format!("hello {id}")
    }

    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    multi_thread().block_on(async {
        assert_eq!(greeting(5).await, "hello 5");
        assert_eq!(greeting_with_origin(5).await.1, Origin::Hit);
        // The same store, told the function's name as the cache tells it.
        let probe = RedisStore::<u32, String>::new(url()).prefix("attr");
        probe.bind("test_redis::greeting");
        let name = probe.redis_key(&5).unwrap();
        let name = String::from_utf8(name).unwrap();
        assert!(name.starts_with("attr:test_redis::greeting:v1."), "{name}");
        assert_eq!(server.command(&["EXISTS", &name]).as_deref(), Some(":1"));
    });
}

/// Runs this test again in a child process with `role`, told the server's URL.
fn spawn_child(test: &str, role: &str, url: &str, extra: &[(&str, String)]) -> Child {
    let mut env = vec![("MEMOFLIGHT_REDIS_URL", url.to_owned())];
    env.extend_from_slice(extra);
    children::spawn(test, role, &env)
}

/// Runs `processes` children of `test` in the role "caller" released at the same instant.
fn callers_released_together(test: &str, server: &Server, processes: usize) -> Vec<String> {
    children::callers_released_together(test, processes, &[("MEMOFLIGHT_REDIS_URL", server.url())])
}

fn child_url() -> String {
    std::env::var("MEMOFLIGHT_REDIS_URL").expect("set by the parent")
}

/// 8 processes × 8 tasks on one key, released at the same instant: one execution in all.
#[test]
fn a_stampede_of_eight_processes_runs_once() {
    const TEST: &str = "a_stampede_of_eight_processes_runs_once";
    if role().as_deref() == Some("caller") {
        let url = child_url();
        multi_thread().block_on(async {
            // No timer ends a wait here (the lease outlives the computation, and a waiter
            // rechecks only when woken): the round trips counted below are the protocol's own.
            let cache = AsyncCache::new(
                "stampede",
                store::<String>(&url, "st").recheck_after(Duration::from_secs(60)),
            );
            sleep_until_released();
            let calls = (0..8).map(|_| {
                cache.get_or_compute(42, || async {
                    count_execution(&url, "st:executions").await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    format!("computed by {}", std::process::id())
                })
            });
            let results = futures::future::join_all(calls).await;
            let first = &results[0];
            assert!(results.iter().all(|r| r == first));
            println!("RESULT {first}");
        });
        return;
    }
    let Some(server) = Server::start() else {
        return;
    };
    let results = callers_released_together(TEST, &server, 8);
    assert_eq!(results.len(), 8, "every process returned");
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    // Round trips, counted by the server before this test reads its counter: each process
    // subscribes before it tries the lease, so a waiting one runs the lease script once, is
    // woken by the leader's write, and reads the value with one GET. Scripts: 8 lease tries
    // and the write, 9 (before the subscription came first: 23, a second try per waiting
    // process as it subscribed and a third once woken; polling alone: 79). GETs (the server
    // counts those the scripts run too): 8 × 9 looks by the cache (each call's, and each
    // leader's second look), 16 in the scripts (a lease try that wins reads the value, one
    // that finds the lease held reads the lease too, the write reads the lease), and one read
    // per waiting process: 95.
    let stats = server.command(&["INFO", "commandstats"]).expect("INFO");
    let scripts = calls_in(&stats, "eval");
    let gets = calls_in(&stats, "get");
    eprintln!("in the stampede: {scripts} EVAL, {gets} GET");
    assert!(
        scripts <= 8 + 1,
        "{scripts} script round trips for 8 processes: more than one lease try per process"
    );
    let (looks, in_scripts, reads) = (8 * 9, 1 + 7 * 2 + 1, 7);
    assert!(
        gets <= looks + in_scripts + reads,
        "{gets} GETs: more than one read per waiting process"
    );
    assert_eq!(
        server.counter("st:executions"),
        1,
        "one execution in 8 processes"
    );
}

/// The leader process is SIGKILLed mid-computation: its lease expires, exactly one of the
/// waiting processes takes over, and every one of them returns its value.
#[test]
fn a_killed_leader_is_taken_over_once() {
    const TEST: &str = "a_killed_leader_is_taken_over_once";
    if let Some(role) = role() {
        let url = child_url();
        multi_thread().block_on(async {
            let cache = AsyncCache::new(
                "takeover",
                store::<String>(&url, "to").lease(Duration::from_millis(900)),
            );
            let value = cache
                .get_or_compute(9, || async {
                    count_execution(&url, "to:executions").await;
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
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let mut doomed = spawn_child(TEST, "doomed", &url, &[]);
    let started = Instant::now();
    while server.counter("to:executions") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the leader never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiters: Vec<Child> = (0..3)
        .map(|_| spawn_child(TEST, "waiter", &url, &[]))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    doomed.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = doomed.wait();
    let results: Vec<String> = waiters.into_iter().flat_map(results_of).collect();
    eprintln!(
        "takeover and computation done {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    assert_eq!(
        server.counter("to:executions"),
        2,
        "the killed leader's execution and exactly one takeover"
    );
}

/// Redis unreachable, or paused past the timeout: every call computes and returns, counted
/// as a store error, and nothing hangs.
#[test]
fn an_unreachable_or_paused_redis_degrades_to_local_computation() {
    let Some(server) = Server::start() else {
        return;
    };
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    multi_thread().block_on(async {
        let down = AsyncCache::new(
            "down",
            RedisStore::<u32, String>::new(format!("redis://127.0.0.1:{closed_port}/"))
                .timeout(Duration::from_millis(200)),
        );
        let executions = std::sync::atomic::AtomicUsize::new(0);
        for round in 0..3 {
            let value = down
                .get_or_compute(1, || async {
                    executions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    format!("local {round}")
                })
                .await;
            assert_eq!(value, format!("local {round}"));
        }
        assert_eq!(executions.into_inner(), 3, "computed locally each time");
        assert!(down.stats().await.is_err(), "stats need the store's count");
        let counters = down.counters();
        assert_eq!(counters.executions, 3, "read while Redis is down");
        assert!(counters.store_errors >= 3, "{counters:?}");

        let paused = AsyncCache::new(
            "paused",
            store::<String>(&server.url(), "pz").timeout(Duration::from_millis(200)),
        );
        paused
            .get_or_compute(1, || async { "before".to_owned() })
            .await;
        let pause = Duration::from_millis(1500);
        let pause_ms = pause.as_millis().to_string();
        assert_eq!(
            server
                .command(&["CLIENT", "PAUSE", &pause_ms, "ALL"])
                .as_deref(),
            Some("+OK")
        );
        // The pause ends no earlier than this.
        let paused_until = Instant::now() + pause;
        let value = paused
            .get_or_compute(2, || async { "during".to_owned() })
            .await;
        assert_eq!(value, "during");
        // The call gave up on the paused server (a failure counted) and computed: had it
        // waited for the pause to end, the server would have answered and nothing would be
        // counted. The counters are read without the store.
        let counters = paused.counters();
        assert_eq!(counters.executions, 2);
        assert!(counters.store_errors >= 1, "{counters:?}");
        tokio::time::sleep_until(paused_until.into()).await;
        let stats = paused.stats().await.unwrap();
        assert_eq!(stats.store_errors, counters.store_errors);
    });
}

/// Bytes that do not decode, and values over the size limit, are misses; the computed value
/// overwrites bad bytes; nothing panics.
#[test]
fn corrupt_and_oversized_values_are_misses() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let cache = AsyncCache::new("corrupt", store::<Rule>(&url, "cv"));
        let name = String::from_utf8(cache.store().redis_key(&1).unwrap()).unwrap();
        assert_eq!(
            server
                .command(&["SET", &name, "\u{1}\u{ff}garbage"])
                .as_deref(),
            Some("+OK")
        );
        let rule = Rule {
            id: 1,
            pattern: "x".to_owned(),
            weights: vec![1.0],
            parent: None,
        };
        let value = cache.get_or_compute(1, || async { rule.clone() }).await;
        assert_eq!(value, rule);
        assert_eq!(cache.stats().await.unwrap().executions, 1);
        assert_eq!(cache.get(&1).await.unwrap(), Some(rule), "overwritten");

        let small = AsyncCache::new("oversized", store::<String>(&url, "cv").max_value_bytes(8));
        for _ in 0..2 {
            small.get_or_compute(1, || async { "x".repeat(100) }).await;
        }
        assert_eq!(
            small.stats().await.unwrap().executions,
            2,
            "too long to store: computed each time"
        );
    });
}

/// Two caches on one namespace stand for two processes: an invalidation through one is seen
/// by the other, and a leader whose key is invalidated while it computes does not write.
#[test]
fn invalidation_reaches_every_process_and_fences_a_running_leader() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let a = AsyncCache::new("shared", store::<String>(&url, "inv"));
        let b = AsyncCache::new("shared", store::<String>(&url, "inv"));
        a.get_or_compute(1, || async { "old".to_owned() }).await;
        let seen = b
            .get_or_compute(1, || async { "recomputed".to_owned() })
            .await;
        assert_eq!(seen, "old", "a hit in the other process");
        a.invalidate(&1).await.unwrap();
        let seen = b.get_or_compute(1, || async { "new".to_owned() }).await;
        assert_eq!(seen, "new", "the invalidation reached the other process");

        // A leader in `a` computes; `b` invalidates meanwhile; `a`'s value is returned to its
        // caller and not written.
        let leader = a.get_or_compute(2, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "stale".to_owned()
        });
        let invalidator = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.invalidate(&2).await.unwrap();
        };
        let (value, ()) = tokio::join!(leader, invalidator);
        assert_eq!(value, "stale");
        assert_eq!(
            a.get(&2).await.unwrap(),
            None,
            "the fenced write did not land"
        );
        b.clear().await.unwrap();
        assert_eq!(a.len().await.unwrap(), 0);
    });
}

/// `invalidate_if` on Redis, through one of two caches on one namespace (two processes): the
/// values the predicate picks are gone for both, the others stay, and a leader computing in
/// the other when it is called does not write its value.
#[test]
fn invalidate_if_reaches_every_process_and_fences_a_running_leader() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let a = AsyncCache::new("picked", store::<String>(&url, "pick"));
        let b = AsyncCache::new("picked", store::<String>(&url, "pick"));
        for n in 1..=4 {
            a.get_or_compute(n, || async move { format!("v{n}") }).await;
        }
        let started = tokio::sync::Notify::new();
        let go = tokio::sync::Notify::new();
        let leader = b.get_or_compute(9, || async {
            started.notify_one();
            go.notified().await;
            "stale".to_owned()
        });
        let invalidator = async {
            started.notified().await;
            a.invalidate_if(|n, value| {
                assert_eq!(*value, format!("v{n}"), "keys and values decoded");
                n % 2 == 0
            })
            .await
            .unwrap();
            go.notify_one();
        };
        let (value, ()) = tokio::join!(leader, invalidator);
        assert_eq!(value, "stale", "the leader's caller got its value");
        assert_eq!(
            b.get(&9).await.unwrap(),
            None,
            "the fenced write did not land"
        );
        for n in 1..=4 {
            let expected = (n % 2 == 1).then(|| format!("v{n}"));
            assert_eq!(b.get(&n).await.unwrap(), expected, "key {n}");
        }
    });
}

/// How many scripts the server has run (`EVAL` calls).
async fn eval_calls(probe: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(probe)
        .await
        .expect("INFO");
    calls_in(&stats, "eval")
}

/// The calls of `command` (lower case) counted in an `INFO commandstats` answer (0 before the
/// first).
fn calls_in(commandstats: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    commandstats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// `clear` and `invalidate_if` delete every lease of the namespace, and wake every process
/// waiting for one: the waiter here rechecks Redis only once an hour without a wake-up message,
/// so it takes the key over (and writes its value, under a lease of its own) only if the
/// clearing woke it. Each round is bounded: a waiter left waiting fails the test.
#[test]
fn clear_and_invalidate_if_wake_the_processes_waiting_for_a_lease() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let a = AsyncCache::new("woken", store::<String>(&url, "wk"));
        let b = AsyncCache::new(
            "woken",
            store::<String>(&url, "wk").recheck_after(Duration::from_secs(3600)),
        );
        let client = redis::Client::open(url.as_str()).expect("a valid URL");
        let probe = client
            .get_multiplexed_async_connection()
            .await
            .expect("the test's own connection");
        for (key, clearing) in [(1, "clear"), (2, "invalidate_if")] {
            let started = tokio::sync::Notify::new();
            let go = tokio::sync::Notify::new();
            let leader = a.get_or_compute(key, || async {
                started.notify_one();
                go.notified().await;
                "fenced".to_owned()
            });
            let rest = async {
                started.notified().await;
                // `b` listens (it subscribes before its lease try) once its one lease try
                // found the lease held.
                let mut probe = probe.clone();
                let tries = eval_calls(&mut probe).await + 1;
                let waiter = b.get_or_compute(key, || async { "taken over".to_owned() });
                let clearer = async {
                    while eval_calls(&mut probe).await < tries {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    match clearing {
                        "clear" => a.clear().await.unwrap(),
                        _ => a.invalidate_if(|_, _| false).await.unwrap(),
                    }
                };
                let (value, ()) = tokio::join!(waiter, clearer);
                go.notify_one();
                value
            };
            let round = async { tokio::join!(leader, rest) };
            let (fenced, taken) = tokio::time::timeout(Duration::from_secs(60), round)
                .await
                .unwrap_or_else(|_| panic!("{clearing}: the waiting process was not woken"));
            assert_eq!(
                fenced, "fenced",
                "{clearing}: the leader's caller got its value"
            );
            assert_eq!(taken, "taken over", "{clearing}");
            assert_eq!(
                a.get(&key).await.unwrap().as_deref(),
                Some("taken over"),
                "{clearing}: the waiter wrote under its own lease, the leader's write was fenced"
            );
        }
    });
}

/// A leader whose future is dropped mid-computation (a timeout around the call) releases its
/// lease at once: another process then takes the key and writes its value, long before the
/// dropped leader's lease (30 s) would have expired. Without the release, the other process
/// would give up waiting after its `wait_timeout` and compute without writing.
#[test]
fn a_cancelled_leader_releases_its_lease() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let lease = Duration::from_secs(30);
        let a = AsyncCache::new("cancelled", store::<String>(&url, "cl").lease(lease));
        let b = AsyncCache::new("cancelled", store::<String>(&url, "cl").lease(lease))
            .with_wait_timeout(Duration::from_secs(5));
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            a.get_or_compute(1, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never".to_owned()
            }),
        )
        .await;
        assert!(abandoned.is_err(), "the leader's future was dropped");
        let value = b
            .get_or_compute(1, || async { "taken over".to_owned() })
            .await;
        assert_eq!(value, "taken over");
        assert_eq!(
            a.get(&1).await.unwrap().as_deref(),
            Some("taken over"),
            "written under a lease of its own"
        );
    });
}

/// Redis killed while one caller computes and another waits for it (in another cache, as
/// another process would): both return a computed value; then Redis comes back on the same
/// port, the same caches store again, and their counters show the failures.
#[test]
fn redis_killed_mid_flight_and_restarted() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let timeout = Duration::from_millis(300);
        let leader = AsyncCache::new("restarted", store::<String>(&url, "rs").timeout(timeout));
        let waiter = AsyncCache::new("restarted", store::<String>(&url, "rs").timeout(timeout));
        let leading = leader.get_or_compute(1, || async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "from the leader".to_owned()
        });
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waiter
                .get_or_compute(1, || async { "computed alone".to_owned() })
                .await
        };
        let killer = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.kill();
        };
        let (led, waited, ()) = tokio::join!(leading, waiting, killer);
        assert_eq!(led, "from the leader");
        assert_eq!(
            waited, "computed alone",
            "the waiter computed once Redis was gone"
        );

        server.restart();
        let mut stored = None;
        for round in 0..50 {
            leader
                .get_or_compute(2, || async move { format!("round {round}") })
                .await;
            stored = leader.get(&2).await.ok().flatten();
            if stored.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(stored.is_some(), "stored again after the restart");
        let waiter_stats = waiter.stats().await.unwrap();
        assert_eq!(waiter_stats.executions, 1);
        assert!(waiter_stats.store_errors >= 1, "{waiter_stats:?}");
        let leader_stats = leader.stats().await.unwrap();
        assert!(
            leader_stats.store_errors >= 1,
            "its write failed: {leader_stats:?}"
        );
    });
}

/// `Result` and `Option` follow the same rules as in memory: an `Err` (or `None`) is returned
/// and not stored, so the next call, in any process, computes again; `Ok` is stored; with
/// `cache_err` the whole `Result` is stored.
#[test]
fn results_follow_the_in_memory_rules() {
    static URL: OnceLock<String> = OnceLock::new();
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn url() -> String {
        URL.get().expect("set by the test").clone()
    }
    fn counted() {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    #[cached(async_store = RedisStore::new(url()).prefix("res"))]
    async fn parse(text: String) -> Result<u32, String> {
        counted();
        text.parse().map_err(|_| format!("not a number: {text}"))
    }
    #[cached(async_store = RedisStore::new(url()).prefix("res"))]
    async fn find(id: u32) -> Option<String> {
        counted();
        (id % 2 == 0).then(|| format!("even {id}"))
    }
    #[cached(async_store = RedisStore::new(url()).prefix("res"), cache_err = true)]
    async fn parse_remembering(text: String) -> Result<u32, String> {
        counted();
        text.parse().map_err(|_| format!("not a number: {text}"))
    }

    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    let calls = || CALLS.load(std::sync::atomic::Ordering::SeqCst);
    multi_thread().block_on(async {
        for _ in 0..2 {
            assert_eq!(
                parse("x".to_owned()).await,
                Err("not a number: x".to_owned())
            );
        }
        assert_eq!(calls(), 2, "an Err is not stored");
        for _ in 0..2 {
            assert_eq!(parse("7".to_owned()).await, Ok(7));
        }
        assert_eq!(calls(), 3, "an Ok is");
        for _ in 0..2 {
            assert_eq!(find(1).await, None);
            assert_eq!(find(2).await.as_deref(), Some("even 2"));
        }
        assert_eq!(calls(), 6, "None twice, Some once");
        for _ in 0..2 {
            assert_eq!(
                parse_remembering("y".to_owned()).await,
                Err("not a number: y".to_owned())
            );
        }
        assert_eq!(calls(), 7, "cache_err stores the Err");
    });
}

/// `refresh_after` across processes (two caches on one namespace, 4 calls each, at once): a
/// due value is served at once to 7 of the 8 calls while exactly one, in one process,
/// refreshes it; the refreshed value is then a hit everywhere.
#[test]
fn one_process_refreshes_a_due_value_while_every_other_call_is_served() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let refreshing = || {
            store::<String>(&url, "rf")
                .ttl(Duration::from_secs(60))
                .refresh_after(Duration::from_millis(300))
        };
        let a = AsyncCache::new("refreshed", refreshing());
        let b = AsyncCache::new("refreshed", refreshing());
        let executions = std::sync::atomic::AtomicUsize::new(0);
        // The refresh ends only once the 7 other calls returned: served at once, not waited.
        let gate = tokio::sync::Semaphore::new(0);
        let compute = |version: &'static str| {
            let (executions, gate) = (&executions, &gate);
            move || async move {
                executions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if version == "v2" {
                    gate.acquire().await.expect("open").forget();
                }
                version.to_owned()
            }
        };
        a.get_or_compute(1, compute("v1")).await;
        assert_eq!(
            b.get_or_compute(1, compute("never")).await,
            "v1",
            "fresh: a hit"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;

        let calls = (0..4).flat_map(|_| {
            [
                a.get_or_compute(1, compute("v2")),
                b.get_or_compute(1, compute("v2")),
            ]
        });
        let mut pending: futures::stream::FuturesUnordered<_> = calls.collect();
        let mut results = Vec::new();
        let collect = async {
            while let Some(result) = futures::StreamExt::next(&mut pending).await {
                results.push(result);
                if results.len() == 7 {
                    gate.add_permits(1);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), collect)
            .await
            .expect("the served calls did not wait for the refresh");
        results.sort();
        assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            results,
            ["v1", "v1", "v1", "v1", "v1", "v1", "v1", "v2"],
            "one call refreshed, the others were served the due value at once"
        );
        assert_eq!(b.get_or_compute(1, compute("never")).await, "v2");
        assert_eq!(a.get_or_compute(1, compute("never")).await, "v2");
        assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 2);
    });
}

/// The refresh decision is taken on what Redis holds when the lease is asked for, not on the
/// earlier look: a value refreshed since by another process is served (no second refresh),
/// one invalidated since is a miss (never served), and one another process is refreshing is
/// served while it does.
#[test]
fn a_refresh_is_decided_on_the_value_redis_holds_now() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let refreshing = || {
            store::<String>(&url, "rd")
                .ttl(Duration::from_secs(60))
                .refresh_after(Duration::from_millis(200))
        };
        let (a, b) = (refreshing(), refreshing());
        a.bind("decided");
        b.bind("decided");
        let lease = |refresh| match refresh {
            Refresh::Lead(lease) => lease,
            other => panic!("expected to lead the refresh, got {other:?}"),
        };

        a.insert(1, "v1".to_owned()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.look(&1).await.unwrap(), Some(("v1".to_owned(), true)));
        // `a` refreshes it meanwhile.
        let taken = lease(a.lead_refresh(&1).await.unwrap());
        assert_eq!(b.lead_refresh(&1).await.unwrap(), Refresh::Refreshing);
        assert!(a.insert_leased(1, "v2".to_owned(), &taken).await.unwrap());
        assert_eq!(
            b.lead_refresh(&1).await.unwrap(),
            Refresh::Refreshed("v2".to_owned()),
            "refreshed since the look: served, not refreshed again"
        );

        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.look(&1).await.unwrap(), Some(("v2".to_owned(), true)));
        a.remove(&1).await.unwrap();
        assert_eq!(
            b.lead_refresh(&1).await.unwrap(),
            Refresh::Gone,
            "invalidated since the look: a miss"
        );
    });
}

/// A value written directly (`AsyncStore::insert`) while a leader computes is newer: the
/// leader's write is fenced out, and the direct value stays.
#[test]
fn a_direct_write_fences_a_running_leader() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let cache = AsyncCache::new("direct", store::<String>(&url, "dw"));
        let other = store::<String>(&url, "dw");
        other.bind("direct");
        let leader = cache.get_or_compute(1, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "computed".to_owned()
        });
        let writer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            other.insert(1, "direct".to_owned()).await.unwrap();
        };
        let (value, ()) = tokio::join!(leader, writer);
        assert_eq!(value, "computed", "the leader's caller gets its own value");
        assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("direct"));
    });
}

/// Sync functions over Redis: 8 processes × 8 threads on one key run it once; a sync
/// computation may call another memoized function (nested calls park the same thread); the
/// handle's `block_on` invalidates from sync code.
#[test]
fn sync_functions_share_one_execution_across_processes() {
    const TEST: &str = "sync_functions_share_one_execution_across_processes";
    static URL: OnceLock<String> = OnceLock::new();
    fn url() -> String {
        URL.get().expect("set first").clone()
    }
    #[cached(async_store = RedisStore::new(url()).prefix("sync"))]
    fn report(day: u32) -> String {
        count_execution_blocking(&url(), "sync:executions");
        std::thread::sleep(Duration::from_millis(300));
        format!("report {day} by {}: {}", std::process::id(), header(day))
    }
    #[cached(async_store = RedisStore::new(url()).prefix("sync"))]
    fn header(day: u32) -> String {
        format!("header {day}")
    }

    if role().as_deref() == Some("caller") {
        URL.set(child_url()).unwrap();
        sleep_until_released();
        let results: Vec<String> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8).map(|_| scope.spawn(|| report(7))).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(results.iter().all(|r| r == &results[0]));
        println!("RESULT {}", results[0]);
        return;
    }
    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    let results = callers_released_together(TEST, &server, 8);
    assert_eq!(results.len(), 8);
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    assert!(results[0].ends_with("header 7"), "{}", results[0]);
    assert_eq!(
        server.counter("sync:executions"),
        1,
        "one execution in 8 processes"
    );

    // From this (sync) test: a hit, then an invalidation through the handle's `block_on`.
    assert_eq!(report_with_origin(7).1, Origin::Hit);
    let cache = report_cache();
    cache.block_on(cache.invalidate(&7)).unwrap();
    assert_eq!(report_with_origin(7).1, Origin::Computed);
    assert_eq!(server.counter("sync:executions"), 2);
}

/// A sync function whose computation calls itself on the same key panics with a clear
/// message instead of hanging.
#[test]
fn sync_same_key_recursion_over_redis_panics() {
    static URL: OnceLock<String> = OnceLock::new();
    #[cached(async_store = RedisStore::new(URL.get().unwrap().clone()).prefix("rec"))]
    fn looping(n: u32) -> u32 {
        looping(n) + 1
    }
    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    let outcome = common::run_bounded(|| std::panic::catch_unwind(|| looping(1)));
    let panic = outcome
        .expect("no hang")
        .expect_err("same-key recursion panics");
    let message = common::panic_message(panic.as_ref());
    assert!(message.contains("same-key recursion"), "{message}");
}

/// `count_execution` for sync code: a plain connection of the test's own.
fn count_execution_blocking(url: &str, counter: &str) {
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("redis-server");
    let request = format!("*2\r\n$4\r\nINCR\r\n${}\r\n{counter}\r\n", counter.len());
    stream.write_all(request.as_bytes()).expect("INCR");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("INCR's answer");
}

/// A sync computation longer than its lease keeps the lease (renewed by a task while the
/// computation holds its thread): another process waits for it instead of taking over.
#[test]
fn a_long_sync_computation_keeps_its_lease() {
    static URL: OnceLock<String> = OnceLock::new();
    static EXECUTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    #[cached(async_store = RedisStore::new(URL.get().unwrap().clone())
        .prefix("long")
        .lease(Duration::from_millis(300)))]
    fn slow_sync(n: u32) -> String {
        EXECUTIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1200));
        format!("slow {n}")
    }
    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    let leader = std::thread::spawn(|| slow_sync(1));
    std::thread::sleep(Duration::from_millis(200));
    // Another process, as far as Redis can tell: a cache of its own on the same namespace.
    let other = multi_thread().block_on(async {
        // Bound as the attribute binds its function's store: to its path.
        let cache = AsyncCache::new(
            "test_redis::slow_sync",
            store::<String>(&server.url(), "long").lease(Duration::from_millis(300)),
        );
        cache
            .get_or_compute(1, || async {
                EXECUTIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "taken over".to_owned()
            })
            .await
    });
    assert_eq!(leader.join().unwrap(), "slow 1");
    assert_eq!(other, "slow 1", "it waited for the leader's value");
    assert_eq!(EXECUTIONS.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// `rediss://` (feature `redis-tls`): a server that speaks only TLS, with a certificate of a
/// CA the test makes (openssl). With the CA given, values are stored and read back; without
/// it, the server is not trusted and every call computes locally.
#[cfg(feature = "redis-tls")]
#[test]
fn rediss_urls_connect_over_tls() {
    if Server::start().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("memoflight-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl (Debian's openssl package) makes the test's certificates");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ]
        .into_iter()
        .chain([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=memoflight test CA",
        ])
        .collect::<Vec<_>>(),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
        ]
        .into_iter()
        .chain(["-out", "server.csr", "-subj", "/CN=127.0.0.1"])
        .collect::<Vec<_>>(),
    );
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ]
        .into_iter()
        .chain([
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ])
        .collect::<Vec<_>>(),
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "no TLS port");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("rediss://127.0.0.1:{port}/");
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    multi_thread().block_on(async {
        let trusted = AsyncCache::new(
            "tls",
            RedisStore::<u32, String>::new(url.clone()).tls_root_cert(ca),
        );
        trusted
            .get_or_compute(1, || async { "over TLS".to_owned() })
            .await;
        assert_eq!(trusted.get(&1).await.unwrap().as_deref(), Some("over TLS"));
        assert_eq!(trusted.stats().await.unwrap().store_errors, 0);

        let untrusting = AsyncCache::new(
            "tls",
            RedisStore::<u32, String>::new(url).timeout(Duration::from_millis(500)),
        );
        let value = untrusting
            .get_or_compute(1, || async { "computed here".to_owned() })
            .await;
        assert_eq!(value, "computed here", "an untrusted server is not read");
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines a `MONITOR` connection sees until the wake-up `clear` publishes last.
fn monitor_until_clear_wakes(port: u16) -> std::thread::JoinHandle<Vec<String>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("redis-server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    stream.write_all(b"MONITOR\r\n").expect("MONITOR");
    let mut reader = BufReader::new(stream);
    let mut ok = String::new();
    reader.read_line(&mut ok).expect("MONITOR's answer");
    assert_eq!(ok.trim_end(), "+OK");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in reader.lines() {
            let line = line.expect("a MONITOR line before the wake-up");
            let woken = line.contains("\"PUBLISH\"") && line.contains("~wake\" \"\"");
            seen.push(line);
            if woken {
                return seen;
            }
        }
        panic!("MONITOR ended before clear's wake-up");
    })
}

/// `clear` deletes every lease of the namespace before any value (a value written by a
/// leader racing one pass over both could survive the clear: see `RedisStore::clear`): in the
/// commands the server ran, every `UNLINK` of a lease comes before the first `UNLINK` of a
/// value, none deletes both, and the wake-up comes last.
#[test]
fn clear_deletes_every_lease_before_any_value() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let cache = AsyncCache::new("cleared", store::<String>(&url, "clr"));
        for n in 1..=3 {
            cache
                .get_or_compute(n, || async move { format!("v{n}") })
                .await;
        }
        // Leases of leaders elsewhere, for keys with and without a value.
        for n in [2, 3, 4] {
            let name = String::from_utf8(cache.store().redis_key(&n).unwrap()).unwrap();
            let lease = format!("{name}:lease");
            let set = server.command(&["SET", &lease, "another's token", "PX", "60000"]);
            assert_eq!(set.as_deref(), Some("+OK"));
        }
        let monitor = monitor_until_clear_wakes(server.port);
        cache.clear().await.unwrap();
        let lines = monitor.join().expect("the monitor");
        let unlinks: Vec<(usize, usize)> = lines
            .iter()
            .filter(|line| line.contains("\"UNLINK\""))
            .map(|line| {
                (
                    line.matches(":lease\"").count(),
                    line.matches("}\"").count(),
                )
            })
            .collect();
        assert!(
            unlinks
                .iter()
                .all(|&(leases, values)| leases == 0 || values == 0),
            "an UNLINK of leases and values together: {lines:#?}"
        );
        let first_value = unlinks.iter().position(|&(_, values)| values > 0);
        let last_lease = unlinks.iter().rposition(|&(leases, _)| leases > 0);
        assert!(
            matches!((last_lease, first_value), (Some(lease), Some(value)) if lease < value),
            "a value deleted before a lease: {lines:#?}"
        );
        let deleted: usize = unlinks.iter().map(|&(l, v)| l + v).sum();
        assert_eq!(deleted, 3 + 3, "3 values and 3 leases");
        assert_eq!(cache.len().await.unwrap(), 0);
    });
}

/// A value longer than a store's `max_value_bytes`, written by a store with a larger limit
/// (an older deployment): read as a miss, computed once, and overwritten with the short value.
#[test]
fn an_oversized_value_already_stored_is_computed_once_and_overwritten() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let roomy = AsyncCache::new("sized", store::<String>(&url, "ov"));
        roomy.get_or_compute(1, || async { "x".repeat(100) }).await;
        let strict = AsyncCache::new("sized", store::<String>(&url, "ov").max_value_bytes(16));
        let executions = std::sync::atomic::AtomicUsize::new(0);
        let short = || async {
            executions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "short".to_owned()
        };
        let calls = async {
            let first = strict.get_or_compute(1, short).await;
            let second = strict.get_or_compute(1, short).await;
            (first, second)
        };
        let (first, second) = tokio::time::timeout(Duration::from_secs(30), calls)
            .await
            .expect("the oversized bytes were not replaced");
        assert_eq!((first.as_str(), second.as_str()), ("short", "short"));
        assert_eq!(
            executions.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "computed once, then a hit"
        );
        assert_eq!(roomy.get(&1).await.unwrap().as_deref(), Some("short"));
        assert_eq!(strict.get(&1).await.unwrap().as_deref(), Some("short"));
        assert_eq!(strict.counters().store_errors, 0, "a miss, not a fault");
    });
}

/// A leader in another process whose computation returns `Err` stores nothing and releases
/// its lease: the waiting process (whose lease, 10 s, would keep it waiting long) is woken by
/// the release and computes its own `Ok` (the README: "a waiting process does not share the
/// leader's `Err`; once the leader releases its lease, one waiting process computes afresh").
#[test]
fn a_leaders_err_is_not_shared_across_processes_and_a_waiter_computes_afresh() {
    const TEST: &str = "a_leaders_err_is_not_shared_across_processes_and_a_waiter_computes_afresh";
    const LEASE: Duration = Duration::from_secs(10);
    static URL: OnceLock<String> = OnceLock::new();
    fn url() -> String {
        URL.get().expect("set first").clone()
    }
    #[cached(async_store = RedisStore::new(url()).prefix("lerr").lease(LEASE))]
    async fn fetch(n: u32) -> Result<String, String> {
        count_execution(&url(), "lerr:executions").await;
        if role().as_deref() == Some("leader") {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(format!("leader {} failed", std::process::id()));
        }
        Ok(format!("{n} by {}", std::process::id()))
    }

    if role().as_deref() == Some("leader") {
        URL.set(child_url()).unwrap();
        let result = multi_thread().block_on(fetch(1));
        println!("RESULT {result:?}");
        return;
    }
    let Some(server) = Server::start() else {
        return;
    };
    URL.set(server.url()).unwrap();
    let leader = spawn_child(TEST, "leader", &server.url(), &[]);
    let started = Instant::now();
    while server.counter("lerr:executions") == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no leader");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mine = multi_thread().block_on(fetch(1));
    let theirs = results_of(leader);
    assert_eq!(theirs.len(), 1);
    assert!(theirs[0].starts_with("Err(\"leader"), "{theirs:?}");
    assert_eq!(mine, Ok(format!("1 by {}", std::process::id())));
    assert_eq!(
        server.counter("lerr:executions"),
        2,
        "the leader's Err and the waiter's own Ok"
    );
    // The waiter took over once the leader released its lease, not once it expired: no key
    // expired on the server.
    let info = server.command(&["INFO", "stats"]).expect("INFO");
    let expired = info
        .lines()
        .find_map(|line| line.strip_prefix("expired_keys:"))
        .map(str::trim);
    assert_eq!(expired, Some("0"), "the leader's lease expired instead");
    let stats = fetch_cache().counters();
    assert_eq!((stats.misses, stats.executions), (1, 1), "{stats:?}");
}

/// The value's and the lease's names hash to one Cluster slot (the scripts touch both), as
/// `CLUSTER KEYSLOT` of a cluster-enabled `redis-server` computes it (a plain one refuses
/// the command): the lease's name as Redis holds it while a leader computes, for keys of
/// several shapes (a number, a string with braces, the unit key of no bytes).
#[test]
fn a_values_and_its_leases_names_share_a_cluster_slot() {
    let Some(server) = Server::start() else {
        return;
    };
    let Some(cluster) = Server::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]) else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let client = redis::Client::open(url.as_str()).expect("a valid URL");
        let probe = client
            .get_multiplexed_async_connection()
            .await
            .expect("the test's own connection");
        // The one lease of prefix `slot` held now, by the computation that asks.
        let held_lease = || {
            let mut probe = probe.clone();
            async move {
                let leases: Vec<String> = redis::cmd("KEYS")
                    .arg("slot:*lease*")
                    .query_async(&mut probe)
                    .await
                    .expect("KEYS");
                assert_eq!(leases.len(), 1, "{leases:?}");
                leases.into_iter().next().unwrap()
            }
        };
        let numbers = AsyncCache::new("numbers", store::<String>(&url, "slot"));
        let texts = AsyncCache::new(
            "texts",
            RedisStore::<String, String>::new(url.as_str()).prefix("slot"),
        );
        let units = AsyncCache::new(
            "units",
            RedisStore::<(), String>::new(url.as_str()).prefix("slot"),
        );
        let pairs = [
            (
                numbers.store().redis_key(&7).unwrap(),
                numbers.get_or_compute(7, held_lease).await,
            ),
            (
                texts.store().redis_key(&"a{b}c".to_owned()).unwrap(),
                texts.get_or_compute("a{b}c".to_owned(), held_lease).await,
            ),
            (
                units.store().redis_key(&()).unwrap(),
                units.get_or_compute((), held_lease).await,
            ),
        ];
        for (value, lease) in pairs {
            let value = String::from_utf8(value).unwrap();
            assert!(lease.starts_with(&value), "{lease} names {value}'s lease");
            let slot = |name: &str| cluster.command(&["CLUSTER", "KEYSLOT", name]);
            let value_slot = slot(&value).expect("KEYSLOT");
            assert!(value_slot.starts_with(':'), "a slot: {value_slot}");
            assert_eq!(value_slot, slot(&lease).unwrap(), "{value} and {lease}");
        }
    });
}

/// Schema versions keep values apart: a value written under `.schema(1)` is not read under
/// `.schema(2)` (a miss, computed), and the old schema still reads its own.
#[test]
fn a_schema_bump_reads_none_of_the_old_values() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    multi_thread().block_on(async {
        let old = AsyncCache::new("versioned", store::<String>(&url, "sch").schema(1));
        let new = AsyncCache::new("versioned", store::<String>(&url, "sch").schema(2));
        old.get_or_compute(1, || async { "old shape".to_owned() })
            .await;
        assert_eq!(new.get(&1).await.unwrap(), None, "not read by schema 2");
        let value = new
            .get_or_compute(1, || async { "new shape".to_owned() })
            .await;
        assert_eq!(value, "new shape");
        assert_eq!(new.counters().executions, 1);
        assert_eq!(old.get(&1).await.unwrap().as_deref(), Some("old shape"));
    });
}

/// Everything a failing store shows (its errors' `Display` and `Debug`, and with the
/// `tracing` feature the events the cache emits) never holds the password of its URL: a wrong
/// password against a `requirepass` server, and a closed port. The right password works.
#[test]
fn a_urls_password_never_appears_in_errors_or_logs() {
    const PASSWORD: &str = "s3cret-Pa55word";
    const WRONG: &str = "wr0ng-Pa55word";
    let Some(server) = Server::start_with(&["--requirepass", PASSWORD]) else {
        return;
    };
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let right = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port);
    let wrong = format!("redis://:{WRONG}@127.0.0.1:{}/", server.port);
    let nobody = format!("redis://:{PASSWORD}@127.0.0.1:{closed_port}/");
    // One thread: the subscriber set for this thread sees every event of the calls.
    let runtime = common::current_thread();
    let logs = Logs::default();
    let _capturing = tracing_capture(&logs);
    runtime.block_on(async {
        let authorized = AsyncCache::new("secret", RedisStore::<u32, String>::new(right));
        authorized
            .get_or_compute(1, || async { "stored".to_owned() })
            .await;
        assert_eq!(authorized.get(&1).await.unwrap().as_deref(), Some("stored"));

        for (url, secret) in [(wrong, WRONG), (nobody, PASSWORD)] {
            let store = RedisStore::<u32, String>::new(url).timeout(Duration::from_millis(500));
            let error = store.get(&1).await.expect_err("refused");
            let shown = format!("{error} / {error:?}");
            assert!(!shown.contains(secret), "{shown}");
            let cache = AsyncCache::new("secret", store);
            assert_eq!(
                cache
                    .get_or_compute(2, || async { "local".to_owned() })
                    .await,
                "local"
            );
            assert!(cache.counters().store_errors >= 1);
        }
    });
    let logged = logs.text();
    if cfg!(feature = "tracing") {
        assert!(logged.contains("store operation failed"), "{logged}");
    }
    assert!(
        !logged.contains(PASSWORD) && !logged.contains(WRONG),
        "{logged}"
    );
}

/// What [`tracing_capture`] captured.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every `tracing` event, of every level and every thread, written into `logs` until the
/// guard is dropped.
fn tracing_capture(logs: &Logs) -> impl Drop {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || logs.clone())
        .with_ansi(false)
        .finish()
        .set_default()
}

/// A process that cannot subscribe (its Redis user may not: an ACL without `SUBSCRIBE`) still
/// waits for another process's computation, polling the lease script, and gets its value: one
/// execution, no store error, and more than one lease try from the waiter.
#[test]
fn a_process_that_cannot_subscribe_polls_for_the_value() {
    let Some(server) = Server::start() else {
        return;
    };
    let acl = [
        "ACL",
        "SETUSER",
        "poller",
        "on",
        ">poll-pw",
        "~*",
        "&*",
        "+@all",
        "-subscribe",
    ];
    assert_eq!(server.command(&acl).as_deref(), Some("+OK"));
    let url = server.url();
    let polling_url = format!("redis://poller:poll-pw@127.0.0.1:{}/", server.port);
    multi_thread().block_on(async {
        let leader = AsyncCache::new("polled", store::<String>(&url, "poll"));
        let poller = AsyncCache::new("polled", store::<String>(&polling_url, "poll"));
        let executions = std::sync::atomic::AtomicUsize::new(0);
        let started = tokio::sync::Notify::new();
        let server = &server;
        let compute = |name: &'static str| {
            let (executions, started) = (&executions, &started);
            move || async move {
                executions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The leader computes until the poller has found its lease held (the server
                // ran a second script): the poller then needs another try to get the value.
                started.notify_one();
                let scripts =
                    || calls_in(&server.command(&["INFO", "commandstats"]).unwrap(), "eval");
                while scripts() < 2 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                name.to_owned()
            }
        };
        let waiting = async {
            started.notified().await;
            poller.get_or_compute(1, compute("poller")).await
        };
        let both = async { tokio::join!(leader.get_or_compute(1, compute("leader")), waiting) };
        let (led, polled) = tokio::time::timeout(Duration::from_secs(30), both)
            .await
            .expect("the polling process returned");
        assert_eq!((led.as_str(), polled.as_str()), ("leader", "leader"));
        assert_eq!(executions.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(poller.counters().store_errors, 0, "{:?}", poller.counters());
        let stats = server.command(&["INFO", "commandstats"]).expect("INFO");
        // The leader's lease try and write, and the poller's tries (at least two: one found
        // the lease held, a later one the value).
        let scripts = calls_in(&stats, "eval");
        eprintln!("script calls with a polling waiter: {scripts}");
        assert!(
            scripts >= 2 + 2,
            "{scripts} script calls: the poller did not poll"
        );
    });
}
