//! `import-connectors` as an administrator runs it: every fixture shaped like real
//! `Get-OutboundConnector | ConvertTo-Json` output becomes a configuration that `check-config`
//! accepts; broken input fails with a message naming the file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exporter(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailflow_exporter"))
        .args(args)
        .output()
        .expect("run mailflow_exporter")
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_imported_configuration_passes_check_config() {
    let dir = tempfile::tempdir().expect("dir");
    let mut checked = 0;
    for fixture in fixtures()
        .into_iter()
        .filter(|f| !f.ends_with("garbage.json"))
    {
        let output = dir.path().join("imported.yml");
        let imported = exporter(&[
            "import-connectors".as_ref(),
            fixture.as_os_str(),
            "--output".as_ref(),
            output.as_os_str(),
        ]);
        assert!(
            imported.status.success(),
            "{}: {}",
            fixture.display(),
            String::from_utf8_lossy(&imported.stderr)
        );
        let checked_config = exporter(&[
            "check-config".as_ref(),
            "--config.file".as_ref(),
            output.as_os_str(),
        ]);
        assert!(
            checked_config.status.success(),
            "{}: {}\n{}",
            fixture.display(),
            String::from_utf8_lossy(&checked_config.stderr),
            std::fs::read_to_string(&output).unwrap_or_default()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures");
}

#[test]
fn notes_go_to_standard_error_and_the_yaml_to_standard_output() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/array.json");
    let output = exporter(&["import-connectors".as_ref(), fixture.as_os_str()]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("connectors:"), "{stdout}");
    assert!(stderr.lines().all(|l| l.starts_with("note: ")), "{stderr}");
    assert!(!stderr.is_empty());
}

#[test]
fn broken_json_fails_with_the_file_named() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/garbage.json");
    let output = exporter(&["import-connectors".as_ref(), fixture.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&fixture.display().to_string()),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
