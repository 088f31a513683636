//! The exporter's own metrics, served on `/metrics`: its build, its configuration loads and its
//! readings of the Postfix queue. They are kept in prometheus-client's atomic gauges and
//! counters, updated as things happen, and written by the one exposition writer.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::postfix::{QueueReadFailure, QueueSummary, UNMATCHED};
use crate::state::unix_seconds;

use super::labels::{BuildLabels, NoLabels, QueueReadLabels};
use super::postfix::write_queue;
use super::text::{Exposition, Family, Format, flag};

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
}

impl OwnMetrics {
    /// Records a (re)load of the configuration at `now`.
    pub fn config_loaded(&self, successful: bool, now: SystemTime) {
        self.reload_successful.set(flag(successful));
        if successful {
            self.reload_success_timestamp.set(unix_seconds(now));
        }
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

    /// The exposition in `format`, with the Postfix queue of `connectors` (plus the unmatched
    /// messages) when a reading is given.
    pub fn encode<'a>(
        &self,
        format: Format,
        queue: Option<(&QueueSummary, impl Iterator<Item = &'a str> + Clone)>,
    ) -> String {
        let mut exposition = Exposition::new(format, 1024);
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
        if let Some((summary, connectors)) = queue {
            write_queue(&mut exposition, summary, connectors.chain([UNMATCHED]));
        }
        exposition.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_reloads_and_queue_failures_as_they_happen() {
        let metrics = OwnMetrics::default();
        metrics.config_loaded(true, SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        metrics.config_loaded(false, SystemTime::UNIX_EPOCH + Duration::from_secs(200));
        let no_queue = None::<(&QueueSummary, std::iter::Empty<&str>)>;
        let text = metrics.encode(Format::Text, no_queue.clone());
        for line in [
            "mailflow_config_last_reload_successful 0",
            "mailflow_config_last_reload_success_timestamp_seconds 100",
            "mailflow_postfix_queue_read_success 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.starts_with(
            "# HELP mailflow_exporter_build_info The exporter's version and revision; always 1.\n\
             # TYPE mailflow_exporter_build_info gauge\nmailflow_exporter_build_info{version=\""
        ));
        assert!(!text.contains("mailflow_postfix_queue_read_failures"));
        metrics.queue_read(Err(QueueReadFailure::Timeout));
        metrics.queue_read(Err(QueueReadFailure::Timeout));
        metrics.queue_read(Err(QueueReadFailure::NotFound));
        let text = metrics.encode(Format::OpenMetrics, no_queue);
        assert!(text.ends_with(
            "# HELP mailflow_postfix_queue_read_failures Readings of the Postfix queue that failed, by reason.\n\
             # TYPE mailflow_postfix_queue_read_failures counter\n\
             mailflow_postfix_queue_read_failures_total{reason=\"not_found\"} 1\n\
             mailflow_postfix_queue_read_failures_total{reason=\"timeout\"} 2\n# EOF\n"
        ), "{text}");
        metrics.queue_read(Ok(()));
        let text = metrics.encode(
            Format::Text,
            None::<(&QueueSummary, std::iter::Empty<&str>)>,
        );
        assert!(text.contains("\nmailflow_postfix_queue_read_success 1\n"));
        assert!(text.contains("# TYPE mailflow_postfix_queue_read_failures_total counter\n"));
    }

    #[test]
    fn writes_the_queue_of_every_connector_and_the_unmatched() {
        let summary = QueueSummary::default();
        let text = OwnMetrics::default().encode(Format::Text, Some((&summary, ["a"].into_iter())));
        for line in [
            "mailflow_postfix_queue_messages{connector=\"a\",code=\"4.4.316\"} 0",
            "mailflow_postfix_queue_messages{connector=\"(unmatched)\",code=\"other\"} 0",
            "mailflow_postfix_queue_oldest_age_seconds{connector=\"(unmatched)\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("code=\"ok\""));
    }
}
