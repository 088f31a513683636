//! STARTTLS, implicit TLS and certificate checks against a real Postfix, under every
//! `tls_settings` value.

use crate::common::exporter::{connector, probe_all, tail};
use crate::common::metrics::Metrics;
use crate::system::certs::{Leaf, certs};
use crate::system::dnsmasq::{self, dns};
use crate::system::postfix::{postfix, postfix_connector};

/// One connector of a table, and what its probe must show.
struct Case {
    name: &'static str,
    entry: String,
    /// Code, phase and reason.
    outcome: (&'static str, &'static str, &'static str),
    /// TLS 1.3 was negotiated (`mailflow_tls_info`).
    tls13: bool,
    /// The certificate series describe this leaf, with this `mailflow_certificate_valid`.
    certificate: Option<(&'static Leaf, f64)>,
}

impl Case {
    /// A connector to Postfix listener `listener` (see `postfix_connector`) expecting `outcome`.
    fn pf(
        name: &'static str,
        listener: &str,
        tls: &str,
        extra: &[(&str, &str)],
        outcome: (&'static str, &'static str, &'static str),
    ) -> Case {
        Case::entry(name, postfix_connector(name, listener, tls, extra), outcome)
    }

    /// Any connector entry expecting `outcome`.
    fn entry(
        name: &'static str,
        entry: String,
        outcome: (&'static str, &'static str, &'static str),
    ) -> Case {
        Case {
            name,
            entry,
            outcome,
            tls13: false,
            certificate: None,
        }
    }

    fn tls13(self) -> Case {
        Case {
            tls13: true,
            ..self
        }
    }

    fn certificate(self, leaf: &'static Leaf, valid: f64) -> Case {
        Case {
            certificate: Some((leaf, valid)),
            ..self
        }
    }
}

const OK: (&str, &str, &str) = ("ok", "", "");

/// Probe every case with one exporter (`GET /probe` probes them concurrently) and check each.
#[track_caller]
fn run(cases: Vec<Case>) -> Metrics {
    let expected: Vec<_> = cases
        .iter()
        .map(|c| (c.entry.clone(), c.name, c.outcome))
        .collect();
    let (_e, m) = probe_all(Some(&dns().nameserver()), &expected);
    for case in &cases {
        if case.tls13 {
            if !m.text.contains("mailflow_tls_info") {
                eprintln!("(no TLS) Postfix log tail:\n{}", tail(&postfix().log(), 20));
            }
            assert_tls13(&m, case.name);
        }
        if let Some((leaf, valid)) = case.certificate {
            assert_certificate(&m, case.name, leaf, valid);
        }
    }
    m
}

/// The phase durations of `name` include every one of `phases`.
#[track_caller]
fn assert_phases(m: &Metrics, name: &str, phases: &[&str]) {
    for phase in phases {
        assert!(
            m.value(
                "mailflow_probe_phase_duration_seconds",
                &[("connector", name), ("phase", phase)]
            )
            .is_some(),
            "{name}: phase {phase}: {}",
            m.lines_of("mailflow_probe_phase_duration_seconds")
        );
    }
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
fn valid_certificate_under_every_tls_setting() {
    let valid = &certs().valid;
    // Connected to by name (mx.mf.test, A 127.0.0.1), which the valid certificate carries:
    // domain_validation without tls_domain checks the host name.
    let port = postfix().port("valid").to_string();
    let ca = certs().ca_file.display().to_string();
    let by_name = connector(
        "v_host",
        &[
            ("smart_hosts", &format!("[{}]", dnsmasq::MX_HOST)),
            ("port", &port),
            ("tls_settings", "domain_validation"),
            ("ca_file", &ca),
        ],
    );
    let m = run(vec![
        Case::pf("v_none", "valid", "none", &[], OK),
        Case::pf("v_opp", "valid", "opportunistic", &[], OK)
            .tls13()
            .certificate(valid, 1.0),
        Case::pf("v_enc", "valid", "encryption_only", &[], OK)
            .tls13()
            .certificate(valid, 1.0),
        Case::pf("v_cert", "valid", "certificate_validation", &[], OK)
            .tls13()
            .certificate(valid, 1.0),
        Case::pf(
            "v_dom",
            "valid",
            "domain_validation",
            &[("tls_domain", "mx.mf.test")],
            OK,
        )
        .tls13()
        .certificate(valid, 1.0),
        Case::entry("v_host", by_name, OK),
        // Implicit TLS (port 465 style).
        Case::pf(
            "v_465",
            "implicit",
            "certificate_validation",
            &[("implicit_tls", "true")],
            OK,
        )
        .tls13()
        .certificate(valid, 1.0),
    ]);
    assert!(
        m.all("mailflow_tls_info", &[("connector", "v_none")])
            .is_empty(),
        "none never starts TLS"
    );
    assert_phases(&m, "v_enc", &["starttls", "tls"]);
}

#[test]
fn envelope_against_postfix() {
    let envelope = [
        ("mail_from", "probe@mf.test"),
        ("rcpt_to", "postmaster@partner.example"),
    ];
    let m = run(vec![
        Case::pf("v_env", "valid", "certificate_validation", &envelope, OK),
        // A Postfix rejecting RCPT TO: other, rcpt, reply_5xx.
        Case::pf(
            "pf_rcpt",
            "rcpt_reject",
            "encryption_only",
            &envelope,
            ("other", "rcpt", "reply_5xx"),
        ),
    ]);
    assert_phases(&m, "v_env", &["mail", "rcpt"]);
    assert_eq!(m.failure("pf_rcpt").map(|f| f.reply), Some("554".into()));
}

#[test]
fn tls_required_but_not_available() {
    let m = run(vec![
        // No STARTTLS: fatal when TLS is required, fine when it is opportunistic.
        Case::pf(
            "pf_notls",
            "notls",
            "encryption_only",
            &[],
            ("4.4.317", "starttls", "starttls_not_offered"),
        ),
        Case::pf("pf_notls_opp", "notls", "opportunistic", &[], OK),
        // A server that only speaks TLS 1.0: no version in common where TLS is required...
        Case::pf(
            "pf_tls10",
            "tls10",
            "encryption_only",
            &[],
            ("4.4.317", "tls", "tls_version"),
        ),
        // ...and a plain-text fallback that delivers under opportunistic TLS.
        Case::pf("pf_tls10_opp", "tls10", "opportunistic", &[], OK),
    ]);
    let at = |name| [("connector", name), ("address", "127.0.0.1")];
    assert_eq!(
        m.value("mailflow_tls_fallback", &at("pf_tls10_opp")),
        Some(1.0),
        "{}",
        m.lines_of("mailflow_tls")
    );
    assert!(m.all("mailflow_tls_info", &at("pf_tls10_opp")).is_empty());
    // Where TLS works or is not offered, there is no fallback.
    for name in ["pf_notls_opp", "pf_tls10"] {
        assert!(
            m.all("mailflow_tls_fallback", &at(name)).is_empty(),
            "{name}: {}",
            m.lines_of("mailflow_tls")
        );
    }
}

const CERT_EXPIRED: (&str, &str, &str) = ("4.7.320", "tls", "cert_expired");
const CERT_NAME_MISMATCH: (&str, &str, &str) = ("4.7.320", "tls", "cert_name_mismatch");
const CERT_UNTRUSTED: (&str, &str, &str) = ("4.7.320", "tls", "cert_untrusted");

#[test]
fn certificate_dates() {
    let c = certs();
    run(vec![
        // An expired certificate fails only the settings that validate; its expiry is reported
        // under every setting (under certificate_validation that is when an administrator needs
        // it).
        Case::pf("x_enc", "expired", "encryption_only", &[], OK).certificate(&c.expired, 0.0),
        Case::pf("x_opp", "expired", "opportunistic", &[], OK).certificate(&c.expired, 0.0),
        Case::pf(
            "x_cert",
            "expired",
            "certificate_validation",
            &[],
            CERT_EXPIRED,
        )
        .certificate(&c.expired, 0.0),
        Case::pf(
            "x_dom",
            "expired",
            "domain_validation",
            &[("tls_domain", "localhost")],
            CERT_EXPIRED,
        ),
        Case::pf(
            "n_cert",
            "notyet",
            "certificate_validation",
            &[],
            ("4.7.320", "tls", "cert_not_yet_valid"),
        )
        .certificate(&c.notyet, 0.0),
    ]);
}

#[test]
fn certificate_names() {
    let c = certs();
    run(vec![
        Case::pf(
            "w_dom",
            "wrongname",
            "domain_validation",
            &[("tls_domain", "mx.mf.test")],
            CERT_NAME_MISMATCH,
        )
        .certificate(&c.wrongname, 0.0),
        // Without tls_domain, the name is checked against the address connected to.
        Case::pf(
            "w_ip",
            "wrongname",
            "domain_validation",
            &[],
            CERT_NAME_MISMATCH,
        ),
        // certificate_validation does not check the name, but the certificate is still not
        // fully valid.
        Case::pf(
            "w_cert",
            "wrongname",
            "certificate_validation",
            &[("tls_domain", "mx.mf.test")],
            OK,
        )
        .certificate(&c.wrongname, 0.0),
    ]);
}

#[test]
fn certificate_trust_and_signature() {
    let c = certs();
    let port = postfix().port("valid").to_string();
    // Without ca_file, the test CA is untrusted.
    let no_ca_file = connector(
        "noca",
        &[
            ("smart_hosts", "[127.0.0.1]"),
            ("port", &port),
            ("tls_settings", "certificate_validation"),
        ],
    );
    run(vec![
        Case::pf(
            "u_cert",
            "untrusted",
            "certificate_validation",
            &[],
            CERT_UNTRUSTED,
        )
        .certificate(&c.untrusted, 0.0),
        Case::pf(
            "s_dom",
            "selfsigned",
            "domain_validation",
            &[("tls_domain", "localhost")],
            CERT_UNTRUSTED,
        ),
        // Self-signed with the CA flag, as `openssl req -x509` makes it: untrusted too.
        Case::pf(
            "sca_cert",
            "selfsigned_ca",
            "certificate_validation",
            &[],
            CERT_UNTRUSTED,
        )
        .certificate(&c.selfsigned_ca, 0.0),
        Case::pf(
            "sca_dom",
            "selfsigned_ca",
            "domain_validation",
            &[("tls_domain", "mx.mf.test")],
            CERT_UNTRUSTED,
        ),
        Case::pf("sca_enc", "selfsigned_ca", "encryption_only", &[], OK)
            .certificate(&c.selfsigned_ca, 0.0),
        Case::entry("noca", no_ca_file, CERT_UNTRUSTED),
        Case::pf(
            "b_cert",
            "badsig",
            "certificate_validation",
            &[],
            ("4.7.320", "tls", "cert_invalid"),
        ),
        Case::pf("u_enc", "untrusted", "encryption_only", &[], OK).certificate(&c.untrusted, 0.0),
    ]);
}
