//! memoflight's `RedisStore` against `cached`'s Redis cache (`#[concurrent_cached(redis = true)]`,
//! `AsyncRedisCache`), on a `redis-server` this bench starts on a free loopback port (it says it
//! skipped when `redis-server` is not installed). Prints markdown tables.
//!
//! 1. A hit through Redis, 1 task: median, p99 and p99.9 µs over 20,000 calls.
//! 2. A stampede: 8 processes (this bench run again as children) × 8 tasks call one fresh key
//!    at the same instant; the function sleeps 200 ms and counts its executions in Redis.
//!    Executions across the processes, and the wall time until the last call returned (median
//!    of 3 rounds).
//! 3. The value format: size and encode + decode time of a rule set (a `Vec` of 50 structs
//!    with strings, floats and options) in postcard (memoflight), MessagePack (`rmp-serde`,
//!    cached's) and JSON.
//!
//! `cargo bench --bench redis`; about half a minute.

mod common;

use common::now_utc;
use memoflight::RedisStore;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HITS: usize = 20_000;
const PROCESSES: usize = 8;
const TASKS: usize = 8;
const COMPUTE: Duration = Duration::from_millis(200);
const ROUNDS: usize = 3;

static URL: OnceLock<String> = OnceLock::new();

fn url() -> String {
    URL.get().expect("set first").clone()
}

#[memoflight::cached(async_store = RedisStore::new(url())
    .prefix("bench")
    .ttl(Duration::from_secs(600)))]
async fn memo_value(key: u64) -> String {
    computed(key).await
}

#[derive(Debug, Clone)]
struct Failed(String);

#[cached::macros::concurrent_cached(
    redis = true,
    ttl_secs = 600,
    cache_prefix_block = r##"{ "bench-cached" }"##,
    map_error = r##"|e| Failed(format!("{e:?}"))"##
)]
async fn cached_value(key: u64) -> Result<String, Failed> {
    Ok(computed(key).await)
}

/// cached's result, or a panic with its error.
fn ok(result: Result<String, Failed>) -> String {
    result.unwrap_or_else(|Failed(error)| panic!("cached's Redis cache failed: {error}"))
}

/// The "computation": counted in Redis, then 200 ms (stampede keys) or nothing (hit keys,
/// computed once before the timing).
async fn computed(key: u64) -> String {
    if key >= 1 << 32 {
        incr(&format!("executions:{key}"));
        tokio::time::sleep(COMPUTE).await;
    }
    format!("value of {key}: {}", "x".repeat(100))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--stampede-child") {
        child(&args[at + 1..]);
        return;
    }
    let Some(server) = Server::start() else {
        println!("redis: SKIPPED (redis-server is not on PATH)");
        return;
    };
    URL.set(server.url()).unwrap();
    // cached's macro reads its connection string here.
    std::env::set_var("CACHED_REDIS_CONNECTION_STRING", server.url());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!("## Redis: memoflight `RedisStore` against cached's `AsyncRedisCache`\n");
    println!(
        "{}, {} cores, redis-server on loopback.\n",
        now_utc(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let memo = runtime.block_on(hits(|k| async move { memo_value(k).await }));
    let cached = runtime.block_on(hits(|k| async move { ok(cached_value(k).await) }));
    println!("### 1. A hit through Redis, 1 task, {HITS} calls: µs\n");
    println!("| | median | p99 | p99.9 |\n|---|---|---|---|");
    for (name, (median, p99, p999)) in [("memoflight", memo), ("cached", cached)] {
        println!("| {name} | {median:.1} | {p99:.1} | {p999:.1} |");
    }

    println!(
        "\n### 2. Stampede: {PROCESSES} processes × {TASKS} tasks on one fresh key, \
         a {} ms computation (median of {ROUNDS} rounds)\n",
        COMPUTE.as_millis()
    );
    println!("| | executions | wall time until the last call returned |\n|---|---|---|");
    for (name, which) in [("memoflight", "memo"), ("cached", "cached")] {
        let mut runs: Vec<(i64, f64)> = (0..ROUNDS)
            .map(|round| stampede(&server, which, round))
            .collect();
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (executions, wall) = runs[ROUNDS / 2];
        let all: Vec<String> = runs.iter().map(|r| r.0.to_string()).collect();
        println!(
            "| {name} | {executions} (rounds: {}) | {:.0} ms |",
            all.join(", "),
            wall * 1e3
        );
    }

    formats();
}

/// Times `HITS` hits of a key computed once before.
async fn hits<F: std::future::Future<Output = String>>(call: impl Fn(u64) -> F) -> (f64, f64, f64) {
    for key in 0..100 {
        black_box(call(key).await);
    }
    let mut times: Vec<f64> = Vec::with_capacity(HITS);
    for i in 0..HITS {
        let start = Instant::now();
        black_box(call(i as u64 % 100).await);
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99), at(0.999))
}

/// One stampede round: executions counted in Redis, and the wall time from the release
/// instant until the last child printed its last result.
fn stampede(server: &Server, which: &str, round: usize) -> (i64, f64) {
    let key = (1u64 << 32) + (now_ms() as u64 % 1_000_000) * 10 + round as u64;
    let start_at = now_ms() + 1500;
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--stampede-child", which, &server.url()])
                .args([key.to_string(), start_at.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("a child process")
        })
        .collect();
    let mut last_done = 0u128;
    for child in children {
        let output = child.wait_with_output().expect("the child ends");
        assert!(output.status.success(), "a stampede child failed");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some(done) = line.strip_prefix("DONE ") {
                last_done = last_done.max(done.parse().unwrap());
            }
        }
    }
    let executions = server
        .get(&format!("executions:{key}"))
        .parse()
        .unwrap_or(0);
    (executions, (last_done - start_at) as f64 / 1e3)
}

/// A stampede child: `TASKS` calls at the release instant; prints when the last returned.
fn child(args: &[String]) {
    let [which, url, key, start_at] = args else {
        panic!("--stampede-child WHICH URL KEY START_AT_MS");
    };
    URL.set(url.clone()).unwrap();
    std::env::set_var("CACHED_REDIS_CONNECTION_STRING", url);
    let key: u64 = key.parse().unwrap();
    let start_at: u128 = start_at.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Connect before the release instant, as a running service would be.
        match which.as_str() {
            "memo" => black_box(memo_value(0).await),
            _ => black_box(ok(cached_value(0).await)),
        };
        if let Some(wait) = start_at.checked_sub(now_ms()) {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let calls = (0..TASKS).map(|_| async {
            match which.as_str() {
                "memo" => memo_value(key).await,
                _ => ok(cached_value(key).await),
            }
        });
        black_box(futures::future::join_all(calls).await);
    });
    println!("DONE {}", now_ms());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rule {
    id: u32,
    pattern: String,
    tags: Vec<String>,
    weight: f64,
    parent: Option<u32>,
}

/// Workload 3: one rule set in each format.
fn formats() {
    let rules: Vec<Rule> = (0..50)
        .map(|i| Rule {
            id: i,
            pattern: format!("^/api/v{}/users/[0-9]+/orders/{i}$", i % 3),
            tags: vec!["billing".to_owned(), format!("tenant-{i}")],
            weight: f64::from(i) * 0.25,
            parent: (i % 2 == 0).then_some(i / 2),
        })
        .collect();
    type Encode = fn(&Vec<Rule>) -> Vec<u8>;
    type Decode = fn(&[u8]) -> Vec<Rule>;
    let formats: [(&str, Encode, Decode); 3] = [
        (
            "postcard (memoflight)",
            |v| postcard::to_allocvec(v).unwrap(),
            |b| postcard::from_bytes(b).unwrap(),
        ),
        (
            "MessagePack, rmp-serde (cached)",
            |v| rmp_serde::to_vec(v).unwrap(),
            |b| rmp_serde::from_slice(b).unwrap(),
        ),
        (
            "JSON, serde_json",
            |v| serde_json::to_vec(v).unwrap(),
            |b| serde_json::from_slice(b).unwrap(),
        ),
    ];
    println!("\n### 3. Value format: a rule set of 50 structs\n");
    println!("| format | bytes | encode µs | decode µs |\n|---|---|---|---|");
    for (name, encode, decode) in formats {
        let bytes = encode(&rules);
        assert_eq!(decode(&bytes), rules);
        let time = |f: &dyn Fn()| {
            let mut samples: Vec<f64> = (0..21)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..200 {
                        f();
                    }
                    start.elapsed().as_secs_f64() * 1e6 / 200.0
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            samples[10]
        };
        let encode_us = time(&|| {
            black_box(encode(black_box(&rules)));
        });
        let decode_us = time(&|| {
            black_box(decode(black_box(&bytes)));
        });
        println!(
            "| {name} | {} | {encode_us:.2} | {decode_us:.2} |",
            bytes.len()
        );
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn incr(key: &str) {
    let server_url = url();
    let port = server_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    raw(port, &["INCR", key]);
}

/// One command over a plain connection; the first line of the answer.
fn raw(port: u16, args: &[&str]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("redis-server");
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    if line.starts_with('$') && !line.starts_with("$-1") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    line.trim_end().to_owned()
}

/// This bench's `redis-server`.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start() -> Option<Server> {
        Command::new("redis-server")
            .arg("--version")
            .output()
            .ok()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("memoflight-bench-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Server { child, port, dir })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn get(&self, key: &str) -> String {
        raw(self.port, &["GET", key])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
