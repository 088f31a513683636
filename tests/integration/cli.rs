//! The subcommands: `check-config` and `probe CONNECTOR`.

use crate::common::exporter::{config, local, run_cli, write_config};
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_config(
        dir.path(),
        "ok.yml",
        &config(false, &[local("c1", 2525, &[])]),
    );
    let out = run_cli(&["check-config", "--config.file", &f.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
}

#[test]
fn check_config_names_file_line_and_key_of_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = config(
        false,
        &[local("c1", 2525, &[("smart_hostz", "[127.0.0.1]")])],
    );
    let line = yaml
        .lines()
        .position(|l| l.contains("smart_hostz"))
        .expect("line")
        + 1;
    let f = write_config(dir.path(), "bad.yml", &yaml);
    let out = run_cli(&["check-config", "--config.file", &f.display().to_string()]);
    let text = output(&out);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_config(
        dir.path(),
        "m.yml",
        &config(
            false,
            &[local("cli_ok", s.port(), &[("tls_settings", "none")])],
        ),
    );
    let out = run_cli(&["probe", "cli_ok", "--config.file", &f.display().to_string()]);
    let text = output(&out);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_config(
        dir.path(),
        "m.yml",
        &config(false, &[local("cli_bad", refused, &[])]),
    );
    let out = run_cli(&[
        "probe",
        "cli_bad",
        "--config.file",
        &f.display().to_string(),
    ]);
    let text = output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("4.4.316") && text.contains("refused"),
        "{text}"
    );
}

#[test]
fn probe_subcommand_rejects_an_unknown_connector() {
    let s = Server::dialogue(Dialogue::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_config(
        dir.path(),
        "m.yml",
        &config(false, &[local("cli_known", s.port(), &[])]),
    );
    let out = run_cli(&["probe", "nope", "--config.file", &f.display().to_string()]);
    assert_ne!(out.status.code(), Some(0), "{}", output(&out));
    assert_eq!(s.connections(), 0);
}
