//! The series of one `/probe` scrape, from the probes it ran and the connectors' state right after
//! them. As in the blackbox exporter, a scrape writes the series of the probes it ran and only
//! those: no series of a connector outlives its probe. They are written straight into the
//! exposition text, family after family, and a family probe by probe, in chunks of about
//! [`CHUNK`] bytes as the client takes them ([`ProbeBody`]): a scrape of 10,000 connectors never
//! holds its whole answer (48 MiB), only the probes and one chunk.
//!
//! The series of the destination's policies are written by `mta_sts` (MTA-STS, TLS-RPT) and
//! `dane` (DNSSEC, DANE); the rest here.

mod body;
mod dane;
#[cfg(test)]
mod golden;
mod mta_sts;

use std::sync::Arc;

use crate::exporter::FinishedProbe;
use crate::outcome::{Code, code_of};
use crate::postfix::QueueSummary;
use crate::probe::TargetReport;
use crate::probe::tls::CertificateFacts;
use crate::state::unix_seconds;

use super::labels::LabelSet;
use super::labels::{
    AddressLabels, CertificateLabels, ConnectorCodeLabels, ConnectorLabels, ConnectorPhaseLabels,
    FailureLabels, TargetCodeLabels, TargetLabels, TlsLabels,
};
use super::postfix::{QUEUE_MESSAGES, QUEUE_OLDEST_AGE, write_messages, write_oldest_age};
use super::text::{Exposition, Family, Format, Samples, flag};

pub use body::ProbeBody;

/// About how many bytes of the answer are written at a time.
pub const CHUNK: usize = 64 * 1024;

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

    /// The whole exposition in `format`, in one string, for the tests (the answer's
    /// [`ProbeBody`] writes the same text in chunks).
    #[cfg(test)]
    pub fn encode(&self, format: Format) -> String {
        let mut cursor = Cursor::new(self.queue.is_some());
        cursor
            .next_chunk(self, format, usize::MAX)
            .unwrap_or_default()
    }
}

/// One family of the answer, written probe by probe, so that the answer can be cut between any
/// two probes of a family.
trait Section: Sync {
    /// Writes the family's help and type.
    fn header(&self, out: &mut Exposition);
    /// Writes the family's samples of probe `p`.
    fn write(&self, out: &mut Exposition, p: &FinishedProbe, queue: Option<&QueueSummary>);
}

/// A family whose samples come from each probe.
struct PerProbe<L: 'static> {
    /// The family.
    family: &'static Family<L>,
    /// Writes the samples of one probe.
    write: fn(&mut Samples<'_, L>, &FinishedProbe),
}

impl<L: LabelSet + 'static> Section for PerProbe<L> {
    fn header(&self, out: &mut Exposition) {
        out.family(self.family);
    }

    fn write(&self, out: &mut Exposition, p: &FinishedProbe, _: Option<&QueueSummary>) {
        (self.write)(&mut out.resume(self.family), p);
    }
}

/// A Postfix queue family, with the samples of each probed connector.
struct PerQueued<L: 'static> {
    /// The family.
    family: &'static Family<L>,
    /// Writes the samples of one connector.
    write: fn(&mut Samples<'_, L>, &QueueSummary, &str),
}

impl<L: LabelSet + 'static> Section for PerQueued<L> {
    fn header(&self, out: &mut Exposition) {
        out.family(self.family);
    }

    fn write(&self, out: &mut Exposition, p: &FinishedProbe, queue: Option<&QueueSummary>) {
        if let Some(summary) = queue {
            (self.write)(&mut out.resume(self.family), summary, name(p));
        }
    }
}

/// A [`PerProbe`] section (a function, so that the closures' types follow from `family`).
const fn per_probe<L>(
    family: &'static Family<L>,
    write: fn(&mut Samples<'_, L>, &FinishedProbe),
) -> PerProbe<L> {
    PerProbe { family, write }
}

/// The families of the connectors' outcomes.
static OUTCOMES: [&dyn Section; 5] = [
    &per_probe(&PROBE_SUCCESS, |success, p| {
        success.sample(connector(p), flag(p.report.outcome.is_ok()));
    }),
    &per_probe(&PROBE_STATUS, |status, p| {
        let code = code_of(&p.report.outcome);
        for each in Code::ALL {
            let labels = ConnectorCodeLabels {
                connector: name(p),
                code: each,
            };
            status.sample(labels, flag(each == code));
        }
    }),
    &per_probe(&PROBE_FAILURE_INFO, |failure_info, p| {
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
    }),
    &per_probe(&PROBE_DURATION, |duration, p| {
        duration.sample(connector(p), p.report.duration.as_secs_f64());
    }),
    &per_probe(&PROBE_PHASE_DURATION, |phase_duration, p| {
        for (phase, elapsed) in p.report.representative().map_or(&[][..], |t| &t.phases) {
            let labels = ConnectorPhaseLabels {
                connector: name(p),
                phase: *phase,
            };
            phase_duration.sample(labels, elapsed.as_secs_f64());
        }
    }),
];

/// The families of each address.
static TARGETS: [&dyn Section; 4] = [
    &per_probe(&TARGET_SUCCESS, |success, p| {
        each_target(p, |t, address| {
            let labels = TargetLabels {
                connector: name(p),
                host: &t.host,
                address,
            };
            success.sample(labels, flag(t.outcome.is_ok()));
        });
    }),
    &per_probe(&TARGET_STATUS, |status, p| {
        each_target(p, |t, address| {
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
    }),
    &per_probe(&TLS_INFO, |tls_info, p| {
        each_target(p, |t, address| {
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
    }),
    // Like mailflow_tls_info, only where it is 1: an address shows one or the other when its
    // STARTTLS was answered under opportunistic TLS.
    &per_probe(&TLS_FALLBACK, |tls_fallback, p| {
        each_target(p, |t, address| {
            if t.tls_fallback.is_some() && t.outcome.is_ok() {
                let labels = AddressLabels {
                    connector: name(p),
                    address,
                };
                tls_fallback.sample(labels, 1.0);
            }
        });
    }),
];

/// The families of the presented certificates.
static CERTIFICATES: [&dyn Section; 3] = [
    &per_probe(&CERTIFICATE_NOT_AFTER, |not_after, p| {
        each_certificate(p, |c, address| {
            let labels = CertificateLabels {
                connector: name(p),
                address,
                subject: &c.subject,
                issuer: &c.issuer,
                serial: &c.serial,
            };
            not_after.sample(labels, c.not_after as f64);
        });
    }),
    &per_probe(&CERTIFICATE_CHAIN_NOT_AFTER, |chain_not_after, p| {
        each_certificate(p, |c, address| {
            let labels = AddressLabels {
                connector: name(p),
                address,
            };
            chain_not_after.sample(labels, c.chain_not_after as f64);
        });
    }),
    &per_probe(&CERTIFICATE_VALID, |valid, p| {
        each_certificate(p, |c, address| {
            let labels = AddressLabels {
                connector: name(p),
                address,
            };
            valid.sample(labels, flag(c.valid()));
        });
    }),
];

/// The families of the connectors' history.
static HISTORY: [&dyn Section; 5] = [
    &per_probe(&PROBES, |probes, p| {
        probes.sample(connector(p), p.state.probes as f64);
    }),
    &per_probe(&PROBE_FAILURES, |failures, p| {
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            let labels = ConnectorCodeLabels {
                connector: name(p),
                code,
            };
            failures.sample(labels, p.state.failures_with(code) as f64);
        }
    }),
    &per_probe(&QUEUE_AGE, |queue_age, p| {
        queue_age.sample(connector(p), p.state.queue_age(p.at).as_secs_f64());
    }),
    &per_probe(&QUEUE_EXPIRY, |queue_expiry, p| {
        let expiry = p.report.connector.queue_expiry.as_secs_f64();
        queue_expiry.sample(connector(p), expiry);
    }),
    &per_probe(&LAST_SUCCESS, |last_success, p| {
        if let Some(last) = p.state.last_success {
            last_success.sample(connector(p), unix_seconds(last));
        }
    }),
];

/// The families of the Postfix queue, when it is read.
static QUEUE: [&dyn Section; 2] = [
    &PerQueued {
        family: &QUEUE_MESSAGES,
        write: write_messages,
    },
    &PerQueued {
        family: &QUEUE_OLDEST_AGE,
        write: write_oldest_age,
    },
];

/// Every family of the answer, in order; the Postfix queue's only `with_queue`.
fn sections(with_queue: bool) -> Vec<&'static dyn Section> {
    let queue: &[&dyn Section] = if with_queue { &QUEUE } else { &[] };
    [
        &OUTCOMES[..],
        &TARGETS,
        &CERTIFICATES,
        &mta_sts::SECTIONS,
        &dane::SECTIONS,
        &HISTORY,
        queue,
    ]
    .concat()
}

/// How far the answer is written: the family, and the next probe within it.
struct Cursor {
    /// The families of this answer.
    sections: Vec<&'static dyn Section>,
    /// The family being written (`sections.len()` once all are).
    section: usize,
    /// Whether its help and type are written.
    started: bool,
    /// The next probe whose samples of that family are to be written.
    probe: usize,
    /// Whether the end of the answer (`# EOF` in OpenMetrics) is written.
    ended: bool,
}

impl Cursor {
    /// At the start of an answer, with the Postfix queue's families or not.
    fn new(with_queue: bool) -> Self {
        Cursor {
            sections: sections(with_queue),
            section: 0,
            started: false,
            probe: 0,
            ended: false,
        }
    }

    /// Whether the whole answer is written.
    fn ended(&self) -> bool {
        self.ended
    }

    /// The next part of the answer of `metrics` in `format`: whole probes' samples until it
    /// reaches `limit` bytes (one probe's samples of one family may go past it); `None` once the
    /// answer is all written.
    fn next_chunk(
        &mut self,
        metrics: &ProbeMetrics<'_>,
        format: Format,
        limit: usize,
    ) -> Option<String> {
        if self.ended {
            return None;
        }
        let mut out = Exposition::new(format, limit.min(CHUNK + CHUNK / 4));
        while out.written() < limit {
            let Some(section) = self.sections.get(self.section) else {
                out.end();
                self.ended = true;
                break;
            };
            if !self.started {
                section.header(&mut out);
                self.started = true;
            }
            while out.written() < limit
                && let Some(p) = metrics.probes.get(self.probe)
            {
                section.write(&mut out, p, metrics.queue);
                self.probe += 1;
            }
            if self.probe == metrics.probes.len() {
                self.section += 1;
                self.started = false;
                self.probe = 0;
            }
        }
        Some(out.into_text())
    }
}

/// Calls `write` for every address of probe `p`, with the address as a label value (empty when
/// the host did not resolve).
fn each_target(p: &FinishedProbe, mut write: impl FnMut(&TargetReport, &str)) {
    for target in &p.report.targets {
        let address = target.address.map(|a| a.to_string()).unwrap_or_default();
        write(target, &address);
    }
}

/// Calls `write` for every address of probe `p` that presented a certificate.
fn each_certificate(p: &FinishedProbe, mut write: impl FnMut(&CertificateFacts, &str)) {
    each_target(p, |t, address| {
        if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
            write(c, address);
        }
    });
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

    pub(super) fn finished(
        outcome: crate::outcome::Outcome,
        state: ConnectorState,
    ) -> Arc<FinishedProbe> {
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
