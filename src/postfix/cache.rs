//! The last reading of the Postfix queue, shared by the scrapes that come while it is fresh: the
//! queue command runs at most once per `max_age` (and once for concurrent scrapes), whatever the
//! number of Prometheus servers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::Config;
use crate::metrics::OwnMetrics;

use super::{Queue, QueueError, QueueSummary, read_queue, summarize};

/// The last reading of the Postfix queue, summarized.
#[derive(Debug, Default)]
pub struct QueueCache {
    /// The last successful reading; the lock makes concurrent scrapes wait for one reading.
    last: tokio::sync::Mutex<Option<QueueReading>>,
}

/// A reading of the Postfix queue, summarized for the configuration it was taken under.
#[derive(Debug)]
struct QueueReading {
    /// The queue counted per connector of `under`.
    summary: Arc<QueueSummary>,
    /// When the reading was taken.
    taken: Instant,
    /// The configuration whose connectors it was counted for.
    under: Arc<Config>,
}

impl QueueCache {
    /// The queue counted per connector of `config`: a reading under that same configuration
    /// younger than `max_age`, else a new one. `None` without `postfix_queue`, or when reading
    /// failed (logged and counted in `metrics`: a failing queue never fails a scrape).
    pub async fn summary(
        &self,
        config: &Arc<Config>,
        max_age: Duration,
        metrics: &OwnMetrics,
    ) -> Option<Arc<QueueSummary>> {
        let settings = config.postfix_queue.as_ref()?;
        let read = || read_queue(&settings.command, settings.timeout);
        self.summary_with(config, max_age, metrics, read).await
    }

    /// [`QueueCache::summary`], reading the queue with `read`.
    async fn summary_with<F>(
        &self,
        config: &Arc<Config>,
        max_age: Duration,
        metrics: &OwnMetrics,
        read: impl FnOnce() -> F,
    ) -> Option<Arc<QueueSummary>>
    where
        F: Future<Output = Result<Queue, QueueError>>,
    {
        let mut last = self.last.lock().await;
        if let Some(reading) = last.as_ref()
            && reading.taken.elapsed() <= max_age
            && Arc::ptr_eq(&reading.under, config)
        {
            return Some(reading.summary.clone());
        }
        match read().await {
            Ok(queue) => {
                if queue.truncated || queue.malformed > 0 {
                    tracing::warn!(
                        truncated = queue.truncated,
                        malformed_lines = queue.malformed,
                        "the Postfix queue was read only in part"
                    );
                }
                if !queue.stderr.is_empty() {
                    tracing::debug!(stderr = %queue.stderr, "the Postfix queue command wrote to standard error");
                }
                let summary = Arc::new(summarize(&queue, &config.connectors, SystemTime::now()));
                metrics.queue_read(Ok(()));
                *last = Some(QueueReading {
                    summary: summary.clone(),
                    taken: Instant::now(),
                    under: config.clone(),
                });
                Some(summary)
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the Postfix queue");
                metrics.queue_read(Err(error.kind()));
                *last = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;
    use crate::outcome::Code;
    use crate::postfix::parse_queue;
    use std::cell::Cell;
    use std::path::Path;

    fn config() -> Arc<Config> {
        let yaml = "postfix_queue:\n  command: [postqueue, -j]\nconnectors:\n  - name: a\n    smart_hosts: [127.0.0.1]\n    recipient_domains: [a.test]\n";
        Arc::new(crate::config::parse(yaml, Path::new("t.yml")).expect("config"))
    }

    /// A queue with one message for connector `a`, deferred for a refused connection.
    fn one_message() -> Result<Queue, QueueError> {
        let line = r#"{"queue_name": "deferred", "queue_id": "A1", "arrival_time": 1, "message_size": 1, "sender": "s@x.test", "recipients": [{"address": "u@a.test", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:25: Connection refused"}]}"#;
        Ok(parse_queue(line.as_bytes()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_reading_under_the_same_configuration_is_shared() {
        let cache = QueueCache::default();
        let metrics = OwnMetrics::default();
        let config = config();
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            std::future::ready(one_message())
        };
        let max_age = Duration::from_secs(1);
        let summary = cache.summary_with(&config, max_age, &metrics, read).await;
        assert_eq!(
            summary.map(|s| s.count("a", Code::ConnectionRefused)),
            Some(1)
        );
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(
            cache
                .summary_with(&config, max_age, &metrics, read)
                .await
                .is_some()
        );
        assert_eq!(reads.get(), 1, "still fresh");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(
            cache
                .summary_with(&config, max_age, &metrics, read)
                .await
                .is_some()
        );
        assert_eq!(reads.get(), 2, "too old");
        // After a reload, the connectors may differ: count again.
        let reloaded = self::config();
        assert!(
            cache
                .summary_with(&reloaded, max_age, &metrics, read)
                .await
                .is_some()
        );
        assert_eq!(reads.get(), 3, "another configuration");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_reading_is_counted_and_not_kept() {
        let cache = QueueCache::default();
        let metrics = OwnMetrics::default();
        let config = config();
        let max_age = Duration::from_secs(60);
        let fresh = cache
            .summary_with(&config, max_age, &metrics, || {
                std::future::ready(one_message())
            })
            .await;
        assert!(fresh.is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        let failed = cache
            .summary_with(&config, max_age, &metrics, || {
                std::future::ready(Err(QueueError::EmptyCommand))
            })
            .await;
        assert!(failed.is_none());
        let text = metrics.encode(Format::Text, &config, None);
        assert!(
            text.contains("\nmailflow_postfix_queue_read_success 0\n"),
            "{text}"
        );
        assert!(text.contains(
            "\nmailflow_postfix_queue_read_failures_total{reason=\"empty_command\"} 1\n"
        ));
        // The failed reading replaced the old one: the next scrape reads again.
        let reads = Cell::new(0);
        let again = cache
            .summary_with(&config, max_age, &metrics, || {
                reads.set(1);
                std::future::ready(one_message())
            })
            .await;
        assert!(again.is_some());
        assert_eq!(reads.get(), 1);
    }
}
