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
            "F:3:5: connectors[0].smart_host: unknown field `smart_host`, expected one of name, smart_hosts, use_mx_record, recipient_domains, port, timeout, helo_name, tls_settings, tls_domain, ca_file, implicit_tls, mail_from, rcpt_to, queue_expiry, dns",
        ],
    ),
    (
        "unknown dns key",
        "defaults:\n  dns:\n    servers: [127.0.0.1]\n",
        &[
            "F:3:5: defaults.dns.servers: unknown field `servers`, expected one of nameservers, timeout",
        ],
    ),
    (
        "bad duration unit",
        "defaults:\n  timeout: 15 seconds\n",
        &[
            "F:2:12: defaults.timeout: invalid duration \"15 seconds\": expected a number and a unit (ms, s, m, h, d, w), e.g. \"15s\" or \"24h\"",
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
            "F:3:19: connectors[0].smart_hosts[0]: invalid host \"mail server.test\": expected a DNS name or an IP address",
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
        &["F:5:19: connectors[0].smart_hosts: smart_hosts and use_mx_record exclude each other"],
    ),
    (
        "route keys in defaults",
        "defaults:\n  smart_hosts: [h.test]\n",
        &["F:2:17: defaults.smart_hosts: smart_hosts belongs to a connector, not to defaults"],
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
            "F:2:11: connectors[0].tls_domain: invalid tls_domain \"*\": expected a DNS name, or *.domain",
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
        "empty postqueue command",
        "postfix_queue:\n  command: []\n",
        &[
            "F:2:3: postfix_queue.command: the command is empty: name a program, e.g. [postqueue, -j]",
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
    let mut failures = Vec::new();
    for (what, text, expected) in CASES {
        let file = dir.path().join("mailflow.yml");
        std::fs::write(&file, text).expect("write");
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
