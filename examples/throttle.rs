//! A throttle shared by concurrent hooks (`../shared/SCENARIOS.md` §4): "play each sound at most
//! once per window". Ten hooks fire at once in each window; the value lives one window (`ttl`),
//! and `play_with_origin` tells each hook whether *its* call computed it: exactly one plays.
//!
//! ```text
//! cargo run --release --example throttle                                   # 10 threads
//! cargo run --release --example throttle --features disk -- --processes 10 # 10 processes
//! ```
//!
//! With `--processes N` each hook is a short-lived process of its own, as the hooks of §4
//! were: they share the throttle through a `DiskStore` in a temporary directory, so exactly one
//! process plays per window.

use memoflight::{cached, Origin};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The throttle window.
const WINDOW: Duration = Duration::from_millis(300);

/// "Plays" the sound; the value is when. Cached for one window: calls within it are throttled.
#[cached(ttl = WINDOW)]
fn play(sound: &str) -> Instant {
    let _ = sound;
    Instant::now()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--processes") => {
            let hooks = args
                .get(1)
                .and_then(|n| n.parse().ok())
                .expect("--processes N: how many hook processes fire per window");
            processes::main(hooks);
        }
        Some(processes::HOOK) => processes::hook(&args[1..]),
        Some(other) => panic!("unknown argument {other:?} (try --processes 10)"),
        None => threads(),
    }
}

/// Ten threads of one process per window.
fn threads() {
    let hooks = 10;
    let start = Instant::now();
    for window in 1..=3 {
        let barrier = Barrier::new(hooks);
        let played: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..hooks)
                .map(|hook| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let (_, origin) = play_with_origin("bell.wav");
                        (origin == Origin::Computed).then_some(hook)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("a hook panicked"))
                .collect()
        });
        println!(
            "window {window} (t = {:>4} ms): {hooks} hooks fired, hook {:?} played bell.wav, {} throttled",
            start.elapsed().as_millis(),
            played,
            hooks - played.len()
        );
        std::thread::sleep(WINDOW);
    }
    let stats = play_cache().stats();
    println!(
        "\n{} plays for {} calls ({} hits, {} coalesced waits)",
        stats.executions,
        stats.hits + stats.misses,
        stats.hits,
        stats.waits
    );
}

#[cfg(feature = "disk")]
mod processes {
    use memoflight::{cached, DiskStore, Origin};
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// The argument a hook process is started with.
    pub const HOOK: &str = "--hook";
    /// The throttle window: longer than with threads, as starting a process takes a few ms.
    const WINDOW: Duration = Duration::from_millis(1000);

    /// The directory the hooks share, given to each by its parent.
    static DIR: OnceLock<PathBuf> = OnceLock::new();

    fn dir() -> PathBuf {
        DIR.get().expect("set by the hook's arguments").clone()
    }

    /// "Plays" the sound in this process; the value is who played it. Cached on disk for one
    /// window, for every process.
    #[cached(async_store = DiskStore::new(dir()).ttl(WINDOW))]
    fn play(sound: String) -> u32 {
        let _ = sound;
        std::process::id()
    }

    fn now_ms() -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        since.map_or(0, |since| since.as_millis() as u64)
    }

    /// The parent: starts `hooks` processes per window, released at the same instant, and
    /// says which played.
    pub fn main(hooks: usize) {
        let dir = std::env::temp_dir().join(format!("memoflight-throttle-{}", std::process::id()));
        let exe = std::env::current_exe().expect("this example's binary");
        let start = now_ms();
        for window in 1..=3 {
            let release_at = now_ms() + 300;
            let children: Vec<_> = (0..hooks)
                .map(|_| {
                    Command::new(&exe)
                        .arg(HOOK)
                        .arg(&dir)
                        .arg(release_at.to_string())
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("a hook process")
                })
                .collect();
            let outcomes: Vec<String> = children
                .into_iter()
                .map(|child| {
                    let output = child.wait_with_output().expect("the hook ends");
                    String::from_utf8_lossy(&output.stdout).trim().to_owned()
                })
                .collect();
            let played: Vec<&str> = outcomes
                .iter()
                .filter_map(|o| o.strip_prefix("played "))
                .collect();
            println!(
                "window {window} (t = {:>4} ms): {hooks} hook processes fired, process {:?} played bell.wav, {} throttled",
                release_at - start,
                played,
                hooks - played.len()
            );
            std::thread::sleep(WINDOW);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A hook process: waits for the release instant, calls `play` once, says whether it
    /// played.
    pub fn hook(args: &[String]) {
        let [dir, release_at] = args else {
            panic!("{HOOK} DIR RELEASE_AT_MS")
        };
        let _ = DIR.set(PathBuf::from(dir));
        let release_at: u64 = release_at.parse().expect("milliseconds");
        std::thread::sleep(Duration::from_millis(release_at.saturating_sub(now_ms())));
        let (player, origin) = play_with_origin("bell.wav".to_owned());
        match origin {
            Origin::Computed => println!("played {}", std::process::id()),
            _ => println!("throttled (played by {player})"),
        }
    }
}

#[cfg(not(feature = "disk"))]
mod processes {
    pub const HOOK: &str = "--hook";

    pub fn main(_hooks: usize) {
        eprintln!(
            "--processes needs the disk store: cargo run --release --example throttle \
             --features disk -- --processes 10"
        );
        std::process::exit(2);
    }

    pub fn hook(_args: &[String]) {
        main(0)
    }
}
