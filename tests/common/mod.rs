//! Fixtures shared by the integration tests: certificate builders, a real Postfix, a real DNS
//! server (dnsmasq), an MTA-STS world (nginx serving policies, dnsmasq their records), scripted
//! SMTP servers, network helpers (closed ports, a full accept queue,
//! network namespaces), the exporter process itself, a tiny HTTP client and a parser for the
//! metrics text.
//!
//! Every fixture talks only to loopback addresses or to network namespaces that the tests create.
#![allow(dead_code)]

pub mod certs;
pub mod dns;
pub mod exporter;
pub mod http;
pub mod metrics;
pub mod mta_sts_world;
pub mod net;
pub mod postfix;
pub mod postfix_services;
pub mod prometheus;
pub mod reaper;
pub mod smtp;

use std::path::PathBuf;

/// A directory that outlives the test binary's statics (removed by the reaper at exit).
pub fn kept_dir(prefix: &str) -> PathBuf {
    kept_dir_then(prefix, |_| String::new())
}

/// Like `kept_dir`, but at exit runs the shell command `before(dir)` first (e.g. stopping the
/// daemon that lives in it), then removes the directory.
pub fn kept_dir_then(prefix: &str, before: impl FnOnce(&std::path::Path) -> String) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
        .keep();
    let first = before(&dir);
    let first = if first.is_empty() {
        String::new()
    } else {
        format!("{first}; ")
    };
    reaper::on_exit(&format!("{first}rm -rf '{}'", dir.display()));
    dir
}
