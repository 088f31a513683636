//! The subcommands: `check-config` and `probe CONNECTOR`.

use std::process::Output;

use crate::common::exporter::{combined_output, config, local, run_cli, write_config};
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

/// Write `yaml` as `file` in a temporary directory and run the subcommand `args` on it
/// (`--config.file` appended); returns the exit and the combined output.
fn run_on(file: &str, yaml: &str, args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_config(dir.path(), file, yaml).display().to_string();
    let mut args = args.to_vec();
    args.extend(["--config.file", &f]);
    let out = run_cli(&args);
    let text = combined_output(&out);
    (out, text)
}

#[test]
fn check_config_accepts_a_valid_file() {
    let (out, text) = run_on(
        "ok.yml",
        &config(None, &[local("c1", 2525, &[])]),
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn check_config_names_file_line_and_key_of_an_unknown_key() {
    let yaml = config(
        None,
        &[local("c1", 2525, &[("smart_hostz", "[127.0.0.1]")])],
    );
    let line = yaml
        .lines()
        .position(|l| l.contains("smart_hostz"))
        .expect("line")
        + 1;
    let (out, text) = run_on("bad.yml", &yaml, &["check-config"]);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("bad.yml"), "names the file: {text}");
    assert!(text.contains("smart_hostz"), "names the key: {text}");
    assert!(
        text.contains(&line.to_string()),
        "names line {line}: {text}"
    );
}

#[test]
fn probe_subcommand_exits_0_on_ok() {
    let s = Server::dialogue(Dialogue::default());
    let (out, text) = run_on(
        "m.yml",
        &config(
            None,
            &[local("cli_ok", s.port(), &[("tls_settings", "none")])],
        ),
        &["probe", "cli_ok"],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok"), "{text}");
    assert!(
        text.contains("greeting") && text.contains("ehlo"),
        "lists the phases: {text}"
    );
    assert_eq!(s.connections(), 1);
}

#[test]
fn probe_subcommand_exits_1_and_explains_a_failure() {
    let refused = closed_port("127.0.0.1");
    let (out, text) = run_on(
        "m.yml",
        &config(None, &[local("cli_bad", refused, &[])]),
        &["probe", "cli_bad"],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("4.4.316") && text.contains("refused"),
        "{text}"
    );
}

#[test]
fn probe_subcommand_rejects_an_unknown_connector() {
    let s = Server::dialogue(Dialogue::default());
    let (out, text) = run_on(
        "m.yml",
        &config(None, &[local("cli_known", s.port(), &[])]),
        &["probe", "nope"],
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert_eq!(s.connections(), 0);
}
