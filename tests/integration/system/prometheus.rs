//! A real Prometheus server (the Debian package's `/usr/bin/prometheus`; `PROMETHEUS` names
//! another binary) for the end-to-end tests: started on 127.0.0.1:<free port> with a given
//! configuration and rule files in a temporary directory (its TSDB too), queried through its HTTP
//! API. Killed on drop; the reaper kills it too if the test binary dies first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::http;

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    /// Where it serves its UI and API.
    pub addr: SocketAddr,
    /// Its directory: configuration, rule files, `data/` (the TSDB) and `prometheus.log`.
    pub dir: PathBuf,
}

impl Prometheus {
    /// Write `files` (name, contents; `prometheus.yml` among them) into a fresh directory and
    /// start Prometheus on `prometheus.yml` there; panics, with its log, if it is not ready
    /// within 30 s.
    pub fn start(files: &[(&str, &str)]) -> Prometheus {
        // At exit, kill the process whose pid is in the directory, but only if its command line
        // still names this directory (the pid may have been reused since).
        let dir = super::kept_dir_then("mailflow-prometheus-", |d| {
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
        // A free port may be taken between finding it and Prometheus binding it: retry.
        for _ in 0..3 {
            let port = crate::common::net::free_ports(1)[0];
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let child = spawn(&dir, addr);
            std::fs::write(dir.join("pid"), child.id().to_string()).expect("write pid file");
            let mut p = Prometheus {
                child,
                addr,
                dir: dir.clone(),
            };
            if p.wait_ready(Duration::from_secs(30)) {
                return p;
            }
            last_log = p.log();
            p.stop();
        }
        panic!("Prometheus did not become ready; its log:\n{last_log}");
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

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path (with its query string already encoded) and return the `data` of a
    /// `"status": "success"` answer, or the error Prometheus gave.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let r = http::get(self.addr, path, &[]).map_err(|e| format!("GET {path}: {e}"))?;
        let body: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("GET {path}: HTTP {}, not JSON ({e}): {}", r.status, r.body))?;
        if r.status == 200 && body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!(
                "GET {path}: HTTP {}: {} {}",
                r.status, body["errorType"], body["error"]
            ))
        }
    }

    /// Evaluate a PromQL expression now (`/api/v1/query`); the series of the result vector.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            // A scalar or a string is one value.
            Some(_) => Ok(vec![data["result"].clone()]),
            None => Err(format!("no resultType in {data}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(dir: &Path, addr: SocketAddr) -> Child {
    let program = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("create prometheus.log");
    let log2 = log.try_clone().expect("clone log file");
    Command::new(&program)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}): install the Debian package `prometheus` or point \
                 PROMETHEUS at a Prometheus binary"
            )
        })
}

/// Percent-encode a query parameter (everything but the unreserved characters of RFC 3986).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
