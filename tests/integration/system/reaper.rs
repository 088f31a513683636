//! Cleanup after the test binary exits.
//!
//! Rust never drops statics, so the fixtures started once per test binary (Postfix, dnsmasq, the
//! directories holding their files) would outlive it. `on_exit` starts a small watchdog shell
//! that waits, with a short poll, for this process to end and then runs the cleanup command. The
//! watchdog ignores the signals that a Ctrl-C sends to the process group, so it still cleans up.

use std::process::{Command, Stdio};

/// Run `cleanup` (a shell command) once this test process has exited.
pub fn on_exit(cleanup: &str) {
    let pid = std::process::id();
    let script = format!(
        "trap '' INT HUP TERM PIPE; while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {cleanup}"
    );
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("reaper: could not start the cleanup watchdog: {e}");
    }
}
