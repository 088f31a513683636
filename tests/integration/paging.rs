//! The shipped Alertmanager configuration (`config/alertmanager.yml`) in a real Alertmanager
//! (the Debian package `prometheus-alertmanager`): alerts posted the way Prometheus posts them
//! reach the receiver of their owner and severity, a webhook receiver of this test gets them, and
//! the inhibit rules mute the warnings of a connector whose mail is close to bouncing.
//!
//! Only the receivers' URLs (to this test's webhook receiver) and `group_wait` (30 s to 1 s, so
//! the test does not wait half a minute) are changed; routes and inhibit rules are the shipped
//! ones. Everything runs on loopback. The same configuration with the alerts a real Prometheus
//! raises from real probes is part of `prometheus_e2e`.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::system::alertmanager::{Alertmanager, shipped_config};
use crate::system::webhook::{Webhook, firing_by_receiver};
use serde_json::{Value, json};

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

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect()
}

#[test]
fn alerts_reach_their_owner_and_the_critical_queue_alert_mutes_the_code_alert() {
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&shipped_config(&webhook, "1s", "5m"));

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

    let expected = BTreeMap::from([
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
    ]);
    webhook.wait_until(Duration::from_secs(30), |received| {
        firing_by_receiver(received).len() >= expected.len()
    });
    // Every group was due after 1 s; give a wrongly routed or unmuted notification time to
    // arrive before looking.
    std::thread::sleep(Duration::from_secs(3));
    let received = webhook.received();
    assert_eq!(
        firing_by_receiver(&received),
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
