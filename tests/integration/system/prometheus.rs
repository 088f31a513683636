//! A real Prometheus server (the Debian package's `/usr/bin/prometheus`; `PROMETHEUS` names
//! another binary) for the end-to-end tests: started on 127.0.0.1:<free port> with a given
//! configuration and rule files in a temporary directory (its TSDB too), queried through its HTTP
//! API. Killed on drop ([`Daemon`]).

use std::net::SocketAddr;

use serde_json::Value;

use super::daemon::{Daemon, Kind};
use crate::common::http;

/// How Prometheus is run.
const KIND: Kind = Kind {
    name: "Prometheus",
    env: "PROMETHEUS",
    program: "/usr/bin/prometheus",
    package: "prometheus",
    log: "prometheus.log",
    dir_prefix: "mailflow-prometheus-",
};

/// A running Prometheus.
pub struct Prometheus {
    daemon: Daemon,
    /// Where it serves its UI and API.
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Write `files` (name, contents; `prometheus.yml` among them) into a fresh directory and
    /// start Prometheus on `prometheus.yml` there, its TSDB in `data/`; panics, with its log, if
    /// it is not ready within 30 s.
    pub fn start(files: &[(&str, &str)]) -> Prometheus {
        let daemon = Daemon::start(&KIND, files, |dir, addr| {
            vec![
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                "--log.level=info".into(),
            ]
        });
        Prometheus {
            addr: daemon.addr,
            daemon,
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
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
