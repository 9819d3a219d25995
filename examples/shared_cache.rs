//! One computation across processes (`../shared/SCENARIOS.md` §2: a bot on several servers, each
//! computing the same thing): N worker processes, this program run again with `--worker`, call
//! one slow memoized function at the same instant, through a Redis server they share. Each
//! prints who computed and who waited, and for how long: one process computes, the others
//! wait for its value.
//!
//! ```text
//! cargo run --release --example shared_cache --features redis
//! cargo run --release --example shared_cache --features redis -- --processes 16
//! cargo run --release --example shared_cache --features redis -- --kill-leader
//! cargo run --release --example shared_cache --features redis -- --redis redis://127.0.0.1:6379/
//! ```
//!
//! Without `--redis`, it starts a `redis-server` of its own (on a free loopback port, in a
//! temporary directory, killed at the end). `--kill-leader` SIGKILLs the process that
//! computes, mid-computation: its lease (2 s here) expires and one waiting process takes over.

use memoflight::{cached, Origin, RedisStore};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Redis server's URL, given to each worker on its command line.
static URL: OnceLock<String> = OnceLock::new();
/// How long the computation takes.
const COMPUTE: Duration = Duration::from_millis(1500);
/// How long a lease lives unless its leader renews it: a dead leader is taken over after this.
const LEASE: Duration = Duration::from_secs(2);
/// Calls made at once in each worker process.
const TASKS: usize = 4;

/// The slow computation, memoized in Redis for every process of the fleet.
#[cached(async_store = RedisStore::new(URL.get().expect("set in main").clone())
    .prefix("shared_cache_example")
    .lease(LEASE))]
async fn daily_report(day: u64) -> String {
    // The parent watches for this line (to kill the leader, with `--kill-leader`).
    println!("LEADING {}", std::process::id());
    std::io::stdout().flush().expect("stdout");
    tokio::time::sleep(COMPUTE).await;
    format!(
        "report of day {day}, computed by process {}",
        std::process::id()
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        worker(&args[1..]);
        return;
    }
    let option = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1).cloned())
    };
    let processes: usize = option("--processes").map_or(8, |n| n.parse().expect("a number"));
    let kill_leader = args.iter().any(|arg| arg == "--kill-leader");
    let (url, _server) = match option("--redis") {
        Some(url) => (url, None),
        None => {
            let server = Server::start();
            (server.url(), Some(server))
        }
    };

    // A key never used before, so that the first call computes.
    let day = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start_at = now_ms() + 1000;
    println!("{processes} processes × {TASKS} calls of daily_report({day}) at the same instant");
    let started = Instant::now();
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            Command::new(std::env::current_exe().expect("this program"))
                .args(["--worker", &url, &day.to_string(), &start_at.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("a worker process")
        })
        .collect();
    let children: Vec<Arc<Mutex<Child>>> = children
        .into_iter()
        .map(|c| Arc::new(Mutex::new(c)))
        .collect();
    let leaders = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
    let readers: Vec<_> = children
        .iter()
        .map(|child| {
            let stdout = child.lock().unwrap().stdout.take().expect("piped");
            let (child, leaders) = (Arc::clone(child), Arc::clone(&leaders));
            std::thread::spawn(move || {
                let mut results = Vec::new();
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(pid) = line.strip_prefix("LEADING ") {
                        let mut leaders = leaders.lock().unwrap();
                        leaders.push((pid.parse().unwrap_or(0), Instant::now()));
                        if kill_leader && leaders.len() == 1 {
                            std::thread::sleep(COMPUTE / 3);
                            let _ = child.lock().unwrap().kill();
                            println!("killed the leader, process {pid} (SIGKILL)");
                        }
                    } else if let Some(result) = line.strip_prefix("RESULT ") {
                        results.push(result.to_owned());
                    }
                }
                let _ = child.lock().unwrap().wait();
                results
            })
        })
        .collect();
    let mut results: Vec<String> = readers
        .into_iter()
        .flat_map(|reader| reader.join().expect("a reader"))
        .collect();
    results.sort();
    for result in &results {
        println!("  {result}");
    }
    let leaders = leaders.lock().unwrap();
    let computed = results.iter().filter(|r| r.contains("computed it")).count();
    println!(
        "{} calls returned in {} processes in {:.2} s; the function ran {} time(s){}",
        results.len(),
        results
            .iter()
            .map(|r| r.split_whitespace().nth(1).unwrap_or_default())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        started.elapsed().as_secs_f64(),
        leaders.len(),
        match (kill_leader, leaders.as_slice()) {
            (true, [(_, first), (_, second), ..]) => format!(
                " (the killed leader's, and one takeover {:.2} s after it started)",
                second.duration_since(*first).as_secs_f64()
            ),
            _ => String::new(),
        }
    );
    assert_eq!(
        computed, 1,
        "exactly one call computed the value that was returned"
    );
}

/// A worker process: `TASKS` calls at `start_at` (ms since the epoch), each printed.
fn worker(args: &[String]) {
    let [url, day, start_at] = args else {
        panic!("--worker URL DAY START_AT_MS");
    };
    URL.set(url.clone()).expect("set once");
    let day: u64 = day.parse().expect("a day");
    let start_at: u128 = start_at.parse().expect("a time");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        if let Some(wait) = start_at.checked_sub(now_ms()) {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let calls = (0..TASKS).map(|task| async move {
            let started = Instant::now();
            let (value, origin) = daily_report_with_origin(day).await;
            let how = match origin {
                Origin::Computed => "computed it",
                Origin::Waited => "waited for it",
                Origin::Hit => "found it stored",
                Origin::Fallback => "got an expired value (computing failed)",
                _ => "got it",
            };
            println!(
                "RESULT process {} task {task}: {how} ({:.2} s): {value}",
                std::process::id(),
                started.elapsed().as_secs_f64()
            );
        });
        futures::future::join_all(calls).await;
    });
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A `redis-server` of this run, on a free loopback port, in a temporary directory.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("memoflight-example-{port}"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server), or pass --redis URL");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("started redis-server on 127.0.0.1:{port}");
        Server { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
