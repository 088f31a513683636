//! A real Alertmanager (the Debian package's `/usr/bin/prometheus-alertmanager`; `ALERTMANAGER`
//! names another binary) for the paging tests: started on 127.0.0.1:<free port> with a given
//! configuration, clustering off, its state in a temporary directory; alerts go in and come out
//! through its v2 API. Killed on drop ([`Daemon`]).

use std::net::SocketAddr;

use serde_json::Value;

use super::daemon::{Daemon, Kind};
use crate::common::http;
use crate::system::webhook::Webhook;

/// The shipped Alertmanager configuration, relative to the crate root.
const SHIPPED_CONFIG: &str = "config/alertmanager.yml";
/// The receivers' placeholder address in the shipped configuration.
const PLACEHOLDER: &str = "http://127.0.0.1:9097/";

/// The shipped configuration (`config/alertmanager.yml`) as it is (routes, grouping, inhibit
/// rules, receivers) except: every receiver's URL points at `webhook` (same path), and the
/// route's `group_wait` (30 s) and `group_interval` (5 m) are the given durations, so that a
/// test does not wait minutes. Panics if a replaced text is missing, so a change to the shipped
/// file cannot quietly leave a receiver pointing elsewhere or a test waiting for minutes.
pub fn shipped_config(webhook: &Webhook, group_wait: &str, group_interval: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_CONFIG);
    let shipped =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {SHIPPED_CONFIG}: {e}"));
    for text in [PLACEHOLDER, "group_wait: 30s", "group_interval: 5m"] {
        assert!(
            shipped.contains(text),
            "{SHIPPED_CONFIG} no longer has `{text}`"
        );
    }
    shipped
        .replace(PLACEHOLDER, &format!("http://{}/", webhook.addr))
        .replace("group_wait: 30s", &format!("group_wait: {group_wait}"))
        .replace(
            "group_interval: 5m",
            &format!("group_interval: {group_interval}"),
        )
}

/// How Alertmanager is run.
const KIND: Kind = Kind {
    name: "Alertmanager",
    env: "ALERTMANAGER",
    program: "/usr/bin/prometheus-alertmanager",
    package: "prometheus-alertmanager",
    log: "alertmanager.log",
    dir_prefix: "mailflow-alertmanager-",
};

/// A running Alertmanager.
pub struct Alertmanager {
    daemon: Daemon,
    /// Where it serves its UI and API.
    pub addr: SocketAddr,
}

impl Alertmanager {
    /// Start Alertmanager on `config` (the text of its configuration file), its state in
    /// `data/`, clustering off; panics, with its log, if it is not ready within 30 s.
    pub fn start(config: &str) -> Alertmanager {
        let daemon = Daemon::start(&KIND, &[("alertmanager.yml", config)], |dir, addr| {
            vec![
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                // No cluster: no gossip port, no peers.
                "--cluster.listen-address=".into(),
                "--log.level=debug".into(),
            ]
        });
        Alertmanager {
            addr: daemon.addr,
            daemon,
        }
    }

    /// What Alertmanager logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Hand alerts to Alertmanager as Prometheus does (`POST /api/v2/alerts`): each a set of
    /// labels and annotations, firing from now on.
    pub fn post_alerts(&self, alerts: &Value) -> Result<(), String> {
        let body = alerts.to_string();
        let response = http::post_json(self.addr, "/api/v2/alerts", &body)
            .map_err(|e| format!("POST /api/v2/alerts: {e}"))?;
        if response.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "POST /api/v2/alerts: HTTP {}: {}",
                response.status, response.body
            ))
        }
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`), each with its `status` (`state`
    /// active or suppressed, `inhibitedBy`, `silencedBy`) and `receivers`.
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let response = http::get(self.addr, "/api/v2/alerts", &[])
            .map_err(|e| format!("GET /api/v2/alerts: {e}"))?;
        let body: Value = serde_json::from_str(&response.body).map_err(|e| {
            format!(
                "GET /api/v2/alerts: HTTP {}, not JSON ({e}): {}",
                response.status, response.body
            )
        })?;
        body.as_array()
            .cloned()
            .ok_or_else(|| format!("GET /api/v2/alerts: not a list: {body}"))
    }
}
