//! A probe report explained to a person (the `probe` subcommand, `/explain`): what each phase
//! showed, what the code usually means and what to do, and whom to contact, by who runs the
//! other end of the connector (its `type`).

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::config::ConnectorType;
use crate::metrics::unix_seconds;
use crate::outcome::{Code, Failure, OldTlsVersion, TlsFailure, code_of};
use crate::probe::tls::CertificateFacts;
use crate::probe::{Report, TargetReport};

/// Renders `report`, probed at `now`, as plain text.
pub fn render(report: &Report, now: SystemTime) -> String {
    let mut out = String::new();
    let code = code_of(&report.outcome);
    let _ = writeln!(
        out,
        "connector {}: {} ({}){}",
        report.connector.name,
        code,
        code.title(),
        match &report.outcome {
            Ok(()) => String::new(),
            Err(f) => format!(" in phase {}, reason {}", f.phase(), f.reason()),
        }
    );
    let connector_type = report.connector.connector_type;
    let _ = writeln!(
        out,
        "owner: {} (type {})",
        owner(connector_type),
        connector_type.as_str()
    );
    let _ = writeln!(out, "probe took {}", millis(report.duration));
    for target in &report.targets {
        render_target(&mut out, target, now);
    }
    let _ = writeln!(out);
    if code == Code::Ok {
        let _ = writeln!(out, "{}", code.advice());
    } else {
        let _ = writeln!(out, "What {code} usually means and what to do:");
        let _ = writeln!(out, "  {}", code.advice());
    }
    if let Some(contact) = whom_to_contact(connector_type, code) {
        let _ = writeln!(out, "Whom to contact: {contact}.");
    }
    out
}

/// Who runs the other end of a connector of `connector_type`, for people.
pub fn owner(connector_type: ConnectorType) -> &'static str {
    match connector_type {
        ConnectorType::OnPremises => "your organisation's on-premises servers",
        ConnectorType::Partner => "a partner organisation",
    }
}

/// Whom to contact about `code` on a connector of `connector_type`; `None` while mail flows.
pub fn whom_to_contact(connector_type: ConnectorType, code: Code) -> Option<&'static str> {
    use ConnectorType::{OnPremises, Partner};
    Some(match (connector_type, code) {
        (_, Code::Ok) => return None,
        (Partner, Code::DnsQueryFailed) => {
            "the partner organisation: the DNS records of their domain are theirs to fix"
        }
        (Partner, Code::ConnectionTimedOut | Code::ConnectionRefused) => {
            "the partner organisation: their mail servers or firewall do not take your \
             connections (check your own outbound network first if other connectors fail too)"
        }
        (Partner, Code::CannotConnect) => {
            "the partner organisation: their server refuses the session, or its STARTTLS or TLS"
        }
        (Partner, Code::ConnectionClosedAbruptly) => {
            "the partner organisation: their server or a firewall in front of it breaks the \
             session off (your network team if other connectors fail the same way)"
        }
        (Partner, Code::CertificateValidationFailed) => {
            "the partner organisation: their server's certificate; or whoever set this \
             connector's TLS settings, if those ask more than the partner ever offered"
        }
        (Partner, Code::Other) => {
            "the partner organisation if their server rejected the envelope or broke the \
             protocol; whoever set up this connector if its sender or recipient is wrong"
        }
        (OnPremises, Code::DnsQueryFailed) => {
            "your DNS administrators: the names of your on-premises servers do not resolve"
        }
        (OnPremises, Code::ConnectionTimedOut | Code::ConnectionRefused) => {
            "your on-premises mail team and your network or firewall team: the server or \
             port 25 is not reachable from the sending side"
        }
        (OnPremises, Code::CannotConnect) => {
            "your on-premises mail team: the server's SMTP service or its STARTTLS and TLS \
             settings"
        }
        (OnPremises, Code::ConnectionClosedAbruptly) => {
            "your on-premises mail team, and your network team for firewalls that inspect SMTP"
        }
        (OnPremises, Code::CertificateValidationFailed) => {
            "your on-premises mail team: the certificate of the on-premises server"
        }
        (OnPremises, Code::Other) => {
            "your on-premises mail team: the server's reply says what it refused"
        }
    })
}

fn render_target(out: &mut String, target: &TargetReport, now: SystemTime) {
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
    if let Err(Failure::Tls(TlsFailure::Version(offered))) = &target.outcome {
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

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn relative_days(seconds: i64) -> String {
    let days = seconds as f64 / 86_400.0;
    if seconds >= 0 {
        format!("in {days:.1} days")
    } else {
        format!("{:.1} days ago", -days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::outcome::{OldTlsVersion, Phase};
    use std::path::Path;

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
            }],
        }
    }

    #[test]
    fn says_which_version_a_server_offered() {
        let old = TlsFailure::Version(Some(OldTlsVersion::Tls10));
        let text = render(&report(Err(Failure::Tls(old)), None), SystemTime::now());
        assert!(text.contains("4.4.317"), "{text}");
        assert!(text.contains("(tls: tls_version)"), "{text}");
        assert!(text.contains("the server offered TLS 1.0"), "{text}");
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

    #[test]
    fn every_failure_names_whom_to_contact_by_who_runs_the_connector() {
        for code in Code::ALL {
            let partner = whom_to_contact(ConnectorType::Partner, code);
            let on_premises = whom_to_contact(ConnectorType::OnPremises, code);
            if code == Code::Ok {
                assert_eq!((partner, on_premises), (None, None));
                continue;
            }
            let partner = partner.expect("partner");
            let on_premises = on_premises.expect("on-premises");
            assert!(partner.starts_with("the partner organisation"), "{code}");
            assert!(on_premises.starts_with("your "), "{code}");
        }
    }
}
