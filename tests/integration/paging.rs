//! The shipped Alertmanager configuration (`config/alertmanager.yml`) in a real Alertmanager
//! (the Debian package `prometheus-alertmanager`): alerts posted the way Prometheus posts them
//! reach the receiver of their owner and severity, a webhook receiver of this test gets them, and
//! the inhibit rules mute the warnings of a connector whose mail is close to bouncing.
//!
//! Only the receivers' URLs (to this test's webhook receiver) and `group_wait` (30 s to 1 s, so
//! the test does not wait half a minute) are changed; routes and inhibit rules are the shipped
//! ones. Everything runs on loopback.
use std::collections::BTreeSet;
use std::time::Duration;

use crate::system::alertmanager::Alertmanager;
use crate::system::webhook::{Notification, Webhook};
use serde_json::{Value, json};

const CONFIG: &str = "config/alertmanager.yml";
/// The receivers' placeholder address in the shipped configuration.
const PLACEHOLDER: &str = "http://127.0.0.1:9097/";

/// The shipped configuration with its receivers pointed at `webhook` and a short group_wait.
fn shipped_config(webhook: &Webhook) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIG);
    let shipped = std::fs::read_to_string(&path).expect("read config/alertmanager.yml");
    assert!(
        shipped.contains(PLACEHOLDER),
        "{CONFIG} no longer uses {PLACEHOLDER}"
    );
    assert!(
        shipped.contains("group_wait: 30s"),
        "{CONFIG} has no group_wait: 30s"
    );
    shipped
        .replace(PLACEHOLDER, &format!("http://{}/", webhook.addr))
        .replace("group_wait: 30s", "group_wait: 1s")
}

/// An alert as Prometheus sends it for a series of the probe job.
fn alert(name: &str, connector: &str, owner: &[(&str, &str)], extra: &[(&str, &str)]) -> Value {
    let mut labels = json!({
        "alertname": name,
        "connector": connector,
        "job": "mailflow_probe",
        "instance": "127.0.0.1:9925",
    });
    for (key, value) in owner.iter().chain(extra) {
        labels[*key] = json!(value);
    }
    json!({
        "labels": labels,
        "annotations": { "summary": format!("{name} for {connector}") },
        "generatorURL": "http://127.0.0.1:9090/graph",
    })
}

/// The firing (alertname, connector) pairs each receiver path got, over all notifications.
fn by_receiver(notifications: &[Notification]) -> Vec<(String, BTreeSet<(String, String)>)> {
    let mut paths: Vec<(String, BTreeSet<(String, String)>)> = Vec::new();
    for notification in notifications {
        let alerts = notification.alerts("firing");
        match paths
            .iter_mut()
            .find(|(path, _)| *path == notification.path)
        {
            Some((_, seen)) => seen.extend(alerts),
            None => paths.push((notification.path.clone(), alerts.into_iter().collect())),
        }
    }
    paths.sort();
    paths
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect()
}

#[test]
fn alerts_reach_their_owner_and_the_critical_queue_alert_mutes_the_code_alert() {
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&shipped_config(&webhook));

    let partner = [("connector_type", "partner")];
    let on_premises = [("connector_type", "on_premises")];
    let messaging = [("connector_type", "on_premises"), ("team", "messaging")];
    let refused = [("code", "4.4.316"), ("severity", "warning")];
    alertmanager
        .post_alerts(&json!([
            alert(
                "MailflowConnectionRefused",
                "fabrikam-partner",
                &partner,
                &refused
            ),
            alert(
                "MailflowConnectionRefused",
                "contoso-onprem",
                &on_premises,
                &refused
            ),
            // hq's mail is close to bouncing: the page mutes its code alert.
            alert(
                "MailflowDnsQueryFailed",
                "hq",
                &messaging,
                &[("code", "4.4.312"), ("severity", "warning")],
            ),
            alert(
                "MailflowQueueNearExpiry",
                "hq",
                &messaging,
                &[("severity", "critical")]
            ),
        ]))
        .unwrap_or_else(|e| panic!("{e}\n{}", alertmanager.log()));

    let expected = vec![
        (
            "/mail-ops".to_string(),
            pairs(&[("MailflowConnectionRefused", "contoso-onprem")]),
        ),
        (
            "/messaging-page".to_string(),
            pairs(&[("MailflowQueueNearExpiry", "hq")]),
        ),
        (
            "/partner-liaison".to_string(),
            pairs(&[("MailflowConnectionRefused", "fabrikam-partner")]),
        ),
    ];
    webhook.wait_until(Duration::from_secs(30), |received| {
        by_receiver(received).len() >= expected.len()
    });
    // Every group was due after 1 s; give a wrongly routed or unmuted notification time to
    // arrive before looking.
    std::thread::sleep(Duration::from_secs(3));
    let received = webhook.received();
    assert_eq!(
        by_receiver(&received),
        expected,
        "notifications: {received:#?}\nAlertmanager's log:\n{}",
        alertmanager.log()
    );

    // Alertmanager itself says why hq's code alert stayed quiet.
    let alerts = alertmanager.alerts().expect("GET /api/v2/alerts");
    let status = |name: &str, connector: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["connector"] == connector)
            .map(|a| a["status"].clone())
            .unwrap_or_else(|| panic!("{name} for {connector} is not in {alerts:#?}"))
    };
    let muted = status("MailflowDnsQueryFailed", "hq");
    assert_eq!(muted["state"], "suppressed", "{muted}");
    assert_eq!(
        muted["inhibitedBy"].as_array().map(Vec::len),
        Some(1),
        "{muted}"
    );
    for (name, connector) in [
        ("MailflowQueueNearExpiry", "hq"),
        ("MailflowConnectionRefused", "fabrikam-partner"),
        ("MailflowConnectionRefused", "contoso-onprem"),
    ] {
        let status = status(name, connector);
        assert_eq!(
            status["state"], "active",
            "{name} for {connector}: {status}"
        );
    }
}
