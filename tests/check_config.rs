//! Bad configuration files of many kinds: `check-config` must name the file, line, column and
//! key of every problem, in words a person can act on, and exit non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

/// (what is wrong, the file's text, the exact problem lines `check-config` prints).
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "unknown top-level key",
        "connector:\n  - name: a\n",
        &[
            "F:1:1: connector: unknown field `connector`, expected one of defaults, connectors, postfix_queue",
        ],
    ),
    (
        "unknown connector key (a typo)",
        "connectors:\n  - name: a\n    smart_host: [h.test]\n",
        &[
            "F:3:5: connectors[0].smart_host: unknown field `smart_host`, expected one of name, smart_hosts, use_mx_record, recipient_domains, port, timeout, helo_name, tls_settings, tls_domain, ca_file, implicit_tls, mail_from, rcpt_to, queue_expiry, dns, smtp_dane_mode, mta_sts_mode, type, labels",
        ],
    ),
    (
        "unknown dns key",
        "defaults:\n  dns:\n    servers: [127.0.0.1]\n",
        &[
            "F:3:5: defaults.dns.servers: unknown field `servers`, expected one of nameservers, timeout, dnssec_validation, trust_anchor_file",
        ],
    ),
    (
        "bad duration unit",
        "defaults:\n  timeout: 15 seconds\n",
        &[
            "F:2:12: defaults.timeout: invalid duration \"15 seconds\": unknown unit \" seconds\"; the units are y, w, d, h, m, s and ms",
        ],
    ),
    (
        "zero duration",
        "defaults:\n  queue_expiry: 0h\n",
        &["F:2:17: defaults.queue_expiry: invalid duration \"0h\": must be greater than zero"],
    ),
    (
        "unknown tls_settings value",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    tls_settings: mandatory\n",
        &[
            "F:4:19: connectors[0].tls_settings: unknown variant `mandatory`, expected one of none, opportunistic, encryption_only, certificate_validation, domain_validation",
        ],
    ),
    (
        "port out of range",
        "defaults:\n  port: 70000\n",
        &["F:2:9: defaults.port: invalid port 70000: expected 1 to 65535"],
    ),
    (
        "bad name server",
        "defaults:\n  dns:\n    nameservers: [\"dns.example:53\"]\n",
        &[
            "F:3:19: defaults.dns.nameservers[0]: invalid name server \"dns.example:53\": expected an IP address with an optional port, e.g. \"127.0.0.1:5353\" or \"[::1]:53\"",
        ],
    ),
    (
        "duplicate connector names",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n  - name: a\n    smart_hosts: [h.test]\n",
        &["F:4:11: connectors[1].name: duplicate connector name \"a\""],
    ),
    (
        "missing name",
        "connectors:\n  - smart_hosts: [h.test]\n",
        &["F:2:5: connectors[0].name: every connector needs a name"],
    ),
    (
        "invalid name",
        "connectors:\n  - name: contoso onprem\n    smart_hosts: [h.test]\n",
        &[
            "F:2:11: connectors[0].name: invalid connector name \"contoso onprem\": use letters, digits, '.', '_' and '-'",
        ],
    ),
    (
        "no hosts",
        "connectors:\n  - name: a\n",
        &[
            "F:2:11: connectors[0].smart_hosts: no smart_hosts: name at least one host, or set use_mx_record",
        ],
    ),
    (
        "invalid host",
        "connectors:\n  - name: a\n    smart_hosts: [\"mail server.test\"]\n",
        &[
            "F:3:19: connectors[0].smart_hosts[0]: invalid host \"mail server.test\": U+0020 (space) at position 5 is not allowed in a DNS name (letters, digits, '-' and '_' in dot-separated labels); expected a DNS name or an IP address",
        ],
    ),
    (
        "MX without a domain",
        "connectors:\n  - name: a\n    use_mx_record: true\n",
        &[
            "F:2:11: connectors[0].recipient_domains: use_mx_record needs at least one recipient domain",
        ],
    ),
    (
        "MX and smart hosts together",
        "connectors:\n  - name: a\n    use_mx_record: true\n    recipient_domains: [x.test]\n    smart_hosts: [h.test]\n",
        &["F:5:18: connectors[0].smart_hosts: smart_hosts and use_mx_record exclude each other"],
    ),
    (
        "route keys in defaults",
        "defaults:\n  smart_hosts: [h.test]\n",
        &["F:2:16: defaults.smart_hosts: smart_hosts belongs to a connector, not to defaults"],
    ),
    (
        "rcpt_to without mail_from",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    rcpt_to: postmaster@h.test\n",
        &["F:2:11: connectors[0].rcpt_to: rcpt_to needs mail_from"],
    ),
    (
        "implicit TLS without TLS",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    implicit_tls: true\n    tls_settings: none\n",
        &["F:2:11: connectors[0].implicit_tls: implicit_tls needs a tls_settings other than none"],
    ),
    (
        "bad tls_domain",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    tls_domain: \"*\"\n",
        &[
            "F:4:17: connectors[0].tls_domain: invalid tls_domain \"*\": a wildcard is written \"*.\" and a domain, e.g. *.example.com",
        ],
    ),
    (
        "unreadable ca_file",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    ca_file: missing-ca.pem\n",
        &[
            "F:4:14: connectors[0].ca_file: cannot read CA file DIR/missing-ca.pem: No such file or directory (os error 2)",
        ],
    ),
    (
        "ca_file without certificates",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    ca_file: empty.pem\n",
        &["F:4:14: connectors[0].ca_file: no certificate in CA file DIR/empty.pem"],
    ),
    (
        "unknown key named values (the key path is built, not edited)",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    values: [1]\n",
        &[
            "F:4:5: connectors[0].values: unknown field `values`, expected one of name, smart_hosts, use_mx_record, recipient_domains, port, timeout, helo_name, tls_settings, tls_domain, ca_file, implicit_tls, mail_from, rcpt_to, queue_expiry, dns, smtp_dane_mode, mta_sts_mode, type, labels",
        ],
    ),
    (
        "duration units repeated",
        "defaults:\n  timeout: 5s5s\n",
        &[
            "F:2:12: defaults.timeout: invalid duration \"5s5s\": units must go from the largest to the smallest, each at most once (y, w, d, h, m, s, ms), e.g. \"1h30m\"",
        ],
    ),
    (
        "duration units in the wrong order",
        "defaults:\n  queue_expiry: 1s1m\n",
        &[
            "F:2:17: defaults.queue_expiry: invalid duration \"1s1m\": units must go from the largest to the smallest, each at most once (y, w, d, h, m, s, ms), e.g. \"1h30m\"",
        ],
    ),
    (
        "helo_name with CR LF (would smuggle a command)",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    helo_name: \"x\\r\\nDATA\"\n",
        &[
            "F:4:16: connectors[0].helo_name: invalid helo_name \"x\\r\\nDATA\": U+000D (CR) at position 2: control characters are refused, as CR and LF would end the protocol line early",
        ],
    ),
    (
        "helo_name with a space",
        "defaults:\n  helo_name: probe host\n",
        &[
            "F:2:14: defaults.helo_name: invalid helo_name \"probe host\": space at position 6: this is one DNS name, or an address literal such as [192.0.2.1]",
        ],
    ),
    (
        "helo_name with a bad address literal",
        "defaults:\n  helo_name: \"[2001:db8::1]\"\n",
        &[
            "F:2:14: defaults.helo_name: invalid helo_name \"[2001:db8::1]\": invalid address literal \"[2001:db8::1]\": expected [IPv4 address] or [IPv6:IPv6 address], e.g. [192.0.2.1] or [IPv6:2001:db8::1]",
        ],
    ),
    (
        "helo_name outside ASCII",
        "defaults:\n  helo_name: prüfung.example\n",
        &[
            "F:2:14: defaults.helo_name: invalid helo_name \"prüfung.example\": U+00FC at position 3: only ASCII is allowed (write an international domain name in its xn-- form; SMTPUTF8 addresses are not supported)",
        ],
    ),
    (
        "mail_from in angle brackets",
        "defaults:\n  mail_from: \"<probe@example.test>\"\n",
        &[
            "F:2:14: defaults.mail_from: invalid mail_from \"<probe@example.test>\": write the bare address, without '<' and '>': the probe adds them",
        ],
    ),
    (
        "mail_from with a NUL",
        "defaults:\n  mail_from: \"probe\\0@example.test\"\n",
        &[
            "F:2:14: defaults.mail_from: invalid mail_from \"probe\\0@example.test\": U+0000 (NUL) at position 6: control characters are refused, as CR and LF would end the protocol line early",
        ],
    ),
    (
        "mail_from without a domain",
        "defaults:\n  mail_from: probe\n",
        &[
            "F:2:14: defaults.mail_from: invalid mail_from \"probe\": expected local-part@domain, e.g. probe@example.com",
        ],
    ),
    (
        "rcpt_to with a space in the local part",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    mail_from: probe@example.test\n    rcpt_to: post master@h.test\n",
        &[
            "F:5:14: connectors[0].rcpt_to: invalid rcpt_to \"post master@h.test\": U+0020 (space) at position 5 is not allowed in the local part (letters, digits, !#$%&'*+-/=?^_`{|}~ and dots; quoted local parts are not supported)",
        ],
    ),
    (
        "rcpt_to with LF and a second command",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    mail_from: probe@example.test\n    rcpt_to: \"postmaster@h.test\\nDATA\"\n",
        &[
            "F:5:14: connectors[0].rcpt_to: invalid rcpt_to \"postmaster@h.test\\nDATA\": U+000A (LF) at position 18: control characters are refused, as CR and LF would end the protocol line early",
        ],
    ),
    (
        "tls_domain with a wildcard inside",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    tls_domain: \"mail*.h.test\"\n",
        &[
            "F:4:17: connectors[0].tls_domain: invalid tls_domain \"mail*.h.test\": a wildcard is written \"*.\" and a domain, e.g. *.example.com",
        ],
    ),
    (
        "unknown smtp_dane_mode",
        "defaults:\n  smtp_dane_mode: required\n",
        &[
            "F:2:19: defaults.smtp_dane_mode: unknown variant `required`, expected one of none, opportunistic, mandatory",
        ],
    ),
    (
        "mandatory DANE on an IP literal",
        "defaults:\n  smtp_dane_mode: mandatory\nconnectors:\n  - name: a\n    smart_hosts: [h.test, \"[192.0.2.7]\"]\n",
        &[
            "F:5:27: connectors[0].smart_hosts[1]: smtp_dane_mode mandatory needs host names: DANE cannot apply to the IP literal 192.0.2.7 (TLSA records are published under names)",
        ],
    ),
    (
        "unknown mta_sts_mode",
        "defaults:\n  mta_sts_mode: enforce\n",
        &[
            "F:2:17: defaults.mta_sts_mode: unknown variant `enforce`, expected one of none, opportunistic",
        ],
    ),
    (
        "unknown dnssec_validation",
        "defaults:\n  dns:\n    dnssec_validation: none\n",
        &[
            "F:3:24: defaults.dns.dnssec_validation: unknown variant `none`, expected one of exporter, resolver",
        ],
    ),
    (
        "unreadable trust_anchor_file",
        "defaults:\n  dns:\n    trust_anchor_file: missing.key\n",
        &[
            "F:3:24: defaults.dns.trust_anchor_file: cannot read trust anchor file DIR/missing.key: No such file or directory (os error 2)",
        ],
    ),
    (
        "trust_anchor_file with a record that is not an anchor",
        "defaults:\n  dns:\n    trust_anchor_file: bad.key\n",
        &[
            "F:3:24: defaults.dns.trust_anchor_file: DIR/bad.key:2: the record type \"A\" is not a trust anchor: expected DS or DNSKEY (class IN)",
        ],
    ),
    (
        "unknown connector type",
        "connectors:\n  - name: a\n    type: vendor\n    smart_hosts: [h.test]\n",
        &[
            "F:3:11: connectors[0].type: unknown variant `vendor`, expected one of on_premises, partner",
        ],
    ),
    (
        "type and labels in defaults",
        "defaults:\n  type: partner\n  labels:\n    team: x\n",
        &[
            "F:2:9: defaults.type: type belongs to a connector, not to defaults",
            "F:4:5: defaults.labels: labels belongs to a connector, not to defaults",
        ],
    ),
    (
        "label names",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    labels:\n      connector_type: x\n      __owner: y\n      Team: z\n",
        &[
            "F:7:13: connectors[0].labels.Team: invalid label name \"Team\": a label name is a lower-case letter or '_', then lower-case letters, digits and '_'",
            "F:6:16: connectors[0].labels.__owner: invalid label name \"__owner\": names starting with \"__\" are reserved for Prometheus",
            "F:5:23: connectors[0].labels.connector_type: invalid label name \"connector_type\": the exporter or Prometheus sets \"connector_type\" itself; choose another name",
        ],
    ),
    (
        "label values",
        "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    labels:\n      team: \"\"\n      site: \"a\\tb\"\n      owner: LONG\n",
        &[
            "F:7:14: connectors[0].labels.owner: invalid value of label \"owner\": the value is longer than 128 characters",
            "F:6:13: connectors[0].labels.site: invalid value of label \"site\": the value holds a control character",
            "F:5:13: connectors[0].labels.team: invalid value of label \"team\": the value is empty (Prometheus drops an empty label: leave the key out instead)",
        ],
    ),
    (
        "empty postqueue command",
        "postfix_queue:\n  command: []\n",
        &[
            "F:2:12: postfix_queue.command: the command is empty: name a program, e.g. [postqueue, -j]",
        ],
    ),
    (
        "broken YAML",
        "connectors:\n  - name: a\n   smart_hosts: [h.test]\n",
        &[
            "F:3:4: connectors: while parsing a block collection, did not find expected '-' indicator",
        ],
    ),
    (
        "several problems at once",
        "connectors:\n  - name: a\n  - name: a\n    smart_hosts: [h.test]\n    rcpt_to: x@h.test\n",
        &[
            "F:2:11: connectors[0].smart_hosts: no smart_hosts: name at least one host, or set use_mx_record",
            "F:3:11: connectors[1].name: duplicate connector name \"a\"",
            "F:3:11: connectors[1].rcpt_to: rcpt_to needs mail_from",
        ],
    ),
];

#[test]
fn every_bad_configuration_is_explained_and_fails_check_config() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("empty.pem"), "").expect("empty pem");
    std::fs::write(dir.path().join("bad.key"), "; anchors\n. IN A 192.0.2.1\n").expect("bad.key");
    let mut failures = Vec::new();
    for (what, text, expected) in CASES {
        let file = dir.path().join("mailflow.yml");
        std::fs::write(&file, text.replace("LONG", &"x".repeat(129))).expect("write");
        let output = check_config(&file);
        let shown = |line: &str| {
            line.replace(&file.display().to_string(), "F")
                .replace(&dir.path().display().to_string(), "DIR")
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let problems: Vec<String> = stderr
            .lines()
            .filter(|l| !l.ends_with("problem(s) found"))
            .map(shown)
            .collect();
        let summary = format!("{}: {} problem(s) found", file.display(), expected.len());
        if output.status.code() != Some(1)
            || problems != *expected
            || !stderr.lines().any(|l| l == summary)
        {
            failures.push(format!(
                "{what}: exit {:?}\n  got:      {problems:?}\n  expected: {expected:?}",
                output.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_shipped_example_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mailflow.yml");
    let output = check_config(&example);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_config(file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailflow_exporter"))
        .arg("check-config")
        .arg("--config.file")
        .arg(file)
        .output()
        .expect("run check-config")
}
