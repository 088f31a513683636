//! The Postfix queue's series, from a [`QueueSummary`]: on `/probe` for the probed connectors, on
//! `/metrics` for every connector and the unmatched messages.

use crate::outcome::Code;
use crate::postfix::QueueSummary;

use super::labels::{ConnectorCodeLabels, ConnectorLabels};
use super::text::{Exposition, Family};

const QUEUE_MESSAGES: Family<ConnectorCodeLabels<'static>> = Family::gauge(
    "mailflow_postfix_queue_messages",
    "Messages in the Postfix queue, by connector and the code of their delay reason",
);
const QUEUE_OLDEST_AGE: Family<ConnectorLabels<'static>> = Family::gauge(
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
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            messages.sample(
                ConnectorCodeLabels { connector, code },
                summary.count(connector, code) as f64,
            );
        }
    }
    let mut oldest = exposition.family(&QUEUE_OLDEST_AGE);
    for connector in connectors {
        oldest.sample(
            ConnectorLabels { connector },
            summary.oldest_age(connector).unwrap_or(0) as f64,
        );
    }
}
