//! The web surface against the tools operators use: `promtool check metrics` on `/metrics`,
//! socket activation by `systemd-socket-activate` (Debian package systemd), and a flood of idle
//! connections under systemd's default open-files limit (`prlimit` from util-linux) while probes
//! run. Everything on loopback; every loop is bounded.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::exporter::{BIN, Exporter, HELO, combined_output};
use crate::common::http;
use crate::common::net::free_ports;
use crate::common::smtp::{Dialogue, Server};

/// Idle connections in the flood (the case of issue 15).
const FLOOD: usize = 3000;
/// Connectors probed while the flood goes on.
const PROBED: usize = 100;

fn config(connectors: usize, port: u16) -> String {
    let mut yaml = format!("defaults:\n  helo_name: {HELO}\n  timeout: 30s\nconnectors:\n");
    for i in 0..connectors {
        yaml.push_str(&format!(
            "  - name: c{i}\n    smart_hosts: [127.0.0.1]\n    port: {port}\n"
        ));
    }
    yaml
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn promtool_accepts_the_metrics_page() {
    let smtp = Server::dialogue(Dialogue::default());
    let exporter = Exporter::start(&config(2, smtp.port()));
    assert_eq!(exporter.get("/probe").status, 200);
    assert_eq!(exporter.get("/nowhere").status, 404);
    let metrics = exporter.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\nprocess_open_fds "),
        "{}",
        metrics.body
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-deps)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.body.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    let said = combined_output(&out);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool:\n{said}"
    );
}

#[test]
fn systemd_socket_activation_serves_every_passed_socket() {
    let dir = tempfile::tempdir().expect("dir");
    let config_file = dir.path().join("mailflow.yml");
    std::fs::write(&config_file, config(1, 9)).expect("write");
    let ports = free_ports(2);
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{}", ports[0])])
        .args(["-l", &format!("127.0.0.1:{}", ports[1])])
        .arg(BIN)
        .args(["--web.systemd-socket", "--config.file"])
        .arg(&config_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd; scripts/install-deps)");
    for port in &ports {
        let address = SocketAddr::from(([127, 0, 0, 1], *port));
        // The sockets listen from the start; the first connection starts the exporter.
        let ready = crate::common::poll(Duration::from_secs(30), || {
            http::get(address, "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
                .ok_or(())
        });
        assert!(ready.is_ok(), "no answer on socket-activated port {port}");
        let sd = http::get(address, "/sd", &[]).expect("sd");
        assert!(
            sd.body
                .contains(&format!("\"targets\":[\"127.0.0.1:{port}\"]")),
            "{}",
            sd.body
        );
    }
    let _ = child.kill();
    let _ = child.wait();

    // Without sockets from systemd the flag is a clear error.
    let out = Command::new(BIN)
        .args(["--web.systemd-socket", "--config.file"])
        .arg(&config_file)
        .env_remove("LISTEN_FDS")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        combined_output(&out).contains("--web.systemd-socket: no sockets were passed"),
        "{}",
        combined_output(&out)
    );
}

#[test]
fn an_idle_flood_under_1024_open_files_fails_no_probe_and_leaves_no_memory_behind() {
    // Our side of the flood needs more than 3,000 descriptors.
    rlimit::increase_nofile_limit(FLOOD as u64 + 1024).expect("raise the test's own limit");
    // Each connector's server greets a second late, so the probes are in flight during the flood.
    let smtp = Server::start(|c| {
        std::thread::sleep(Duration::from_secs(1));
        c.serve(&Dialogue::default());
    });
    let prefix: Vec<String> = ["prlimit", "--nofile=1024:1024", "--"]
        .map(String::from)
        .to_vec();
    let exporter = Exporter::start_under_with_args(
        &prefix,
        &config(PROBED, smtp.port()),
        &["--probe.max-connections-per-address", "512"],
    );
    let pid = exporter.pid();
    assert!(
        exporter
            .logs()
            .contains("max_connections=128 max_requests=128"),
        "the caps are fitted to 1024 descriptors beside 512 probe connections:\n{}",
        exporter.logs()
    );
    for _ in 0..3 {
        assert_eq!(exporter.get("/metrics").status, 200);
    }
    let before = rss_mib(pid);
    let mut figures = vec![format!("before: {before:.1} MiB, {} fds", open_fds(pid))];
    let mut worst_during = 0.0f64;
    for round in 1..=3 {
        let probing = std::thread::scope(|scope| {
            let probing = scope.spawn(|| {
                http::get(
                    exporter.addr,
                    "/probe",
                    &[("X-Prometheus-Scrape-Timeout-Seconds", "30")],
                )
            });
            // The probes have started (their server has connections) when the flood comes.
            let started = crate::common::poll(Duration::from_secs(20), || {
                (smtp.connections() >= round * PROBED / 2)
                    .then_some(())
                    .ok_or(())
            });
            assert!(started.is_ok(), "the probes did not start");
            let flood: Vec<TcpStream> = (0..FLOOD)
                .filter_map(|_| TcpStream::connect(exporter.addr).ok())
                .collect();
            assert_eq!(
                flood.len(),
                FLOOD,
                "every flood connection is accepted or answered"
            );
            std::thread::sleep(Duration::from_millis(500));
            let during = rss_mib(pid);
            let fds = open_fds(pid);
            worst_during = worst_during.max(during);
            figures.push(format!("flood {round} during: {during:.1} MiB, {fds} fds"));
            assert!(fds <= 1024, "{fds} descriptors open");
            let probed = probing.join().expect("probe thread");
            drop(flood);
            probed
        });
        let probed = probing.expect("the /probe scrape went through");
        assert_eq!(probed.status, 200, "{}", probed.body);
        let failing: Vec<&str> = probed
            .body
            .lines()
            .filter(|l| l.starts_with("mailflow_probe_success{") && l.ends_with(" 0"))
            .collect();
        assert!(
            failing.is_empty(),
            "probes failed during the flood: {failing:?}"
        );
        assert_eq!(
            probed
                .body
                .lines()
                .filter(|l| l.starts_with("mailflow_probe_success{") && l.ends_with(" 1"))
                .count(),
            PROBED
        );
        // Once the flood's connections are closed, the exporter serves again.
        let metrics = crate::common::poll(Duration::from_secs(30), || {
            http::get(exporter.addr, "/metrics", &[])
                .ok()
                .filter(|r| r.status == 200)
                .ok_or(())
        })
        .expect("the exporter serves again after the flood");
        assert!(
            metrics
                .body
                .contains("\nmailflow_exporter_http_connections_rejected_total "),
            "{}",
            metrics.body
        );
        let after = rss_mib(pid);
        figures.push(format!(
            "flood {round} after: {after:.1} MiB, {} fds",
            open_fds(pid)
        ));
    }
    let after = rss_mib(pid);
    eprintln!("RSS under a {FLOOD}-connection flood with 1024 open files: {figures:?}");
    assert!(
        worst_during - before < 24.0,
        "memory during the flood grew by {:.1} MiB: {figures:?}",
        worst_during - before
    );
    assert!(
        after - before < 8.0,
        "memory after three floods stayed {:.1} MiB above: {figures:?}",
        after - before
    );
    assert!(
        !exporter.logs().contains("accept failed"),
        "the exporter ran out of descriptors:\n{}",
        exporter.logs()
    );
}
