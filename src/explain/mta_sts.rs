//! MTA-STS explained: the policy domain's record and policy, the last fetch, why each host
//! matched the policy or not and what that means for delivery, and the TLS-RPT record.

use std::fmt::Write;
use std::time::SystemTime;

use super::format::{ago, date_of, millis};
use crate::probe::mta_sts::StsLookup;
use crate::probe::mta_sts::cache::CachedPolicy;
use crate::probe::mta_sts::check::{HostMatch, MtaStsReport};
use crate::probe::mta_sts::policy::Mode;
use crate::probe::mta_sts::record::StsPublication;
use crate::probe::mta_sts::tlsrpt::TlsRpt;

/// The MTA-STS policy of the connector's policy domain, what it said about each host, and the
/// TLS-RPT record.
pub(super) fn render_mta_sts(out: &mut String, sts: &MtaStsReport, now: SystemTime) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::explain::render;
    use crate::outcome::{Failure, MtaStsFailure, Phase};
    use crate::probe::{Report, TargetReport};
    use std::path::Path;
    use std::time::Duration;

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
}
