//! The fire drill, as a newcomer runs it: `mailflow_exporter drill`, then one scrape of `/probe`
//! must show every code of the code table, each on the connector the drill announced for it.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::common::exporter::Exporter;
use crate::common::{http, metrics};

#[test]
fn the_drill_shows_every_code() {
    let mut drill = Exporter::start_command(&["drill"]);
    let stdout = drill.take_stdout();

    // The announced connectors and the code each should show.
    let mut expected = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("Scrape") {
            break;
        }
        if let Some((name, code)) = line.trim().split_once(" expect ") {
            expected.push((name.trim().to_owned(), code.trim().to_owned()));
        }
    }
    let address = drill.addr;

    let started = Instant::now();
    let response = http::get(
        address,
        "/probe",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "10")],
    )
    .expect("scrape /probe");
    assert_eq!(response.status, 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    let metrics = metrics::Metrics::parse(&response.body);

    for code in [
        "ok", "4.4.312", "4.4.315", "4.4.316", "4.4.317", "4.4.318", "4.7.320", "other",
    ] {
        assert!(
            expected.iter().any(|(_, c)| c == code),
            "the drill announces no connector for {code}: {expected:?}"
        );
    }
    for (connector, code) in &expected {
        assert_eq!(
            &metrics.code(connector),
            code,
            "{}",
            metrics.summary(connector)
        );
    }
    // The degraded connector delivers while its first address is dead.
    assert_eq!(
        metrics.target_code("drill-degraded", "127.0.0.2"),
        "4.4.316"
    );
    // The time bomb delivers with a certificate that fails validation.
    assert_eq!(
        metrics.value(
            "mailflow_certificate_valid",
            &[("connector", "drill-cert-time-bomb")]
        ),
        Some(0.0)
    );
}
