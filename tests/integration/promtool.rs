//! `promtool`, Prometheus' own checker, on what the project ships and serves: the alerting rules,
//! their unit tests, the Prometheus configuration, and the exporter's `/probe` and `/metrics`
//! text.
//!
//! `promtool` comes from the Debian package `prometheus` (`scripts/install-deps`); set `PROMTOOL`
//! to use another binary. A missing `promtool` fails these tests, it never skips them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::exporter::{Exporter, config, local};
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

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
