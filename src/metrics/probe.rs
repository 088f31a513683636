//! The series of one `/probe` scrape, from the probes it ran and the connectors' state right after
//! them. As in the blackbox exporter, a scrape writes the series of the probes it ran and only
//! those: no series of a connector outlives its probe. They are streamed straight into the
//! exposition text, family after family, so that a scrape of thousands of connectors costs the
//! text and little else.

use std::sync::Arc;

use crate::config::Route;
use crate::exporter::FinishedProbe;
use crate::outcome::{Code, code_of};
use crate::postfix::QueueSummary;
use crate::probe::TargetReport;
use crate::probe::dnssec::DnssecStatus;
use crate::probe::mta_sts::check::MtaStsReport;
use crate::probe::mta_sts::policy::Mode;
use crate::state::unix_seconds;

use super::labels::{
    AddressLabels, CertificateLabels, ConnectorCodeLabels, ConnectorHostLabels, ConnectorLabels,
    ConnectorPhaseLabels, DnssecStatusLabels, FailureLabels, PolicyModeLabels, TargetCodeLabels,
    TargetLabels, TlsLabels, TlsaRecordLabels, Usability,
};
use super::postfix::write_queue;
use super::text::{Exposition, Family, Format, flag};

const PROBE_SUCCESS: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_probe_success",
    "1 if the connector delivered (code ok)",
);
const PROBE_STATUS: Family<ConnectorCodeLabels<'static>> = Family::gauge(
    "mailflow_probe_status",
    "The connector's code: one series per code, exactly one is 1",
);
const PROBE_FAILURE_INFO: Family<FailureLabels<'static>> = Family::gauge(
    "mailflow_probe_failure_info",
    "1 while the connector fails, with the code, phase, reason and server reply code",
);
const PROBE_DURATION: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_probe_duration_seconds",
    "How long the whole probe took",
);
const PROBE_PHASE_DURATION: Family<ConnectorPhaseLabels<'static>> = Family::gauge(
    "mailflow_probe_phase_duration_seconds",
    "How long each phase took, on the preferred delivering (else preferred) address",
);
const TARGET_SUCCESS: Family<TargetLabels<'static>> =
    Family::gauge("mailflow_target_success", "1 if this address delivered");
const TARGET_STATUS: Family<TargetCodeLabels<'static>> = Family::gauge(
    "mailflow_target_status",
    "The address's own code: one series per code, exactly one is 1",
);
const TLS_INFO: Family<TlsLabels<'static>> =
    Family::gauge("mailflow_tls_info", "1 where TLS was negotiated");
const TLS_FALLBACK: Family<AddressLabels<'static>> = Family::gauge(
    "mailflow_tls_fallback",
    "1 where the TLS handshake failed under opportunistic and the exchange completed without TLS",
);
const CERTIFICATE_NOT_AFTER: Family<CertificateLabels<'static>> = Family::gauge(
    "mailflow_certificate_not_after_timestamp_seconds",
    "When the server's leaf certificate expires",
);
const CERTIFICATE_CHAIN_NOT_AFTER: Family<AddressLabels<'static>> = Family::gauge(
    "mailflow_certificate_chain_not_after_timestamp_seconds",
    "The earliest expiry in the presented chain",
);
const CERTIFICATE_VALID: Family<AddressLabels<'static>> = Family::gauge(
    "mailflow_certificate_valid",
    "1 if the certificate passes full validation (chain and name), enforced or not",
);
const MTA_STS_POLICY_MODE: Family<PolicyModeLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_mode",
    "The MTA-STS policy of the connector's policy domain: one series per mode, exactly one is 1",
);
const MTA_STS_FETCH_SUCCESS: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_fetch_success",
    "1 if the last fetch of the MTA-STS policy succeeded",
);
const MTA_STS_EXPIRY: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_expiry_timestamp_seconds",
    "When the cached MTA-STS policy expires (fetch time + max_age)",
);
const MTA_STS_MAX_AGE: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_max_age_seconds",
    "The max_age of the MTA-STS policy in force",
);
const MTA_STS_SAME_AS_PREVIOUS_ID: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_same_as_previous_id",
    "1 if the _mta-sts record announced a new id but the policy host still serves the policy of the previous id",
);
const MTA_STS_MX_MATCH: Family<ConnectorHostLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_mx_match",
    "1 if the host matches an mx pattern of the MTA-STS policy, 0 if none",
);
const TLSRPT_PRESENT: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_tlsrpt_record_present",
    "1 if the policy domain publishes a valid v=TLSRPTv1 record",
);
const DNSSEC_STATUS: Family<DnssecStatusLabels<'static>> = Family::gauge(
    "mailflow_dnssec_status",
    "DNSSEC status of the host's address records (for an MX connector, of its MX RRset under the domain): one series per status, exactly one is 1",
);
const DANE_TLSA_RECORDS: Family<TlsaRecordLabels<'static>> = Family::gauge(
    "mailflow_dane_tlsa_records",
    "TLSA records at _PORT._tcp.HOST, usable for SMTP or not; present where the TLSA answer is secure",
);
const DANE_MATCH: Family<TargetLabels<'static>> = Family::gauge(
    "mailflow_dane_match",
    "1 if a usable TLSA record matches the chain the address presented, 0 if none does",
);
const DANE_ROLLOVER_READY: Family<ConnectorHostLabels<'static>> = Family::gauge(
    "mailflow_dane_rollover_ready",
    "1 if a certificate renewal would not break DANE: a DANE-TA match, or a pre-published next DANE-EE key",
);
const PROBES: Family<ConnectorLabels<'static>> = Family::counter("mailflow_probes", "Probes run");
const PROBE_FAILURES: Family<ConnectorCodeLabels<'static>> =
    Family::counter("mailflow_probe_failures", "Failed probes, by code");
const QUEUE_AGE: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_queue_age_seconds",
    "Age of the oldest message that would be queued: time since the failure streak began",
);
const QUEUE_EXPIRY: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_queue_expiry_seconds",
    "The retry window after which queued mail bounces",
);
const LAST_SUCCESS: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_last_success_timestamp_seconds",
    "When the connector last delivered",
);

/// The probes of one scrape, to be written as metrics.
pub struct ProbeMetrics<'a> {
    /// The probes, in the order their series are written.
    probes: &'a [Arc<FinishedProbe>],
    /// The Postfix queue, counted per connector, when it is read.
    queue: Option<&'a QueueSummary>,
}

impl<'a> ProbeMetrics<'a> {
    /// The series of `probes`, with the Postfix queue series of the probed connectors when a
    /// `queue` reading is given.
    pub fn new(probes: &'a [Arc<FinishedProbe>], queue: Option<&'a QueueSummary>) -> Self {
        ProbeMetrics { probes, queue }
    }

    /// The exposition, in `format`.
    pub fn encode(&self, format: Format) -> String {
        // About 4 KiB per connector with TLS; growing the string is cheap anyway.
        let mut exposition = Exposition::new(format, 4096 * self.probes.len());
        self.write_outcomes(&mut exposition);
        self.write_targets(&mut exposition);
        self.write_certificates(&mut exposition);
        self.write_mta_sts(&mut exposition);
        self.write_dane(&mut exposition);
        self.write_history(&mut exposition);
        if let Some(summary) = self.queue {
            let connectors = self.probes.iter().map(|p| name(p));
            write_queue(&mut exposition, summary, connectors);
        }
        exposition.finish()
    }

    fn write_outcomes(&self, exposition: &mut Exposition) {
        let mut success = exposition.family(&PROBE_SUCCESS);
        for p in self.probes {
            success.sample(connector(p), flag(p.report.outcome.is_ok()));
        }
        let mut status = exposition.family(&PROBE_STATUS);
        for p in self.probes {
            let code = code_of(&p.report.outcome);
            for each in Code::ALL {
                let labels = ConnectorCodeLabels {
                    connector: name(p),
                    code: each,
                };
                status.sample(labels, flag(each == code));
            }
        }
        let mut failure_info = exposition.family(&PROBE_FAILURE_INFO);
        for p in self.probes {
            if let Err(failure) = &p.report.outcome {
                let reply = failure.reply().map(|r| r.to_string()).unwrap_or_default();
                let labels = FailureLabels {
                    connector: name(p),
                    code: failure.code(),
                    phase: failure.phase(),
                    reason: failure.reason().as_str(),
                    reply: &reply,
                };
                failure_info.sample(labels, 1.0);
            }
        }
        let mut duration = exposition.family(&PROBE_DURATION);
        for p in self.probes {
            duration.sample(connector(p), p.report.duration.as_secs_f64());
        }
        let mut phase_duration = exposition.family(&PROBE_PHASE_DURATION);
        for p in self.probes {
            for (phase, elapsed) in p.report.representative().map_or(&[][..], |t| &t.phases) {
                let labels = ConnectorPhaseLabels {
                    connector: name(p),
                    phase: *phase,
                };
                phase_duration.sample(labels, elapsed.as_secs_f64());
            }
        }
    }

    fn write_targets(&self, exposition: &mut Exposition) {
        let mut success = exposition.family(&TARGET_SUCCESS);
        self.each_target(|p, t, address| {
            let labels = TargetLabels {
                connector: name(p),
                host: &t.host,
                address,
            };
            success.sample(labels, flag(t.outcome.is_ok()));
        });
        let mut status = exposition.family(&TARGET_STATUS);
        self.each_target(|p, t, address| {
            let code = code_of(&t.outcome);
            for each in Code::ALL {
                let labels = TargetCodeLabels {
                    connector: name(p),
                    host: &t.host,
                    address,
                    code: each,
                };
                status.sample(labels, flag(each == code));
            }
        });
        let mut tls_info = exposition.family(&TLS_INFO);
        self.each_target(|p, t, address| {
            if let Some(tls) = &t.tls {
                let labels = TlsLabels {
                    connector: name(p),
                    address,
                    version: tls.version,
                    cipher: tls.cipher,
                };
                tls_info.sample(labels, 1.0);
            }
        });
        // Like mailflow_tls_info, only where it is 1: an address shows one or the other when its
        // STARTTLS was answered under opportunistic TLS.
        let mut tls_fallback = exposition.family(&TLS_FALLBACK);
        self.each_target(|p, t, address| {
            if t.tls_fallback.is_some() && t.outcome.is_ok() {
                let labels = AddressLabels {
                    connector: name(p),
                    address,
                };
                tls_fallback.sample(labels, 1.0);
            }
        });
    }

    fn write_certificates(&self, exposition: &mut Exposition) {
        let mut not_after = exposition.family(&CERTIFICATE_NOT_AFTER);
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                let labels = CertificateLabels {
                    connector: name(p),
                    address,
                    subject: &c.subject,
                    issuer: &c.issuer,
                    serial: &c.serial,
                };
                not_after.sample(labels, c.not_after as f64);
            }
        });
        let mut chain_not_after = exposition.family(&CERTIFICATE_CHAIN_NOT_AFTER);
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                let labels = AddressLabels {
                    connector: name(p),
                    address,
                };
                chain_not_after.sample(labels, c.chain_not_after as f64);
            }
        });
        let mut valid = exposition.family(&CERTIFICATE_VALID);
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                let labels = AddressLabels {
                    connector: name(p),
                    address,
                };
                valid.sample(labels, flag(c.valid()));
            }
        });
    }

    /// The MTA-STS and TLS-RPT series of the probes that looked them up.
    fn write_mta_sts(&self, exposition: &mut Exposition) {
        let mut mode = exposition.family(&MTA_STS_POLICY_MODE);
        self.each_mta_sts(|p, sts| {
            let current = sts.discovery.mode_label();
            let modes = Mode::ALL.map(Mode::as_str);
            for each in modes.into_iter().chain(["absent"]) {
                let labels = PolicyModeLabels {
                    connector: name(p),
                    mode: each,
                };
                mode.sample(labels, flag(each == current));
            }
        });
        let mut fetch_success = exposition.family(&MTA_STS_FETCH_SUCCESS);
        self.each_mta_sts(|p, sts| {
            if let Some(success) = sts.discovery.fetch_success() {
                fetch_success.sample(connector(p), flag(success));
            }
        });
        let mut expiry = exposition.family(&MTA_STS_EXPIRY);
        self.each_mta_sts(|p, sts| {
            if let Some(cached) = sts.discovery.policy() {
                expiry.sample(connector(p), unix_seconds(cached.expires_at));
            }
        });
        let mut max_age = exposition.family(&MTA_STS_MAX_AGE);
        self.each_mta_sts(|p, sts| {
            if let Some(cached) = sts.discovery.policy() {
                max_age.sample(connector(p), cached.policy.max_age.as_secs_f64());
            }
        });
        let mut same_as_previous = exposition.family(&MTA_STS_SAME_AS_PREVIOUS_ID);
        self.each_mta_sts(|p, sts| {
            if let Some(cached) = sts.discovery.policy() {
                same_as_previous.sample(connector(p), flag(cached.same_policy_as.is_some()));
            }
        });
        let mut mx_match = exposition.family(&MTA_STS_MX_MATCH);
        self.each_mta_sts(|p, sts| {
            for (index, host) in sts.hosts.iter().enumerate() {
                // An MX host listed twice (at two preferences) is one series.
                if sts.hosts[..index].iter().any(|h| h.host == host.host) {
                    continue;
                }
                let labels = ConnectorHostLabels {
                    connector: name(p),
                    host: &host.host,
                };
                mx_match.sample(labels, flag(host.pattern.is_some()));
            }
        });
        let mut tlsrpt = exposition.family(&TLSRPT_PRESENT);
        self.each_mta_sts(|p, sts| {
            tlsrpt.sample(connector(p), flag(sts.tlsrpt.present()));
        });
    }

    /// The DNSSEC and DANE series of the probes that checked DANE (codes.md, "DANE metrics").
    fn write_dane(&self, exposition: &mut Exposition) {
        let mut dnssec = exposition.family(&DNSSEC_STATUS);
        for p in self.probes {
            let mx = match (&p.report.connector.route, p.report.mx_dnssec) {
                (Route::Mx(domain), Some(status)) => Some((domain.as_str(), status)),
                (Route::Mx(_) | Route::SmartHosts(_), _) => None,
            };
            let mut hosts = each_host(p, |t| t.dane.as_ref().map(|dane| dane.host.status));
            // The MX domain that is its own host (an implicit MX, or an MX lookup that failed)
            // is one series: the weaker of its two statuses.
            let mx =
                mx.map(
                    |(domain, status)| match hosts.iter().position(|(h, _)| *h == domain) {
                        Some(index) => (domain, status.worst(hosts.remove(index).1)),
                        None => (domain, status),
                    },
                );
            for (host, current) in mx.into_iter().chain(hosts) {
                for status in DnssecStatus::ALL {
                    let labels = DnssecStatusLabels {
                        connector: name(p),
                        host,
                        status,
                    };
                    dnssec.sample(labels, flag(status == current));
                }
            }
        }
        let mut records = exposition.family(&DANE_TLSA_RECORDS);
        for p in self.probes {
            let hosts = each_host(p, |t| t.dane.as_ref().and_then(|d| d.host.tlsa.counts()));
            for (host, counts) in hosts {
                for (usable, count) in [(true, counts.usable), (false, counts.unusable)] {
                    let labels = TlsaRecordLabels {
                        connector: name(p),
                        host,
                        usable: Usability(usable),
                    };
                    records.sample(labels, count as f64);
                }
            }
        }
        let mut matched = exposition.family(&DANE_MATCH);
        self.each_target(|p, t, address| {
            if let Some(check) = t.dane.as_ref().and_then(|d| d.check.as_ref()) {
                let labels = TargetLabels {
                    connector: name(p),
                    host: &t.host,
                    address,
                };
                matched.sample(labels, flag(check.matched.is_some()));
            }
        });
        let mut rollover = exposition.family(&DANE_ROLLOVER_READY);
        for p in self.probes {
            let hosts = each_host(p, |t| {
                let check = t.dane.as_ref()?.check.as_ref()?;
                Some(check.rollover_ready)
            });
            for (host, ready) in hosts {
                let labels = ConnectorHostLabels {
                    connector: name(p),
                    host,
                };
                rollover.sample(labels, flag(ready));
            }
        }
    }

    fn write_history(&self, exposition: &mut Exposition) {
        let mut probes = exposition.family(&PROBES);
        for p in self.probes {
            probes.sample(connector(p), p.state.probes as f64);
        }
        let mut failures = exposition.family(&PROBE_FAILURES);
        for p in self.probes {
            for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
                let labels = ConnectorCodeLabels {
                    connector: name(p),
                    code,
                };
                failures.sample(labels, p.state.failures_with(code) as f64);
            }
        }
        let mut queue_age = exposition.family(&QUEUE_AGE);
        for p in self.probes {
            queue_age.sample(connector(p), p.state.queue_age(p.at).as_secs_f64());
        }
        let mut queue_expiry = exposition.family(&QUEUE_EXPIRY);
        for p in self.probes {
            let expiry = p.report.connector.queue_expiry.as_secs_f64();
            queue_expiry.sample(connector(p), expiry);
        }
        let mut last_success = exposition.family(&LAST_SUCCESS);
        for p in self.probes {
            if let Some(last) = p.state.last_success {
                last_success.sample(connector(p), unix_seconds(last));
            }
        }
    }

    /// Calls `write` for every probe that looked MTA-STS up.
    fn each_mta_sts(&self, mut write: impl FnMut(&FinishedProbe, &MtaStsReport)) {
        for p in self.probes {
            if let Some(sts) = &p.report.mta_sts {
                write(p, sts);
            }
        }
    }

    /// Calls `write` for every address of every probe, with the address as a label value
    /// (empty when the host did not resolve).
    fn each_target(&self, mut write: impl FnMut(&FinishedProbe, &TargetReport, &str)) {
        for p in self.probes {
            for target in &p.report.targets {
                let address = target.address.map(|a| a.to_string()).unwrap_or_default();
                write(p, target, &address);
            }
        }
    }
}

/// The hosts of `p`'s targets, each once (an MX host listed twice, or a host of several
/// addresses), with the first value `value` finds among its targets; hosts without one are left
/// out.
fn each_host<'p, T>(
    p: &'p FinishedProbe,
    value: impl Fn(&'p TargetReport) -> Option<T>,
) -> Vec<(&'p str, T)> {
    let mut hosts: Vec<(&str, T)> = Vec::new();
    for target in &p.report.targets {
        if hosts.iter().any(|(host, _)| *host == target.host) {
            continue;
        }
        if let Some(found) = value(target) {
            hosts.push((&target.host, found));
        }
    }
    hosts
}

/// The name of the probed connector.
fn name(p: &FinishedProbe) -> &str {
    &p.report.connector.name
}

/// The labels of the probed connector's own series.
fn connector(p: &FinishedProbe) -> ConnectorLabels<'_> {
    ConnectorLabels { connector: name(p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::outcome::{Failure, Phase, SmtpFault, SmtpStep, TlsFailure};
    use crate::probe::Report;
    use crate::state::ConnectorState;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    fn finished(outcome: crate::outcome::Outcome, state: ConnectorState) -> Arc<FinishedProbe> {
        finished_with(outcome, state, None)
    }

    fn finished_with(
        outcome: crate::outcome::Outcome,
        state: ConnectorState,
        tls_fallback: Option<TlsFailure>,
    ) -> Arc<FinishedProbe> {
        let config = parse(
            "connectors:\n  - name: c1\n    smart_hosts: [127.0.0.1]\n",
            Path::new("t.yml"),
        )
        .expect("config");
        let report = Report {
            connector: config.connectors[0].clone(),
            outcome,
            duration: Duration::from_millis(5),
            targets: vec![TargetReport {
                host: "127.0.0.1".into(),
                address: Some("127.0.0.1".parse().expect("ip")),
                outcome,
                phases: vec![(Phase::Connect, Duration::from_millis(1))],
                tls: None,
                last_reply: None,
                dane: None,
                tls_fallback,
            }],
            mta_sts: None,
            mx_dnssec: None,
        };
        Arc::new(FinishedProbe {
            report,
            state,
            at: SystemTime::now(),
        })
    }

    #[test]
    fn a_failing_probe_exposes_its_code_phase_and_reason() {
        let failure = Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(421));
        let mut failures = [0; Code::ALL.len()];
        failures[4] = 2;
        let state = ConnectorState {
            probes: 3,
            failures,
            ..ConnectorState::default()
        };
        let probes = [finished(Err(failure), state)];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_probe_success{connector=\"c1\"} 0",
            "mailflow_probe_status{connector=\"c1\",code=\"4.4.317\"} 1",
            "mailflow_probe_status{connector=\"c1\",code=\"ok\"} 0",
            "mailflow_probe_failure_info{connector=\"c1\",code=\"4.4.317\",phase=\"greeting\",reason=\"reply_4xx\",reply=\"421\"} 1",
            "mailflow_probes_total{connector=\"c1\"} 3",
            "mailflow_probe_failures_total{connector=\"c1\",code=\"4.4.317\"} 2",
            "mailflow_target_status{connector=\"c1\",host=\"127.0.0.1\",address=\"127.0.0.1\",code=\"4.4.317\"} 1",
            "mailflow_probe_phase_duration_seconds{connector=\"c1\",phase=\"connect\"} 0.001",
            "mailflow_queue_expiry_seconds{connector=\"c1\"} 86400",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("mailflow_last_success_timestamp_seconds{"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn dane_series_follow_the_presence_rules() {
        use crate::probe::dane::Tlsa;
        use crate::probe::dane_rule::{HostDane, TlsaAnswer};
        use crate::probe::{DaneCheck, TargetDane};
        let config = parse(
            "connectors:\n  - name: c1\n    use_mx_record: true\n    recipient_domains: [example.test]\n",
            Path::new("t.yml"),
        )
        .expect("config");
        let record = |usage| Tlsa {
            usage,
            selector: 1,
            matching: 1,
            data: vec![7; 32],
        };
        let target =
            |host: &str, address: &str, tlsa: TlsaAnswer, check: Option<DaneCheck>| TargetReport {
                host: host.into(),
                address: Some(address.parse().expect("ip")),
                outcome: Ok(()),
                phases: Vec::new(),
                tls: None,
                last_reply: None,
                tls_fallback: None,
                dane: Some(TargetDane {
                    host: HostDane {
                        status: match tlsa {
                            TlsaAnswer::NotAsked => DnssecStatus::Insecure,
                            _ => DnssecStatus::Secure,
                        },
                        tlsa,
                    },
                    check,
                }),
            };
        let check = DaneCheck {
            matched: Some(record(3)),
            needed: None,
            rollover_ready: false,
            broken_chain: false,
        };
        let secure = TlsaAnswer::Secure(vec![record(3), record(1)].into());
        let report = Report {
            connector: config.connectors[0].clone(),
            outcome: Ok(()),
            duration: Duration::from_millis(5),
            targets: vec![
                target(
                    "mx1.example.test",
                    "192.0.2.1",
                    secure.clone(),
                    Some(check.clone()),
                ),
                target("mx1.example.test", "192.0.2.2", secure, Some(check)),
                target(
                    "mx2.example.test",
                    "192.0.2.3",
                    TlsaAnswer::Secure(Vec::new().into()),
                    None,
                ),
                target("mx3.other.test", "192.0.2.4", TlsaAnswer::NotAsked, None),
            ],
            mta_sts: None,
            mx_dnssec: Some(DnssecStatus::Secure),
        };
        let probes = [Arc::new(FinishedProbe {
            report,
            state: ConnectorState::default(),
            at: SystemTime::now(),
        })];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_dnssec_status{connector=\"c1\",host=\"example.test\",status=\"secure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx1.example.test\",status=\"secure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx3.other.test\",status=\"insecure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx3.other.test\",status=\"secure\"} 0",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx1.example.test\",usable=\"true\"} 1",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx1.example.test\",usable=\"false\"} 1",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx2.example.test\",usable=\"true\"} 0",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx2.example.test\",usable=\"false\"} 0",
            "mailflow_dane_match{connector=\"c1\",host=\"mx1.example.test\",address=\"192.0.2.2\"} 1",
            "mailflow_dane_rollover_ready{connector=\"c1\",host=\"mx1.example.test\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert_eq!(text.matches("mailflow_dnssec_status{").count(), 4 * 4);
        assert_eq!(text.matches("mailflow_dane_rollover_ready{").count(), 1);
        assert_eq!(text.matches("mailflow_dane_match{").count(), 2);
        assert!(!text.contains("host=\"mx3.other.test\",usable"));
    }

    #[test]
    fn a_delivering_probe_has_no_failure_info() {
        let state = ConnectorState {
            last_success: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100)),
            ..ConnectorState::default()
        };
        let probes = [finished(Ok(()), state)];
        let text = ProbeMetrics::new(&probes, None).encode(Format::OpenMetrics);
        assert!(text.contains("mailflow_probe_success{connector=\"c1\"} 1\n"));
        assert!(!text.contains("mailflow_probe_failure_info{"));
        assert!(text.contains("mailflow_last_success_timestamp_seconds{connector=\"c1\"} 100\n"));
        assert!(text.contains("# TYPE mailflow_probes counter\nmailflow_probes_total{"));
        assert!(text.ends_with("# EOF\n"));
    }

    /// A probe of `c1` that found `policy` (or none) in force for `example.test`, judged
    /// `hosts`, and the TLS-RPT records `tlsrpt`.
    fn with_mta_sts(policy: Option<&str>, hosts: &[&str], tlsrpt: &[&str]) -> Arc<FinishedProbe> {
        let fetched_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let sts = MtaStsReport::fixture(policy, fetched_at, hosts, tlsrpt);
        let probe = finished(Ok(()), ConnectorState::default());
        let mut report = probe.report.clone();
        report.mta_sts = Some(sts);
        Arc::new(FinishedProbe {
            report,
            state: ConnectorState::default(),
            at: probe.at,
        })
    }

    #[test]
    fn a_policy_in_force_exposes_its_mode_expiry_and_host_matches() {
        let probes = [with_mta_sts(
            Some("version: STSv1\nmode: enforce\nmax_age: 86400\nmx: *.example.test\n"),
            &["mx.example.test", "deep.mx.example.test", "mx.example.test"],
            &["v=TLSRPTv1; rua=mailto:tls@example.test"],
        )];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"enforce\"} 1",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"testing\"} 0",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"none\"} 0",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"absent\"} 0",
            "mailflow_mta_sts_policy_fetch_success{connector=\"c1\"} 1",
            "mailflow_mta_sts_policy_expiry_timestamp_seconds{connector=\"c1\"} 87400",
            "mailflow_mta_sts_policy_max_age_seconds{connector=\"c1\"} 86400",
            "mailflow_mta_sts_policy_same_as_previous_id{connector=\"c1\"} 1",
            "mailflow_mta_sts_mx_match{connector=\"c1\",host=\"mx.example.test\"} 1",
            "mailflow_mta_sts_mx_match{connector=\"c1\",host=\"deep.mx.example.test\"} 0",
            "mailflow_tlsrpt_record_present{connector=\"c1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert_eq!(
            text.matches("mailflow_mta_sts_mx_match{").count(),
            2,
            "one series per host"
        );
    }

    #[test]
    fn a_policy_that_cannot_be_fetched_is_absent_with_a_failed_fetch() {
        let probes = [with_mta_sts(None, &["mx.example.test"], &[])];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"absent\"} 1",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"enforce\"} 0",
            "mailflow_mta_sts_policy_fetch_success{connector=\"c1\"} 0",
            "mailflow_tlsrpt_record_present{connector=\"c1\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        for absent in [
            "mailflow_mta_sts_policy_expiry_timestamp_seconds{",
            "mailflow_mta_sts_policy_max_age_seconds{",
            "mailflow_mta_sts_mx_match{",
        ] {
            assert!(!text.contains(absent), "{absent} without a policy:\n{text}");
        }
        let without = [finished(Ok(()), ConnectorState::default())];
        let text = ProbeMetrics::new(&without, None).encode(Format::Text);
        assert!(
            !text.contains("mailflow_mta_sts_policy_mode{"),
            "no MTA-STS series where it is not looked up"
        );
    }

    #[test]
    fn a_plain_text_fallback_shows_where_it_delivered() {
        let fallback = Some(TlsFailure::Handshake);
        let probes = [finished_with(Ok(()), ConnectorState::default(), fallback)];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        assert!(
            text.contains("\nmailflow_tls_fallback{connector=\"c1\",address=\"127.0.0.1\"} 1\n"),
            "{text}"
        );
        // A fallback that did not deliver is the failure it ended in; no TLS at all, nothing.
        let failure = Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(554));
        for probe in [
            finished_with(Err(failure), ConnectorState::default(), fallback),
            finished(Ok(()), ConnectorState::default()),
        ] {
            let text = ProbeMetrics::new(&[probe], None).encode(Format::Text);
            assert!(text.contains("# TYPE mailflow_tls_fallback gauge\n"));
            assert!(!text.contains("mailflow_tls_fallback{"), "{text}");
        }
    }
}
