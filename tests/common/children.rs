//! Child processes for the multi-process tests: the test binary run again on one test, with
//! a role (`MEMOFLIGHT_TEST_ROLE`) that tells the child what to do; killed for real where a
//! test says so. Every wait for a child is bounded ([`super::HANG`]): a child that hangs is
//! killed and fails its test instead of hanging the run.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "MEMOFLIGHT_TEST_ROLE";

/// What a child process does; `None` in the parent.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Runs `test` of this binary again in a child process with `role` and the variables `env`.
pub fn spawn(test: &str, role: &str, env: &[(&str, String)]) -> Child {
    command(test, role, env, &[])
        .spawn()
        .expect("a child process")
}

/// The command that runs `test` of this binary again with `role` and the variables `env`,
/// through `wrapper` (a program and its first arguments, before the binary's path) unless it
/// is empty; to be changed (another user, limits) and spawned by the caller.
pub fn command(test: &str, role: &str, env: &[(&str, String)], wrapper: &[&str]) -> Command {
    let binary = std::env::current_exe().expect("the test binary");
    command_of(&binary, test, role, env, wrapper)
}

/// [`command`] with `binary` (a copy of this test binary) in place of this test binary.
pub fn command_of(
    binary: &std::path::Path,
    test: &str,
    role: &str,
    env: &[(&str, String)],
    wrapper: &[&str],
) -> Command {
    let mut command = match wrapper {
        [] => Command::new(binary),
        [program, arguments @ ..] => {
            let mut command = Command::new(program);
            command.args(arguments).arg(binary);
            command
        }
    };
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A child killed (and reaped) when dropped, unless it ended before: a test that fails
/// while a child of its waits leaves no process behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a child printed after `RESULT ` (libtest may print the test's name first on the line).
/// Fails if the child failed, or if it has not ended within [`super::HANG`] (it is killed).
pub fn results_of(child: Child) -> Vec<String> {
    results_within(vec![child], super::HANG)
}

/// What each of `children` printed after `RESULT `, in order. Fails if one failed, or if they
/// have not all ended within `limit` of this call: then every one still running is killed.
pub fn results_within(children: Vec<Child>, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut children: Vec<KillOnDrop> = children.into_iter().map(KillOnDrop).collect();
    // Each child's output is read on a thread of its own, so that a child that prints more
    // than a pipe holds never blocks.
    let readers: Vec<_> = children
        .iter_mut()
        .map(|child| {
            let mut stdout = child.0.stdout.take().expect("spawned with stdout piped");
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = stdout.read_to_end(&mut text);
                text
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for child in &mut children {
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("a child's status") {
                break status;
            }
            if Instant::now() >= deadline {
                // Unwinding drops `children`, which kills every child still running.
                let pid = child.0.id();
                panic!("child process {pid} was still running after {limit:?}: killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        statuses.push(status);
    }
    let mut results = Vec::new();
    for (status, reader) in statuses.into_iter().zip(readers) {
        let stdout = reader.join().expect("a reader thread");
        assert!(status.success(), "a child failed: {status}");
        results.extend(String::from_utf8_lossy(&stdout).lines().filter_map(|line| {
            line.split_once("RESULT ")
                .map(|(_, result)| result.to_owned())
        }));
    }
    results
}

/// Runs `processes` children of `test` in the role "caller", all released at the same instant
/// (1.5 s from now, see [`sleep_until_released`]); what each printed after `RESULT `.
pub fn callers_released_together(
    test: &str,
    processes: usize,
    env: &[(&str, String)],
) -> Vec<String> {
    let mut env = env.to_vec();
    env.push(("RELEASE_AT_MS", (now_ms() + 1500).to_string()));
    let children: Vec<Child> = (0..processes)
        .map(|_| spawn(test, "caller", &env))
        .collect();
    results_within(children, super::HANG)
}

/// In a child of [`callers_released_together`]: sleeps until the release instant.
pub fn sleep_until_released() {
    let release_at: u128 = std::env::var("RELEASE_AT_MS")
        .expect("set by the parent")
        .parse()
        .expect("milliseconds");
    if let Some(wait) = release_at.checked_sub(now_ms()) {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

/// Wall-clock milliseconds since the Unix epoch (shared by parent and children).
pub fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

/// Wall-clock microseconds since the Unix epoch (shared by parent and children).
pub fn now_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}
