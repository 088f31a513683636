//! Checks the shipped monitoring assets as text: every alert has a runbook section, a runbook
//! URL and a firing and a silent rule test; the Grafana dashboard shows every metric and uses its
//! variables. (`promtool` on the rules, their tests and the Prometheus configuration:
//! `tests/integration/promtool.rs`.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

const RULES: &str = "alerts/mailflow.rules.yml";
const RULE_TESTS: &str = "alerts/mailflow.rules.test.yml";
const DASHBOARD: &str = "grafana/mailflow.json";
const RUNBOOK: &str = "docs/runbook.md";
/// The default `runbookURLPattern` of the mixin, up to the anchor.
const RUNBOOK_URL: &str = "docs/runbook.md#";

/// Every metric of the metrics table in the product contract.
const METRICS: &[&str] = &[
    "mailflow_probe_success",
    "mailflow_probe_status",
    "mailflow_probe_failure_info",
    "mailflow_probe_duration_seconds",
    "mailflow_probe_phase_duration_seconds",
    "mailflow_probes_total",
    "mailflow_probe_failures_total",
    "mailflow_target_success",
    "mailflow_target_status",
    "mailflow_tls_info",
    "mailflow_tls_fallback",
    "mailflow_certificate_not_after_timestamp_seconds",
    "mailflow_certificate_chain_not_after_timestamp_seconds",
    "mailflow_certificate_valid",
    "mailflow_queue_age_seconds",
    "mailflow_queue_expiry_seconds",
    "mailflow_last_success_timestamp_seconds",
    "mailflow_postfix_queue_messages",
    "mailflow_postfix_queue_oldest_age_seconds",
    "mailflow_exporter_build_info",
    "mailflow_config_last_reload_successful",
    "mailflow_config_last_reload_success_timestamp_seconds",
];

/// The metrics above that have no `connector` label.
const EXPORTER_METRICS: &[&str] = &[
    "mailflow_exporter_build_info",
    "mailflow_config_last_reload_successful",
    "mailflow_config_last_reload_success_timestamp_seconds",
];

#[test]
fn every_alert_has_a_runbook_section_and_a_working_runbook_url() {
    let alerts = alerts();
    assert!(
        alerts.len() >= 20,
        "expected at least 20 alerts in {RULES}, found {}",
        alerts.len()
    );
    let runbook = read(RUNBOOK);
    let headings: Vec<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| heading.trim().to_string())
        .collect();
    let anchors: BTreeSet<String> = headings.iter().map(|heading| anchor(heading)).collect();
    let mut problems = Vec::new();
    for alert in &alerts {
        if !headings.contains(&alert.name) {
            problems.push(format!("{RUNBOOK} has no section `## {}`", alert.name));
        }
        for key in ["summary:", "description:", "runbook_url:", "severity:"] {
            if !alert
                .body
                .iter()
                .any(|line| line.trim_start().starts_with(key))
            {
                problems.push(format!("alert {} has no `{key}`", alert.name));
            }
        }
        match alert
            .runbook_url
            .as_deref()
            .and_then(|url| url.strip_prefix(RUNBOOK_URL))
        {
            Some(fragment) if fragment == anchor(&alert.name) && anchors.contains(fragment) => {}
            _ => problems.push(format!(
                "alert {}: runbook_url {:?} should be {RUNBOOK_URL}{}, an anchor of {RUNBOOK}",
                alert.name,
                alert.runbook_url,
                anchor(&alert.name)
            )),
        }
    }
    for heading in headings
        .iter()
        .filter(|heading| heading.starts_with("Mailflow"))
    {
        if !alerts.iter().any(|alert| &alert.name == heading) {
            problems.push(format!(
                "{RUNBOOK} has a section for an unknown alert: {heading}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_fires_in_one_test_case_and_stays_silent_in_another() {
    let tests = read(RULE_TESTS);
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    // Cut the file into list items at the starts of test cases, series and rule tests; the
    // expected alerts are nested deeper and stay with their rule test.
    let mut items: Vec<Vec<&str>> = Vec::new();
    for line in tests.lines() {
        let item = line.trim_start();
        let starts_item = [
            "- eval_time:",
            "- alertname:",
            "- name:",
            "- series:",
            "- interval:",
        ]
        .iter()
        .any(|start| item.starts_with(start));
        match items.last_mut() {
            Some(current) if !starts_item => current.push(item),
            _ => items.push(vec![item]),
        }
    }
    for item in items {
        let Some(name) = item.iter().find_map(|line| {
            line.trim_start_matches("- ")
                .strip_prefix("alertname:")
                .map(str::trim)
        }) else {
            continue;
        };
        if item.iter().any(|line| line.starts_with("exp_alerts: []")) {
            silent.insert(name.to_string());
        } else if item.iter().any(|line| line.contains("exp_labels:")) {
            fires.insert(name.to_string());
        }
    }
    let mut problems = Vec::new();
    for alert in alerts() {
        if !fires.contains(&alert.name) {
            problems.push(format!(
                "{RULE_TESTS}: no test case where {} fires",
                alert.name
            ));
        }
        if !silent.contains(&alert.name) {
            problems.push(format!(
                "{RULE_TESTS}: no test case where {} stays silent",
                alert.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboard_shows_every_metric_and_uses_the_variables() {
    let text = read(DASHBOARD);
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"));

    let schema = dashboard
        .get("schemaVersion")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    assert!(
        schema >= 36.0,
        "{DASHBOARD}: schemaVersion {schema} is outdated"
    );

    let variables = dashboard
        .get("templating")
        .and_then(|t| t.get("list"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{DASHBOARD}: no templating.list"));
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{DASHBOARD}: no variable `{name}`"))
    };
    let datasource = variable("datasource");
    assert_eq!(
        datasource.get("type").and_then(Value::as_str),
        Some("datasource")
    );
    assert_eq!(
        datasource.get("query").and_then(Value::as_str),
        Some("prometheus")
    );
    let connector = variable("connector");
    assert_eq!(connector.get("type").and_then(Value::as_str), Some("query"));
    assert_eq!(
        connector.get("multi").and_then(Value::as_bool),
        Some(true),
        "connector: multi"
    );
    assert_eq!(
        connector.get("includeAll").and_then(Value::as_bool),
        Some(true),
        "connector: include all"
    );
    assert_eq!(
        connector.get("definition").and_then(Value::as_str),
        Some("label_values(mailflow_probe_success, connector)")
    );

    let mut panels = Vec::new();
    collect_panels(&dashboard, &mut panels);
    let mut exprs = Vec::new();
    let mut problems = Vec::new();
    for panel in &panels {
        let title = panel
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("(untitled)");
        for target in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(expr) = target.get("expr").and_then(Value::as_str) else {
                problems.push(format!("panel {title:?}: a target without expr"));
                continue;
            };
            let uid = target
                .get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(Value::as_str);
            if uid != Some("${datasource}") {
                problems.push(format!(
                    "panel {title:?}: target {expr:?} does not use ${{datasource}}"
                ));
            }
            let per_connector = METRICS
                .iter()
                .filter(|m| !EXPORTER_METRICS.contains(m))
                .any(|m| mentions_metric(expr, m));
            if per_connector && !expr.contains("$connector") {
                problems.push(format!("panel {title:?}: {expr:?} ignores $connector"));
            }
            exprs.push(expr.to_string());
        }
    }
    for metric in METRICS {
        if !exprs.iter().any(|expr| mentions_metric(expr, metric)) {
            problems.push(format!("no panel shows {metric}"));
        }
    }
    let has_text_panel = panels.iter().any(|p| {
        p.get("type").and_then(Value::as_str) == Some("text")
            && p.get("options")
                .and_then(|o| o.get("content"))
                .and_then(Value::as_str)
                .is_some_and(|c| c.contains("4.7.320"))
    });
    if !has_text_panel {
        problems.push("no text panel explaining the codes".to_string());
    }
    assert!(problems.is_empty(), "{DASHBOARD}:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// One alerting rule of the rules file, as its lines.
struct Alert {
    name: String,
    runbook_url: Option<String>,
    body: Vec<String>,
}

/// The alerts of the rules file, read line by line (each `- alert:` up to the next rule).
fn alerts() -> Vec<Alert> {
    let text = read(RULES);
    let mut alerts: Vec<Alert> = Vec::new();
    let mut in_alert = false;
    for line in text.lines() {
        let item = line.trim_start();
        if let Some(name) = item.strip_prefix("- alert:") {
            alerts.push(Alert {
                name: name.trim().to_string(),
                runbook_url: None,
                body: Vec::new(),
            });
            in_alert = true;
            continue;
        }
        if item.starts_with("- record:") || item.starts_with("- name:") {
            in_alert = false;
        }
        let Some(alert) = alerts.last_mut().filter(|_| in_alert) else {
            continue;
        };
        if let Some(url) = item.strip_prefix("runbook_url:") {
            alert.runbook_url = Some(url.trim().trim_matches('"').trim_matches('\'').to_string());
        }
        alert.body.push(line.to_string());
    }
    alerts
}

/// The anchor GitHub gives a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether a PromQL expression names the metric as a whole identifier.
fn mentions_metric(expr: &str, metric: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(metric).any(|(at, _)| {
        let before = expr[..at].chars().next_back();
        let after = expr[at + metric.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// All panels of a dashboard, including those nested in rows.
fn collect_panels<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in node
        .get("panels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(panel);
        collect_panels(panel, out);
    }
}

#[test]
fn helpers_match_metrics_and_anchors() {
    assert!(mentions_metric(
        "rate(mailflow_probes_total[5m])",
        "mailflow_probes_total"
    ));
    assert!(!mentions_metric(
        "mailflow_config_last_reload_successful",
        "mailflow_config_last_reload_success"
    ));
    assert_eq!(anchor("MailflowDnsQueryFailed"), "mailflowdnsqueryfailed");
    assert_eq!(anchor("Before you start"), "before-you-start");
}
