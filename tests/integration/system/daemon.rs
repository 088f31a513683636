//! A server from a Debian package run for one test: its files in a kept temporary directory,
//! started on 127.0.0.1:<free port> and waited for until its `/-/ready` answers 200 (Prometheus
//! and Alertmanager both have it), its output in a log file there. Killed on drop; the reaper
//! kills it too if the test binary dies first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::http;

/// How to run one kind of server.
pub struct Kind {
    /// What the tests call it ("Prometheus").
    pub name: &'static str,
    /// The environment variable that names another binary.
    pub env: &'static str,
    /// The Debian package's binary.
    pub program: &'static str,
    /// The Debian package that brings it.
    pub package: &'static str,
    /// Its log file in its directory.
    pub log: &'static str,
    /// The prefix of its directory's name.
    pub dir_prefix: &'static str,
}

/// A running server.
pub struct Daemon {
    child: Child,
    kind: &'static Kind,
    /// Where it serves its UI and API.
    pub addr: SocketAddr,
    /// Its directory: the files it was given, its data and its log.
    pub dir: PathBuf,
}

impl Daemon {
    /// Writes `files` (name, contents) into a fresh directory and starts the server with the
    /// arguments `args(dir, addr)` gives; panics, with its log, if it is not ready within 30 s.
    pub fn start(
        kind: &'static Kind,
        files: &[(&str, &str)],
        args: impl Fn(&Path, SocketAddr) -> Vec<String>,
    ) -> Daemon {
        // At exit, kill the process whose pid is in the directory, but only if its command line
        // still names this directory (the pid may have been reused since).
        let dir = super::kept_dir_then(kind.dir_prefix, |d| {
            let d = d.display();
            format!(
                "p=$(cat '{d}/pid' 2>/dev/null) && tr '\\0' ' ' </proc/$p/cmdline 2>/dev/null \
                 | grep -qF '{d}/' && kill -9 $p"
            )
        });
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        }
        let mut last_log = String::new();
        // A free port may be taken between finding it and the server binding it: retry.
        for _ in 0..3 {
            let port = crate::common::net::free_ports(1)[0];
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let child = spawn(kind, &dir, args(&dir, addr));
            std::fs::write(dir.join("pid"), child.id().to_string()).expect("write pid file");
            let mut daemon = Daemon {
                child,
                kind,
                addr,
                dir: dir.clone(),
            };
            if daemon.wait_ready(Duration::from_secs(30)) {
                return daemon;
            }
            last_log = daemon.log();
            daemon.stop();
        }
        panic!("{} did not become ready; its log:\n{last_log}", kind.name);
    }

    fn wait_ready(&mut self, max: Duration) -> bool {
        let ready = crate::common::poll(max, || {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(false);
            }
            match http::get(self.addr, "/-/ready", &[]) {
                Ok(r) if r.status == 200 => Ok(true),
                _ => Err(()),
            }
        });
        ready == Ok(true)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(self.kind.log)).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(kind: &Kind, dir: &Path, args: Vec<String>) -> Child {
    let program = std::env::var(kind.env).unwrap_or_else(|_| kind.program.into());
    let log = std::fs::File::create(dir.join(kind.log))
        .unwrap_or_else(|e| panic!("create {}: {e}", kind.log));
    let log2 = log.try_clone().expect("clone log file");
    Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}): install the Debian package `{}` or point {} at \
                 the {} binary",
                kind.package, kind.env, kind.name
            )
        })
}
