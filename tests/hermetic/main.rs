//! The hermetic tier's black-box tests, gathered into one test binary: each test starts the real
//! binary (the one launcher in `tests/common/exporter.rs`) on a config in a temporary directory,
//! on `127.0.0.1:0`, and checks what it serves against scripted servers of the test's own on
//! loopback: healthy, failing and hostile SMTP servers, closed ports, a full accept queue, the
//! fire drill's own fault servers.
//!
//! Needs no root and no program besides the exporter, except curl for `web_config` (a real HTTP
//! and TLS client); `cargo test` runs it. What needs Postfix, dnsmasq, Prometheus, promtool or
//! network namespaces is in the system tier, `tests/integration`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod drill;
mod hostile;
mod http_api;
mod load;
mod monitoring_assets;
mod postfix_queue;
mod probe_connect;
mod probe_smtp;
mod reload;
mod shutdown;
mod state_file;
mod web_config;
