//! The HTTP surface: endpoints, unknown connectors, `/probe` for all, the scrape-timeout header,
//! shared in-flight probes, counters and queue gauges. (`promtool check metrics` on the output:
//! `tests/integration/promtool.rs`.)

use std::time::{Duration, Instant};

use crate::common::exporter::{Exporter, config, local};
use crate::common::metrics::Metrics;
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

/// An exporter with two connectors: `ok` to a healthy server (returned too), `refused` to a
/// closed port.
fn ok_and_refused(ok: &str, refused: &str) -> (Server, Exporter) {
    let s = Server::dialogue(Dialogue::default());
    let e = Exporter::start(&config(
        None,
        &[
            local(ok, s.port(), &[("tls_settings", "none")]),
            local(refused, closed_port("127.0.0.1"), &[]),
        ],
    ));
    (s, e)
}

#[test]
fn endpoints_answer_200() {
    let s = Server::dialogue(Dialogue::default());
    let e = Exporter::start(&config(None, &[local("web", s.port(), &[])]));
    for path in ["/metrics", "/-/healthy", "/-/ready", "/"] {
        let r = e.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    }
    let root = e.get("/");
    assert!(
        root.body.contains("web"),
        "the index page lists the connector: {}",
        root.body
    );
    assert_eq!(s.connections(), 0, "none of these probes");
    let m = Metrics::parse(&e.get("/metrics").body);
    assert!(
        m.value("mailflow_exporter_build_info", &[]).is_some()
            || !m.all("mailflow_exporter_build_info", &[]).is_empty(),
        "{}",
        m.text
    );
}

#[test]
fn unknown_connector_is_400_without_traffic() {
    let s = Server::dialogue(Dialogue::default());
    let e = Exporter::start(&config(None, &[local("known", s.port(), &[])]));
    let r = e.get("/probe?connector=unknown-one");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("unknown-one"),
        "the message names the connector: {}",
        r.body
    );
    let r = e.get("/probe?connector=");
    assert_eq!(r.status, 400, "empty connector name: {}", r.body);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.connections(),
        0,
        "no probe traffic for an unknown connector"
    );
}

#[test]
fn probe_without_connector_probes_all() {
    let (s, e) = ok_and_refused("all_ok", "all_refused");
    let m = e.probe_path("/probe");
    e.assert_outcome(&m, "all_ok", "ok", "", "");
    e.assert_outcome(&m, "all_refused", "4.4.316", "connect", "refused");
    assert_eq!(s.connections(), 1);
}

#[test]
fn scrape_timeout_header_caps_a_hanging_probe() {
    let s = Server::start(|c| c.hang(Duration::from_secs(20)));
    let e = Exporter::start(&config(
        None,
        &[local("slow", s.port(), &[("timeout", "30s")])],
    ));
    let start = Instant::now();
    let r = e.get_with(
        "/probe?connector=slow",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "2")],
    );
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        took < Duration::from_millis(2500),
        "a 2 s scrape answered after {took:?}"
    );
    assert!(
        took > Duration::from_millis(1000),
        "it should have waited for the server: {took:?}"
    );
    e.assert_outcome(
        &Metrics::parse(&r.body),
        "slow",
        "4.4.318",
        "greeting",
        "timeout",
    );
}

#[test]
fn concurrent_scrapes_share_one_probe() {
    // The two scrapes leave together, and the greeting comes 2 s after the connection, so they
    // overlap even on a busy machine.
    let s = Server::start(|c| {
        std::thread::sleep(Duration::from_secs(2));
        c.serve(&Dialogue::default());
    });
    let e = std::sync::Arc::new(Exporter::start(&config(
        None,
        &[local("shared", s.port(), &[("tls_settings", "none")])],
    )));
    let together = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let e = std::sync::Arc::clone(&e);
            let together = std::sync::Arc::clone(&together);
            std::thread::spawn(move || {
                together.wait();
                e.probe("shared")
            })
        })
        .collect();
    for h in handles {
        let m = h.join().expect("scrape thread");
        e.assert_outcome(&m, "shared", "ok", "", "");
    }
    assert_eq!(
        s.connections(),
        1,
        "two concurrent scrapes must share one probe"
    );
}

#[test]
fn counters_and_queue_gauges_follow_the_streak() {
    let refused = closed_port("127.0.0.1");
    let e = Exporter::start(&config(
        None,
        &[local("streak", refused, &[("queue_expiry", "2h")])],
    ));
    let first = e.probe("streak");
    std::thread::sleep(Duration::from_millis(1100));
    let second = e.probe("streak");
    let c = [("connector", "streak")];
    assert_eq!(
        first.value("mailflow_probes_total", &c),
        Some(1.0),
        "{}",
        first.lines_of("mailflow_probes_total")
    );
    assert_eq!(second.value("mailflow_probes_total", &c), Some(2.0));
    assert_eq!(
        second.value(
            "mailflow_probe_failures_total",
            &[("connector", "streak"), ("code", "4.4.316")]
        ),
        Some(2.0),
        "{}",
        second.lines_of("mailflow_probe_failures_total")
    );
    assert_eq!(
        second.value("mailflow_queue_expiry_seconds", &c),
        Some(7200.0)
    );
    let age1 = first.expect("mailflow_queue_age_seconds", &c);
    let age2 = second.expect("mailflow_queue_age_seconds", &c);
    assert!(
        age2 >= age1 + 1.0,
        "the oldest queued message ages: {age1} then {age2}"
    );
    assert!(age2 < 10.0, "{age2}");
    let last_ok = second
        .value("mailflow_last_success_timestamp_seconds", &c)
        .unwrap_or(0.0);
    assert_eq!(last_ok, 0.0, "never succeeded");

    // A delivering connector: queue age 0, last success now, the default 24h window.
    let s = Server::dialogue(Dialogue::default());
    let e2 = Exporter::start(&config(
        None,
        &[local("healthy", s.port(), &[("tls_settings", "none")])],
    ));
    let m = e2.probe("healthy");
    let c = [("connector", "healthy")];
    assert_eq!(m.value("mailflow_queue_age_seconds", &c), Some(0.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let last = m.expect("mailflow_last_success_timestamp_seconds", &c);
    assert!(
        (now - last).abs() < 10.0,
        "last success {last} vs now {now}"
    );
    assert_eq!(
        m.value("mailflow_queue_expiry_seconds", &c),
        Some(86400.0),
        "the default 24h window"
    );
    let failures: f64 = m
        .all("mailflow_probe_failures_total", &c)
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(failures, 0.0);
}

#[test]
fn every_listen_address_serves() {
    // The launcher listens on 127.0.0.1:0; a second --web.listen-address adds another listener.
    let smtp = Server::dialogue(Dialogue::default());
    let exporter = Exporter::start_with_args(
        &config(None, &[local("a", smtp.port(), &[])]),
        &["--web.listen-address", "127.0.0.1:0"],
    );
    let second = crate::common::poll(Duration::from_secs(10), || {
        exporter
            .logs()
            .lines()
            .filter(|l| l.contains("message=listening"))
            .filter_map(|l| l.split("address=").nth(1)?.split(' ').next()?.parse().ok())
            .find(|a: &std::net::SocketAddr| *a != exporter.addr)
            .ok_or(())
    })
    .expect("a second listening line");
    for address in [exporter.addr, second] {
        let answer = crate::common::http::get(address, "/-/ready", &[]).expect("GET");
        assert_eq!(answer.status, 200, "on {address}");
    }
}
