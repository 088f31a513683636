//! One address explained: its code and failure, the time of each phase, the last reply, a TLS
//! fallback or version mismatch, and what TLS and the certificate showed.

use std::fmt::Write;
use std::time::SystemTime;

use super::format::{date, millis, relative_days};
use crate::metrics::unix_seconds;
use crate::outcome::{
    DaneFailure, Failure, MtaStsFailure, OldTlsVersion, TlsFailure, TlsRequired, code_of,
};
use crate::probe::TargetReport;
use crate::probe::tls::CertificateFacts;

/// One address: its code, its failure, its phases and what TLS showed.
pub(super) fn render_target(out: &mut String, target: &TargetReport, now: SystemTime) {
    let address = target
        .address
        .map_or_else(|| "(no address)".to_owned(), |a| a.to_string());
    let code = code_of(&target.outcome);
    let _ = write!(out, "\n  {} {}: {}", target.host, address, code);
    match &target.outcome {
        Ok(()) => {
            let _ = writeln!(out);
        }
        Err(f) => {
            let reply = f
                .reply()
                .map(|r| format!(", reply {r}"))
                .unwrap_or_default();
            let _ = writeln!(out, " ({}: {}{reply})", f.phase(), f.reason());
        }
    }
    for (phase, elapsed) in &target.phases {
        let _ = writeln!(out, "    {:<9} {}", phase.as_str(), millis(*elapsed));
    }
    if let Some(reply) = &target.last_reply {
        let _ = writeln!(out, "    last reply: {reply}");
    }
    if let Err(
        Failure::Tls(TlsFailure::Version(offered))
        | Failure::MtaSts(MtaStsFailure::TlsRequired(TlsRequired::Version(offered)))
        | Failure::Dane(DaneFailure::TlsRequired(TlsRequired::Version(offered))),
    ) = &target.outcome
    {
        let _ = writeln!(out, "    tls versions: {}", version_mismatch(*offered));
    }
    if let Some(failure) = target.tls_fallback {
        let _ = writeln!(
            out,
            "    tls fallback: the TLS handshake failed ({}); the exchange was held again \
             without TLS over a new connection, as a sending server does under opportunistic TLS",
            failure.reason()
        );
        if let TlsFailure::Version(offered) = failure {
            let _ = writeln!(out, "    tls versions: {}", version_mismatch(offered));
        }
    }
    if let Some(tls) = &target.tls {
        let _ = writeln!(out, "    tls: {} {}", tls.version, tls.cipher);
        if let Some(certificate) = &tls.certificate {
            render_certificate(out, certificate, now);
        }
    }
}

/// What a server that shares no TLS version with the probe offered, for people.
fn version_mismatch(offered: Option<OldTlsVersion>) -> String {
    let speaks = "the probe, like Exchange Online, speaks only TLS 1.2 and 1.3";
    match offered {
        Some(version) => format!("the server offered {version}; {speaks}"),
        None => format!("the server refused TLS 1.2 and 1.3; {speaks}"),
    }
}

/// The server's certificate: names, issuer, expiry and whether full validation passes.
fn render_certificate(out: &mut String, certificate: &CertificateFacts, now: SystemTime) {
    let now = unix_seconds(now) as i64;
    let _ = writeln!(out, "    certificate subject: {}", certificate.subject);
    let _ = writeln!(out, "    certificate issuer:  {}", certificate.issuer);
    let _ = writeln!(out, "    certificate serial:  {}", certificate.serial);
    if !certificate.names.is_empty() {
        let _ = writeln!(
            out,
            "    certificate names:   {}",
            certificate.names.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "    expires:             {} ({})",
        date(certificate.not_after),
        relative_days(certificate.not_after - now)
    );
    if certificate.chain_not_after < certificate.not_after {
        let _ = writeln!(
            out,
            "    chain expires:       {} ({})",
            date(certificate.chain_not_after),
            relative_days(certificate.chain_not_after - now)
        );
    }
    let _ = writeln!(
        out,
        "    full validation:     {}",
        match certificate.finding {
            None => "passes (chain and name)".to_owned(),
            Some(finding) => format!("fails: {}", finding.reason()),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::explain::render;
    use crate::outcome::Phase;
    use crate::probe::Report;
    use std::path::Path;
    use std::time::Duration;

    /// A report of connector `c` whose one address ended in `outcome` after `tls_fallback`.
    fn report(outcome: crate::outcome::Outcome, tls_fallback: Option<TlsFailure>) -> Report {
        let yaml = "connectors:\n  - name: c\n    smart_hosts: [127.0.0.1]\n";
        let config = parse(yaml, Path::new("t.yml")).expect("config");
        Report {
            connector: config.connectors[0].clone(),
            outcome,
            duration: Duration::from_millis(3),
            targets: vec![TargetReport {
                host: "127.0.0.1".into(),
                address: Some("127.0.0.1".parse().expect("ip")),
                outcome,
                phases: vec![(Phase::Tls, Duration::from_millis(1))],
                tls: None,
                last_reply: None,
                tls_fallback,
                dane: None,
            }],
            mta_sts: None,
            mx_dnssec: None,
        }
    }

    #[test]
    fn says_which_version_a_server_offered() {
        let old = TlsFailure::Version(Some(OldTlsVersion::Tls10));
        let text = render(&report(Err(Failure::Tls(old)), None), SystemTime::now());
        assert!(text.contains("4.4.317"), "{text}");
        assert!(text.contains("(tls: tls_version)"), "{text}");
        assert!(text.contains("the server offered TLS 1.0"), "{text}");
        let required = Failure::MtaSts(MtaStsFailure::TlsRequired(TlsRequired::Version(Some(
            OldTlsVersion::Tls11,
        ))));
        let text = render(&report(Err(required), None), SystemTime::now());
        assert!(text.contains("4.7.321"), "{text}");
        assert!(text.contains("the server offered TLS 1.1"), "{text}");
        let refused = TlsFailure::Version(None);
        let text = render(&report(Err(Failure::Tls(refused)), None), SystemTime::now());
        assert!(
            text.contains("the server refused TLS 1.2 and 1.3"),
            "{text}"
        );
    }

    #[test]
    fn says_when_an_address_delivered_after_falling_back_to_plain_text() {
        let old = TlsFailure::Version(Some(OldTlsVersion::Tls11));
        let text = render(&report(Ok(()), Some(old)), SystemTime::now());
        assert!(text.starts_with("connector c: ok"), "{text}");
        assert!(
            text.contains("tls fallback: the TLS handshake failed (tls_version)"),
            "{text}"
        );
        assert!(text.contains("the server offered TLS 1.1"), "{text}");
        let text = render(&report(Ok(()), None), SystemTime::now());
        assert!(!text.contains("fallback"), "{text}");
    }
}
