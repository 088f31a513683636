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
