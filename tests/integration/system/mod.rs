//! What the system tier drives besides the exporter: a real Postfix (as a receiving mail server
//! with TLS listeners, and as a sender whose queue the exporter reads), dnsmasq as a real DNS
//! server, nginx and dnsmasq as an MTA-STS world with postfix-mta-sts-resolver as an independent
//! MTA-STS client, Prometheus, network namespaces, the test PKI they present, the DNS wire format to check
//! them with, and the reaper that cleans up after the test binary.
//!
//! Needs root and the Debian packages postfix, dnsmasq-base, prometheus, iproute2, curl and
//! openssl (`scripts/install-deps`). Everything listens on loopback or inside namespaces the
//! tests create.
#![allow(dead_code)]

pub mod alertmanager;
pub mod certs;
pub mod daemon;
pub mod dns_wire;
pub mod dnsmasq;
pub mod dnssec_world;
pub mod hostile_policy_host;
pub mod mta_sts_resolver;
pub mod mta_sts_world;
pub mod netns;
pub mod postfix;
pub mod postfix_sender;
pub mod postfix_services;
pub mod prometheus;
pub mod reaper;
pub mod webhook;

use std::path::{Path, PathBuf};

/// A directory that outlives the test binary's statics (removed by the reaper at exit).
pub fn kept_dir(prefix: &str) -> PathBuf {
    kept_dir_then(prefix, |_| String::new())
}

/// Like `kept_dir`, but at exit runs the shell command `before(dir)` first (e.g. stopping the
/// daemon that lives in it), then removes the directory.
pub fn kept_dir_then(prefix: &str, before: impl FnOnce(&Path) -> String) -> PathBuf {
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
