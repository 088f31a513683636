//! Black-box integration tests of mailflow_exporter, gathered into one test binary: each test
//! starts the real binary on a config in a temporary directory, scrapes it over HTTP and asserts
//! on the metrics, against fixture servers on loopback (`tests/common`): a real Postfix, a real
//! DNS server (dnsmasq), scripted SMTP servers, closed ports, a full accept queue and network
//! namespaces.
//!
//! Needs root (Postfix, network namespaces, ports 53 and 443 on loopback) and the Debian packages
//! postfix, dnsmasq, nginx, iproute2, curl, openssl and prometheus (promtool).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod fixtures;
mod http_api;
mod load;
mod mta_sts;
mod probe_connect;
mod probe_dns;
mod probe_smtp;
mod probe_tls;
mod prometheus_e2e;
mod reload;
mod sharding;
mod shutdown;
mod state_file;
