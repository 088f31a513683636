//! TCP connect: refused, a real timeout (full accept queue), and connectors with several smart
//! hosts. (Unreachable addresses need a network namespace: `tests/integration/probe_unreachable.rs`.)

use std::time::{Duration, Instant};

use crate::common::exporter::{Exporter, config, connector, local, probe_one};
use crate::common::net::{FullBacklog, closed_port};
use crate::common::smtp::{Dialogue, Server};

#[test]
fn closed_port_is_4_4_316_refused() {
    let port = closed_port("127.0.0.1");
    let (_e, m) = probe_one(
        local("refused", port, &[]),
        "refused",
        "4.4.316",
        "connect",
        "refused",
    );
    assert_eq!(
        m.failure("refused").map(|f| f.reply),
        Some(String::new()),
        "no reply without a server"
    );
    assert_eq!(m.target_code("refused", "127.0.0.1"), "4.4.316");
}

#[test]
fn full_accept_queue_is_4_4_315_timeout() {
    let full = FullBacklog::new();
    let start = Instant::now();
    let e = Exporter::start(&config(
        None,
        &[local("slowsyn", full.addr.port(), &[("timeout", "2s")])],
    ));
    e.expect("slowsyn", "4.4.315", "connect", "timeout");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "the 2 s probe took {took:?}"
    );
}

#[test]
fn two_smart_hosts_one_dead_is_ok_with_the_dead_one_visible() {
    let live = Server::start_on("127.0.0.1", 0, |c| {
        c.serve(&Dialogue::default());
    })
    .expect("bind");
    // Nothing listens on 127.0.0.2 at that port: refused.
    let port = live.port().to_string();
    let yaml = config(
        None,
        &[connector(
            "pair",
            &[
                ("smart_hosts", "[127.0.0.2, 127.0.0.1]"),
                ("port", &port),
                ("tls_settings", "none"),
            ],
        )],
    );
    let e = Exporter::start(&yaml);
    let m = e.expect("pair", "ok", "", "");
    assert_eq!(
        m.target_code("pair", "127.0.0.2"),
        "4.4.316",
        "{}",
        m.lines_of("mailflow_target")
    );
    assert_eq!(m.target_code("pair", "127.0.0.1"), "ok");
    assert_eq!(
        m.value(
            "mailflow_target_success",
            &[("connector", "pair"), ("address", "127.0.0.2")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "mailflow_target_success",
            &[("connector", "pair"), ("address", "127.0.0.1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "mailflow_target_status",
            &[
                ("connector", "pair"),
                ("address", "127.0.0.2"),
                ("code", "4.4.316"),
                ("host", "127.0.0.2")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn all_hosts_failing_take_the_code_of_the_first() {
    // 127.0.0.3:P answers 421, nothing listens on 127.0.0.2:P.
    let s421 = Server::greeting_421_on("127.0.0.3");
    let port = s421.port().to_string();
    let yaml = config(
        None,
        &[
            connector(
                "refusedfirst",
                &[("smart_hosts", "[127.0.0.2, 127.0.0.3]"), ("port", &port)],
            ),
            connector(
                "rejectfirst",
                &[("smart_hosts", "[127.0.0.3, 127.0.0.2]"), ("port", &port)],
            ),
        ],
    );
    let e = Exporter::start(&yaml);
    let m = e.expect("refusedfirst", "4.4.316", "connect", "refused");
    assert_eq!(m.target_code("refusedfirst", "127.0.0.3"), "4.4.317");
    let m = e.expect("rejectfirst", "4.4.317", "greeting", "reply_4xx");
    assert_eq!(m.target_code("rejectfirst", "127.0.0.2"), "4.4.316");
}

#[test]
fn a_probe_without_a_connection_slot_fails_its_scrape_and_no_connector() {
    // A slow server: each connection is greeted after 1.5 s, then served normally.
    let slow = Server::start(|c| {
        std::thread::sleep(Duration::from_millis(1500));
        c.serve(&Dialogue::default());
    });
    let port = slow.port();
    let connectors: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| local(name, port, &[("tls_settings", "none"), ("timeout", "10s")]))
        .collect();
    // One connection at a time to the server, for all three connectors.
    let e = Exporter::start_with_args(
        &config(None, &connectors),
        &["--probe.max-connections-per-address", "1"],
    );
    // With time enough, the three take their turns and deliver.
    let before = e.probe_path("/probe");
    for name in ["a", "b", "c"] {
        assert_eq!(before.code(name), "ok", "{}", before.summary(name));
    }
    let short = [("X-Prometheus-Scrape-Timeout-Seconds", "1")];
    std::thread::scope(|scope| {
        // The probe of `a` holds the one connection for 1.5 s...
        let first = scope.spawn(|| e.probe("a"));
        assert!(
            crate::common::eventually(Duration::from_secs(5), || slow.connections() == 4),
            "the probe of a connects"
        );
        // ...so `b` and `c`, with half a second to go, get no slot: their scrapes fail.
        for name in ["b", "c"] {
            let r = e.get_with(&format!("/probe?connector={name}"), &short);
            assert_eq!(r.status, 503, "{name}: {}", r.body);
            assert!(
                r.body
                    .contains(&format!("connector \"{name}\" was not probed"))
                    && r.body.contains("--probe.max-connections-per-address"),
                "{}",
                r.body
            );
        }
        let first = first.join().expect("the scrape of a");
        assert_eq!(first.code("a"), "ok", "{}", first.summary("a"));
    });
    assert_eq!(
        slow.connections(),
        4,
        "no connection for the probes that did not run"
    );
    // The exporter counts what it could not run...
    let own = e.metrics();
    for (name, count) in [("a", 0.0), ("b", 1.0), ("c", 1.0)] {
        assert_eq!(
            own.value(
                "mailflow_exporter_probe_slot_timeouts_total",
                &[("connector", name)]
            ),
            Some(count),
            "{}",
            own.lines_of("mailflow_exporter_probe_slot_timeouts_total")
        );
    }
    // ...and no connector's code, counters or streak moved: `b` and `c` have one probe each,
    // and none failed.
    let after = e.probe_path("/probe");
    for (name, probes) in [("a", 3.0), ("b", 2.0), ("c", 2.0)] {
        assert_eq!(after.code(name), "ok", "{}", after.summary(name));
        let connector = [("connector", name)];
        assert_eq!(
            after.value("mailflow_probes_total", &connector),
            Some(probes)
        );
        for failures in after.all("mailflow_probe_failures_total", &connector) {
            assert_eq!(failures.value, 0.0, "{name}: {failures:?}");
        }
        assert_eq!(
            after.value("mailflow_queue_age_seconds", &connector),
            Some(0.0)
        );
    }
}
