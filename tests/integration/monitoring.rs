//! The monitoring assets checked by the tools that consume them: `promtool` on the rendered
//! alerting rules, their unit tests (default and customised mixin `_config`), the Prometheus
//! configuration and the exporter's own output; `jsonnet` (through `scripts/render-mixin`) on the
//! mixin, so a hand-edited rendered file fails; `amtool` on the Alertmanager configuration and its
//! routes. (Text-only checks of the same files: `tests/hermetic/monitoring_assets.rs`.)
//!
//! `promtool`, `jsonnet` and `amtool` come from the Debian packages `prometheus`, `jsonnet` and
//! `prometheus-alertmanager` (`scripts/install-deps`); set `PROMTOOL` or `AMTOOL` to use other
//! binaries. A missing tool fails these tests, it never skips them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::exporter::{Exporter, config, local};
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

const RULES: &str = "alerts/mailflow.rules.yml";
const DASHBOARD: &str = "grafana/mailflow.json";
const ALERTMANAGER_CONFIG: &str = "config/alertmanager.yml";
const RENDER: &str = "scripts/render-mixin";
/// The customised `_config` and the promtool tests of the rules rendered with it.
const CUSTOM_CONFIG: &str = "mixin/tests/custom.libsonnet";
const CUSTOM_RULE_TESTS: &str = "mixin/tests/custom.rules.test.yml";

#[test]
fn promtool_check_rules() {
    promtool(&["check", "rules", "alerts/mailflow.rules.yml"], None);
}

#[test]
fn promtool_test_rules() {
    promtool(&["test", "rules", "alerts/mailflow.rules.test.yml"], None);
}

#[test]
fn promtool_check_config() {
    promtool(&["check", "config", "config/prometheus.yml"], None);
}

#[test]
fn promtool_accepts_the_probe_output() {
    let s = Server::dialogue(Dialogue::default());
    let e = Exporter::start(&config(
        None,
        &[
            local("lint_ok", s.port(), &[("tls_settings", "none")]),
            local("lint_bad", closed_port("127.0.0.1"), &[]),
        ],
    ));
    for path in ["/probe", "/metrics"] {
        let body = e.get(path).body;
        promtool(&["check", "metrics"], Some(&body));
    }
}

/// Runs promtool in the repository root, with `stdin` as its standard input if given, and fails
/// the test, with its output, unless it succeeds.
fn promtool(args: &[&str], stdin: Option<&str>) {
    let program = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let run = || -> std::io::Result<Output> {
        let mut child = Command::new(&program)
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().expect("promtool's standard input");
        input.write_all(stdin.unwrap_or_default().as_bytes())?;
        drop(input);
        child.wait_with_output()
    };
    let output = run().unwrap_or_else(|e| {
        panic!(
            "cannot run `{program}` ({e}). These tests need promtool: install the Debian package \
             `prometheus` (scripts/install-deps does) or point PROMTOOL at a promtool binary."
        )
    });
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\n{}\n{}\ninput:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        stdin.unwrap_or("(none)")
    );
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
    let mut exprs = Vec::new();
    query_expressions(&dashboard, &mut exprs);
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
        // So is a probe its own connection caps kept from running.
        (
            &[
                "alertname=MailflowProbesThrottled",
                "connector=fabrikam-partner",
                "connector_type=partner",
                "severity=warning",
            ],
            "mail-ops",
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
    let names: BTreeSet<String> = read(RULES)
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- alert:"))
        .map(|name| name.trim().to_string())
        .collect();
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

/// Every query expression (`expr`) anywhere in a dashboard's JSON.
fn query_expressions<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value.as_str()) {
                    ("expr", Some(expr)) => out.push(expr),
                    _ => query_expressions(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| query_expressions(item, out)),
        _ => {}
    }
}
