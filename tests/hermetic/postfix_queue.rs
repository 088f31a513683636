//! The Postfix queue reader without a Postfix: a queue command that cannot run is a metric and
//! a log line, never a failed scrape. (The real queue: `tests/integration/postfix_queue.rs`.)

use std::time::Duration;

use crate::common::eventually;
use crate::common::exporter::Exporter;

#[test]
fn a_missing_queue_command_is_a_metric_not_a_failed_scrape() {
    let exporter = Exporter::start(
        "connectors:\n  - name: relay\n    smart_hosts: [\"127.0.0.1\"]\n    port: 1\n\
         postfix_queue:\n  command: [/nonexistent/postqueue, -j]\n",
    );
    let metrics = exporter.metrics();
    let lines = metrics.lines_of("mailflow_postfix_queue");
    assert_eq!(
        metrics.expect("mailflow_postfix_queue_read_success", &[]),
        0.0,
        "{lines}"
    );
    assert_eq!(
        metrics.expect(
            "mailflow_postfix_queue_read_failures_total",
            &[("reason", "not_found")]
        ),
        1.0,
        "{lines}"
    );
    assert!(
        metrics
            .all("mailflow_postfix_queue_messages", &[])
            .is_empty(),
        "no queue series without a reading:\n{lines}"
    );
    assert!(
        eventually(Duration::from_secs(5), || exporter
            .logs()
            .contains("cannot read the Postfix queue")),
        "no log line about the queue; stderr:\n{}",
        exporter.logs()
    );
}
