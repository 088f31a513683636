//! Records the git revision the binary is built from, for `mailflow_exporter_build_info`.
//! `MAILFLOW_REVISION` in the environment wins (for builds outside a git checkout).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MAILFLOW_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("MAILFLOW_REVISION").ok().or_else(|| {
        let output = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=MAILFLOW_REVISION={}",
        revision.unwrap_or_else(|| "unknown".to_owned())
    );
}
