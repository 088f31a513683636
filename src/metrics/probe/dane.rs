//! The DNSSEC and DANE series of a `/probe` scrape, for the probes that checked DANE (codes.md,
//! "DANE metrics"): the DNSSEC status of each RRset, the TLSA records of each host, whether a
//! record matches each address's chain, and whether a renewal would break DANE.

use crate::config::Route;
use crate::exporter::FinishedProbe;
use crate::metrics::labels::{
    ConnectorHostLabels, DnssecStatusLabels, TargetLabels, TlsaRecordLabels, Usability,
};
use crate::metrics::text::{Family, flag};
use crate::probe::TargetReport;
use crate::probe::dnssec::DnssecStatus;

use super::{Section, each_target, name, per_probe};

const DNSSEC_STATUS: Family<DnssecStatusLabels<'static>> = Family::gauge(
    "mailflow_dnssec_status",
    "DNSSEC status of the host's address records (for an MX connector, of its MX RRset under the domain): one series per status, exactly one is 1",
);
const DANE_TLSA_RECORDS: Family<TlsaRecordLabels<'static>> = Family::gauge(
    "mailflow_dane_tlsa_records",
    "TLSA records at _PORT._tcp.HOST, usable for SMTP or not; present where the TLSA answer is secure",
);
const DANE_MATCH: Family<TargetLabels<'static>> = Family::gauge(
    "mailflow_dane_match",
    "1 if a usable TLSA record matches the chain the address presented, 0 if none does",
);
const DANE_ROLLOVER_READY: Family<ConnectorHostLabels<'static>> = Family::gauge(
    "mailflow_dane_rollover_ready",
    "1 if a certificate renewal would not break DANE: a DANE-TA match, or a pre-published next DANE-EE key",
);
/// The DNSSEC and DANE families, in order.
pub(super) static SECTIONS: [&dyn Section; 4] = [
    &per_probe(&DNSSEC_STATUS, |dnssec, p| {
        let mx = match (&p.report.connector.route, p.report.mx_dnssec) {
            (Route::Mx(domain), Some(status)) => Some((domain.as_str(), status)),
            (Route::Mx(_) | Route::SmartHosts(_), _) => None,
        };
        let mut hosts = each_host(p, |t| t.dane.as_ref().map(|dane| dane.host.status));
        // The MX domain that is its own host (an implicit MX, or an MX lookup that failed)
        // is one series: the weaker of its two statuses.
        let mx = mx.map(
            |(domain, status)| match hosts.iter().position(|(h, _)| *h == domain) {
                Some(index) => (domain, status.worst(hosts.remove(index).1)),
                None => (domain, status),
            },
        );
        for (host, current) in mx.into_iter().chain(hosts) {
            for status in DnssecStatus::ALL {
                let labels = DnssecStatusLabels {
                    connector: name(p),
                    host,
                    status,
                };
                dnssec.sample(labels, flag(status == current));
            }
        }
    }),
    &per_probe(&DANE_TLSA_RECORDS, |records, p| {
        let hosts = each_host(p, |t| t.dane.as_ref().and_then(|d| d.host.tlsa.counts()));
        for (host, counts) in hosts {
            for (usable, count) in [(true, counts.usable), (false, counts.unusable)] {
                let labels = TlsaRecordLabels {
                    connector: name(p),
                    host,
                    usable: Usability(usable),
                };
                records.sample(labels, count as f64);
            }
        }
    }),
    &per_probe(&DANE_MATCH, |matched, p| {
        each_target(p, |t, address| {
            if let Some(check) = t.dane.as_ref().and_then(|d| d.check.as_ref()) {
                let labels = TargetLabels {
                    connector: name(p),
                    host: &t.host,
                    address,
                };
                matched.sample(labels, flag(check.matched.is_some()));
            }
        });
    }),
    &per_probe(&DANE_ROLLOVER_READY, |rollover, p| {
        let hosts = each_host(p, |t| {
            let check = t.dane.as_ref()?.check.as_ref()?;
            Some(check.rollover_ready)
        });
        for (host, ready) in hosts {
            let labels = ConnectorHostLabels {
                connector: name(p),
                host,
            };
            rollover.sample(labels, flag(ready));
        }
    }),
];

/// The hosts of `p`'s targets, each once (an MX host listed twice, or a host of several
/// addresses), with the first value `value` finds among its targets; hosts without one are left
/// out.
fn each_host<'p, T>(
    p: &'p FinishedProbe,
    value: impl Fn(&'p TargetReport) -> Option<T>,
) -> Vec<(&'p str, T)> {
    let mut hosts: Vec<(&str, T)> = Vec::new();
    for target in &p.report.targets {
        if hosts.iter().any(|(host, _)| *host == target.host) {
            continue;
        }
        if let Some(found) = value(target) {
            hosts.push((&target.host, found));
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::metrics::probe::ProbeMetrics;
    use crate::metrics::text::Format;
    use crate::probe::Report;
    use crate::state::ConnectorState;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn dane_series_follow_the_presence_rules() {
        use crate::probe::dane::Tlsa;
        use crate::probe::dane_rule::{HostDane, TlsaAnswer};
        use crate::probe::{DaneCheck, TargetDane};
        let config = parse(
            "connectors:\n  - name: c1\n    use_mx_record: true\n    recipient_domains: [example.test]\n",
            Path::new("t.yml"),
        )
        .expect("config");
        let record = |usage| Tlsa {
            usage,
            selector: 1,
            matching: 1,
            data: vec![7; 32],
        };
        let target =
            |host: &str, address: &str, tlsa: TlsaAnswer, check: Option<DaneCheck>| TargetReport {
                host: host.into(),
                address: Some(address.parse().expect("ip")),
                outcome: Ok(()),
                phases: Vec::new(),
                tls: None,
                last_reply: None,
                tls_fallback: None,
                dane: Some(TargetDane {
                    host: HostDane {
                        status: match tlsa {
                            TlsaAnswer::NotAsked => DnssecStatus::Insecure,
                            _ => DnssecStatus::Secure,
                        },
                        tlsa,
                    },
                    check,
                }),
            };
        let check = DaneCheck {
            matched: Some(record(3)),
            needed: None,
            rollover_ready: false,
            broken_chain: false,
        };
        let secure = TlsaAnswer::Secure(vec![record(3), record(1)].into());
        let report = Report {
            connector: config.connectors[0].clone(),
            outcome: Ok(()),
            duration: Duration::from_millis(5),
            targets: vec![
                target(
                    "mx1.example.test",
                    "192.0.2.1",
                    secure.clone(),
                    Some(check.clone()),
                ),
                target("mx1.example.test", "192.0.2.2", secure, Some(check)),
                target(
                    "mx2.example.test",
                    "192.0.2.3",
                    TlsaAnswer::Secure(Vec::new().into()),
                    None,
                ),
                target("mx3.other.test", "192.0.2.4", TlsaAnswer::NotAsked, None),
            ],
            mta_sts: None,
            mx_dnssec: Some(DnssecStatus::Secure),
        };
        let probes = [Arc::new(FinishedProbe {
            report,
            state: ConnectorState::default(),
            at: SystemTime::now(),
        })];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_dnssec_status{connector=\"c1\",host=\"example.test\",status=\"secure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx1.example.test\",status=\"secure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx3.other.test\",status=\"insecure\"} 1",
            "mailflow_dnssec_status{connector=\"c1\",host=\"mx3.other.test\",status=\"secure\"} 0",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx1.example.test\",usable=\"true\"} 1",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx1.example.test\",usable=\"false\"} 1",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx2.example.test\",usable=\"true\"} 0",
            "mailflow_dane_tlsa_records{connector=\"c1\",host=\"mx2.example.test\",usable=\"false\"} 0",
            "mailflow_dane_match{connector=\"c1\",host=\"mx1.example.test\",address=\"192.0.2.2\"} 1",
            "mailflow_dane_rollover_ready{connector=\"c1\",host=\"mx1.example.test\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert_eq!(text.matches("mailflow_dnssec_status{").count(), 4 * 4);
        assert_eq!(text.matches("mailflow_dane_rollover_ready{").count(), 1);
        assert_eq!(text.matches("mailflow_dane_match{").count(), 2);
        assert!(!text.contains("host=\"mx3.other.test\",usable"));
    }
}
