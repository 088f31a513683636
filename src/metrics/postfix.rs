//! The Postfix queue's series, from a [`QueueSummary`]: on `/probe` for the probed connectors, on
//! `/metrics` for every connector and the unmatched messages.

use crate::outcome::Code;
use crate::postfix::QueueSummary;

use super::labels::{ConnectorCodeLabels, ConnectorLabels};
use super::text::{Exposition, Family, Samples};

/// Messages per connector and code.
pub(super) const QUEUE_MESSAGES: Family<ConnectorCodeLabels<'static>> = Family::gauge(
    "mailflow_postfix_queue_messages",
    "Messages in the Postfix queue, by connector and the code of their delay reason",
);
/// The oldest message per connector.
pub(super) const QUEUE_OLDEST_AGE: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_postfix_queue_oldest_age_seconds",
    "Age of the oldest message in the Postfix queue for the connector",
);

/// Writes the queue's families for `connectors`: every failure code of each, from 0, and the age
/// of its oldest message (0 without any).
pub fn write_queue<'a>(
    exposition: &mut Exposition,
    summary: &QueueSummary,
    connectors: impl Iterator<Item = &'a str> + Clone,
) {
    let mut messages = exposition.family(&QUEUE_MESSAGES);
    for connector in connectors.clone() {
        write_messages(&mut messages, summary, connector);
    }
    let mut oldest = exposition.family(&QUEUE_OLDEST_AGE);
    for connector in connectors {
        write_oldest_age(&mut oldest, summary, connector);
    }
}

/// The samples of [`QUEUE_MESSAGES`] for `connector`: every failure code, from 0.
pub(super) fn write_messages(
    messages: &mut Samples<'_, ConnectorCodeLabels<'static>>,
    summary: &QueueSummary,
    connector: &str,
) {
    for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
        messages.sample(
            ConnectorCodeLabels { connector, code },
            summary.count(connector, code) as f64,
        );
    }
}

/// The sample of [`QUEUE_OLDEST_AGE`] for `connector` (0 without any message).
pub(super) fn write_oldest_age(
    oldest: &mut Samples<'_, ConnectorLabels<'static>>,
    summary: &QueueSummary,
    connector: &str,
) {
    oldest.sample(
        ConnectorLabels { connector },
        summary.oldest_age(connector).unwrap_or(0) as f64,
    );
}
