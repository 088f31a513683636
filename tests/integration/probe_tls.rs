//! STARTTLS, implicit TLS and certificate checks against a real Postfix, under every
//! `tls_settings` value.

use crate::common::certs::{Leaf, certs};
use crate::common::dns;
use crate::common::exporter::{Exporter, config, connector};
use crate::common::metrics::Metrics;
use crate::common::postfix::postfix;

/// A connector to a Postfix listener at 127.0.0.1, trusting the test CA.
fn pf(name: &str, listener: &str, tls: &str, extra: &[(&str, &str)]) -> String {
    let port = postfix().port(listener).to_string();
    let ca = certs().ca_file.display().to_string();
    let mut fields: Vec<(&str, &str)> = vec![
        ("smart_hosts", "[127.0.0.1]"),
        ("port", &port),
        ("tls_settings", tls),
        ("ca_file", &ca),
    ];
    fields.extend_from_slice(extra);
    connector(name, &fields)
}

#[track_caller]
fn run(entry: String, name: &str, code: &str, phase: &str, reason: &str) -> Metrics {
    let e = Exporter::start(&config(true, &[entry]));
    let m = e.expect(name, code, phase, reason);
    if code == "ok" && !m.text.contains("mailflow_tls_info") {
        eprintln!(
            "(no TLS) Postfix log tail:\n{}",
            crate::common::exporter::tail(&postfix().log(), 20)
        );
    }
    m
}

/// The certificate series for `name` at 127.0.0.1 describe `leaf`; `valid` is the expected
/// `mailflow_certificate_valid`.
#[track_caller]
fn assert_certificate(m: &Metrics, name: &str, leaf: &Leaf, valid: f64) {
    let at = [("connector", name), ("address", "127.0.0.1")];
    let not_after = m.all("mailflow_certificate_not_after_timestamp_seconds", &at);
    assert_eq!(not_after.len(), 1, "{}", m.lines_of("mailflow_certificate"));
    assert_eq!(
        not_after[0].value,
        leaf.not_after as f64,
        "{}",
        m.lines_of("mailflow_certificate")
    );
    let subject = not_after[0].label("subject").unwrap_or_default();
    assert!(
        subject.contains(&leaf.common_name),
        "subject {subject:?} names {}",
        leaf.common_name
    );
    let issuer = not_after[0].label("issuer").unwrap_or_default();
    assert!(!issuer.is_empty(), "issuer label");
    assert!(
        !not_after[0].label("serial").unwrap_or_default().is_empty(),
        "serial label"
    );
    assert_eq!(
        m.value(
            "mailflow_certificate_chain_not_after_timestamp_seconds",
            &at
        ),
        Some(leaf.chain_not_after as f64),
        "{}",
        m.lines_of("mailflow_certificate")
    );
    assert_eq!(
        m.value("mailflow_certificate_valid", &at),
        Some(valid),
        "{}",
        m.lines_of("mailflow_certificate")
    );
}

#[track_caller]
fn assert_tls13(m: &Metrics, name: &str) {
    let info = m.all(
        "mailflow_tls_info",
        &[("connector", name), ("address", "127.0.0.1")],
    );
    assert_eq!(info.len(), 1, "{}", m.lines_of("mailflow_tls_info"));
    assert_eq!(info[0].value, 1.0);
    let version = info[0].label("version").unwrap_or_default();
    assert!(
        version.contains("1.3") || version.contains("1_3"),
        "version {version:?}"
    );
    assert!(
        !info[0].label("cipher").unwrap_or_default().is_empty(),
        "cipher label"
    );
}

#[test]
fn valid_certificate_none_is_ok_without_tls() {
    let m = run(pf("v_none", "valid", "none", &[]), "v_none", "ok", "", "");
    assert!(
        m.all("mailflow_tls_info", &[("connector", "v_none")])
            .is_empty(),
        "none never starts TLS"
    );
}

#[test]
fn valid_certificate_opportunistic_is_ok_with_tls() {
    let m = run(
        pf("v_opp", "valid", "opportunistic", &[]),
        "v_opp",
        "ok",
        "",
        "",
    );
    assert_tls13(&m, "v_opp");
    assert_certificate(&m, "v_opp", &certs().valid, 1.0);
}

#[test]
fn valid_certificate_encryption_only_is_ok() {
    let m = run(
        pf("v_enc", "valid", "encryption_only", &[]),
        "v_enc",
        "ok",
        "",
        "",
    );
    assert_tls13(&m, "v_enc");
    assert_certificate(&m, "v_enc", &certs().valid, 1.0);
    for phase in ["starttls", "tls"] {
        assert!(
            m.value(
                "mailflow_probe_phase_duration_seconds",
                &[("connector", "v_enc"), ("phase", phase)]
            )
            .is_some(),
            "phase {phase}: {}",
            m.lines_of("mailflow_probe_phase_duration_seconds")
        );
    }
}

#[test]
fn valid_certificate_certificate_validation_is_ok() {
    let m = run(
        pf("v_cert", "valid", "certificate_validation", &[]),
        "v_cert",
        "ok",
        "",
        "",
    );
    assert_tls13(&m, "v_cert");
    assert_certificate(&m, "v_cert", &certs().valid, 1.0);
}

#[test]
fn valid_certificate_domain_validation_is_ok() {
    let m = run(
        pf(
            "v_dom",
            "valid",
            "domain_validation",
            &[("tls_domain", "mx.mf.test")],
        ),
        "v_dom",
        "ok",
        "",
        "",
    );
    assert_tls13(&m, "v_dom");
    assert_certificate(&m, "v_dom", &certs().valid, 1.0);
}

#[test]
fn domain_validation_without_tls_domain_checks_the_host_name() {
    // Connected to by name (mx.mf.test, A 127.0.0.1), which the valid certificate carries.
    let port = postfix().port("valid").to_string();
    let ca = certs().ca_file.display().to_string();
    let entry = connector(
        "v_host",
        &[
            ("smart_hosts", &format!("[{}]", dns::MX_HOST)),
            ("port", &port),
            ("tls_settings", "domain_validation"),
            ("ca_file", &ca),
        ],
    );
    run(entry, "v_host", "ok", "", "");
}

#[test]
fn envelope_against_postfix_is_ok() {
    let m = run(
        pf(
            "v_env",
            "valid",
            "certificate_validation",
            &[
                ("mail_from", "probe@mf.test"),
                ("rcpt_to", "postmaster@partner.example"),
            ],
        ),
        "v_env",
        "ok",
        "",
        "",
    );
    for phase in ["mail", "rcpt"] {
        assert!(
            m.value(
                "mailflow_probe_phase_duration_seconds",
                &[("connector", "v_env"), ("phase", phase)]
            )
            .is_some(),
            "phase {phase}: {}",
            m.lines_of("mailflow_probe_phase_duration_seconds")
        );
    }
}

#[test]
fn postfix_rejecting_rcpt_is_other_rcpt_reply_5xx() {
    let m = run(
        pf(
            "pf_rcpt",
            "rcpt_reject",
            "encryption_only",
            &[
                ("mail_from", "probe@mf.test"),
                ("rcpt_to", "postmaster@partner.example"),
            ],
        ),
        "pf_rcpt",
        "other",
        "rcpt",
        "reply_5xx",
    );
    assert_eq!(m.failure("pf_rcpt").map(|f| f.reply), Some("554".into()));
}

#[test]
fn implicit_tls_is_ok() {
    let m = run(
        pf(
            "v_465",
            "implicit",
            "certificate_validation",
            &[("implicit_tls", "true")],
        ),
        "v_465",
        "ok",
        "",
        "",
    );
    assert_tls13(&m, "v_465");
    assert_certificate(&m, "v_465", &certs().valid, 1.0);
}

#[test]
fn postfix_without_starttls_under_encryption_only_is_starttls_not_offered() {
    run(
        pf("pf_notls", "notls", "encryption_only", &[]),
        "pf_notls",
        "4.4.317",
        "starttls",
        "starttls_not_offered",
    );
}

#[test]
fn postfix_without_starttls_under_opportunistic_is_ok() {
    run(
        pf("pf_notls_opp", "notls", "opportunistic", &[]),
        "pf_notls_opp",
        "ok",
        "",
        "",
    );
}

#[test]
fn tls10_only_server_is_tls_handshake() {
    run(
        pf("pf_tls10", "tls10", "encryption_only", &[]),
        "pf_tls10",
        "4.4.317",
        "tls",
        "tls_handshake",
    );
}

#[test]
fn expired_certificate_under_encryption_only_is_ok_but_not_valid() {
    let m = run(
        pf("x_enc", "expired", "encryption_only", &[]),
        "x_enc",
        "ok",
        "",
        "",
    );
    assert_certificate(&m, "x_enc", &certs().expired, 0.0);
}

#[test]
fn expired_certificate_under_opportunistic_is_ok_but_not_valid() {
    let m = run(
        pf("x_opp", "expired", "opportunistic", &[]),
        "x_opp",
        "ok",
        "",
        "",
    );
    assert_certificate(&m, "x_opp", &certs().expired, 0.0);
}

#[test]
fn expired_certificate_under_certificate_validation_is_cert_expired() {
    let m = run(
        pf("x_cert", "expired", "certificate_validation", &[]),
        "x_cert",
        "4.7.320",
        "tls",
        "cert_expired",
    );
    // Its expiry is still reported: that is when an administrator needs it.
    assert_certificate(&m, "x_cert", &certs().expired, 0.0);
}

#[test]
fn expired_certificate_under_domain_validation_is_cert_expired() {
    run(
        pf(
            "x_dom",
            "expired",
            "domain_validation",
            &[("tls_domain", "localhost")],
        ),
        "x_dom",
        "4.7.320",
        "tls",
        "cert_expired",
    );
}

#[test]
fn not_yet_valid_certificate_is_cert_not_yet_valid() {
    let m = run(
        pf("n_cert", "notyet", "certificate_validation", &[]),
        "n_cert",
        "4.7.320",
        "tls",
        "cert_not_yet_valid",
    );
    assert_certificate(&m, "n_cert", &certs().notyet, 0.0);
}

#[test]
fn wrong_name_under_domain_validation_is_cert_name_mismatch() {
    let m = run(
        pf(
            "w_dom",
            "wrongname",
            "domain_validation",
            &[("tls_domain", "mx.mf.test")],
        ),
        "w_dom",
        "4.7.320",
        "tls",
        "cert_name_mismatch",
    );
    assert_certificate(&m, "w_dom", &certs().wrongname, 0.0);
}

#[test]
fn wrong_name_without_tls_domain_is_checked_against_the_address() {
    run(
        pf("w_ip", "wrongname", "domain_validation", &[]),
        "w_ip",
        "4.7.320",
        "tls",
        "cert_name_mismatch",
    );
}

#[test]
fn wrong_name_under_certificate_validation_is_ok_but_not_valid() {
    let m = run(
        pf(
            "w_cert",
            "wrongname",
            "certificate_validation",
            &[("tls_domain", "mx.mf.test")],
        ),
        "w_cert",
        "ok",
        "",
        "",
    );
    assert_certificate(&m, "w_cert", &certs().wrongname, 0.0);
}

#[test]
fn other_ca_is_cert_untrusted() {
    let m = run(
        pf("u_cert", "untrusted", "certificate_validation", &[]),
        "u_cert",
        "4.7.320",
        "tls",
        "cert_untrusted",
    );
    assert_certificate(&m, "u_cert", &certs().untrusted, 0.0);
}

#[test]
fn self_signed_is_cert_untrusted() {
    run(
        pf(
            "s_dom",
            "selfsigned",
            "domain_validation",
            &[("tls_domain", "localhost")],
        ),
        "s_dom",
        "4.7.320",
        "tls",
        "cert_untrusted",
    );
}

#[test]
fn without_ca_file_the_test_ca_is_untrusted() {
    let port = postfix().port("valid").to_string();
    let entry = connector(
        "noca",
        &[
            ("smart_hosts", "[127.0.0.1]"),
            ("port", &port),
            ("tls_settings", "certificate_validation"),
        ],
    );
    run(entry, "noca", "4.7.320", "tls", "cert_untrusted");
}

#[test]
fn bad_signature_is_cert_invalid() {
    run(
        pf("b_cert", "badsig", "certificate_validation", &[]),
        "b_cert",
        "4.7.320",
        "tls",
        "cert_invalid",
    );
}

#[test]
fn untrusted_under_encryption_only_is_ok_but_not_valid() {
    let m = run(
        pf("u_enc", "untrusted", "encryption_only", &[]),
        "u_enc",
        "ok",
        "",
        "",
    );
    assert_certificate(&m, "u_enc", &certs().untrusted, 0.0);
}
