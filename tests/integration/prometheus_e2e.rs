//! End to end with a real Prometheus (issue 4): the exporter probes loopback fixtures that fail
//! in many of the ways of codes.md (one of them a destination of the MTA-STS world whose policy
//! does not list its MX host) and reads a Postfix queue (a canned `postqueue -j`);
//! Prometheus discovers the connectors through `/sd` with the shipped scrape configuration
//! (config/prometheus.yml, made fast), evaluates a fast copy of the shipped rules
//! (alerts/mailflow.rules.yml), and the test asks its HTTP API whether (a) every discovered
//! target is up, (b) every expression of every panel of the shipped dashboard
//! (grafana/mailflow.json) returns series, (c) every rule expression evaluates and the
//! alerts the failures call for reach `firing`, carrying the owner labels of their connector,
//! and (d) the paging path: Prometheus sends its alerts to a real Alertmanager (Debian's
//! `prometheus-alertmanager`) running the shipped config/alertmanager.yml (only the receivers'
//! URLs and the group timers changed), which tells this test's webhook receiver by owner: a
//! partner's connector on the partner route and on no other, an on-premises team's connector
//! on that team's, and of a connector whose mail bounces only the page, its code and queue
//! warnings muted by the shipped inhibit rules (as is the 14-day warning of a certificate that
//! the 3-day alert covers).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::exporter::{Exporter, config, connector, local, tail};
use crate::common::http;
use crate::common::net::{FullBacklog, closed_port};
use crate::common::poll;
use crate::common::smtp::{Dialogue, Server};
use crate::dane::dane_connector;
use crate::system::alertmanager::{self, Alertmanager};
use crate::system::dnsmasq::{self, dns};
use crate::system::mta_sts_world as sts;
use crate::system::postfix::postfix_connector;
use crate::system::prometheus::Prometheus;
use crate::system::webhook::{Webhook, firing_by_receiver};

/// The `for:` every rule gets in the fast copy.
const FAST_FOR: &str = "2s";
/// The retry window of the connector that runs through all the queue-age alerts.
const TINY_QUEUE_EXPIRY: &str = "3s";
/// How long the whole exchange with Prometheus may take (from its start).
const DEADLINE: Duration = Duration::from_secs(40);

/// Alertmanager's wait before the first notification of a group (30 s shipped). The alerts of
/// one connector come from the same scrape, in rule groups evaluated up to 1 s apart; this is
/// longer (with a margin for a busy machine), so the alerts an inhibit rule mutes are never
/// sent out before the alert that mutes them has arrived.
const GROUP_WAIT: &str = "3s";
/// Alertmanager's wait before telling a group's changes (5 m shipped): short, so that an alert
/// that should have been muted but came after its group's first notification is still seen.
const GROUP_INTERVAL: &str = "2s";
/// How long to keep listening once the expected notifications are in: a wrong one (a muted
/// alert, a connector on another owner's receiver) would come within a group interval of them.
const LATE_NOTIFICATIONS: Duration = Duration::from_millis(2500);

/// What the webhook receiver must get (receiver path, alert, connector, and whether nothing
/// else about the connector may reach any receiver):
/// - the partner's connector on the partner route, although it names the messaging team too
///   (the partner route comes first), and nowhere else;
/// - the messaging team's on-premises connector on that team's receiver, and nowhere else;
/// - of the connector whose mail bounces, only the page: its code alert and the queue warnings
///   are muted ([`MUTED`]);
/// - the expired certificate's 3-day alert on the default page (no team named).
const PAGES: [(&str, &str, &str, bool); 4] = [
    (
        "/partner-liaison",
        "MailflowCannotConnectToRemoteServer",
        "e2e_421",
        true,
    ),
    ("/messaging", "MailflowDnsQueryFailed", "e2e_nxdomain", true),
    (
        "/messaging-page",
        "MailflowQueueExpired",
        "e2e_refused",
        true,
    ),
    (
        "/mail-ops-page",
        "MailflowCertificateExpiryCritical",
        "e2e_cert",
        false,
    ),
];

/// Alerts Prometheus raises that the shipped inhibit rules mute (alert, connector): Alertmanager
/// holds them, suppressed, and no receiver gets them.
const MUTED: [(&str, &str); 5] = [
    // By MailflowQueueNearExpiry and MailflowQueueExpired of the same connector.
    ("MailflowConnectionRefused", "e2e_refused"),
    ("MailflowQueueAgeHigh", "e2e_refused"),
    // By MailflowQueueExpired.
    ("MailflowQueueNearExpiry", "e2e_refused"),
    // By MailflowCertificateExpiryCritical of the same address.
    ("MailflowCertificateExpiringSoon", "e2e_cert"),
    ("MailflowCertificateExpiringSoon", "e2e_cert_unenforced"),
];

/// A connector scraped through Prometheus, though the exporter does not know it (as after a
/// rename): its scrapes fail with HTTP 400.
const RETIRED: &str = "e2e_retired";

/// The owner labels of the messaging team's connectors (and of the partner's, which names the
/// team too), handed to Prometheus as target labels by `/sd`.
const MESSAGING: &str = "{team: messaging}";

/// The Postfix queue the exporter reads (`postfix_queue`, with `cat` for `postqueue -j`): one
/// message deferred for e2e_refused (matched by its recipient domain; the next hop in the delay
/// reason is only text, nothing connects to it), that arrived at `arrival_time`.
fn postqueue_json(arrival_time: u64) -> String {
    format!(
        r#"{{"queue_name": "deferred", "queue_id": "4E2E0000A1", "arrival_time": {arrival_time}, "message_size": 512, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{{"address": "user@refused.mf.test", "delay_reason": "connect to mx.refused.mf.test[192.0.2.25]:25: Connection refused"}}]}}"#
    ) + "\n"
}

/// How old the queued message is, in seconds.
const QUEUED_AGE: u64 = 600;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The shipped rules, made reachable within seconds by plain string replacement on the text:
/// - every `for: <duration>` line becomes `for: 2s`;
/// - the 1 h threshold of the queue-age warning, `mailflow_queue_age_seconds >= 3600`, becomes
///   `>= 2` (the Postfix queue alert's hour stays: it needs a real queue).
///
/// The other thresholds are reached by the fixtures themselves: a connector with a 3 s retry
/// window passes 75 % and 100 % of it, and an expired certificate has less than 14 (and 3) days.
/// Panics if a replaced text is missing, so that a change to the shipped rules cannot quietly
/// turn the test into one that waits for an hour.
fn fast_rules(shipped: &str) -> String {
    let mut fors = 0;
    let mut out: Vec<String> = Vec::new();
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("for:") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push(format!("{indent}for: {FAST_FOR}"));
            fors += 1;
        } else {
            out.push(line.to_string());
        }
    }
    assert!(fors > 0, "no `for:` line in the shipped rules");
    let text = out.join("\n") + "\n";
    let warning = "mailflow_queue_age_seconds >= 3600";
    assert_eq!(
        text.matches(warning).count(),
        1,
        "the 1 h queue-age threshold `{warning}` should appear once in the shipped rules"
    );
    text.replace(warning, "mailflow_queue_age_seconds >= 2")
}

/// The shipped Prometheus configuration (read as YAML), kept as it is (jobs, `metrics_path`,
/// `honor_labels`, relabelling) except:
/// - `127.0.0.1:9925` (the address it assumes for the exporter) becomes the exporter's address;
/// - every interval is 1 s (global, the HTTP SD refresh, `/metrics`) but the probes' 2 s, and
///   the scrape timeouts equal the intervals;
/// - `rule_files` names the fast copy of the rules;
/// - `alerting` sends the alerts to the test's Alertmanager;
/// - two broken targets are added, for the alerts about broken scrapes: a `mailflow_probe`
///   target for a connector the exporter does not know (`RETIRED`), and a `mailflow_exporter`
///   target where nothing listens (`dead`).
fn fast_prometheus_config(
    shipped: &str,
    exporter: SocketAddr,
    dead: SocketAddr,
    alertmanager: SocketAddr,
) -> String {
    assert!(
        shipped.contains("127.0.0.1:9925"),
        "config/prometheus.yml no longer assumes the exporter at 127.0.0.1:9925"
    );
    let shipped = shipped.replace("127.0.0.1:9925", &exporter.to_string());
    let mut c: Value = serde_saphyr::from_str(&shipped)
        .unwrap_or_else(|e| panic!("config/prometheus.yml is not YAML: {e}"));
    c["global"]["scrape_interval"] = "1s".into();
    c["global"]["evaluation_interval"] = "1s".into();
    c["rule_files"] = serde_json::json!(["mailflow.rules.yml"]);
    c["alerting"] = serde_json::json!({
        "alertmanagers": [{"static_configs": [{"targets": [alertmanager.to_string()]}]}],
    });
    let jobs = c["scrape_configs"]
        .as_array_mut()
        .expect("scrape_configs in config/prometheus.yml");
    let mut names = BTreeSet::new();
    for job in jobs.iter_mut() {
        let job = job.as_object_mut().expect("a scrape config is a mapping");
        // The probes get 2 s (1.5 s once the exporter keeps its margin): a 1 s timeout would
        // leave them 0.5 s, which a TLS handshake with Postfix can exceed on a busy machine.
        let every = if job.get("metrics_path") == Some(&"/probe".into()) {
            "2s"
        } else {
            "1s"
        };
        job.insert("scrape_interval".into(), every.into());
        job.insert("scrape_timeout".into(), every.into());
        for sd in job
            .get_mut("http_sd_configs")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            sd["refresh_interval"] = "1s".into();
        }
        let name = job["job_name"].as_str().unwrap_or_default().to_string();
        let extra = match name.as_str() {
            "mailflow_probe" => serde_json::json!({
                "targets": [exporter.to_string()],
                "labels": {"connector": RETIRED},
            }),
            "mailflow_exporter" => serde_json::json!({"targets": [dead.to_string()]}),
            _ => continue,
        };
        job.entry("static_configs")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("static_configs is a list")
            .push(extra);
        names.insert(name);
    }
    assert_eq!(
        names,
        BTreeSet::from([
            "mailflow_exporter".to_string(),
            "mailflow_probe".to_string()
        ]),
        "the jobs the rules assume"
    );
    // YAML is a superset of JSON.
    c.to_string()
}

/// Poll `check` until it returns Ok or `deadline` passes; then panic with its last error and
/// `context()` (the logs).
fn wait_for(
    what: &str,
    deadline: Instant,
    context: &dyn Fn() -> String,
    check: impl FnMut() -> Result<(), String>,
) {
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(last) = poll(left, check) {
        panic!(
            "{what}: still not so after {DEADLINE:?}:\n{last}\n{}",
            context()
        );
    }
}

/// The value of `labels.key` of an API object.
fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["labels"][key].as_str().unwrap_or_default()
}

/// Every target expression of every panel (rows included): (panel title, expr).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(node: &Value, out: &mut Vec<(String, String)>) {
        for panel in node["panels"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.to_string(), expr.to_string()));
                }
            }
            walk(panel, out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// A dashboard expression as Grafana would send it with "All" connectors selected.
fn grafana_substitute(expr: &str) -> String {
    let e = expr
        .replace("${connector}", ".*")
        .replace("$connector", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1s")
        .replace("$__range", "1h");
    assert!(
        !e.contains('$'),
        "a dashboard variable this test does not substitute: {expr}"
    );
    e
}

/// The name of a connector entry (`  - name: NAME` first).
fn name_of(entry: &str) -> &str {
    entry
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("  - name: "))
        .expect("a connector entry")
}

/// (a) Every connector discovered through /sd is a target with `?connector=NAME`, and up; the
/// retired connector's target and the dead exporter are down, the exporter's /metrics up.
fn wait_for_targets(
    p: &Prometheus,
    connectors: &[&str],
    exporter: SocketAddr,
    dead: SocketAddr,
    deadline: Instant,
    context: &dyn Fn() -> String,
) {
    let mut expected: BTreeMap<String, &str> =
        connectors.iter().map(|c| (c.to_string(), "up")).collect();
    expected.insert(RETIRED.into(), "down");
    expected.insert(format!("mailflow_exporter {exporter}"), "up");
    expected.insert(format!("mailflow_exporter {dead}"), "down");
    wait_for(
        "every target scraped, up or down as expected",
        deadline,
        context,
        || {
            let data = p.api("/api/v1/targets?state=active")?;
            let mut health = BTreeMap::new();
            for t in data["activeTargets"].as_array().into_iter().flatten() {
                let (job, connector) = (label(t, "job"), label(t, "connector"));
                let key = match job {
                    "mailflow_probe" => connector.to_string(),
                    _ => format!("{job} {}", label(t, "instance")),
                };
                let url = t["scrapeUrl"].as_str().unwrap_or_default();
                if job == "mailflow_probe" && !url.contains(&format!("connector={connector}")) {
                    return Err(format!("probe target without ?connector={connector}: {t}"));
                }
                health.insert(key, t["health"].as_str().unwrap_or_default());
            }
            if health == expected {
                Ok(())
            } else {
                Err(format!("targets: {health:?}\nexpected: {expected:?}"))
            }
        },
    );
    // The dashboard's connector variable lists every connector.
    let values = p
        .api("/api/v1/label/connector/values?match[]=mailflow_probe_success")
        .unwrap_or_else(|err| panic!("{err}"));
    for c in connectors {
        assert!(
            values.as_array().is_some_and(|v| v.iter().any(|x| x == c)),
            "label_values(mailflow_probe_success, connector) lacks {c}: {values}"
        );
    }
}

/// (c) Wait until every `expected` alert (name, label, value) is firing; returns all alerts.
fn wait_for_alerts(
    p: &Prometheus,
    expected: &[(&str, &str, String)],
    deadline: Instant,
    context: &dyn Fn() -> String,
) -> Vec<Value> {
    let mut alerts: Vec<Value> = Vec::new();
    wait_for("the expected alerts firing", deadline, context, || {
        alerts = p.api("/api/v1/alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let firing = |name: &str, key: &str, value: &str| {
            alerts.iter().any(|a| {
                a["state"] == "firing" && label(a, "alertname") == name && label(a, key) == value
            })
        };
        let missing: Vec<String> = expected
            .iter()
            .filter(|(name, key, value)| !firing(name, key, value))
            .map(|(name, key, value)| format!("{name}{{{key}={value}}}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let now: Vec<String> = alerts
            .iter()
            .map(|a| {
                let (name, state) = (label(a, "alertname"), &a["state"]);
                let (c, instance) = (label(a, "connector"), label(a, "instance"));
                format!("{name}{{connector={c},instance={instance}}} {state}")
            })
            .collect();
        Err(format!("not firing: {missing:?}\nalerts now: {now:#?}"))
    });
    alerts
}

/// What is wrong with the alerts beyond the expected ones firing: alerts that must stay
/// silent, annotation templates that failed, descriptions without the failure's reason.
fn alert_problems(alerts: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for a in alerts {
        let (name, c) = (label(a, "alertname"), label(a, "connector"));
        // Nothing about the healthy connector, no chain alerts (the expired leaf is the earliest
        // expiry of its chain), and the retry-window alerts only for the 3 s window.
        if c == "e2e_ok"
            || name.starts_with("MailflowCertificateChain")
            || (name.starts_with("MailflowQueue")
                && name != "MailflowQueueAgeHigh"
                && c != "e2e_refused")
        {
            problems.push(format!("unexpected alert {name} for {c:?}: {a}"));
        }
        for (key, text) in a["annotations"].as_object().into_iter().flatten() {
            let text = text.as_str().unwrap_or_default();
            if text.contains("error expanding template") {
                problems.push(format!("{name}: annotation {key}: {text}"));
            }
        }
    }
    // The descriptions' `query` templates ran against the real Prometheus: the reason of the
    // failure (from mailflow_probe_failure_info) is in them.
    for (name, c, reason) in [
        ("MailflowDnsQueryFailed", "e2e_nxdomain", "nxdomain"),
        (
            "MailflowCannotConnectToRemoteServer",
            "e2e_421",
            "reply_4xx",
        ),
    ] {
        let description = alerts
            .iter()
            .find(|a| label(a, "alertname") == name && label(a, "connector") == c)
            .and_then(|a| a["annotations"]["description"].as_str())
            .unwrap_or_default();
        if !description.contains(reason) {
            problems.push(format!(
                "{name}: the description lacks {reason:?}: {description}"
            ));
        }
    }
    problems
}

/// (c) Every rule expression of the rules copy evaluates without error, and Prometheus' rule
/// manager reports every rule healthy.
fn rule_problems(p: &Prometheus, rules: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let copy: Value = serde_saphyr::from_str(rules).expect("the rules copy is YAML");
    let mut count = 0;
    for group in copy["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            count += 1;
            if let Err(err) = p.query(rule["expr"].as_str().unwrap_or_default()) {
                problems.push(format!("rule {}: {err}", rule["alert"]));
            }
        }
    }
    assert!(count >= 19, "{count} rules in the copy");
    let data = p.api("/api/v1/rules").unwrap_or_else(|err| panic!("{err}"));
    let mut healthy = 0;
    for group in data["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            if rule["health"] == "ok" {
                healthy += 1;
            } else {
                let (name, health, error) = (&rule["name"], &rule["health"], &rule["lastError"]);
                problems.push(format!("rule {name} health {health} {error}"));
            }
        }
    }
    if healthy != count {
        problems.push(format!("{healthy} healthy rules of {count}"));
    }
    problems
}

/// (b) Every expression of every panel of the dashboard returns series.
fn wait_for_dashboard(p: &Prometheus, deadline: Instant, context: &dyn Fn() -> String) {
    let dashboard: Value =
        serde_json::from_str(&read("grafana/mailflow.json")).expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "{} panel expressions", exprs.len());
    wait_for(
        "every dashboard expression returning series",
        deadline,
        context,
        || {
            let mut empty = Vec::new();
            for (title, expr) in &exprs {
                let promql = grafana_substitute(expr);
                let series = p
                    .query(&promql)
                    .map_err(|err| format!("panel {title:?}: {err}"))?;
                if series.is_empty() {
                    empty.push(format!("panel {title:?}: {promql} returns nothing"));
                }
            }
            if empty.is_empty() {
                Ok(())
            } else {
                Err(empty.join("\n"))
            }
        },
    );
}

/// (d) The webhook receiver gets [`PAGES`], Alertmanager holds [`MUTED`] as inhibited, and after
/// [`LATE_NOTIFICATIONS`] no receiver got a muted alert or an alert of a connector that belongs on
/// one receiver alone elsewhere; what is wrong, if anything.
fn paging_problems(
    webhook: &Webhook,
    am: &Alertmanager,
    deadline: Instant,
    context: &dyn Fn() -> String,
) -> Vec<String> {
    let notified = || {
        let by_receiver = firing_by_receiver(&webhook.received());
        format!(
            "notifications by receiver: {by_receiver:#?}\nAlertmanager log (tail):\n{}",
            tail(&am.log(), 15)
        )
    };
    let context = || format!("{}\n{}", notified(), context());
    wait_for(
        "the expected notifications at the webhook receiver",
        deadline,
        &context,
        || {
            let by_receiver = firing_by_receiver(&webhook.received());
            let missing: Vec<_> = PAGES
                .iter()
                .filter(|(path, alert, c, _)| {
                    !by_receiver
                        .get(*path)
                        .is_some_and(|got| got.contains(&(alert.to_string(), c.to_string())))
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not notified yet: {missing:?}"))
            }
        },
    );
    // Prometheus sent the muted alerts too: Alertmanager holds them, inhibited.
    wait_for(
        "the muted alerts held by Alertmanager, inhibited",
        deadline,
        &context,
        || {
            let held = am.alerts()?;
            let unmuted: Vec<String> = MUTED
                .iter()
                .filter_map(|(name, c)| {
                    let status = held
                        .iter()
                        .find(|a| {
                            a["labels"]["alertname"] == *name && a["labels"]["connector"] == *c
                        })
                        .map(|a| &a["status"]);
                    let inhibited = status.is_some_and(|s| {
                        s["state"] == "suppressed"
                            && s["inhibitedBy"].as_array().is_some_and(|by| !by.is_empty())
                    });
                    (!inhibited).then(|| format!("{name} for {c}: {status:?}"))
                })
                .collect();
            if unmuted.is_empty() {
                Ok(())
            } else {
                Err(format!("not held as inhibited: {unmuted:#?}"))
            }
        },
    );
    std::thread::sleep(LATE_NOTIFICATIONS);
    let mut problems = Vec::new();
    for (path, got) in firing_by_receiver(&webhook.received()) {
        for (alert, c) in &got {
            if MUTED.contains(&(alert.as_str(), c.as_str())) {
                problems.push(format!("{path} got {alert} for {c}, which is muted"));
            }
            let elsewhere = PAGES
                .iter()
                .any(|(owner, _, connector, alone)| *alone && connector == c && *owner != path);
            if elsewhere {
                problems.push(format!(
                    "{path} got {alert} for {c}, which belongs elsewhere"
                ));
            }
        }
    }
    if !problems.is_empty() {
        problems.push(notified());
    }
    problems
}

#[test]
fn real_prometheus_discovers_scrapes_and_alerts() {
    // The fixtures, one way of failing each.
    let healthy = Server::dialogue(Dialogue::default());
    let g421 = Server::dialogue(Dialogue {
        greeting: "421 4.3.2 Service not available".into(),
        ..Dialogue::default()
    });
    let closes = Server::start(|_| std::thread::sleep(Duration::from_millis(50)));
    let garbage = Server::start(|c| {
        c.send(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        c.hang(Duration::from_millis(500));
    });
    // Nothing listens on 127.0.0.2 at this port: the first smart host of e2e_degraded is refused.
    let pair = Server::dialogue(Dialogue::default());
    let full = FullBacklog::new();
    let pair_port = pair.port().to_string();
    let nxdomain = format!("[{}]", dnsmasq::NXDOMAIN);
    let healthy_port = healthy.port().to_string();
    let none = [("tls_settings", "none")];
    let sts_world = sts::world();
    let sts_port = crate::system::postfix::postfix().port("sts").to_string();
    let entries = [
        local("e2e_ok", healthy.port(), &none),
        // Owned by the messaging team (routed on `team`).
        connector(
            "e2e_nxdomain",
            &[
                ("smart_hosts", &nxdomain),
                ("port", &healthy_port),
                ("type", "on_premises"),
                ("labels", MESSAGING),
            ],
        ),
        local("e2e_timeout", full.addr.port(), &[]),
        local(
            "e2e_refused",
            closed_port("127.0.0.1"),
            &[
                ("queue_expiry", TINY_QUEUE_EXPIRY),
                ("recipient_domains", "[refused.mf.test]"),
                ("labels", MESSAGING),
            ],
        ),
        // A partner's server, which names the messaging team too: the partner route comes first.
        local(
            "e2e_421",
            g421.port(),
            &[("type", "partner"), ("labels", MESSAGING)],
        ),
        local("e2e_closed", closes.port(), &[]),
        postfix_connector("e2e_cert", "expired", "certificate_validation", &[]),
        postfix_connector("e2e_cert_unenforced", "expired", "encryption_only", &[]),
        // A server that speaks only TLS 1.0: delivered in plain text after the handshake fails.
        postfix_connector("e2e_fallback", "tls10", "opportunistic", &[]),
        local("e2e_other", garbage.port(), &[]),
        connector(
            "e2e_degraded",
            &[
                ("smart_hosts", "[127.0.0.2, 127.0.0.1]"),
                ("port", &pair_port),
                ("tls_settings", "none"),
            ],
        ),
        // DANE in a signed world: a matching record that is not ready for a rollover, and a
        // stale one.
        dane_connector("e2e_dane", "ok", "valid"),
        dane_connector("e2e_dane_stale", "stale", "valid"),
        // A destination of the MTA-STS world whose enforce policy does not list its MX host.
        connector(
            "e2e_mta_sts",
            &[
                ("use_mx_record", "true"),
                ("recipient_domains", &format!("[{}]", sts::MISSING)),
                ("port", &sts_port),
                ("ca_file", &sts_world.trust_bundle.display().to_string()),
                ("dns", &format!("{{nameservers: [\"{}\"]}}", sts_world.dns)),
            ],
        ),
    ];
    let connectors: Vec<&str> = entries.iter().map(|e| name_of(e)).collect();
    let queue_dir = tempfile::tempdir().expect("tempdir");
    let queue_file = queue_dir.path().join("postqueue.json");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(&queue_file, postqueue_json(now - QUEUED_AGE)).expect("write the queue");
    let yaml = format!(
        "{}postfix_queue:\n  command: [cat, \"{}\"]\n",
        config(Some(&dns().nameserver()), &entries),
        queue_file.display()
    );
    let e = Exporter::start(&yaml);
    // The outage of e2e_refused starts now, before Prometheus does (its discovery and scrape
    // managers take some 5 s to start scraping): by the first scrape its queue age is past the
    // 3 s window already, so the queue alerts wait for `for:` only, and reach Alertmanager
    // together with its code alert (well within GROUP_WAIT; 0.4 s apart when measured).
    e.expect("e2e_refused", "4.4.316", "connect", "refused");

    // A configuration reload that fails: the old configuration keeps running, and
    // mailflow_config_last_reload_successful drops to 0.
    std::fs::write(e.config_file(), "connectors: [ this is not valid\n").expect("break config");
    let r = http::request(e.addr, "POST", "/-/reload", &[]).expect("POST /-/reload");
    assert_ne!(
        r.status, 200,
        "an invalid configuration must not reload: {}",
        r.body
    );

    let webhook = Webhook::start();
    let am = Alertmanager::start(&alertmanager::shipped_config(
        &webhook,
        GROUP_WAIT,
        GROUP_INTERVAL,
    ));
    let dead: SocketAddr = ([127, 0, 0, 1], closed_port("127.0.0.1")).into();
    let prometheus_yml =
        fast_prometheus_config(&read("config/prometheus.yml"), e.addr, dead, am.addr);
    let rules = fast_rules(&read("alerts/mailflow.rules.yml"));
    let started = Instant::now();
    let p = Prometheus::start(&[
        ("prometheus.yml", &prometheus_yml),
        ("mailflow.rules.yml", &rules),
    ]);
    let deadline = started + DEADLINE;
    let context = || {
        format!(
            "Prometheus log (tail):\n{}\nexporter log (tail):\n{}\nconfig:\n{prometheus_yml}",
            tail(&p.log(), 15),
            tail(&e.logs(), 15)
        )
    };

    wait_for_targets(&p, &connectors, e.addr, dead, deadline, &context);

    let mut expected: Vec<(&str, &str, String)> = [
        ("MailflowDnsQueryFailed", "e2e_nxdomain"),
        ("MailflowConnectionTimedOut", "e2e_timeout"),
        ("MailflowConnectionRefused", "e2e_refused"),
        ("MailflowCannotConnectToRemoteServer", "e2e_421"),
        ("MailflowConnectionClosedAbruptly", "e2e_closed"),
        ("MailflowCertificateValidationFailed", "e2e_cert"),
        ("MailflowOtherError", "e2e_other"),
        ("MailflowConnectorDegraded", "e2e_degraded"),
        ("MailflowMtaStsHostNotInPolicy", "e2e_mta_sts"),
        ("MailflowQueueAgeHigh", "e2e_refused"),
        ("MailflowQueueNearExpiry", "e2e_refused"),
        ("MailflowQueueExpired", "e2e_refused"),
        ("MailflowCertificateExpiringSoon", "e2e_cert"),
        ("MailflowCertificateExpiringSoon", "e2e_cert_unenforced"),
        ("MailflowCertificateExpiryCritical", "e2e_cert"),
        (
            "MailflowCertificateInvalidNotEnforced",
            "e2e_cert_unenforced",
        ),
        ("MailflowTlsFallback", "e2e_fallback"),
        ("MailflowProbeScrapeFailed", RETIRED),
        ("MailflowDaneRolloverNotReady", "e2e_dane"),
        ("MailflowDaneTlsaMismatch", "e2e_dane_stale"),
    ]
    .into_iter()
    .map(|(alert, c)| (alert, "connector", c.to_string()))
    .collect();
    // The owner labels from /sd, on the alerts.
    expected.push((
        "MailflowCannotConnectToRemoteServer",
        "connector_type",
        "partner".into(),
    ));
    expected.push(("MailflowDnsQueryFailed", "team", "messaging".into()));
    expected.push(("MailflowConfigReloadFailed", "instance", e.addr.to_string()));
    expected.push(("MailflowExporterDown", "instance", dead.to_string()));
    let alerts = wait_for_alerts(&p, &expected, deadline, &context);
    let mut problems = alert_problems(&alerts);
    problems.extend(rule_problems(&p, &rules));

    wait_for_dashboard(&p, deadline, &context);
    // The queued message, counted for its connector under the code of its delay reason, with
    // its age.
    let messages = p
        .query(r#"max by (code) (mailflow_postfix_queue_messages{connector="e2e_refused"} > 0)"#)
        .unwrap_or_else(|err| panic!("{err}"));
    let codes: Vec<&str> = messages
        .iter()
        .map(|s| s["metric"]["code"].as_str().unwrap_or_default())
        .collect();
    if codes != ["4.4.316"] {
        problems.push(format!(
            "Postfix queue of e2e_refused by code: {messages:?}"
        ));
    }
    let oldest = p
        .query(r#"max(mailflow_postfix_queue_oldest_age_seconds{connector="e2e_refused"})"#)
        .unwrap_or_else(|err| panic!("{err}"));
    let age: f64 = oldest
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    if !(QUEUED_AGE as f64..QUEUED_AGE as f64 + DEADLINE.as_secs_f64() + 30.0).contains(&age) {
        problems.push(format!(
            "oldest queued message of e2e_refused: {age} s, expected about {QUEUED_AGE} s"
        ));
    }
    problems.extend(paging_problems(&webhook, &am, deadline, &context));
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        context()
    );
    eprintln!(
        "prometheus_e2e: done {:?} after Prometheus started",
        started.elapsed()
    );
}
