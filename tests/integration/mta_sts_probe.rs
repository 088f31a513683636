//! The exporter under MTA-STS, scraped through its metrics: connectors whose recipient domains
//! live in the world of `common::mta_sts_world` (dnsmasq for the records and the MX hosts, nginx
//! for the policies), delivering to the real Postfix of `common::postfix` (listener `sts`
//! presents a certificate for every MX host of the world, `notls` offers no STARTTLS,
//! `wrongname` names only wrong.example) or to scripted servers that count connections.
//!
//! A host to which DANE applies, under a policy that refuses it (DANE wins, RFC 8461 §2), is in
//! `dane_mta_sts.rs`, which needs a DNSSEC world beside this one.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::exporter::{Exporter, HELO, combined_output, run_cli};
use crate::common::http;
use crate::common::metrics::Metrics;
use crate::common::smtp::Server;
use crate::system::mta_sts_world::{self as sts, world};
use crate::system::postfix::postfix;

/// A configuration whose connectors resolve names through `nameserver` (port 53), with time
/// enough for a policy fetch (half the probe's budget).
fn sts_config(nameserver: SocketAddr, connectors: &[String]) -> String {
    let mut yaml = format!(
        "defaults:\n  timeout: 10s\n  helo_name: {HELO}\n  dns:\n    nameservers: [\"{nameserver}\"]\n    timeout: 2s\nconnectors:\n"
    );
    for connector in connectors {
        yaml.push_str(connector);
    }
    yaml
}

/// An MX connector for `domain` delivering to port `port` of its MX hosts (127.0.0.1), trusting
/// the world's CA (policy hosts) and the tests' CA (Postfix), with `extra` fields.
fn mx_connector(name: &str, domain: &str, port: u16, extra: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "  - name: {name}\n    use_mx_record: true\n    recipient_domains: [{domain}]\n    port: {port}\n    ca_file: {}\n",
        world().trust_bundle.display()
    );
    for (key, value) in extra {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    yaml
}

/// An MX connector for `domain` delivering to Postfix listener `listener`.
fn via(name: &str, domain: &str, listener: &str, extra: &[(&str, &str)]) -> String {
    mx_connector(name, domain, postfix().port(listener), extra)
}

/// A server that greets, and counts the connections it gets (a probe that contacts it fails
/// later on, which no test here expects).
fn counting_server() -> Server {
    Server::start(|c| {
        c.line("220 counting.mailflow.test ESMTP");
        let _ = c.read_line();
        c.line("421 4.3.2 this server only counts connections");
    })
}

/// `mailflow_mta_sts_policy_mode`: the one mode that is 1.
fn mode(m: &Metrics, connector: &str) -> String {
    let ones = m.ones("mailflow_mta_sts_policy_mode", &[("connector", connector)]);
    assert_eq!(ones.len(), 1, "one mode is 1:\n{}", m.summary(connector));
    assert_eq!(
        m.all("mailflow_mta_sts_policy_mode", &[("connector", connector)])
            .len(),
        4,
        "a state set of four modes"
    );
    ones[0].label("mode").unwrap_or_default().to_owned()
}

/// `mailflow_mta_sts_mx_match` of `host`.
fn mx_match(m: &Metrics, connector: &str, host: &str) -> Option<f64> {
    m.value(
        "mailflow_mta_sts_mx_match",
        &[("connector", connector), ("host", host)],
    )
}

fn fetch_success(m: &Metrics, connector: &str) -> Option<f64> {
    m.value(
        "mailflow_mta_sts_policy_fetch_success",
        &[("connector", connector)],
    )
}

#[test]
fn enforce_policies_decide_where_the_probe_delivers() {
    let world = world();
    let missing_server = counting_server();
    let deep_server = counting_server();
    let connectors = [
        via("listed", sts::ENFORCE, "sts", &[]),
        mx_connector("missing", sts::MISSING, missing_server.port(), &[]),
        via("wild-one", sts::WILDCARD, "sts", &[]),
        mx_connector("wild-two", sts::DEEP_WILDCARD, deep_server.port(), &[]),
        via("no-starttls", sts::ENFORCE, "notls", &[]),
        via("wrong-name", sts::ENFORCE, "wrongname", &[]),
        via("old-tls", sts::ENFORCE, "tls10", &[]),
        via(
            "tls-domain-only",
            sts::ENFORCE,
            "sts",
            &[
                ("tls_settings", "domain_validation"),
                ("tls_domain", "other.example"),
            ],
        ),
        via("testing-missing", sts::TESTING_MISSING, "sts", &[]),
        via(
            "switched-off",
            sts::ENFORCE,
            "notls",
            &[("mta_sts_mode", "none")],
        ),
    ];
    let e = Exporter::start(&sts_config(world.dns, &connectors));
    let m = e.probe_path("/probe");
    println!("{}", m.lines_of("mailflow_mta_sts"));

    e.assert_outcome(&m, "listed", "ok", "", "");
    assert_eq!(mode(&m, "listed"), "enforce");
    assert_eq!(fetch_success(&m, "listed"), Some(1.0));
    assert_eq!(mx_match(&m, "listed", "mx.enforce.sts.test"), Some(1.0));
    assert_eq!(
        m.value("mailflow_tlsrpt_record_present", &[("connector", "listed")]),
        Some(1.0)
    );
    let expiry = m.expect(
        "mailflow_mta_sts_policy_expiry_timestamp_seconds",
        &[("connector", "listed")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    assert!(
        (expiry - now - 86_400.0).abs() < 120.0,
        "fetched now, for max_age 86400: {expiry}"
    );

    e.assert_outcome(&m, "missing", "4.4.8", "mta_sts", "mx_not_in_policy");
    assert_eq!(m.target_code("missing", "127.0.0.1"), "4.4.8");
    assert_eq!(mx_match(&m, "missing", "mx.missing.sts.test"), Some(0.0));
    assert_eq!(missing_server.connections(), 0, "no SMTP connection");

    e.assert_outcome(&m, "wild-one", "ok", "", "");
    assert_eq!(mx_match(&m, "wild-one", "mx.wildcard.sts.test"), Some(1.0));
    e.assert_outcome(&m, "wild-two", "4.4.8", "mta_sts", "mx_not_in_policy");
    assert_eq!(
        mx_match(&m, "wild-two", "deep.mx.deepwild.sts.test"),
        Some(0.0)
    );
    assert_eq!(deep_server.connections(), 0, "no SMTP connection");

    e.assert_outcome(
        &m,
        "no-starttls",
        "4.7.321",
        "starttls",
        "starttls_not_offered",
    );
    e.assert_outcome(&m, "wrong-name", "4.7.5", "tls", "cert_name_mismatch");
    // Under opportunistic TLS alone this server gets its mail in plain text (a fallback); an
    // enforce policy rules that out.
    e.assert_outcome(&m, "old-tls", "4.7.321", "tls", "tls_version");
    assert!(
        m.all("mailflow_tls_fallback", &[("connector", "old-tls")])
            .is_empty(),
        "no fallback to plain text under an enforce policy"
    );
    e.assert_outcome(
        &m,
        "tls-domain-only",
        "4.7.320",
        "tls",
        "cert_name_mismatch",
    );

    e.assert_outcome(&m, "testing-missing", "ok", "", "");
    assert_eq!(mode(&m, "testing-missing"), "testing");
    assert_eq!(
        mx_match(&m, "testing-missing", "mx.testmiss.sts.test"),
        Some(0.0)
    );

    e.assert_outcome(&m, "switched-off", "ok", "", "");
    assert!(
        m.all(
            "mailflow_mta_sts_policy_mode",
            &[("connector", "switched-off")]
        )
        .is_empty(),
        "mta_sts_mode: none looks nothing up"
    );
}

#[test]
fn a_policy_that_cannot_be_had_leaves_the_probe_as_without_one() {
    let world = world();
    // Behind each of these an `enforce` policy would require STARTTLS, which `notls` lacks.
    let broken = [
        ("not-found", sts::NOT_FOUND),
        ("redirect", sts::REDIRECT),
        ("oversized", sts::OVERSIZED),
        ("wrong-type", sts::WRONG_TYPE),
        ("bad-name", sts::WRONG_NAME),
        ("expired", sts::EXPIRED_CERT),
        ("untrusted", sts::UNTRUSTED_CERT),
        ("two-records", sts::TWO_RECORDS),
        ("malformed", sts::MALFORMED),
    ];
    let mut connectors: Vec<String> = broken
        .iter()
        .map(|(name, domain)| via(name, domain, "notls", &[]))
        .collect();
    connectors.push(via("no-record", sts::NO_RECORD, "notls", &[]));
    let e = Exporter::start(&sts_config(world.dns, &connectors));
    let m = e.probe_path("/probe");
    println!("{}", m.lines_of("mailflow_mta_sts"));
    for (name, _) in broken {
        e.assert_outcome(&m, name, "ok", "", "");
        assert_eq!(mode(&m, name), "absent", "{name}");
        assert_eq!(fetch_success(&m, name), Some(0.0), "{name}");
        assert!(
            m.all("mailflow_mta_sts_mx_match", &[("connector", name)])
                .is_empty(),
            "{name}: no policy, nothing to match"
        );
    }
    e.assert_outcome(&m, "no-record", "ok", "", "");
    assert_eq!(mode(&m, "no-record"), "absent");
    assert_eq!(
        fetch_success(&m, "no-record"),
        None,
        "no record, no fetch to report"
    );
}

/// POST /-/reload, expecting it to succeed.
fn reload(e: &Exporter, yaml: &str) {
    std::fs::write(e.config_file(), yaml).expect("write config");
    let response = http::request(e.addr, "POST", "/-/reload", &[]).expect("POST /-/reload");
    assert_eq!(response.status, 200, "reload: {}", response.body);
}

#[test]
fn a_cached_policy_stays_in_force_across_a_failed_refetch_and_a_reload() {
    let world = world();
    let domain = sts::KEEP_PROBE;
    let connector = [via("keep", domain, "notls", &[])];
    let e = Exporter::start_with_args(
        &sts_config(world.dns, &connector),
        &["--mta-sts.min-fetch-interval", "1s"],
    );
    let m = e.expect("keep", "4.7.321", "starttls", "starttls_not_offered");
    assert_eq!(
        (mode(&m, "keep"), fetch_success(&m, "keep")),
        ("enforce".into(), Some(1.0))
    );
    let before = world.requests(domain);

    // The policy host loses the file, and the record announces a new id: the refetch fails.
    world.set_policy(domain, None);
    let zone = world.zone(&[(&format!("_mta-sts.{domain}"), &["v=STSv1; id=keep2"])]);
    reload(&e, &sts_config(zone.addr, &connector));
    std::thread::sleep(Duration::from_millis(1100));
    let m = e.expect("keep", "4.7.321", "starttls", "starttls_not_offered");
    world.set_policy(domain, Some(&sts::enforce_policy(domain)));
    println!("{}", m.lines_of("mailflow_mta_sts"));
    assert_eq!(world.requests(domain), before + 1, "refetched once");
    assert_eq!(
        mode(&m, "keep"),
        "enforce",
        "the cached copy stays in force"
    );
    assert_eq!(
        fetch_success(&m, "keep"),
        Some(0.0),
        "and the failure shows"
    );
}

#[test]
fn a_new_id_fetches_the_policy_again() {
    let world = world();
    let domain = sts::ID_PROBE;
    let owner = format!("_mta-sts.{domain}");
    let connector = [via("ids", domain, "sts", &[])];
    let e = Exporter::start_with_args(
        &sts_config(world.dns, &connector),
        &["--mta-sts.min-fetch-interval", "1s"],
    );
    let m = e.expect("ids", "ok", "", "");
    assert_eq!(mx_match(&m, "ids", "mx.idprobe.sts.test"), Some(1.0));
    let first = world.requests(domain);
    assert_eq!(first, 1);

    // The policy no longer lists the host, but the id stays: the cached copy is used.
    world.set_policy(
        domain,
        Some("version: STSv1\nmode: enforce\nmx: other.idprobe.sts.test\nmax_age: 86400\n"),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let m = e.expect("ids", "ok", "", "");
    assert_eq!(world.requests(domain), first, "same id: no fetch");
    assert_eq!(
        m.value(
            "mailflow_mta_sts_policy_same_as_previous_id",
            &[("connector", "ids")]
        ),
        Some(0.0)
    );

    // A new id: fetched again, and the host is refused.
    let second = world.zone(&[(&owner, &["v=STSv1; id=second"])]);
    reload(&e, &sts_config(second.addr, &connector));
    let m = e.expect("ids", "4.4.8", "mta_sts", "mx_not_in_policy");
    assert_eq!(world.requests(domain), first + 1, "new id: one fetch");
    assert_eq!(mx_match(&m, "ids", "mx.idprobe.sts.test"), Some(0.0));

    // Another id, the same policy: noted.
    std::thread::sleep(Duration::from_millis(1100));
    let third = world.zone(&[(&owner, &["v=STSv1; id=third"])]);
    reload(&e, &sts_config(third.addr, &connector));
    let m = e.expect("ids", "4.4.8", "mta_sts", "mx_not_in_policy");
    world.set_policy(domain, Some(&sts::enforce_policy(domain)));
    assert_eq!(world.requests(domain), first + 2);
    assert_eq!(
        m.value(
            "mailflow_mta_sts_policy_same_as_previous_id",
            &[("connector", "ids")]
        ),
        Some(1.0),
        "id third serves the policy of id second"
    );
}

#[test]
fn the_probe_command_explains_the_policy_and_each_host() {
    let world = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mailflow.yml");
    let connectors = [
        via("missing", sts::MISSING, "sts", &[]),
        via("listed", sts::WILDCARD, "sts", &[]),
    ];
    std::fs::write(&file, sts_config(world.dns, &connectors)).expect("write config");
    let config = file.display().to_string();

    let out = run_cli(&["probe", "missing", "--config.file", &config]);
    let text = combined_output(&out);
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "connector missing: 4.4.8 (MX host failed MTA-STS validation) in phase mta_sts, reason mx_not_in_policy",
        "mx.missing.sts.test 127.0.0.1: 4.4.8 (mta_sts: mx_not_in_policy)",
        "MTA-STS, policy domain missing.sts.test",
        "_mta-sts.missing.sts.test record: published, id missing1",
        "policy:      mode enforce, max_age 86400 s (1.0 days), mx: listed.missing.sts.test",
        "under id missing1; expires",
        "host mx.missing.sts.test: matches no mx pattern; enforce: sending servers refuse it (4.4.8), it was not contacted",
        "TLS-RPT (_smtp._tls.missing.sts.test): none published",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let out = run_cli(&["probe", "listed", "--config.file", &config]);
    let text = combined_output(&out);
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "connector listed: ok",
        "host mx.wildcard.sts.test: matches mx *.wildcard.sts.test; enforce: TLS and a certificate valid for the host are required",
        "TLS-RPT (_smtp._tls.wildcard.sts.test): malformed (the record has no rua)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
