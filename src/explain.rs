//! A probe report explained to a person (the `probe` subcommand, `/explain`): what each phase
//! showed, what the code usually means and what to do, and whom to contact, by who runs the
//! other end of the connector (its `type`).

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::config::{ConnectorType, Route};
use crate::metrics::unix_seconds;
use crate::outcome::{
    Code, DaneFailure, Failure, MtaStsFailure, OldTlsVersion, TlsFailure, TlsRequired, code_of,
};
use crate::probe::dane_rule::TlsaAnswer;
use crate::probe::mta_sts::StsLookup;
use crate::probe::mta_sts::cache::CachedPolicy;
use crate::probe::mta_sts::check::{HostMatch, MtaStsReport};
use crate::probe::mta_sts::policy::Mode;
use crate::probe::mta_sts::record::StsPublication;
use crate::probe::mta_sts::tlsrpt::TlsRpt;
use crate::probe::tls::CertificateFacts;
use crate::probe::{DaneCheck, Report, TargetReport};

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
    if let Some(sts) = &report.mta_sts {
        render_mta_sts(&mut out, sts, now);
    }
    render_dane(&mut out, report);
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
        (Partner, Code::StarttlsNotSupported) => {
            "the partner organisation: their domain asks for TLS (DANE or MTA-STS) and their \
             server does not give it"
        }
        (
            Partner,
            Code::DaneCertificateExpired | Code::TlsaInvalid | Code::DaneCertificateHostMismatch,
        ) => {
            "the partner organisation: their certificate no longer matches the TLSA records \
             their domain publishes (DANE)"
        }
        (Partner, Code::DnssecInvalid) => {
            "the partner organisation: their domain's DNSSEC signatures do not validate"
        }
        (Partner, Code::MtaStsMxNotListed | Code::MtaStsCertificateInvalid) => {
            "the partner organisation: their MTA-STS policy and their mail servers disagree"
        }
        (OnPremises, Code::StarttlsNotSupported) => {
            "your on-premises mail team: your domain asks for TLS (DANE or MTA-STS) and the \
             server does not give it"
        }
        (
            OnPremises,
            Code::DaneCertificateExpired | Code::TlsaInvalid | Code::DaneCertificateHostMismatch,
        ) => {
            "your on-premises mail team and your DNS administrators: the server's certificate \
             and the TLSA records must be renewed together"
        }
        (OnPremises, Code::DnssecInvalid) => {
            "your DNS administrators: the zone's DNSSEC signatures or keys are broken"
        }
        (OnPremises, Code::MtaStsMxNotListed | Code::MtaStsCertificateInvalid) => {
            "your on-premises mail team and whoever publishes your MTA-STS policy: the policy \
             and the servers must agree"
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

/// DNSSEC and DANE, where the connector checks them: the status of each RRset, each host's TLSA
/// records, which one matched the served chain (or the record it would need), and what to
/// publish.
fn render_dane(out: &mut String, report: &Report) {
    if !report.targets.iter().any(|t| t.dane.is_some()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n  DANE (smtp_dane_mode {}):",
        report.connector.smtp_dane_mode.as_str()
    );
    if let (Route::Mx(domain), Some(status)) = (&report.connector.route, report.mx_dnssec) {
        let _ = writeln!(out, "    {domain} MX: DNSSEC {}", status.as_str());
    }
    let port = report.connector.port;
    for (index, target) in report.targets.iter().enumerate() {
        let Some(dane) = &target.dane else { continue };
        let first_of_host = !report.targets[..index]
            .iter()
            .any(|t| t.host == target.host);
        if first_of_host {
            let owner = format!("_{port}._tcp.{}.", target.host);
            let _ = writeln!(
                out,
                "    {} A/AAAA: DNSSEC {}",
                target.host,
                dane.host.status.as_str()
            );
            match &dane.host.tlsa {
                TlsaAnswer::NotAsked => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: not looked up (the host's records are not secure: DANE does not apply)"
                    );
                }
                TlsaAnswer::Failed(failure) => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: lookup failed ({}): senders that check DANE hold the mail",
                        failure.reason()
                    );
                }
                TlsaAnswer::Insecure => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: answer not signed (DANE does not apply)"
                    );
                }
                TlsaAnswer::Secure(records) if records.is_empty() => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: none published (secure denial: DANE does not apply)"
                    );
                }
                TlsaAnswer::Secure(records) => {
                    let _ = writeln!(out, "    {owner} TLSA (DNSSEC secure):");
                    for record in records.iter() {
                        let usable = if record.is_usable() {
                            "usable"
                        } else {
                            "unusable for SMTP (usage 0/1, or bad parameters)"
                        };
                        let _ = writeln!(out, "      {record}  {usable}");
                    }
                }
            }
        }
        if let Some(check) = &dane.check {
            render_dane_check(out, target, check, port);
        }
    }
}

/// How one address's chain fared against its host's TLSA records, and what to publish.
fn render_dane_check(out: &mut String, target: &TargetReport, check: &DaneCheck, port: u16) {
    let address = target.address.map(|a| a.to_string()).unwrap_or_default();
    let owner = format!("_{port}._tcp.{}.", target.host);
    match (&check.matched, &check.needed) {
        (Some(record), _) if check.broken_chain => {
            let _ = writeln!(
                out,
                "    {address}: the DANE-TA record {record} matches, but the chain does not lead from the leaf to it"
            );
        }
        (Some(record), _) => {
            let _ = writeln!(out, "    {address}: matched by {record}");
        }
        (None, Some(needed)) => {
            let _ = writeln!(
                out,
                "    {address}: no usable record matches the served certificate; publish\n      {owner} IN TLSA {needed}\n      (or serve the certificate the records name)"
            );
        }
        (None, None) => {
            let _ = writeln!(
                out,
                "    {address}: no usable record matches, and no leaf could be read"
            );
        }
    }
    if check.matched.is_some() && !check.rollover_ready {
        let _ = writeln!(
            out,
            "    {address}: rollover not ready: the next certificate renewal breaks DANE. Before it, publish the 3 1 1 record of the next key beside the current one, or a 2 1 1 record of the issuing CA"
        );
    }
}

/// The MTA-STS policy of the connector's policy domain, what it said about each host, and the
/// TLS-RPT record.
fn render_mta_sts(out: &mut String, sts: &MtaStsReport, now: SystemTime) {
    let _ = writeln!(
        out,
        "\n  MTA-STS, policy domain {} (looked up in {}):",
        sts.domain,
        millis(sts.elapsed)
    );
    let record = match &sts.discovery.record {
        StsLookup::Answer(StsPublication::Published(record)) => {
            format!("published, id {}", record.id)
        }
        StsLookup::Answer(StsPublication::NotPublished) => {
            "none published: the domain has no MTA-STS policy".to_owned()
        }
        StsLookup::Answer(StsPublication::Several) => {
            "several v=STSv1 records: as if none were published".to_owned()
        }
        StsLookup::Answer(StsPublication::Invalid(error)) => {
            format!("malformed ({error}): as if none were published")
        }
        StsLookup::Failed => "the lookup failed: a cached policy stays in force".to_owned(),
    };
    let _ = writeln!(out, "    _mta-sts.{} record: {record}", sts.domain);
    let status = &sts.discovery.status;
    match sts.discovery.policy() {
        Some(cached) => render_policy(out, cached, now),
        None => {
            let _ = writeln!(out, "    policy: absent (mail goes as without MTA-STS)");
        }
    }
    if let Some(attempt) = &status.last_fetch {
        let result = match &attempt.result {
            Ok(()) => "succeeded".to_owned(),
            Err(failure) => format!("failed: {failure}"),
        };
        let _ = writeln!(
            out,
            "    last fetch:  {} ({}) under id {}, {result}",
            date_of(attempt.at),
            ago(attempt.at, now),
            attempt.id
        );
    }
    if status.fetching {
        let _ = writeln!(
            out,
            "    a fetch is still running; the next probe will see its result"
        );
    }
    for host in &sts.hosts {
        render_host_match(out, host, sts.discovery.mode());
    }
    let tlsrpt = match &sts.tlsrpt {
        TlsRpt::Published(record) if record.reachable() => {
            format!("published, reports to {}", record.rua.join(", "))
        }
        TlsRpt::Published(record) => format!(
            "published, but no mailto: or https: address in rua ({})",
            record.rua.join(", ")
        ),
        TlsRpt::NotPublished => "none published".to_owned(),
        TlsRpt::Several => "several v=TLSRPTv1 records: as if none were published".to_owned(),
        TlsRpt::Invalid(error) => format!("malformed ({error})"),
        TlsRpt::LookupFailed => "the lookup failed".to_owned(),
    };
    let _ = writeln!(out, "    TLS-RPT (_smtp._tls.{}): {tlsrpt}", sts.domain);
}

/// The policy in force: mode, max_age, mx patterns, when and under which id it was fetched.
fn render_policy(out: &mut String, cached: &CachedPolicy, now: SystemTime) {
    let policy = &cached.policy;
    let mx: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "    policy:      mode {}, max_age {} s ({:.1} days), mx: {}",
        policy.mode,
        policy.max_age.as_secs(),
        policy.max_age.as_secs_f64() / 86_400.0,
        if mx.is_empty() {
            "(none)".to_owned()
        } else {
            mx.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "    fetched:     {} ({}) under id {}; expires {} ({})",
        date_of(cached.fetched_at),
        ago(cached.fetched_at, now),
        cached.id,
        date_of(cached.expires_at),
        ago(cached.expires_at, now)
    );
    if let Some(previous) = &cached.same_policy_as {
        let _ = writeln!(
            out,
            "    note: the record's id changed from {previous}, but the policy host still serves \
             the same policy (was the policy file updated?)"
        );
    }
}

/// Why `host` matched the policy or not, and what that means for delivery under `mode`.
fn render_host_match(out: &mut String, host: &HostMatch, mode: Option<Mode>) {
    let matched = match &host.pattern {
        Some(pattern) => format!("matches mx {pattern}"),
        None => "matches no mx pattern".to_owned(),
    };
    let consequence = match (host.dane_applies, mode, host.pattern.is_some()) {
        (true, _, _) => "DANE applies to it, so the policy does not",
        (false, Some(Mode::Enforce), true) => {
            "enforce: TLS and a certificate valid for the host are required"
        }
        (false, Some(Mode::Enforce), false) => {
            "enforce: sending servers refuse it (4.4.8), it was not contacted"
        }
        (false, Some(Mode::Testing), false) => {
            "testing: sending servers only report it and deliver anyway"
        }
        (false, Some(Mode::Testing | Mode::None) | None, _) => "nothing is enforced",
    };
    let _ = writeln!(out, "    host {}: {matched}; {consequence}", host.host);
}

/// `at` as an RFC 3339 date.
fn date_of(at: SystemTime) -> String {
    date(unix_seconds(at) as i64)
}

/// How far `at` is from `now`, in seconds, minutes, hours or days.
fn ago(at: SystemTime, now: SystemTime) -> String {
    let seconds = unix_seconds(at) as i64 - unix_seconds(now) as i64;
    let size = seconds.unsigned_abs();
    let span = match size {
        0..120 => format!("{size} s"),
        120..7_200 => format!("{} min", size / 60),
        7_200..172_800 => format!("{:.1} h", size as f64 / 3_600.0),
        _ => format!("{:.1} days", size as f64 / 86_400.0),
    };
    match seconds.signum() {
        0 => "now".to_owned(),
        1 => format!("in {span}"),
        _ => format!("{span} ago"),
    }
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
    use crate::outcome::{MtaStsFailure, Phase};
    use std::path::Path;

    /// A report of connector `c1` whose one address an `enforce` policy refused.
    fn sts_report(mta_sts: MtaStsReport) -> Report {
        let config = parse(
            "connectors:\n  - name: c1\n    use_mx_record: true\n    recipient_domains: [example.test]\n",
            Path::new("t.yml"),
        )
        .expect("config");
        let refused = Err(Failure::MtaSts(MtaStsFailure::MxNotInPolicy));
        Report {
            connector: config.connectors[0].clone(),
            outcome: refused,
            duration: Duration::from_millis(4),
            targets: vec![TargetReport {
                host: "deep.mx.example.test".into(),
                address: Some("192.0.2.1".parse().expect("ip")),
                outcome: refused,
                phases: vec![
                    (Phase::Dns, Duration::from_millis(1)),
                    (Phase::MtaSts, Duration::from_millis(3)),
                ],
                tls: None,
                last_reply: None,
                tls_fallback: None,
                dane: None,
            }],
            mta_sts: Some(mta_sts),
            mx_dnssec: None,
        }
    }

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
    fn the_policy_and_why_each_host_matched_are_explained() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let fetched = now - Duration::from_secs(2 * 3_600);
        let sts = MtaStsReport::fixture(
            Some("version: STSv1\nmode: enforce\nmax_age: 86400\nmx: *.example.test\n"),
            fetched,
            &["mx.example.test", "deep.mx.example.test"],
            &["v=TLSRPTv1; rua=mailto:tls@example.test"],
        );
        let text = render(&sts_report(sts), now);
        for expected in [
            "connector c1: 4.4.8 (MX host failed MTA-STS validation) in phase mta_sts, reason mx_not_in_policy",
            "MTA-STS, policy domain example.test",
            "_mta-sts.example.test record: published, id id2",
            "policy:      mode enforce, max_age 86400 s (1.0 days), mx: *.example.test",
            "fetched:     2023-11-14T20:13:20Z (2.0 h ago) under id id2; expires 2023-11-15T20:13:20Z (in 22.0 h)",
            "the record's id changed from id1, but the policy host still serves the same policy",
            "last fetch:  2023-11-14T20:13:20Z (2.0 h ago) under id id2, succeeded",
            "host mx.example.test: matches mx *.example.test; enforce: TLS and a certificate valid for the host are required",
            "host deep.mx.example.test: matches no mx pattern; enforce: sending servers refuse it (4.4.8), it was not contacted",
            "TLS-RPT (_smtp._tls.example.test): published, reports to mailto:tls@example.test",
            "mta_sts   3.0 ms",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_policy_that_cannot_be_fetched_is_explained_as_absent() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let sts = MtaStsReport::fixture(
            None,
            now - Duration::from_secs(30),
            &["mx.example.test"],
            &[],
        );
        let text = render(&sts_report(sts), now);
        for expected in [
            "policy: absent (mail goes as without MTA-STS)",
            "last fetch:  2023-11-14T22:12:50Z (30 s ago) under id id2, failed: the policy host answered status 404",
            "TLS-RPT (_smtp._tls.example.test): none published",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            !text.contains("host mx.example.test"),
            "no policy, no match:\n{text}"
        );
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
