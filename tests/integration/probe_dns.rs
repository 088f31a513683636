//! DNS against a real dnsmasq (see `system::dnsmasq` for what it really answers).

use std::time::{Duration, Instant};

use crate::common::exporter::{connector, probe_all};
use crate::common::metrics::Metrics;
use crate::common::smtp::{Dialogue, Server};
use crate::system::dnsmasq::{self, dns};

fn smart_host(name: &str, host: &str, port: u16) -> String {
    let hosts = format!("[{host}]");
    let port = port.to_string();
    connector(
        name,
        &[
            ("smart_hosts", &hosts),
            ("port", &port),
            ("tls_settings", "none"),
        ],
    )
}

fn mx(name: &str, domain: &str, port: u16) -> String {
    let domains = format!("[{domain}]");
    let port = port.to_string();
    connector(
        name,
        &[
            ("use_mx_record", "true"),
            ("recipient_domains", &domains),
            ("port", &port),
            ("tls_settings", "none"),
        ],
    )
}

/// Probe one connector with the test nameserver and assert its outcome.
#[track_caller]
fn check(entry: String, name: &str, code: &str, phase: &str, reason: &str) -> Metrics {
    let (_e, m) = probe_all(
        Some(&dns().nameserver()),
        &[(entry, name, (code, phase, reason))],
    );
    assert!(dns().running(), "dnsmasq died");
    m
}

#[test]
fn resolvable_smart_host_is_ok() {
    let s = Server::dialogue(Dialogue::default());
    let m = check(
        smart_host("dnsok", dnsmasq::GOOD, s.port()),
        "dnsok",
        "ok",
        "",
        "",
    );
    assert_eq!(
        m.value(
            "mailflow_target_status",
            &[
                ("connector", "dnsok"),
                ("host", dnsmasq::GOOD),
                ("address", "127.0.0.1"),
                ("code", "ok")
            ]
        ),
        Some(1.0),
        "{}",
        m.lines_of("mailflow_target_status")
    );
    assert!(
        m.value(
            "mailflow_probe_phase_duration_seconds",
            &[("connector", "dnsok"), ("phase", "dns")]
        )
        .is_some()
    );
}

#[test]
fn dns_error_responses_are_4_4_312() {
    // A server behind the name that does not exist, to see that it is never connected to.
    let s = Server::dialogue(Dialogue::default());
    let row = |name, entry: fn(&str, &str, u16) -> String, host, port, reason| {
        (entry(name, host, port), name, ("4.4.312", "dns", reason))
    };
    probe_all(
        Some(&dns().nameserver()),
        &[
            row("nx", smart_host, dnsmasq::NXDOMAIN, s.port(), "nxdomain"),
            row("sf", smart_host, dnsmasq::SERVFAIL, 25, "servfail"),
            row("ref", smart_host, dnsmasq::REFUSED, 25, "refused"),
            // A name that exists without A/AAAA records; a domain without MX and addresses.
            row("norec", smart_host, dnsmasq::NO_RECORDS, 25, "no_records"),
            row("mxnorec", mx, dnsmasq::NO_RECORDS, 25, "no_records"),
            row("nullmx", mx, dnsmasq::NULL_MX, 25, "null_mx"),
        ],
    );
    assert!(dns().running(), "dnsmasq died");
    assert_eq!(s.connections(), 0);
}

#[test]
fn silent_nameserver_is_4_4_312_timeout() {
    let silent = dnsmasq::silent().to_string();
    let mut entry = smart_host("dnsto", dnsmasq::GOOD, 25);
    entry.push_str(&format!(
        "    dns:\n      nameservers: [\"{silent}\"]\n      timeout: 1s\n"
    ));
    entry.push_str("    timeout: 3s\n");
    let start = Instant::now();
    check(entry, "dnsto", "4.4.312", "dns", "timeout");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn mx_domain_is_ok_via_its_exchange() {
    let s = Server::dialogue(Dialogue::default());
    let m = check(
        mx("mxok", dnsmasq::MX_DOMAIN, s.port()),
        "mxok",
        "ok",
        "",
        "",
    );
    assert_eq!(
        m.value(
            "mailflow_target_success",
            &[
                ("connector", "mxok"),
                ("host", dnsmasq::MX_DOMAIN_HOST),
                ("address", "127.0.0.1")
            ]
        ),
        Some(1.0),
        "{}",
        m.lines_of("mailflow_target")
    );
}

#[test]
fn domain_without_mx_falls_back_to_its_address() {
    // RFC 5321 5.1: no MX, but an A record: the domain itself is the implicit MX.
    let s = Server::dialogue(Dialogue::default());
    check(
        mx("implicitmx", dnsmasq::GOOD, s.port()),
        "implicitmx",
        "ok",
        "",
        "",
    );
    assert_eq!(s.connections(), 1);
}

#[test]
fn mx_preference_decides_the_connector_code() {
    // MX 10 mxa (127.0.0.3): nothing listens -> refused; MX 20 mxb (127.0.0.4): 421 greeting.
    // dnsmasq lists them in either order; the lower preference must win.
    let s = Server::greeting_421_on("127.0.0.4");
    let m = check(
        mx("mxpref", dnsmasq::MX_PREF, s.port()),
        "mxpref",
        "4.4.316",
        "connect",
        "refused",
    );
    assert_eq!(
        m.target_code("mxpref", "127.0.0.4"),
        "4.4.317",
        "{}",
        m.lines_of("mailflow_target")
    );
    assert_eq!(m.target_code("mxpref", "127.0.0.3"), "4.4.316");
}

#[test]
fn every_address_of_a_name_is_probed() {
    // dual.mf.test has A 127.0.0.1 (a healthy server) and AAAA ::1 (nothing listens there).
    let s = Server::dialogue(Dialogue::default());
    let m = check(
        smart_host("dual", dnsmasq::DUAL, s.port()),
        "dual",
        "ok",
        "",
        "",
    );
    assert_eq!(
        m.target_code("dual", "127.0.0.1"),
        "ok",
        "{}",
        m.lines_of("mailflow_target")
    );
    assert_eq!(
        m.target_code("dual", "::1"),
        "4.4.316",
        "{}",
        m.lines_of("mailflow_target")
    );
    assert_eq!(
        m.all(
            "mailflow_target_success",
            &[("connector", "dual"), ("host", dnsmasq::DUAL)]
        )
        .len(),
        2,
        "{}",
        m.lines_of("mailflow_target_success")
    );
}
