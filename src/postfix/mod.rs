//! The real Postfix queue: read it ([`read_queue`]), classify each delay reason into the codes of
//! [`crate::outcome`] ([`classify`]), match messages to connectors and count them
//! ([`summarize`]), and keep the last reading for the scrapes that follow ([`QueueCache`]).
//!
//! Matching a recipient to connectors:
//! - first by domain: every connector whose `recipient_domains` holds the recipient's domain
//!   (after the last `@`, case-insensitive; `*.example.com` matches the subdomains of
//!   example.com) carries it;
//! - only when no connector claims the domain, by route: the next hop named in its delay reason
//!   ([`next_hop`]) is one of the connector's smart hosts (by name, or by address for an
//!   IP-literal smart host; on the connector's port when the reason names a port), or, for a
//!   connector that follows the MX of a domain, the recipient's domain or the next hop's name is
//!   that domain. Reasons that name no host ("Server certificate not verified") can only be
//!   matched by domain: give such connectors `recipient_domains`.
//!
//! A recipient that matches no connector is counted under the connector label [`UNMATCHED`]. The
//! wordings and codes are listed in `docs/postfix-delay-reasons.md`.

mod cache;
mod queue;
mod reasons;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use cache::QueueCache;
pub use queue::{
    MAX_MESSAGES, MAX_OUTPUT_BYTES, MAX_STDERR_BYTES, Queue, QueueError, QueueMessage,
    QueueReadFailure, Recipient, parse_queue, read_queue,
};
pub use reasons::{NextHop, classify, diagnose, next_hop};

use crate::config::{Connector, Host, Route};
use crate::outcome::Code;

/// The connector label value of queued messages that match no configured connector. It can't
/// clash with a connector's name, which allows no parentheses.
pub const UNMATCHED: &str = "(unmatched)";

/// The queue, counted per connector and code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSummary {
    /// Messages per connector and code; only pairs with at least one message are present.
    counts: BTreeMap<String, BTreeMap<Code, u64>>,
    /// The age in seconds of the oldest message per connector; only connectors with messages.
    oldest: BTreeMap<String, u64>,
}

impl QueueSummary {
    /// Every (connector, code, number of messages) with at least one message, by connector name
    /// and then code. Connectors and codes without messages are absent (count 0).
    pub fn counts(&self) -> impl Iterator<Item = (&str, Code, u64)> + '_ {
        self.counts.iter().flat_map(|(connector, codes)| {
            codes
                .iter()
                .map(move |(code, count)| (connector.as_str(), *code, *count))
        })
    }

    /// Every (connector, age of its oldest queued message in seconds), by connector name;
    /// connectors without queued messages are absent.
    pub fn oldest_ages(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.oldest
            .iter()
            .map(|(connector, age)| (connector.as_str(), *age))
    }

    /// The number of messages for `connector` (a name or [`UNMATCHED`]) with `code`.
    pub fn count(&self, connector: &str, code: Code) -> u64 {
        self.counts
            .get(connector)
            .and_then(|codes| codes.get(&code))
            .copied()
            .unwrap_or(0)
    }

    /// The age in seconds of the oldest message for `connector`, if it has any.
    pub fn oldest_age(&self, connector: &str) -> Option<u64> {
        self.oldest.get(connector).copied()
    }
}

/// Counts the queue per connector and code, and finds each connector's oldest message, at `now`.
///
/// - A message counts **once per connector** that any of its recipients matches (a message for
///   two connectors counts for both), and once under [`UNMATCHED`] if any recipient matches no
///   connector.
/// - Its code for a connector is the classified delay reason of the first recipient, in queue
///   order, that matches the connector and has a delay reason.
/// - A message whose recipients for a connector have no delay reason (new mail in `maildrop`,
///   `incoming` or `active`, and deferred mail while Postfix retries it: Postfix clears the reason
///   when it moves the message to the active queue) is not counted under any code, but its age
///   still counts for the connector's oldest message, so that age does not drop while old mail
///   is being retried.
/// - Held (`hold`) and force-expired messages count like the others.
/// - A message's age is `now` minus its `arrival_time` (never file times), at least 0.
pub fn summarize(queue: &Queue, connectors: &[Arc<Connector>], now: SystemTime) -> QueueSummary {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut summary = QueueSummary::default();
    // Per message: (index into `connectors`, or `connectors.len()` for UNMATCHED; its code).
    let mut targets: Vec<(usize, Option<Code>)> = Vec::new();
    for message in &queue.messages {
        targets.clear();
        for recipient in &message.recipients {
            let reason = recipient.delay_reason.as_deref();
            let code = reason.map(classify);
            let hop = reason.and_then(next_hop);
            let domain = recipient_domain(&recipient.address);
            // A recipient domain names its connectors; only without one does the next hop.
            let mut matched = false;
            for (index, connector) in connectors.iter().enumerate() {
                if matches_domain(connector, domain.as_deref()) {
                    matched = true;
                    add_target(&mut targets, index, code);
                }
            }
            if !matched {
                for (index, connector) in connectors.iter().enumerate() {
                    if matches_hop(connector, domain.as_deref(), hop.as_ref()) {
                        matched = true;
                        add_target(&mut targets, index, code);
                    }
                }
            }
            if !matched {
                add_target(&mut targets, connectors.len(), code);
            }
        }
        if message.recipients.is_empty() {
            add_target(&mut targets, connectors.len(), None);
        }
        let age = u64::try_from(now_secs.saturating_sub(message.arrival_time)).unwrap_or(0);
        for &(index, code) in &targets {
            let name = connectors
                .get(index)
                .map_or(UNMATCHED, |connector| connector.name.as_str());
            let oldest = summary.oldest.entry(name.to_owned()).or_insert(0);
            *oldest = (*oldest).max(age);
            if let Some(code) = code {
                *summary
                    .counts
                    .entry(name.to_owned())
                    .or_default()
                    .entry(code)
                    .or_insert(0) += 1;
            }
        }
    }
    summary
}

/// Records that the message goes to connector `index`, keeping the first code seen for it.
fn add_target(targets: &mut Vec<(usize, Option<Code>)>, index: usize, code: Option<Code>) {
    match targets.iter_mut().find(|(i, _)| *i == index) {
        Some((_, existing)) => {
            if existing.is_none() {
                *existing = code;
            }
        }
        None => targets.push((index, code)),
    }
}

/// Whether `connector` carries mail for a recipient in `domain` (its `recipient_domains`).
fn matches_domain(connector: &Connector, domain: Option<&str>) -> bool {
    domain.is_some_and(|domain| {
        connector
            .recipient_domains
            .iter()
            .any(|pattern| domain_matches(pattern, domain))
    })
}

/// Whether a recipient in `domain`, whose delay reason named `hop`, went through `connector`'s
/// route: the hop is one of its smart hosts (on its port, when the reason names a port), or the
/// domain or hop is the domain it follows the MX of.
fn matches_hop(connector: &Connector, domain: Option<&str>, hop: Option<&NextHop>) -> bool {
    match &connector.route {
        Route::SmartHosts(hosts) => hop.is_some_and(|hop| {
            hop.port.is_none_or(|port| port == connector.port)
                && hosts.iter().any(|host| match host {
                    Host::Name(name) => same_name(name, &hop.host),
                    Host::Ip(ip) => hop.address == Some(*ip) || hop.host.parse().ok() == Some(*ip),
                })
        }),
        Route::Mx(mx_domain) => {
            domain.is_some_and(|domain| same_name(mx_domain, domain))
                || hop.is_some_and(|hop| same_name(mx_domain, &hop.host))
        }
    }
}

/// The domain of an address (after the last `@`), lower case, without a trailing dot.
fn recipient_domain(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Whether `domain` is `pattern`, or a subdomain of `suffix` for a pattern `*.suffix`.
fn domain_matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let suffix = suffix.trim_end_matches('.');
            domain.len() > suffix.len() + 1
                && domain
                    .get(domain.len() - suffix.len()..)
                    .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
                && domain.as_bytes()[domain.len() - suffix.len() - 1] == b'.'
        }
        None => same_name(pattern, domain),
    }
}

/// Whether two DNS names are the same: case-insensitive, trailing dots ignored.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn a_recipient_domain_wins_over_the_next_hop_and_ports_must_agree() {
        let connectors = crate::config::parse(
            "connectors:
  - name: refused
    smart_hosts: [127.0.0.1]
    port: 44761
    recipient_domains: [d-refused.test]
  - name: hang
    smart_hosts: [127.0.0.1]
    port: 2525
    recipient_domains: [d-hang.test]
  - name: hop-only
    smart_hosts: [127.0.0.1]
    port: 2526
",
            Path::new("test.yml"),
        )
        .expect("config")
        .connectors;
        let line = |id: &str, rcpt: &str, reason: &str| {
            format!(
                "{{\"queue_name\":\"deferred\",\"queue_id\":\"{id}\",\"arrival_time\":{},\"message_size\":1,\"sender\":\"s@x.test\",\"recipients\":[{{\"address\":\"{rcpt}\",\"delay_reason\":\"{reason}\"}}]}}\n",
                NOW - 60
            )
        };
        let output = [
            line("A1", "a@d-refused.test", "connect to 127.0.0.1[127.0.0.1]:44761: Connection refused"),
            line("A2", "b@d-hang.test", "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"),
            line("A3", "c@other.test", "connect to 127.0.0.1[127.0.0.1]:2526: Connection refused"),
            line("A4", "d@other.test", "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"),
        ]
        .concat();
        let summary = summarize(
            &parse_queue(output.as_bytes()),
            &connectors,
            UNIX_EPOCH + Duration::from_secs(NOW),
        );
        let counts: Vec<(&str, Code, u64)> = summary.counts().collect();
        assert_eq!(
            counts,
            vec![
                ("(unmatched)", Code::ConnectionRefused, 1),
                ("hang", Code::ConnectionClosedAbruptly, 1),
                ("hop-only", Code::ConnectionRefused, 1),
                ("refused", Code::ConnectionRefused, 1),
            ]
        );
    }

    const NOW: u64 = 1_795_470_000;

    fn connectors() -> Vec<Arc<Connector>> {
        crate::config::parse(
            "connectors:
  - name: onprem
    smart_hosts: [refused.mf.test, 127.0.0.2]
    recipient_domains: [D-Refused.test]
  - name: busy
    smart_hosts: [busy.mf.test]
  - name: partner
    use_mx_record: true
    recipient_domains: [partner.test]
  - name: wildcard
    smart_hosts: [nothing.mf.test]
    recipient_domains: ['*.sub.test']
",
            Path::new("test.yml"),
        )
        .unwrap()
        .connectors
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn message(arrival_time: i64, recipients: &[(&str, Option<&str>)]) -> QueueMessage {
        QueueMessage {
            queue_name: "deferred".into(),
            queue_id: format!("ID{arrival_time}"),
            arrival_time,
            message_size: 300,
            forced_expire: false,
            sender: "sender@mf.test".into(),
            recipients: recipients
                .iter()
                .map(|(address, reason)| Recipient {
                    address: (*address).into(),
                    delay_reason: reason.map(Into::into),
                })
                .collect(),
        }
    }

    fn queue(messages: Vec<QueueMessage>) -> Queue {
        Queue {
            messages,
            ..Queue::default()
        }
    }

    const REFUSED: &str = "connect to refused.mf.test[127.0.0.2]:25: Connection refused";
    const BUSY: &str = "host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy.mf.test Service not available, closing transmission channel";

    #[test]
    fn counts_and_ages_the_captured_queue() {
        let output = concat!(
            r#"{"queue_name": "deferred", "queue_id": "6D79598E0B4", "arrival_time": 1795462876, "message_size": 272, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-refused.test", "delay_reason": "connect to refused.mf.test[127.0.0.2]:25: Connection refused"}]}"#,
            "\n",
            r#"{"queue_name": "deferred", "queue_id": "6667598E184", "arrival_time": 1795462877, "message_size": 298, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "a@d-refused.test", "delay_reason": "connect to refused.mf.test[127.0.0.2]:25: Connection refused"}, {"address": "c@partner.test", "delay_reason": "connect to mx.partner.test[127.0.0.30]:25: Connection refused"}, {"address": "b@d-busy.test", "delay_reason": "host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy.mf.test Service not available, closing transmission channel"}]}"#,
            "\n",
            r#"{"queue_name": "deferred", "queue_id": "4245798E133", "arrival_time": 1795462877, "message_size": 273, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-servfail.test", "delay_reason": "Host or domain name not found. Name service error for name=mx.servfail.test type=A: Host not found, try again"}]}"#,
            "\n",
            r#"{"queue_name": "active", "queue_id": "7633E98E0B6", "arrival_time": 1795462000, "message_size": 272, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-backlog.test"}]}"#,
            "\n",
        );
        let summary = summarize(&parse_queue(output.as_bytes()), &connectors(), at(NOW));
        let counts: Vec<_> = summary.counts().collect();
        assert_eq!(
            counts,
            vec![
                (UNMATCHED, Code::DnsQueryFailed, 1),
                ("busy", Code::CannotConnect, 1),
                ("onprem", Code::ConnectionRefused, 2),
                ("partner", Code::ConnectionRefused, 1),
            ]
        );
        let ages: Vec<_> = summary.oldest_ages().collect();
        assert_eq!(
            ages,
            vec![
                // The active message has no reason: not counted, but aged.
                (UNMATCHED, NOW - 1_795_462_000),
                ("busy", NOW - 1_795_462_877),
                ("onprem", NOW - 1_795_462_876),
                ("partner", NOW - 1_795_462_877),
            ]
        );
        assert_eq!(summary.count("onprem", Code::ConnectionRefused), 2);
        assert_eq!(summary.count("onprem", Code::Other), 0);
        assert_eq!(summary.oldest_age("wildcard"), None);
    }

    #[test]
    fn matches_by_next_hop_name_and_address() {
        let q = queue(vec![
            // Next hop by name: busy.mf.test, recipient domain unknown to every connector.
            message(100, &[("x@elsewhere.test", Some(BUSY))]),
            // Next hop by address only (IP-literal smart host), name unknown.
            message(
                200,
                &[(
                    "y@elsewhere.test",
                    Some("connect to 127.0.0.2[127.0.0.2]:25: Connection refused"),
                )],
            ),
            // Suspended delivery still names the next hop.
            message(
                300,
                &[(
                    "z@elsewhere.test",
                    Some(
                        "delivery temporarily suspended: connect to BUSY.mf.test.[127.0.0.6]:25: Connection timed out",
                    ),
                )],
            ),
        ]);
        let summary = summarize(&q, &connectors(), at(1000));
        assert_eq!(summary.count("busy", Code::CannotConnect), 1);
        assert_eq!(summary.count("busy", Code::ConnectionTimedOut), 1);
        assert_eq!(summary.count("onprem", Code::ConnectionRefused), 1);
        assert_eq!(summary.oldest_age("busy"), Some(900));
        assert_eq!(summary.oldest_age("onprem"), Some(800));
        assert_eq!(summary.oldest_age(UNMATCHED), None);
    }

    #[test]
    fn mx_connector_matches_its_domain_and_its_dns_failures() {
        let q = queue(vec![
            message(
                10,
                &[(
                    "u@PARTNER.test",
                    Some(
                        "Host or domain name not found. Name service error for name=partner.test type=MX: Host not found, try again",
                    ),
                )],
            ),
            message(
                20,
                &[(
                    "v@other.test",
                    Some(
                        "Host or domain name not found. Name service error for name=partner.test type=MX: Host not found",
                    ),
                )],
            ),
        ]);
        let summary = summarize(&q, &connectors(), at(100));
        assert_eq!(summary.count("partner", Code::DnsQueryFailed), 2);
        assert_eq!(summary.oldest_age("partner"), Some(90));
    }

    #[test]
    fn a_message_counts_once_per_connector_with_its_first_reason() {
        let q = queue(vec![message(
            50,
            &[
                ("a@d-refused.test", None),
                ("b@d-refused.test", Some(REFUSED)),
                ("c@d-refused.test", Some(BUSY)),
                ("d@nowhere.test", Some("mail transport unavailable")),
                ("e@nowhere.test", Some(REFUSED)),
            ],
        )]);
        let summary = summarize(&q, &connectors(), at(60));
        let counts: Vec<_> = summary.counts().collect();
        assert_eq!(
            counts,
            // c@d-refused.test went through busy's host, but its domain belongs to onprem.
            vec![
                (UNMATCHED, Code::Other, 1),
                ("onprem", Code::ConnectionRefused, 1),
            ]
        );
    }

    #[test]
    fn wildcard_domains_match_subdomains_only() {
        let q = queue(vec![
            message(
                1,
                &[("a@mail.sub.test", Some("mail transport unavailable"))],
            ),
            message(2, &[("b@sub.test", Some("mail transport unavailable"))]),
            message(3, &[("c@xsub.test", Some("mail transport unavailable"))]),
        ]);
        let summary = summarize(&q, &connectors(), at(10));
        assert_eq!(summary.count("wildcard", Code::Other), 1);
        assert_eq!(summary.count(UNMATCHED, Code::Other), 2);
    }

    #[test]
    fn odd_messages_do_not_break_the_summary() {
        let q = queue(vec![
            // Arrived "in the future" (clock skew): age 0.
            message(5000, &[("a@d-refused.test", Some(REFUSED))]),
            // No recipients, and an address without a domain.
            message(10, &[]),
            message(20, &[("MAILER-DAEMON", None)]),
        ]);
        let summary = summarize(&q, &connectors(), at(1000));
        assert_eq!(summary.oldest_age("onprem"), Some(0));
        assert_eq!(summary.oldest_age(UNMATCHED), Some(990));
        assert_eq!(summary.counts().count(), 1);
        // A clock before 1970 gives ages of 0, not a panic.
        let summary = summarize(&q, &connectors(), UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(summary.oldest_age(UNMATCHED), Some(0));
    }

    #[test]
    fn without_connectors_everything_is_unmatched() {
        let q = queue(vec![message(1, &[("a@d-refused.test", Some(REFUSED))])]);
        let summary = summarize(&q, &[], at(2));
        assert_eq!(summary.count(UNMATCHED, Code::ConnectionRefused), 1);
        assert_eq!(
            summarize(&Queue::default(), &[], at(2)),
            QueueSummary::default()
        );
    }
}
