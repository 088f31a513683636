//! Probe reports and connector state into Prometheus metrics, and the exporter's own metrics.
//!
//! Every `/probe` request writes the metrics of the probes it ran, and only those, as the
//! blackbox exporter does: no series of a connector outlives its probe. They are streamed
//! straight into the exposition text, family after family, so that a scrape of thousands of
//! connectors costs the text and little else. The exporter's own few metrics live in a
//! prometheus-client registry.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::exposition::{Format, Kind, Writer, from_openmetrics};
use crate::outcome::{Code, code_of};
use crate::postfix::{QueueSummary, UNMATCHED};
use crate::probe::{Report, TargetReport};
use crate::state::ConnectorState;

/// The probes of one scrape, to be written as metrics.
#[derive(Default)]
pub struct ProbeMetrics<'a> {
    probes: Vec<Probed<'a>>,
    queue: Option<&'a QueueSummary>,
}

/// One probe with the connector's state right after it.
struct Probed<'a> {
    report: &'a Report,
    state: &'a ConnectorState,
    at: SystemTime,
}

impl<'a> ProbeMetrics<'a> {
    /// No probes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one probe `report` and the connector's `state` at `at`.
    pub fn add(&mut self, report: &'a Report, state: &'a ConnectorState, at: SystemTime) {
        self.probes.push(Probed { report, state, at });
    }

    /// Adds the Postfix queue series of every probed connector, from `summary`.
    pub fn add_queue(&mut self, summary: &'a QueueSummary) {
        self.queue = Some(summary);
    }

    /// The exposition of everything added, in `format`.
    pub fn encode(&self, format: Format) -> String {
        // About 4 KiB per connector with TLS; growing the string is cheap anyway.
        let mut w = Writer::new(String::with_capacity(4096 * self.probes.len()), format);
        self.write_outcomes(&mut w);
        self.write_targets(&mut w);
        self.write_certificates(&mut w);
        self.write_history(&mut w);
        if let Some(summary) = self.queue {
            let connectors = self.probes.iter().map(|p| p.report.connector.name.as_str());
            write_queue(&mut w, summary, connectors);
        }
        w.finish()
    }

    fn write_outcomes(&self, w: &mut Writer) {
        w.family(
            "mailflow_probe_success",
            Kind::Gauge,
            "1 if the connector delivered (code ok)",
        );
        for p in &self.probes {
            w.sample(&[("connector", name(p))], flag(p.report.outcome.is_ok()));
        }
        w.family(
            "mailflow_probe_status",
            Kind::Gauge,
            "The connector's code: one series per code, exactly one is 1",
        );
        for p in &self.probes {
            let code = code_of(&p.report.outcome);
            for each in Code::ALL {
                w.sample(
                    &[("connector", name(p)), ("code", each.as_str())],
                    flag(each == code),
                );
            }
        }
        w.family(
            "mailflow_probe_failure_info",
            Kind::Gauge,
            "1 while the connector fails, with the code, phase, reason and server reply code",
        );
        for p in &self.probes {
            if let Err(failure) = &p.report.outcome {
                let reply = failure.reply().map(|r| r.to_string()).unwrap_or_default();
                let labels = [
                    ("connector", name(p)),
                    ("code", failure.code().as_str()),
                    ("phase", failure.phase().as_str()),
                    ("reason", failure.reason().as_str()),
                    ("reply", reply.as_str()),
                ];
                w.sample(&labels, 1.0);
            }
        }
        w.family(
            "mailflow_probe_duration_seconds",
            Kind::Gauge,
            "How long the whole probe took",
        );
        for p in &self.probes {
            w.sample(&[("connector", name(p))], p.report.duration.as_secs_f64());
        }
        w.family(
            "mailflow_probe_phase_duration_seconds",
            Kind::Gauge,
            "How long each phase took, on the preferred delivering (else preferred) address",
        );
        for p in &self.probes {
            for (phase, elapsed) in p.report.representative().map_or(&[][..], |t| &t.phases) {
                w.sample(
                    &[("connector", name(p)), ("phase", phase.as_str())],
                    elapsed.as_secs_f64(),
                );
            }
        }
    }

    fn write_targets(&self, w: &mut Writer) {
        w.family(
            "mailflow_target_success",
            Kind::Gauge,
            "1 if this address delivered",
        );
        self.each_target(|p, t, address| {
            let labels = [
                ("connector", name(p)),
                ("host", &t.host),
                ("address", address),
            ];
            w.sample(&labels, flag(t.outcome.is_ok()));
        });
        w.family(
            "mailflow_target_status",
            Kind::Gauge,
            "The address's own code: one series per code, exactly one is 1",
        );
        self.each_target(|p, t, address| {
            let code = code_of(&t.outcome);
            for each in Code::ALL {
                let labels = [
                    ("connector", name(p)),
                    ("host", &t.host),
                    ("address", address),
                    ("code", each.as_str()),
                ];
                w.sample(&labels, flag(each == code));
            }
        });
        w.family(
            "mailflow_tls_info",
            Kind::Gauge,
            "1 where TLS was negotiated",
        );
        self.each_target(|p, t, address| {
            if let Some(tls) = &t.tls {
                let labels = [
                    ("connector", name(p)),
                    ("address", address),
                    ("version", tls.version),
                    ("cipher", tls.cipher),
                ];
                w.sample(&labels, 1.0);
            }
        });
    }

    fn write_certificates(&self, w: &mut Writer) {
        w.family(
            "mailflow_certificate_not_after_timestamp_seconds",
            Kind::Gauge,
            "When the server's leaf certificate expires",
        );
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                let labels = [
                    ("connector", name(p)),
                    ("address", address),
                    ("subject", &c.subject),
                    ("issuer", &c.issuer),
                    ("serial", &c.serial),
                ];
                w.sample(&labels, c.not_after as f64);
            }
        });
        w.family(
            "mailflow_certificate_chain_not_after_timestamp_seconds",
            Kind::Gauge,
            "The earliest expiry in the presented chain",
        );
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                w.sample(
                    &[("connector", name(p)), ("address", address)],
                    c.chain_not_after as f64,
                );
            }
        });
        w.family(
            "mailflow_certificate_valid",
            Kind::Gauge,
            "1 if the certificate passes full validation (chain and name), enforced or not",
        );
        self.each_target(|p, t, address| {
            if let Some(c) = t.tls.as_ref().and_then(|tls| tls.certificate.as_ref()) {
                w.sample(
                    &[("connector", name(p)), ("address", address)],
                    flag(c.valid()),
                );
            }
        });
    }

    fn write_history(&self, w: &mut Writer) {
        w.family("mailflow_probes", Kind::Counter, "Probes run");
        for p in &self.probes {
            w.sample(&[("connector", name(p))], p.state.probes as f64);
        }
        w.family(
            "mailflow_probe_failures",
            Kind::Counter,
            "Failed probes, by code",
        );
        for p in &self.probes {
            for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
                w.sample(
                    &[("connector", name(p)), ("code", code.as_str())],
                    p.state.failures_with(code) as f64,
                );
            }
        }
        w.family(
            "mailflow_queue_age_seconds",
            Kind::Gauge,
            "Age of the oldest message that would be queued: time since the failure streak began",
        );
        for p in &self.probes {
            w.sample(
                &[("connector", name(p))],
                p.state.queue_age(p.at).as_secs_f64(),
            );
        }
        w.family(
            "mailflow_queue_expiry_seconds",
            Kind::Gauge,
            "The retry window after which queued mail bounces",
        );
        for p in &self.probes {
            w.sample(
                &[("connector", name(p))],
                p.report.connector.queue_expiry.as_secs_f64(),
            );
        }
        w.family(
            "mailflow_last_success_timestamp_seconds",
            Kind::Gauge,
            "When the connector last delivered",
        );
        for p in &self.probes {
            if let Some(last) = p.state.last_success {
                w.sample(&[("connector", name(p))], unix_seconds(last));
            }
        }
    }

    /// Calls `write` for every address of every probe, with the address as a label value
    /// (empty when the host did not resolve).
    fn each_target(&self, mut write: impl FnMut(&Probed<'_>, &TargetReport, &str)) {
        for p in &self.probes {
            for target in &p.report.targets {
                let address = target.address.map(|a| a.to_string()).unwrap_or_default();
                write(p, target, &address);
            }
        }
    }
}

/// The Postfix queue's families for `connectors` (every failure code present, from 0).
fn write_queue<'a>(
    w: &mut Writer,
    summary: &QueueSummary,
    connectors: impl Iterator<Item = &'a str> + Clone,
) {
    w.family(
        "mailflow_postfix_queue_messages",
        Kind::Gauge,
        "Messages in the Postfix queue, by connector and the code of their delay reason",
    );
    for connector in connectors.clone() {
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            w.sample(
                &[("connector", connector), ("code", code.as_str())],
                summary.count(connector, code) as f64,
            );
        }
    }
    w.family(
        "mailflow_postfix_queue_oldest_age_seconds",
        Kind::Gauge,
        "Age of the oldest message in the Postfix queue for the connector",
    );
    for connector in connectors {
        w.sample(
            &[("connector", connector)],
            summary.oldest_age(connector).unwrap_or(0) as f64,
        );
    }
}

fn name<'p>(p: &'p Probed<'_>) -> &'p str {
    &p.report.connector.name
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The exporter's own metrics (`/metrics`).
pub struct ExporterMetrics {
    registry: Registry,
    reload_successful: FloatGauge,
    reload_success_timestamp: FloatGauge,
    queue_read_success: FloatGauge,
    queue_read_failures: Family<QueueFailureLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueFailureLabels {
    reason: &'static str,
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ExporterMetrics {
    /// The exporter's families, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let build_info: Family<BuildLabels, FloatGauge> = register(
            &mut registry,
            "mailflow_exporter_build_info",
            "The exporter's version and revision; always 1",
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: env!("MAILFLOW_REVISION"),
            })
            .set(1.0);
        ExporterMetrics {
            reload_successful: register(
                &mut registry,
                "mailflow_config_last_reload_successful",
                "1 if the last configuration load succeeded",
            ),
            reload_success_timestamp: register(
                &mut registry,
                "mailflow_config_last_reload_success_timestamp_seconds",
                "When the configuration was last loaded successfully",
            ),
            queue_read_success: register(
                &mut registry,
                "mailflow_postfix_queue_read_success",
                "1 if the last reading of the Postfix queue worked",
            ),
            queue_read_failures: register(
                &mut registry,
                "mailflow_postfix_queue_read_failures",
                "Readings of the Postfix queue that failed, by reason",
            ),
            registry,
        }
    }

    /// Records a (re)load of the configuration at `now`.
    pub fn config_loaded(&self, successful: bool, now: SystemTime) {
        self.reload_successful.set(flag(successful));
        if successful {
            self.reload_success_timestamp.set(unix_seconds(now));
        }
    }

    /// Records a reading of the Postfix queue: `Err` carries the failure's bounded reason.
    pub fn queue_read(&self, outcome: Result<(), &'static str>) {
        self.queue_read_success.set(flag(outcome.is_ok()));
        if let Err(reason) = outcome {
            self.queue_read_failures
                .get_or_create(&QueueFailureLabels { reason })
                .inc();
        }
    }

    /// The exposition of the exporter's metrics in `format`, with the Postfix queue of
    /// `connectors` (plus the unmatched messages) when a reading is given.
    pub fn encode<'a>(
        &self,
        format: Format,
        queue: Option<(&QueueSummary, impl Iterator<Item = &'a str> + Clone)>,
    ) -> String {
        let mut own = String::with_capacity(1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut own, &self.registry);
        let mut w = Writer::new(from_openmetrics(own, format), format);
        if let Some((summary, connectors)) = queue {
            write_queue(&mut w, summary, connectors.chain([UNMATCHED]));
        }
        w.finish()
    }
}

/// A new metric of type `M`, registered as `name`.
fn register<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: prometheus_client::registry::Metric + Clone + Default,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::outcome::{Failure, Phase, SmtpFault, SmtpStep};
    use crate::probe::TargetReport;
    use std::path::Path;
    use std::time::Duration;

    fn report(outcome: crate::outcome::Outcome) -> Report {
        let config = parse(
            "connectors:\n  - name: c1\n    smart_hosts: [127.0.0.1]\n",
            Path::new("t.yml"),
        )
        .expect("config");
        Report {
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
                tls_fallback: None,
            }],
        }
    }

    #[test]
    fn a_failing_probe_exposes_its_code_phase_and_reason() {
        let failure = Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(421));
        let mut failures = [0; 8];
        failures[4] = 2;
        let state = ConnectorState {
            probes: 3,
            failures,
            ..ConnectorState::default()
        };
        let report = report(Err(failure));
        let mut metrics = ProbeMetrics::new();
        metrics.add(&report, &state, SystemTime::now());
        let text = metrics.encode(Format::Text);
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
        let report = report(Ok(()));
        let mut metrics = ProbeMetrics::new();
        metrics.add(&report, &state, SystemTime::now());
        let text = metrics.encode(Format::OpenMetrics);
        assert!(text.contains("mailflow_probe_success{connector=\"c1\"} 1\n"));
        assert!(!text.contains("mailflow_probe_failure_info{"));
        assert!(text.contains("mailflow_last_success_timestamp_seconds{connector=\"c1\"} 100\n"));
        assert!(text.contains("# TYPE mailflow_probes counter\nmailflow_probes_total{"));
        assert!(text.ends_with("# EOF\n"));
    }
}
