//! Child processes for the multi-process tests: the test binary run again on one test, with
//! a role (`MEMOFLIGHT_TEST_ROLE`) that tells the child what to do; killed for real where a
//! test says so.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROLE: &str = "MEMOFLIGHT_TEST_ROLE";

/// What a child process does; `None` in the parent.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Runs `test` of this binary again in a child process with `role` and the variables `env`.
pub fn spawn(test: &str, role: &str, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("a child process")
}

/// What a child printed after `RESULT ` (libtest may print the test's name first on the line).
pub fn results_of(child: Child) -> Vec<String> {
    let output = child.wait_with_output().expect("the child ends");
    assert!(output.status.success(), "a child failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_once("RESULT ")
                .map(|(_, result)| result.to_owned())
        })
        .collect()
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
    children.into_iter().flat_map(results_of).collect()
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
