//! The exporter's own metrics, served on `/metrics`: the standard `process_*` family, its build,
//! its configuration loads, the work of its probes (in flight, waiting for a connection slot, and
//! those its own connection caps kept from running), of its HTTP server (requests by handler and
//! status, connections), and its readings of the Postfix queue (only when one is configured).
//! They are kept in prometheus-client's atomic gauges and counters, updated as things happen, and
//! written by the one exposition writer.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use hyper::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::Config;
use crate::postfix::{QueueReadFailure, QueueSummary, UNMATCHED};
use crate::state::unix_seconds;

use super::labels::{BuildLabels, ConnectorLabels, HttpRequestLabels, NoLabels, QueueReadLabels};
use super::postfix::write_queue;
use super::process::ProcessSample;
use super::text::{Exposition, Family, Format, flag};

const PROCESS_CPU: Family<NoLabels> = Family::counter(
    "process_cpu_seconds",
    "Total user and system CPU time spent in seconds.",
);
const PROCESS_RESIDENT: Family<NoLabels> = Family::gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
);
const PROCESS_VIRTUAL: Family<NoLabels> = Family::gauge(
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
);
const PROCESS_OPEN_FDS: Family<NoLabels> =
    Family::gauge("process_open_fds", "Number of open file descriptors.");
const PROCESS_MAX_FDS: Family<NoLabels> = Family::gauge(
    "process_max_fds",
    "Maximum number of open file descriptors.",
);
const PROCESS_START: Family<NoLabels> = Family::gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
);

const BUILD_INFO: Family<BuildLabels<'static>> = Family::gauge(
    "mailflow_exporter_build_info",
    "The exporter's version and revision; always 1.",
);
const RELOAD_SUCCESSFUL: Family<NoLabels> = Family::gauge(
    "mailflow_config_last_reload_successful",
    "1 if the last configuration load succeeded.",
);
const RELOAD_SUCCESS_TIMESTAMP: Family<NoLabels> = Family::gauge(
    "mailflow_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully.",
);
const PROBE_SLOT_TIMEOUTS: Family<ConnectorLabels<'static>> = Family::counter(
    "mailflow_exporter_probe_slot_timeouts",
    "Probes of the connector that did not run: no connection slot came free before the deadline \
     (--probe.max-connections*). Not a connector failure.",
);
const QUEUE_READ_SUCCESS: Family<NoLabels> = Family::gauge(
    "mailflow_postfix_queue_read_success",
    "1 if the last reading of the Postfix queue worked.",
);
const QUEUE_READ_FAILURES: Family<QueueReadLabels> = Family::counter(
    "mailflow_postfix_queue_read_failures",
    "Readings of the Postfix queue that failed, by reason.",
);

/// A gauge holding an `f64`.
type FloatGauge = Gauge<f64, AtomicU64>;

const PROBES_IN_FLIGHT: Family<NoLabels> = Family::gauge(
    "mailflow_exporter_probes_in_flight",
    "Probes running now (concurrent scrapes of one connector share one).",
);
const PROBE_SLOT_WAITS: Family<NoLabels> = Family::counter(
    "mailflow_exporter_probe_slot_waits",
    "Connections of probes that had to wait for a slot under --probe.max-connections or \
     --probe.max-connections-per-address.",
);
const HTTP_REQUESTS: Family<HttpRequestLabels> = Family::counter(
    "mailflow_exporter_http_requests",
    "HTTP requests answered, by handler and status code.",
);
const HTTP_REQUESTS_IN_FLIGHT: Family<NoLabels> = Family::gauge(
    "mailflow_exporter_http_requests_in_flight",
    "HTTP requests being answered now.",
);
const HTTP_CONNECTIONS: Family<NoLabels> = Family::gauge(
    "mailflow_exporter_http_connections",
    "HTTP connections open now.",
);
const HTTP_CONNECTIONS_MAX: Family<NoLabels> = Family::gauge(
    "mailflow_exporter_http_connections_max",
    "The most HTTP connections served at once (--web.max-connections, lowered to fit the \
     open-files limit beside the probes' connections).",
);
const HTTP_CONNECTIONS_REJECTED: Family<NoLabels> = Family::counter(
    "mailflow_exporter_http_connections_rejected",
    "HTTP connections turned away (503) because the connection cap was reached.",
);

/// The handlers HTTP requests are counted by: a bounded set, whatever path a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HttpHandler {
    /// `/probe`.
    Probe,
    /// `/metrics`.
    Metrics,
    /// `/sd`.
    ServiceDiscovery,
    /// `/-/healthy`.
    Healthy,
    /// `/-/ready`.
    Ready,
    /// `/-/reload`.
    Reload,
    /// `/`, the status page.
    Status,
    /// `/explain`.
    Explain,
    /// Any other path.
    Other,
}

impl HttpHandler {
    /// The handler that serves `path`.
    pub fn of(path: &str) -> Self {
        match path {
            "/probe" => HttpHandler::Probe,
            "/metrics" => HttpHandler::Metrics,
            "/sd" => HttpHandler::ServiceDiscovery,
            "/-/healthy" => HttpHandler::Healthy,
            "/-/ready" => HttpHandler::Ready,
            "/-/reload" => HttpHandler::Reload,
            "/" => HttpHandler::Status,
            "/explain" => HttpHandler::Explain,
            _ => HttpHandler::Other,
        }
    }

    /// The `handler` label: the path, or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpHandler::Probe => "/probe",
            HttpHandler::Metrics => "/metrics",
            HttpHandler::ServiceDiscovery => "/sd",
            HttpHandler::Healthy => "/-/healthy",
            HttpHandler::Ready => "/-/ready",
            HttpHandler::Reload => "/-/reload",
            HttpHandler::Status => "/",
            HttpHandler::Explain => "/explain",
            HttpHandler::Other => "other",
        }
    }
}

/// What the probes are doing, read from them at each scrape of `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeActivity {
    /// Probes running now.
    pub in_flight: usize,
    /// Connections that waited for a slot, since start.
    pub slot_waits: u64,
}

/// The HTTP server's counts.
#[derive(Debug, Default)]
struct HttpMetrics {
    /// Requests answered, by handler and status. Both are bounded: the handlers by
    /// [`HttpHandler`], the statuses by what the server answers.
    requests: Mutex<BTreeMap<(HttpHandler, StatusCode), u64>>,
    /// Requests being answered now.
    requests_in_flight: Gauge,
    /// Connections open now.
    connections: Gauge,
    /// The connection cap in force.
    connections_max: Gauge,
    /// Connections turned away at the cap.
    connections_rejected: Counter,
}

/// The exporter's own metrics (`/metrics`).
#[derive(Debug, Default)]
pub struct OwnMetrics {
    /// 1 if the last configuration (re)load succeeded, else 0.
    reload_successful: FloatGauge,
    /// When the configuration was last loaded successfully, in Unix seconds.
    reload_success_timestamp: FloatGauge,
    /// 1 if the last reading of the Postfix queue worked, else 0 (also before any reading).
    queue_read_success: FloatGauge,
    /// Failed readings of the Postfix queue, indexed like [`QueueReadFailure::ALL`].
    queue_read_failures: [Counter; QueueReadFailure::ALL.len()],
    /// Probes that the connection caps kept from running, by connector (those with none are
    /// absent here and written as 0).
    probe_slot_timeouts: Mutex<BTreeMap<String, u64>>,
    /// What the probes were doing at the last look.
    probes: Mutex<ProbeActivity>,
    /// The HTTP server's counts.
    http: HttpMetrics,
}

impl OwnMetrics {
    /// Records a (re)load of the configuration at `now`.
    pub fn config_loaded(&self, successful: bool, now: SystemTime) {
        self.reload_successful.set(flag(successful));
        if successful {
            self.reload_success_timestamp.set(unix_seconds(now));
        }
    }

    /// Counts a probe of `connector` that got no connection slot before its deadline.
    pub fn probe_throttled(&self, connector: &str) {
        let mut counts = self.slot_timeouts();
        match counts.get_mut(connector) {
            Some(count) => *count += 1,
            None => {
                counts.insert(connector.to_owned(), 1);
            }
        }
    }

    /// Forgets the counts of connectors that are no longer configured (after a reload).
    pub fn retain_connectors<'a>(&self, connectors: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = connectors.into_iter().collect();
        self.slot_timeouts()
            .retain(|name, _| keep.contains(name.as_str()));
    }

    fn slot_timeouts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.probe_slot_timeouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a reading of the Postfix queue: `Err` carries the kind of failure.
    pub fn queue_read(&self, outcome: Result<(), QueueReadFailure>) {
        self.queue_read_success.set(flag(outcome.is_ok()));
        if let Err(failure) = outcome {
            let index = QueueReadFailure::ALL.iter().position(|f| *f == failure);
            if let Some(counter) = index.and_then(|i| self.queue_read_failures.get(i)) {
                counter.inc();
            }
        }
    }

    /// Takes in what the probes are doing now (read from them before each exposition).
    pub fn observe_probes(&self, activity: ProbeActivity) {
        *self.probes.lock().unwrap_or_else(PoisonError::into_inner) = activity;
    }

    /// Counts a request answered by `handler` with `status`.
    pub fn http_request(&self, handler: HttpHandler, status: StatusCode) {
        let mut requests = self
            .http
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *requests.entry((handler, status)).or_default() += 1;
    }

    /// Counts a request that starts being answered; the guard counts it finished when dropped.
    pub fn http_request_started(&self) -> InFlightGuard<'_> {
        InFlightGuard::new(&self.http.requests_in_flight)
    }

    /// Counts a connection opened; the guard counts it closed when dropped.
    pub fn http_connection_opened(&self) -> InFlightGuard<'_> {
        InFlightGuard::new(&self.http.connections)
    }

    /// Records the connection cap in force.
    pub fn http_connections_max(&self, cap: usize) {
        self.http
            .connections_max
            .set(i64::try_from(cap).unwrap_or(i64::MAX));
    }

    /// Counts a connection turned away at the cap.
    pub fn http_connection_rejected(&self) {
        self.http.connections_rejected.inc();
    }

    /// The exposition in `format` for the connectors of `config`; the Postfix queue series only
    /// when `config` reads a queue, with its counts per connector (plus the unmatched messages)
    /// when a `queue` reading is given.
    pub fn encode(&self, format: Format, config: &Config, queue: Option<&QueueSummary>) -> String {
        let mut exposition = Exposition::new(format, 4096);
        match ProcessSample::read() {
            Ok(process) => write_process(&mut exposition, &process),
            Err(error) => tracing::debug!(error = %error, "no process metrics"),
        }
        let build = BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("MAILFLOW_REVISION"),
        };
        exposition.family(&BUILD_INFO).sample(build, 1.0);
        exposition
            .family(&RELOAD_SUCCESSFUL)
            .sample(NoLabels, self.reload_successful.get());
        exposition
            .family(&RELOAD_SUCCESS_TIMESTAMP)
            .sample(NoLabels, self.reload_success_timestamp.get());
        {
            let counts = self.slot_timeouts();
            let mut samples = exposition.family(&PROBE_SLOT_TIMEOUTS);
            for connector in &config.connectors {
                let count = counts.get(&connector.name).copied().unwrap_or(0);
                let labels = ConnectorLabels {
                    connector: &connector.name,
                };
                samples.sample(labels, count as f64);
            }
        }
        self.write_activity(&mut exposition);
        if config.postfix_queue.is_none() {
            return exposition.finish();
        }
        exposition
            .family(&QUEUE_READ_SUCCESS)
            .sample(NoLabels, self.queue_read_success.get());
        // Like the reasons, the family appears with the first failure.
        let failures: Vec<(QueueReadFailure, u64)> = QueueReadFailure::ALL
            .into_iter()
            .zip(&self.queue_read_failures)
            .map(|(reason, counter)| (reason, counter.get()))
            .filter(|(_, count)| *count > 0)
            .collect();
        if !failures.is_empty() {
            let mut samples = exposition.family(&QUEUE_READ_FAILURES);
            for (reason, count) in failures {
                samples.sample(QueueReadLabels { reason }, count as f64);
            }
        }
        if let Some(summary) = queue {
            let connectors = config.connectors.iter().map(|c| c.name.as_str());
            write_queue(&mut exposition, summary, connectors.chain([UNMATCHED]));
        }
        exposition.finish()
    }

    /// The probes' and the HTTP server's work.
    fn write_activity(&self, exposition: &mut Exposition) {
        let probes = *self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        exposition
            .family(&PROBES_IN_FLIGHT)
            .sample(NoLabels, probes.in_flight as f64);
        exposition
            .family(&PROBE_SLOT_WAITS)
            .sample(NoLabels, probes.slot_waits as f64);
        let http = &self.http;
        let requests = http
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // The family appears with the first request (always there by a scrape of /metrics).
        if !requests.is_empty() {
            let mut samples = exposition.family(&HTTP_REQUESTS);
            for ((handler, code), count) in requests {
                samples.sample(HttpRequestLabels { handler, code }, count as f64);
            }
        }
        exposition
            .family(&HTTP_REQUESTS_IN_FLIGHT)
            .sample(NoLabels, http.requests_in_flight.get() as f64);
        exposition
            .family(&HTTP_CONNECTIONS)
            .sample(NoLabels, http.connections.get() as f64);
        exposition
            .family(&HTTP_CONNECTIONS_MAX)
            .sample(NoLabels, http.connections_max.get() as f64);
        exposition
            .family(&HTTP_CONNECTIONS_REJECTED)
            .sample(NoLabels, http.connections_rejected.get() as f64);
    }
}

/// The `process_*` family.
fn write_process(exposition: &mut Exposition, process: &ProcessSample) {
    for (family, value) in [
        (&PROCESS_CPU, process.cpu_seconds),
        (&PROCESS_RESIDENT, process.resident_memory_bytes),
        (&PROCESS_VIRTUAL, process.virtual_memory_bytes),
        (&PROCESS_OPEN_FDS, process.open_fds),
        (&PROCESS_MAX_FDS, process.max_fds),
        (&PROCESS_START, process.start_time_seconds),
    ] {
        exposition.family(family).sample(NoLabels, value);
    }
}

/// Counts one thing in progress on a gauge, for as long as it lives.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    /// The gauge counting things in progress.
    gauge: &'a Gauge,
}

impl<'a> InFlightGuard<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        InFlightGuard { gauge }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;
    use std::time::Duration;

    /// A configuration with connectors `a` and `b`, reading a Postfix queue when `queue`.
    fn config(queue: bool) -> Config {
        let mut yaml = "connectors:\n  - name: a\n    smart_hosts: [127.0.0.1]\n  \
                        - name: b\n    smart_hosts: [127.0.0.1]\n"
            .to_owned();
        if queue {
            yaml.push_str("postfix_queue:\n  command: [postqueue, -j]\n");
        }
        parse(&yaml, Path::new("t.yml")).expect("config")
    }

    #[test]
    fn writes_reloads_and_queue_failures_as_they_happen() {
        let metrics = OwnMetrics::default();
        let config = config(true);
        metrics.config_loaded(true, SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        metrics.config_loaded(false, SystemTime::UNIX_EPOCH + Duration::from_secs(200));
        let text = metrics.encode(Format::Text, &config, None);
        for line in [
            "mailflow_config_last_reload_successful 0",
            "mailflow_config_last_reload_success_timestamp_seconds 100",
            "mailflow_postfix_queue_read_success 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.contains(
            "\n# HELP mailflow_exporter_build_info The exporter's version and revision; always 1.\n\
             # TYPE mailflow_exporter_build_info gauge\nmailflow_exporter_build_info{version=\""
        ));
        assert!(!text.contains("mailflow_postfix_queue_read_failures"));
        metrics.queue_read(Err(QueueReadFailure::Timeout));
        metrics.queue_read(Err(QueueReadFailure::Timeout));
        metrics.queue_read(Err(QueueReadFailure::NotFound));
        let text = metrics.encode(Format::OpenMetrics, &config, None);
        assert!(text.ends_with(
            "# HELP mailflow_postfix_queue_read_failures Readings of the Postfix queue that failed, by reason.\n\
             # TYPE mailflow_postfix_queue_read_failures counter\n\
             mailflow_postfix_queue_read_failures_total{reason=\"not_found\"} 1\n\
             mailflow_postfix_queue_read_failures_total{reason=\"timeout\"} 2\n# EOF\n"
        ), "{text}");
        metrics.queue_read(Ok(()));
        let text = metrics.encode(Format::Text, &config, None);
        assert!(text.contains("\nmailflow_postfix_queue_read_success 1\n"));
        assert!(text.contains("# TYPE mailflow_postfix_queue_read_failures_total counter\n"));
    }

    #[test]
    fn writes_the_process_the_probes_and_http_requests() {
        let metrics = OwnMetrics::default();
        metrics.observe_probes(ProbeActivity {
            in_flight: 3,
            slot_waits: 5,
        });
        metrics.http_request(HttpHandler::of("/probe"), StatusCode::OK);
        metrics.http_request(HttpHandler::of("/probe"), StatusCode::OK);
        metrics.http_request(HttpHandler::of("/x/../etc"), StatusCode::NOT_FOUND);
        metrics.http_connections_max(128);
        metrics.http_connection_rejected();
        let opened = metrics.http_connection_opened();
        let text = metrics.encode(Format::Text, &config(false), None);
        for line in [
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_resident_memory_bytes gauge",
            "mailflow_exporter_probes_in_flight 3",
            "mailflow_exporter_probe_slot_waits_total 5",
            "mailflow_exporter_http_requests_total{handler=\"/probe\",code=\"200\"} 2",
            "mailflow_exporter_http_requests_total{handler=\"other\",code=\"404\"} 1",
            "mailflow_exporter_http_connections 1",
            "mailflow_exporter_http_connections_max 128",
            "mailflow_exporter_http_connections_rejected_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        drop(opened);
        let text = metrics.encode(Format::Text, &config(false), None);
        assert!(
            text.lines()
                .any(|l| l == "mailflow_exporter_http_connections 0")
        );
    }

    #[test]
    fn no_queue_series_without_a_configured_queue() {
        let metrics = OwnMetrics::default();
        metrics.queue_read(Err(QueueReadFailure::Timeout));
        let summary = QueueSummary::default();
        let text = metrics.encode(Format::Text, &config(false), Some(&summary));
        assert!(!text.contains("mailflow_postfix_queue"), "{text}");
        assert!(text.contains("mailflow_config_last_reload_successful"));
    }

    #[test]
    fn writes_the_queue_of_every_connector_and_the_unmatched() {
        let summary = QueueSummary::default();
        let text = OwnMetrics::default().encode(Format::Text, &config(true), Some(&summary));
        for line in [
            "mailflow_postfix_queue_messages{connector=\"a\",code=\"4.4.316\"} 0",
            "mailflow_postfix_queue_messages{connector=\"(unmatched)\",code=\"other\"} 0",
            "mailflow_postfix_queue_oldest_age_seconds{connector=\"(unmatched)\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("code=\"ok\""));
    }

    #[test]
    fn counts_probes_without_a_slot_per_connector_from_zero() {
        let metrics = OwnMetrics::default();
        let config = config(false);
        let count = |text: &str, connector: &str| {
            let prefix = format!(
                "mailflow_exporter_probe_slot_timeouts_total{{connector=\"{connector}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
        };
        let text = metrics.encode(Format::Text, &config, None);
        assert_eq!(count(&text, "a").as_deref(), Some("0"), "{text}");
        assert_eq!(count(&text, "b").as_deref(), Some("0"), "{text}");
        metrics.probe_throttled("a");
        metrics.probe_throttled("a");
        let text = metrics.encode(Format::Text, &config, None);
        assert_eq!(count(&text, "a").as_deref(), Some("2"), "{text}");
        assert_eq!(count(&text, "b").as_deref(), Some("0"), "{text}");
        // A connector that a reload removed is forgotten.
        metrics.retain_connectors(["b"]);
        let text = metrics.encode(Format::Text, &config, None);
        assert_eq!(count(&text, "a").as_deref(), Some("0"), "{text}");
    }
}
