//! The system tier: black-box tests of mailflow_exporter against the real things it meets in
//! production, gathered into one test binary. Each test starts the real binary (the one launcher
//! in `tests/common/exporter.rs`) and checks what it serves against a real Postfix (a receiving
//! server with TLS, and a sender whose queue the exporter reads), a real DNS server (dnsmasq),
//! Prometheus and promtool, and network namespaces (`system/`).
//!
//! Needs root (Postfix, network and mount namespaces, ports 53 and 443 on loopback) and the
//! Debian packages postfix, dnsmasq-base, prometheus, nginx, postfix-mta-sts-resolver, iproute2,
//! curl and openssl: `scripts/install-deps` installs them, `scripts/test`
//! runs this tier. Built only with the cargo feature `system-tests`, so that a plain
//! `cargo test` (the hermetic tier) runs anywhere:
//! `cargo test --features system-tests --test integration`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod system;

mod agreement;
mod dane;
mod dane_mta_sts;
mod dnssec;
mod fixtures;
mod monitoring;
mod mta_sts;
mod mta_sts_agreement;
mod mta_sts_hostile;
mod mta_sts_probe;
mod paging;
mod postfix_queue;
mod probe_dns;
mod probe_tls;
mod probe_unreachable;
mod prometheus_e2e;
mod sharding;
mod web_surface;
