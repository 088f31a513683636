//! Probe reports and connector state into Prometheus metrics, and the exporter's own metrics.
//!
//! Every `/probe` request encodes a fresh registry built from its reports, as the blackbox
//! exporter does, so no series of a connector outlives its probe.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::outcome::{Code, code_of};
use crate::postfix::{QueueSummary, UNMATCHED};
use crate::probe::Report;
use crate::state::ConnectorState;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    connector: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    connector: String,
    code: &'static str,
    phase: &'static str,
    reason: &'static str,
    reply: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    connector: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    connector: String,
    host: String,
    address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetCodeLabels {
    connector: String,
    host: String,
    address: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabels {
    connector: String,
    address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TlsLabels {
    connector: String,
    address: String,
    version: &'static str,
    cipher: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    connector: String,
    address: String,
    subject: String,
    issuer: String,
    serial: String,
}

/// The metric families of connector probes, registered in one registry.
pub struct ProbeMetrics {
    registry: Registry,
    queue: QueueMetrics,
    success: Family<ConnectorLabels, FloatGauge>,
    status: Family<CodeLabels, FloatGauge>,
    failure_info: Family<FailureLabels, FloatGauge>,
    duration: Family<ConnectorLabels, FloatGauge>,
    phase_duration: Family<PhaseLabels, FloatGauge>,
    probes: Family<ConnectorLabels, Counter>,
    failures: Family<CodeLabels, Counter>,
    target_success: Family<TargetLabels, FloatGauge>,
    target_status: Family<TargetCodeLabels, FloatGauge>,
    tls_info: Family<TlsLabels, FloatGauge>,
    not_after: Family<CertificateLabels, FloatGauge>,
    chain_not_after: Family<AddressLabels, FloatGauge>,
    certificate_valid: Family<AddressLabels, FloatGauge>,
    queue_age: Family<ConnectorLabels, FloatGauge>,
    queue_expiry: Family<ConnectorLabels, FloatGauge>,
    last_success: Family<ConnectorLabels, FloatGauge>,
}

impl Default for ProbeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProbeMetrics {
    /// Empty families, registered.
    pub fn new() -> Self {
        let mut r = Registry::default();
        ProbeMetrics {
            success: register(
                &mut r,
                "mailflow_probe_success",
                "1 if the connector delivered (code ok)",
            ),
            status: register(
                &mut r,
                "mailflow_probe_status",
                "The connector's code: one series per code, exactly one is 1",
            ),
            failure_info: register(
                &mut r,
                "mailflow_probe_failure_info",
                "1 while the connector fails, with the code, phase, reason and server reply code",
            ),
            duration: register(
                &mut r,
                "mailflow_probe_duration_seconds",
                "How long the whole probe took",
            ),
            phase_duration: register(
                &mut r,
                "mailflow_probe_phase_duration_seconds",
                "How long each phase took, on the preferred delivering (else preferred) address",
            ),
            probes: register(&mut r, "mailflow_probes", "Probes run"),
            failures: register(&mut r, "mailflow_probe_failures", "Failed probes, by code"),
            target_success: register(
                &mut r,
                "mailflow_target_success",
                "1 if this address delivered",
            ),
            target_status: register(
                &mut r,
                "mailflow_target_status",
                "The address's own code: one series per code, exactly one is 1",
            ),
            tls_info: register(&mut r, "mailflow_tls_info", "1 where TLS was negotiated"),
            not_after: register(
                &mut r,
                "mailflow_certificate_not_after_timestamp_seconds",
                "When the server's leaf certificate expires",
            ),
            chain_not_after: register(
                &mut r,
                "mailflow_certificate_chain_not_after_timestamp_seconds",
                "The earliest expiry in the presented chain",
            ),
            certificate_valid: register(
                &mut r,
                "mailflow_certificate_valid",
                "1 if the certificate passes full validation (chain and name), enforced or not",
            ),
            queue_age: register(
                &mut r,
                "mailflow_queue_age_seconds",
                "Age of the oldest message that would be queued: time since the failure streak began",
            ),
            queue_expiry: register(
                &mut r,
                "mailflow_queue_expiry_seconds",
                "The retry window after which queued mail bounces",
            ),
            last_success: register(
                &mut r,
                "mailflow_last_success_timestamp_seconds",
                "When the connector last delivered",
            ),
            queue: QueueMetrics::register(&mut r),
            registry: r,
        }
    }

    /// Adds the series of one probe `report` and the connector's `state` at `now`.
    pub fn add(&self, report: &Report, state: &ConnectorState, now: SystemTime) {
        let connector = &report.connector.name;
        let labels = ConnectorLabels {
            connector: connector.clone(),
        };
        let code = code_of(&report.outcome);
        self.success
            .get_or_create(&labels)
            .set(if report.outcome.is_ok() { 1.0 } else { 0.0 });
        for each in Code::ALL {
            self.status
                .get_or_create(&CodeLabels {
                    connector: connector.clone(),
                    code: each.as_str(),
                })
                .set(if each == code { 1.0 } else { 0.0 });
        }
        if let Err(failure) = &report.outcome {
            self.failure_info
                .get_or_create(&FailureLabels {
                    connector: connector.clone(),
                    code: code.as_str(),
                    phase: failure.phase.as_str(),
                    reason: failure.reason.as_str(),
                    reply: failure.reply.map(|r| r.to_string()).unwrap_or_default(),
                })
                .set(1.0);
        }
        self.duration
            .get_or_create(&labels)
            .set(report.duration.as_secs_f64());
        if let Some(target) = report.representative() {
            for (phase, elapsed) in &target.phases {
                self.phase_duration
                    .get_or_create(&PhaseLabels {
                        connector: connector.clone(),
                        phase: phase.as_str(),
                    })
                    .set(elapsed.as_secs_f64());
            }
        }
        for target in &report.targets {
            self.add_target(connector, target);
        }
        self.add_state(&labels, report, state, now);
    }

    fn add_target(&self, connector: &str, target: &crate::probe::TargetReport) {
        let address = target.address.map(|a| a.to_string()).unwrap_or_default();
        let code = code_of(&target.outcome);
        self.target_success
            .get_or_create(&TargetLabels {
                connector: connector.to_owned(),
                host: target.host.clone(),
                address: address.clone(),
            })
            .set(if target.outcome.is_ok() { 1.0 } else { 0.0 });
        for each in Code::ALL {
            self.target_status
                .get_or_create(&TargetCodeLabels {
                    connector: connector.to_owned(),
                    host: target.host.clone(),
                    address: address.clone(),
                    code: each.as_str(),
                })
                .set(if each == code { 1.0 } else { 0.0 });
        }
        let Some(tls) = &target.tls else {
            return;
        };
        self.tls_info
            .get_or_create(&TlsLabels {
                connector: connector.to_owned(),
                address: address.clone(),
                version: tls.version,
                cipher: tls.cipher,
            })
            .set(1.0);
        let Some(certificate) = &tls.certificate else {
            return;
        };
        let at_address = AddressLabels {
            connector: connector.to_owned(),
            address: address.clone(),
        };
        self.not_after
            .get_or_create(&CertificateLabels {
                connector: connector.to_owned(),
                address,
                subject: certificate.subject.clone(),
                issuer: certificate.issuer.clone(),
                serial: certificate.serial.clone(),
            })
            .set(certificate.not_after as f64);
        self.chain_not_after
            .get_or_create(&at_address)
            .set(certificate.chain_not_after as f64);
        self.certificate_valid
            .get_or_create(&at_address)
            .set(if certificate.valid() { 1.0 } else { 0.0 });
    }

    fn add_state(
        &self,
        labels: &ConnectorLabels,
        report: &Report,
        state: &ConnectorState,
        now: SystemTime,
    ) {
        self.probes.get_or_create(labels).inc_by(state.probes);
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            self.failures
                .get_or_create(&CodeLabels {
                    connector: labels.connector.clone(),
                    code: code.as_str(),
                })
                .inc_by(state.failures_with(code));
        }
        self.queue_age
            .get_or_create(labels)
            .set(state.queue_age(now).as_secs_f64());
        self.queue_expiry
            .get_or_create(labels)
            .set(report.connector.queue_expiry.as_secs_f64());
        if let Some(last) = state.last_success {
            self.last_success
                .get_or_create(labels)
                .set(unix_seconds(last));
        }
    }

    /// Adds the Postfix queue series of `connector`.
    pub fn add_queue(&self, summary: &QueueSummary, connector: &str) {
        self.queue.add(summary, connector);
    }

    /// The text exposition of everything added.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
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

/// The Postfix queue's families (`postfix_queue`).
pub struct QueueMetrics {
    messages: Family<CodeLabels, FloatGauge>,
    oldest_age: Family<ConnectorLabels, FloatGauge>,
}

impl QueueMetrics {
    /// Registers the queue's families in `registry`.
    fn register(registry: &mut Registry) -> Self {
        QueueMetrics {
            messages: register(
                registry,
                "mailflow_postfix_queue_messages",
                "Messages in the Postfix queue, by connector and the code of their delay reason",
            ),
            oldest_age: register(
                registry,
                "mailflow_postfix_queue_oldest_age_seconds",
                "Age of the oldest message in the Postfix queue for the connector",
            ),
        }
    }

    /// Adds the queue series of `connector` (a name or [`UNMATCHED`]); every failure code is
    /// present, 0 when no message has it.
    fn add(&self, summary: &QueueSummary, connector: &str) {
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            self.messages
                .get_or_create(&CodeLabels {
                    connector: connector.to_owned(),
                    code: code.as_str(),
                })
                .set(summary.count(connector, code) as f64);
        }
        self.oldest_age
            .get_or_create(&ConnectorLabels {
                connector: connector.to_owned(),
            })
            .set(summary.oldest_age(connector).unwrap_or(0) as f64);
    }
}

/// The exposition formats a scrape can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0, what prometheus-client writes and Prometheus prefers.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for clients that do not ask for OpenMetrics.
    Text,
}

impl Format {
    /// The format that an `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The HTTP content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// `openmetrics` text in this format. The classic format names a counter family by its
    /// `_total` samples and has no `# EOF`.
    pub fn convert(self, openmetrics: String) -> String {
        if self == Format::OpenMetrics {
            return openmetrics;
        }
        let counters: std::collections::HashSet<&str> = openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(openmetrics.len());
        for line in openmetrics.lines() {
            if line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            match renamed {
                Some(line) => out.push_str(&line),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The exporter's own metrics (`/metrics`).
pub struct ExporterMetrics {
    registry: Registry,
    reload_successful: FloatGauge,
    reload_success_timestamp: FloatGauge,
    queue_read_success: FloatGauge,
    queue_read_failures: Family<QueueFailureLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueFailureLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
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

    /// Records a configuration (re)load at `now`.
    pub fn config_loaded(&self, successful: bool, now: SystemTime) {
        self.reload_successful
            .set(if successful { 1.0 } else { 0.0 });
        if successful {
            self.reload_success_timestamp.set(unix_seconds(now));
        }
    }

    /// Records a reading of the Postfix queue: `Err` carries the failure's bounded reason.
    pub fn queue_read(&self, outcome: Result<(), &'static str>) {
        match outcome {
            Ok(()) => {
                self.queue_read_success.set(1.0);
            }
            Err(reason) => {
                self.queue_read_success.set(0.0);
                self.queue_read_failures
                    .get_or_create(&QueueFailureLabels { reason })
                    .inc();
            }
        }
    }

    /// The text exposition of the exporter's metrics, with the Postfix queue of `connectors`
    /// (plus the unmatched messages) when a reading is given.
    pub fn encode<'a>(
        &self,
        queue: Option<(&QueueSummary, impl IntoIterator<Item = &'a str>)>,
    ) -> String {
        let mut out = String::with_capacity(1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        if let Some((summary, connectors)) = queue {
            let mut registry = Registry::default();
            let metrics = QueueMetrics::register(&mut registry);
            for connector in connectors.into_iter().chain([UNMATCHED]) {
                metrics.add(summary, connector);
            }
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::outcome::{Failure, Phase, Reason};
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
            }],
        }
    }

    #[test]
    fn a_failing_probe_exposes_its_code_phase_and_reason() {
        let failure = Failure::from_reply(Phase::Greeting, 421);
        let metrics = ProbeMetrics::new();
        let mut failures = [0; 8];
        failures[4] = 2;
        let state = ConnectorState {
            probes: 3,
            failures,
            ..ConnectorState::default()
        };
        metrics.add(&report(Err(failure)), &state, SystemTime::now());
        let text = metrics.encode();
        for line in [
            "mailflow_probe_success{connector=\"c1\"} 0.0",
            "mailflow_probe_status{connector=\"c1\",code=\"4.4.317\"} 1.0",
            "mailflow_probe_status{connector=\"c1\",code=\"ok\"} 0.0",
            "mailflow_probe_failure_info{connector=\"c1\",code=\"4.4.317\",phase=\"greeting\",reason=\"reply_4xx\",reply=\"421\"} 1.0",
            "mailflow_probes_total{connector=\"c1\"} 3",
            "mailflow_probe_failures_total{connector=\"c1\",code=\"4.4.317\"} 2",
            "mailflow_target_status{connector=\"c1\",host=\"127.0.0.1\",address=\"127.0.0.1\",code=\"4.4.317\"} 1.0",
            "mailflow_probe_phase_duration_seconds{connector=\"c1\",phase=\"connect\"} 0.001",
            "mailflow_queue_expiry_seconds{connector=\"c1\"} 86400.0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("mailflow_last_success_timestamp_seconds{"));
    }

    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let openmetrics = "# HELP a_probes Probes run.\n# TYPE a_probes counter\na_probes_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.0\n# EOF\n".to_owned();
        assert_eq!(
            Format::Text.convert(openmetrics.clone()),
            "# HELP a_probes_total Probes run.\n# TYPE a_probes_total counter\na_probes_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.0\n"
        );
        assert_eq!(
            Format::OpenMetrics.convert(openmetrics.clone()),
            openmetrics
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    #[test]
    fn a_delivering_probe_has_no_failure_info() {
        let metrics = ProbeMetrics::new();
        let state = ConnectorState {
            last_success: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100)),
            ..ConnectorState::default()
        };
        metrics.add(&report(Ok(())), &state, SystemTime::now());
        let text = metrics.encode();
        assert!(text.contains("mailflow_probe_success{connector=\"c1\"} 1.0"));
        assert!(!text.contains("mailflow_probe_failure_info{"));
        assert!(text.contains("mailflow_last_success_timestamp_seconds{connector=\"c1\"} 100.0"));
        let _ = Reason::Closed;
    }
}
