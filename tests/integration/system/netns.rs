//! Network namespaces created for one test (root, and `ip` from iproute2): loopback up, and
//! routes that make connects to chosen loopback addresses fail the way a route can. Nothing
//! leaves a namespace; each is deleted on drop, and by the reaper if the test binary dies first.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace created for one test, with `lo` up; deleted on drop.
pub struct Netns {
    /// Its name (`mailflow-PID-N`).
    pub name: String,
}

impl Netns {
    /// Create a fresh namespace with loopback up.
    pub fn new() -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mailflow-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        super::reaper::on_exit(&format!("ip netns del {name} 2>/dev/null"));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Run `ip ARGS` inside the namespace; panics on failure.
    pub fn ip(&self, args: &[&str]) {
        run_ok(
            Command::new("ip")
                .args(["netns", "exec", &self.name, "ip"])
                .args(args),
        );
    }

    /// Add a route of `kind` (`unreachable`, `throw`, `prohibit`, `blackhole`) for one loopback
    /// address to the local table, so that connects to it fail the way `kind` makes them.
    pub fn route(&self, kind: &str, addr: &str) {
        self.ip(&[
            "route",
            "add",
            kind,
            &format!("{addr}/32"),
            "table",
            "local",
        ]);
    }

    /// The command prefix that runs a program inside the namespace (for
    /// `Exporter::start_under`).
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
