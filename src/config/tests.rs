//! `parse` end to end: defaults, typed values, and the exact text of every problem.

use std::path::Path;
use std::time::Duration;

use super::*;

fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("test.yml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn connector(text: &str) -> Arc<Connector> {
    let config = parse(text, Path::new("t.yml")).unwrap_or_else(|e| panic!("{e}"));
    config.connectors[0].clone()
}

#[test]
fn defaults_merge_into_connectors() {
    let a = connector(
        "defaults:\n  port: 2525\n  timeout: 3s\n  helo_name: probe.test\n  tls_settings: encryption_only\n  dns:\n    nameservers: [\"127.0.0.1:5353\"]\nconnectors:\n  - name: a\n    smart_hosts: [mail.example.test, 127.0.0.1]\n    timeout: 1m30s\n    dns:\n      timeout: 2s\n",
    );
    assert_eq!(a.port, 2525);
    assert_eq!(a.timeout, Duration::from_secs(90));
    assert_eq!(a.helo_name.to_string(), "probe.test");
    assert_eq!(a.tls_settings, TlsSettings::EncryptionOnly);
    assert_eq!(a.queue_expiry, Duration::from_secs(86400));
    assert_eq!(
        a.dns.nameservers,
        vec!["127.0.0.1:5353".parse().expect("addr")]
    );
    assert_eq!(a.dns.timeout, Duration::from_secs(2));
    assert_eq!(
        a.route,
        Route::SmartHosts(vec![
            Host::Name("mail.example.test".parse().expect("name")),
            Host::Ip("127.0.0.1".parse().expect("ip"))
        ])
    );
}

#[test]
fn new_keys_have_the_spec_defaults() {
    let a = connector("connectors:\n  - name: a\n    smart_hosts: [h.test]\n");
    assert_eq!(a.smtp_dane_mode, SmtpDaneMode::Opportunistic);
    assert_eq!(a.mta_sts_mode, MtaStsMode::Opportunistic);
    assert_eq!(a.connector_type, ConnectorType::OnPremises);
    assert!(a.labels.is_empty());
    assert_eq!(a.dns.dnssec_validation, DnssecValidation::Exporter);
    assert_eq!(a.dns.trust_anchors, DnssecTrustAnchors::root());
    assert_eq!(a.mail_from, None);
}

#[test]
fn new_keys_per_connector_and_in_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("anchors.txt"),
        "test. IN DS 1 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .expect("anchors");
    let text = "defaults:\n  smtp_dane_mode: mandatory\n  mta_sts_mode: none\n  dns:\n    dnssec_validation: resolver\n    trust_anchor_file: anchors.txt\n\
        connectors:\n  - name: a\n    type: partner\n    labels: {team: messaging, site: \"DC 1\"}\n    smart_hosts: [h.test]\n\
        \x20 - name: b\n    smtp_dane_mode: none\n    mta_sts_mode: opportunistic\n    smart_hosts: [192.0.2.1]\n    dns:\n      trust_anchor_file: \"\"\n";
    let config = parse(text, &dir.path().join("mailflow.yml")).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (&config.connectors[0], &config.connectors[1]);
    assert_eq!(a.connector_type, ConnectorType::Partner);
    let labels: Vec<(&str, &str)> = a
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("site", "DC 1"), ("team", "messaging")]);
    assert_eq!(a.smtp_dane_mode, SmtpDaneMode::Mandatory);
    assert_eq!(a.mta_sts_mode, MtaStsMode::None);
    assert_eq!(a.dns.dnssec_validation, DnssecValidation::Resolver);
    assert_eq!(
        a.dns.trust_anchors.file,
        Some(dir.path().join("anchors.txt"))
    );
    assert!(matches!(
        &a.dns.trust_anchors.anchors[..],
        [DnssecTrustAnchor::Ds { zone, ds }] if zone.to_ascii() == "test." && ds.key_tag() == 1
    ));
    // The mandatory default does not reach b, whose IP literal would refuse it; "" resets the
    // anchors to the root's.
    assert_eq!(b.smtp_dane_mode, SmtpDaneMode::None);
    assert_eq!(b.mta_sts_mode, MtaStsMode::Opportunistic);
    assert_eq!(b.dns.dnssec_validation, DnssecValidation::Resolver);
    assert_eq!(b.dns.trust_anchors, DnssecTrustAnchors::root());
}

#[test]
fn wire_values_are_typed() {
    let a = connector(
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    helo_name: \"[192.0.2.9]\"\n    tls_domain: \"*.Example.test\"\n    mail_from: probe@example.test\n    rcpt_to: postmaster@[192.0.2.1]\n",
    );
    assert_eq!(format!("EHLO {}", a.helo_name), "EHLO [192.0.2.9]");
    assert_eq!(
        a.tls_domain,
        Some(TlsDomain::Wildcard("example.test".parse().expect("name")))
    );
    assert_eq!(
        a.mail_from.as_ref().map(ToString::to_string).as_deref(),
        Some("probe@example.test")
    );
    assert_eq!(
        a.rcpt_to.as_ref().map(ToString::to_string).as_deref(),
        Some("postmaster@[192.0.2.1]")
    );
}

#[test]
fn mx_route_and_implicit_tls_port() {
    let p = connector(
        "connectors:\n  - name: p\n    use_mx_record: true\n    recipient_domains: [Fabrikam.test]\n    implicit_tls: true\n    tls_settings: domain_validation\n",
    );
    assert_eq!(p.route, Route::Mx("fabrikam.test".parse().expect("name")));
    assert_eq!(p.recipient_domains, ["fabrikam.test"]);
    assert_eq!(p.port, 465);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    assert_eq!(
        problems("connectors:\n  - name: a\n    smart_hosts: [h.test]\n    smarthost: x\n"),
        vec![
            "test.yml:4:5: connectors[0].smarthost: unknown field `smarthost`, expected one of name, smart_hosts, use_mx_record, recipient_domains, port, timeout, helo_name, tls_settings, tls_domain, ca_file, implicit_tls, mail_from, rcpt_to, queue_expiry, dns, smtp_dane_mode, mta_sts_mode, type, labels"
        ]
    );
}

/// The key path is built from steps: a key called `values` is not mangled, and one called
/// `value` is kept.
#[test]
fn key_paths_are_exact() {
    for key in ["values", "value"] {
        let found = problems(&format!(
            "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    {key}: 1\n"
        ));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(&format!(
                "test.yml:4:5: connectors[0].{key}: unknown field `{key}`"
            )),
            "{found:?}"
        );
    }
    let found = problems("defaults:\n  dns:\n    value: 1\n");
    assert!(
        found[0].starts_with("test.yml:3:5: defaults.dns.value: unknown field `value`"),
        "{found:?}"
    );
}

#[test]
fn bad_duration_names_the_key() {
    assert_eq!(
        problems("defaults:\n  timeout: 15x\n"),
        vec![
            "test.yml:2:12: defaults.timeout: invalid duration \"15x\": unknown unit \"x\"; the units are y, w, d, h, m, s and ms"
        ]
    );
    assert_eq!(
        problems("defaults:\n  queue_expiry: 0\n"),
        vec![
            "test.yml:2:17: defaults.queue_expiry: invalid duration \"0\": must be greater than zero"
        ]
    );
    let long = connector(
        "defaults:\n  queue_expiry: 1y\nconnectors:\n  - name: a\n    smart_hosts: [h.test]\n",
    );
    assert_eq!(long.queue_expiry, Duration::from_secs(365 * 86400));
}

#[test]
fn duplicate_names_and_missing_hosts_are_all_reported() {
    assert_eq!(
        problems("connectors:\n  - name: a\n    smart_hosts: [h.test]\n  - name: a\n"),
        vec![
            "test.yml:4:11: connectors[1].name: duplicate connector name \"a\"",
            "test.yml:4:11: connectors[1].smart_hosts: no smart_hosts: name at least one host, or set use_mx_record",
        ]
    );
}

#[test]
fn a_bad_default_is_reported_once_under_defaults() {
    assert_eq!(
        problems(
            "defaults:\n  helo_name: bad name\nconnectors:\n  - name: a\n    smart_hosts: [h.test]\n  - name: b\n    smart_hosts: [h.test]\n"
        ),
        vec![
            "test.yml:2:14: defaults.helo_name: invalid helo_name \"bad name\": space at position 4: this is one DNS name, or an address literal such as [192.0.2.1]"
        ]
    );
}

#[test]
fn unreadable_ca_file_is_an_error() {
    let found = problems(
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    ca_file: /nonexistent/ca.pem\n",
    );
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(
            "test.yml:4:14: connectors[0].ca_file: cannot read CA file /nonexistent/ca.pem"
        ),
        "{found:?}"
    );
}

#[test]
fn other_rules() {
    assert_eq!(
        problems(
            "connectors:\n  - name: 'bad name'\n    smart_hosts: ['bad host!']\n    rcpt_to: x@y\n"
        ),
        vec![
            "test.yml:2:11: connectors[0].name: invalid connector name \"bad name\": use letters, digits, '.', '_' and '-'",
            "test.yml:3:19: connectors[0].smart_hosts[0]: invalid host \"bad host!\": U+0020 (space) at position 4 is not allowed in a DNS name (letters, digits, '-' and '_' in dot-separated labels); expected a DNS name or an IP address",
            "test.yml:2:11: connectors[0].rcpt_to: rcpt_to needs mail_from",
        ]
    );
    assert_eq!(
        problems("connectors:\n  - name: m\n    use_mx_record: true\n"),
        vec![
            "test.yml:2:11: connectors[0].recipient_domains: use_mx_record needs at least one recipient domain"
        ]
    );
    assert_eq!(
        problems(
            "connectors:\n  - name: m\n    smtp_dane_mode: mandatory\n    smart_hosts: [h.test, 192.0.2.1]\n"
        ),
        vec![
            "test.yml:4:27: connectors[0].smart_hosts[1]: smtp_dane_mode mandatory needs host names: DANE cannot apply to the IP literal 192.0.2.1 (TLSA records are published under names)"
        ]
    );
    assert_eq!(
        problems("defaults:\n  type: partner\n  labels: {team: x}\n"),
        vec![
            "test.yml:2:9: defaults.type: type belongs to a connector, not to defaults",
            "test.yml:3:11: defaults.labels: labels belongs to a connector, not to defaults",
        ]
    );
    assert_eq!(
        problems(
            "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    labels:\n      job: x\n      Team: y\n      site: \"\"\n"
        ),
        vec![
            "test.yml:6:13: connectors[0].labels.Team: invalid label name \"Team\": a label name is a lower-case letter or '_', then lower-case letters, digits and '_'",
            "test.yml:5:12: connectors[0].labels.job: invalid label name \"job\": the exporter or Prometheus sets \"job\" itself; choose another name",
            "test.yml:7:13: connectors[0].labels.site: invalid value of label \"site\": the value is empty (Prometheus drops an empty label: leave the key out instead)",
        ]
    );
}

#[test]
fn postfix_queue_settings() {
    let config = parse("postfix_queue: {}\n", Path::new("t.yml")).expect("valid");
    assert_eq!(
        config.postfix_queue,
        Some(PostfixQueueSettings {
            command: vec!["postqueue".into(), "-j".into()],
            timeout: Duration::from_secs(10),
        })
    );
    assert_eq!(
        problems("postfix_queue:\n  command: []\n"),
        vec![
            "test.yml:2:12: postfix_queue.command: the command is empty: name a program, e.g. [postqueue, -j]"
        ]
    );
}
