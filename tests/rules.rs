//! Checks the shipped monitoring assets: the monitoring mixin (`mixin/`) and the files it
//! renders (the alerting rules, with their `promtool` unit tests, and the Grafana dashboard), the
//! Prometheus and Alertmanager configurations (with `amtool`), and the runbook.
//!
//! `promtool`, `jsonnet` and `amtool` come from the Debian packages `prometheus`, `jsonnet` and
//! `prometheus-alertmanager` (`scripts/install-deps` installs them); set `PROMTOOL`, `JSONNET` or
//! `AMTOOL` to use other binaries. A missing tool fails these tests, it never skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RULES: &str = "alerts/mailflow.rules.yml";
const RULE_TESTS: &str = "alerts/mailflow.rules.test.yml";
const PROMETHEUS_CONFIG: &str = "config/prometheus.yml";
const DASHBOARD: &str = "grafana/mailflow.json";
const RUNBOOK: &str = "docs/runbook.md";
/// The default `runbookURLPattern` of the mixin, up to the anchor.
const RUNBOOK_URL: &str = "docs/runbook.md#";
const ALERTMANAGER_CONFIG: &str = "config/alertmanager.yml";
const RENDER: &str = "scripts/render-mixin";
/// The customised `_config` and the promtool tests of the rules rendered with it.
const CUSTOM_CONFIG: &str = "mixin/tests/custom.libsonnet";
const CUSTOM_RULE_TESTS: &str = "mixin/tests/custom.rules.test.yml";

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
fn promtool_check_rules() {
    promtool(&["check", "rules", RULES]);
}

#[test]
fn promtool_test_rules() {
    promtool(&["test", "rules", RULE_TESTS]);
}

#[test]
fn promtool_check_config() {
    promtool(&["check", "config", PROMETHEUS_CONFIG]);
}

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

#[test]
fn rendered_files_are_what_the_mixin_renders() {
    let output = render_mixin(&root(), &["--check"]);
    assert!(
        output.status.success(),
        "{RENDER} --check failed ({}):\n{}",
        output.status,
        text(&output)
    );
}

#[test]
fn the_up_to_date_check_fails_on_a_hand_edit_and_passes_after_rendering() {
    // A copy of the mixin, the script and the rendered files: the checkout stays untouched.
    let dir = tempfile::tempdir().expect("temporary directory");
    let copy = dir.path();
    copy_tree(&root().join("mixin"), &copy.join("mixin"));
    for file in [RENDER, RULES, DASHBOARD] {
        let to = copy.join(file);
        std::fs::create_dir_all(to.parent().expect("a file in a directory")).expect("mkdir");
        std::fs::copy(root().join(file), &to).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    let rendered_rules = read(RULES);
    let edited = rendered_rules.replacen("for: 5m", "for: 10m", 1);
    assert_ne!(edited, rendered_rules, "{RULES} has no `for: 5m` to edit");
    std::fs::write(copy.join(RULES), edited).expect("edit the rules");
    let dashboard = read(DASHBOARD);
    let edited = dashboard.replacen(r#""refresh": "1m""#, r#""refresh": "5m""#, 1);
    assert_ne!(
        edited, dashboard,
        "{DASHBOARD} has no refresh of 1m to edit"
    );
    std::fs::write(copy.join(DASHBOARD), edited).expect("edit the dashboard");

    let output = render_mixin(copy, &["--check"]);
    let report = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "--check after a hand edit:\n{report}"
    );
    for line in [
        "-        for: 10m",
        "+        for: 5m",
        r#"-   "refresh": "5m","#,
        r#"+   "refresh": "1m","#,
        "run scripts/render-mixin",
    ] {
        assert!(
            report.contains(line),
            "no `{line}` in the report:\n{report}"
        );
    }

    let output = render_mixin(copy, &[]);
    assert!(output.status.success(), "rendering:\n{}", text(&output));
    let output = render_mixin(copy, &["--check"]);
    assert!(
        output.status.success(),
        "--check after rendering:\n{}",
        text(&output)
    );
    let restored = std::fs::read_to_string(copy.join(RULES)).expect("read the rules");
    assert_eq!(restored, rendered_rules);
}

#[test]
fn a_customised_config_renders_rules_that_pass_their_own_tests() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path();
    let out_arg = out.to_str().expect("a UTF-8 temporary path");
    let output = render_mixin(&root(), &["--out", out_arg, "--config", CUSTOM_CONFIG]);
    assert!(output.status.success(), "rendering:\n{}", text(&output));
    std::fs::copy(
        root().join(CUSTOM_RULE_TESTS),
        out.join("alerts/custom.rules.test.yml"),
    )
    .expect("copy the tests next to the rules");
    for args in [
        ["check", "rules", "alerts/mailflow.rules.yml"],
        ["test", "rules", "alerts/custom.rules.test.yml"],
    ] {
        succeed(&run(&PROMTOOL, &args, out), &PROMTOOL, &args);
    }

    // The dashboard follows the configuration too.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(DASHBOARD)).expect("the rendered dashboard"),
    )
    .expect("JSON");
    assert_eq!(dashboard["uid"], "mail-flow-custom");
    let mut panels = Vec::new();
    collect_panels(&dashboard, &mut panels);
    let exprs: Vec<&str> = panels
        .iter()
        .filter_map(|panel| panel.get("targets").and_then(Value::as_array))
        .flatten()
        .filter_map(|target| target.get("expr").and_then(Value::as_str))
        .collect();
    for expected in [
        r#"up{job="mail-exporter"}"#,
        r#"up{job="mail-probe", connector=~"$connector"}"#,
    ] {
        assert!(exprs.contains(&expected), "no {expected} in {exprs:?}");
    }
    assert!(
        !exprs.iter().any(|expr| expr.contains(r#"job="mailflow_"#)),
        "a default job name is left in {exprs:?}"
    );
}

#[test]
fn a_misspelt_or_mistyped_config_key_is_an_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("out");
    let out_arg = out.to_str().expect("a UTF-8 temporary path");
    for (config, message) in [
        (
            "{ certificateWarnigDays: 21 }",
            "unknown _config keys: certificateWarnigDays",
        ),
        (
            "{ certificateWarningDays: '21' }",
            "certificateWarningDays is a string, not a number",
        ),
    ] {
        let file = dir.path().join("config.libsonnet");
        std::fs::write(&file, config).expect("write the configuration");
        let file_arg = file.to_str().expect("a UTF-8 temporary path");
        let output = render_mixin(&root(), &["--out", out_arg, "--config", file_arg]);
        let report = text(&output);
        assert!(
            !output.status.success() && report.contains(message),
            "{config}: expected a failure naming `{message}`, got {}:\n{report}",
            output.status
        );
    }
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let args = ["check-config", ALERTMANAGER_CONFIG];
    succeed(&run(&AMTOOL, &args, &root()), &AMTOOL, &args);
}

#[test]
fn alerts_reach_the_receiver_of_their_owner_and_severity() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "alertname=MailflowConnectionRefused",
                "connector=fabrikam-partner",
                "connector_type=partner",
                "severity=warning",
            ],
            "partner-liaison",
        ),
        (
            &[
                "alertname=MailflowQueueNearExpiry",
                "connector=fabrikam-partner",
                "connector_type=partner",
                "severity=critical",
            ],
            "partner-liaison-page",
        ),
        (
            &[
                "alertname=MailflowConnectionRefused",
                "connector=contoso-onprem",
                "connector_type=on_premises",
                "severity=warning",
            ],
            "mail-ops",
        ),
        (
            &[
                "alertname=MailflowQueueExpired",
                "connector=contoso-onprem",
                "connector_type=on_premises",
                "severity=critical",
            ],
            "mail-ops-page",
        ),
        (
            &[
                "alertname=MailflowDnsQueryFailed",
                "connector=hq",
                "connector_type=on_premises",
                "team=messaging",
                "severity=warning",
            ],
            "messaging",
        ),
        (
            &[
                "alertname=MailflowCertificateExpiryCritical",
                "connector=hq",
                "connector_type=on_premises",
                "team=messaging",
                "severity=critical",
            ],
            "messaging-page",
        ),
        // A failing probe scrape is the exporter's problem, even for a partner's connector.
        (
            &[
                "alertname=MailflowProbeScrapeFailed",
                "connector=fabrikam-partner",
                "connector_type=partner",
                "severity=warning",
            ],
            "mail-ops",
        ),
        (
            &[
                "alertname=MailflowExporterDown",
                "instance=127.0.0.1:9925",
                "severity=critical",
            ],
            "mail-ops-page",
        ),
    ];
    let mut problems = Vec::new();
    for (labels, receiver) in cases {
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file",
            ALERTMANAGER_CONFIG,
        ];
        args.extend_from_slice(labels);
        let output = run(&AMTOOL, &args, &root());
        let routed = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || routed != *receiver {
            problems.push(format!(
                "{}: routed to {routed:?}, expected {receiver:?} ({})",
                labels.join(" "),
                output.status
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_alertmanager_config_names_only_real_alerts() {
    let config = read(ALERTMANAGER_CONFIG);
    let names: BTreeSet<String> = alerts().into_iter().map(|alert| alert.name).collect();
    let mentioned: BTreeSet<&str> = config
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| word.starts_with("Mailflow"))
        .collect();
    assert!(
        mentioned.len() >= 8,
        "{ALERTMANAGER_CONFIG} names only {mentioned:?}"
    );
    let unknown: Vec<&&str> = mentioned
        .iter()
        .filter(|name| !names.contains(**name))
        .collect();
    assert!(
        unknown.is_empty(),
        "{ALERTMANAGER_CONFIG} names alerts that {RULES} does not have: {unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Runs promtool in the repository root and fails the test, with its output, unless it succeeds.
fn promtool(args: &[&str]) {
    succeed(&run(&PROMTOOL, args, &root()), &PROMTOOL, args);
}

/// A command-line tool from a Debian package, overridable through an environment variable.
struct Tool {
    program: &'static str,
    variable: &'static str,
    package: &'static str,
}

const PROMTOOL: Tool = Tool {
    program: "promtool",
    variable: "PROMTOOL",
    package: "prometheus",
};
const AMTOOL: Tool = Tool {
    program: "amtool",
    variable: "AMTOOL",
    package: "prometheus-alertmanager",
};

impl Tool {
    fn program(&self) -> String {
        std::env::var(self.variable).unwrap_or_else(|_| self.program.to_string())
    }
}

/// Runs `tool` with `args` in `dir`; fails the test if it cannot be started.
fn run(tool: &Tool, args: &[&str], dir: &Path) -> Output {
    let program = tool.program();
    Command::new(&program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}). These tests need it: install the Debian package \
                 `{}` (scripts/install-deps does) or point {} at the binary.",
                tool.package, tool.variable
            )
        })
}

/// Fails the test, with the command's output, unless it succeeded.
fn succeed(output: &Output, tool: &Tool, args: &[&str]) {
    assert!(
        output.status.success(),
        "`{} {}` failed ({}):\n{}\n{}",
        tool.program(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs scripts/render-mixin (from the checkout at `checkout`) with `args`.
fn render_mixin(checkout: &Path, args: &[&str]) -> Output {
    Command::new(checkout.join(RENDER))
        .args(args)
        .current_dir(checkout)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {RENDER}: {e}"))
}

/// Copies the directory `from` with everything in it to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// stdout and stderr of a command, for failure messages.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
