//! The MTA-STS and TLS-RPT series of a `/probe` scrape, for the probes that looked the policy
//! up: the mode in force, the last fetch, expiry and max_age, whether each host matches the
//! policy, and whether a TLS-RPT record is published.

use crate::exporter::FinishedProbe;
use crate::metrics::labels::{ConnectorHostLabels, ConnectorLabels, PolicyModeLabels};
use crate::metrics::text::{Family, flag};
use crate::probe::mta_sts::check::MtaStsReport;
use crate::probe::mta_sts::policy::Mode;
use crate::state::unix_seconds;

use super::{Section, connector, name, per_probe};

const MTA_STS_POLICY_MODE: Family<PolicyModeLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_mode",
    "The MTA-STS policy of the connector's policy domain: one series per mode, exactly one is 1",
);
const MTA_STS_FETCH_SUCCESS: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_fetch_success",
    "1 if the last fetch of the MTA-STS policy succeeded",
);
const MTA_STS_EXPIRY: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_expiry_timestamp_seconds",
    "When the cached MTA-STS policy expires (fetch time + max_age)",
);
const MTA_STS_MAX_AGE: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_max_age_seconds",
    "The max_age of the MTA-STS policy in force",
);
const MTA_STS_SAME_AS_PREVIOUS_ID: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_policy_same_as_previous_id",
    "1 if the _mta-sts record announced a new id but the policy host still serves the policy of the previous id",
);
const MTA_STS_MX_MATCH: Family<ConnectorHostLabels<'static>> = Family::gauge(
    "mailflow_mta_sts_mx_match",
    "1 if the host matches an mx pattern of the MTA-STS policy, 0 if none",
);
const TLSRPT_PRESENT: Family<ConnectorLabels<'static>> = Family::gauge(
    "mailflow_tlsrpt_record_present",
    "1 if the policy domain publishes a valid v=TLSRPTv1 record",
);
/// The MTA-STS and TLS-RPT families, in order.
pub(super) static SECTIONS: [&dyn Section; 7] = [
    &per_probe(&MTA_STS_POLICY_MODE, |mode, p| {
        each_mta_sts(p, |sts| {
            let current = sts.discovery.mode_label();
            let modes = Mode::ALL.map(Mode::as_str);
            for each in modes.into_iter().chain(["absent"]) {
                let labels = PolicyModeLabels {
                    connector: name(p),
                    mode: each,
                };
                mode.sample(labels, flag(each == current));
            }
        });
    }),
    &per_probe(&MTA_STS_FETCH_SUCCESS, |fetch_success, p| {
        each_mta_sts(p, |sts| {
            if let Some(success) = sts.discovery.fetch_success() {
                fetch_success.sample(connector(p), flag(success));
            }
        });
    }),
    &per_probe(&MTA_STS_EXPIRY, |expiry, p| {
        each_mta_sts(p, |sts| {
            if let Some(cached) = sts.discovery.policy() {
                expiry.sample(connector(p), unix_seconds(cached.expires_at));
            }
        });
    }),
    &per_probe(&MTA_STS_MAX_AGE, |max_age, p| {
        each_mta_sts(p, |sts| {
            if let Some(cached) = sts.discovery.policy() {
                max_age.sample(connector(p), cached.policy.max_age.as_secs_f64());
            }
        });
    }),
    &per_probe(&MTA_STS_SAME_AS_PREVIOUS_ID, |same_as_previous, p| {
        each_mta_sts(p, |sts| {
            if let Some(cached) = sts.discovery.policy() {
                same_as_previous.sample(connector(p), flag(cached.same_policy_as.is_some()));
            }
        });
    }),
    &per_probe(&MTA_STS_MX_MATCH, |mx_match, p| {
        each_mta_sts(p, |sts| {
            for (index, host) in sts.hosts.iter().enumerate() {
                // An MX host listed twice (at two preferences) is one series.
                if sts.hosts[..index].iter().any(|h| h.host == host.host) {
                    continue;
                }
                let labels = ConnectorHostLabels {
                    connector: name(p),
                    host: &host.host,
                };
                mx_match.sample(labels, flag(host.pattern.is_some()));
            }
        });
    }),
    &per_probe(&TLSRPT_PRESENT, |tlsrpt, p| {
        each_mta_sts(p, |sts| {
            tlsrpt.sample(connector(p), flag(sts.tlsrpt.present()));
        });
    }),
];

/// Calls `write` with what MTA-STS showed for probe `p`, where it was looked up.
fn each_mta_sts(p: &FinishedProbe, write: impl FnOnce(&MtaStsReport)) {
    if let Some(sts) = &p.report.mta_sts {
        write(sts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::probe::ProbeMetrics;
    use crate::metrics::probe::tests::finished;
    use crate::metrics::text::Format;
    use crate::state::ConnectorState;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    /// A probe of `c1` that found `policy` (or none) in force for `example.test`, judged
    /// `hosts`, and the TLS-RPT records `tlsrpt`.
    fn with_mta_sts(policy: Option<&str>, hosts: &[&str], tlsrpt: &[&str]) -> Arc<FinishedProbe> {
        let fetched_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let sts = MtaStsReport::fixture(policy, fetched_at, hosts, tlsrpt);
        let probe = finished(Ok(()), ConnectorState::default());
        let mut report = probe.report.clone();
        report.mta_sts = Some(sts);
        Arc::new(FinishedProbe {
            report,
            state: ConnectorState::default(),
            at: probe.at,
        })
    }

    #[test]
    fn a_policy_in_force_exposes_its_mode_expiry_and_host_matches() {
        let probes = [with_mta_sts(
            Some("version: STSv1\nmode: enforce\nmax_age: 86400\nmx: *.example.test\n"),
            &["mx.example.test", "deep.mx.example.test", "mx.example.test"],
            &["v=TLSRPTv1; rua=mailto:tls@example.test"],
        )];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"enforce\"} 1",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"testing\"} 0",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"none\"} 0",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"absent\"} 0",
            "mailflow_mta_sts_policy_fetch_success{connector=\"c1\"} 1",
            "mailflow_mta_sts_policy_expiry_timestamp_seconds{connector=\"c1\"} 87400",
            "mailflow_mta_sts_policy_max_age_seconds{connector=\"c1\"} 86400",
            "mailflow_mta_sts_policy_same_as_previous_id{connector=\"c1\"} 1",
            "mailflow_mta_sts_mx_match{connector=\"c1\",host=\"mx.example.test\"} 1",
            "mailflow_mta_sts_mx_match{connector=\"c1\",host=\"deep.mx.example.test\"} 0",
            "mailflow_tlsrpt_record_present{connector=\"c1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert_eq!(
            text.matches("mailflow_mta_sts_mx_match{").count(),
            2,
            "one series per host"
        );
    }

    #[test]
    fn a_policy_that_cannot_be_fetched_is_absent_with_a_failed_fetch() {
        let probes = [with_mta_sts(None, &["mx.example.test"], &[])];
        let text = ProbeMetrics::new(&probes, None).encode(Format::Text);
        for line in [
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"absent\"} 1",
            "mailflow_mta_sts_policy_mode{connector=\"c1\",mode=\"enforce\"} 0",
            "mailflow_mta_sts_policy_fetch_success{connector=\"c1\"} 0",
            "mailflow_tlsrpt_record_present{connector=\"c1\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        for absent in [
            "mailflow_mta_sts_policy_expiry_timestamp_seconds{",
            "mailflow_mta_sts_policy_max_age_seconds{",
            "mailflow_mta_sts_mx_match{",
        ] {
            assert!(!text.contains(absent), "{absent} without a policy:\n{text}");
        }
        let without = [finished(Ok(()), ConnectorState::default())];
        let text = ProbeMetrics::new(&without, None).encode(Format::Text);
        assert!(
            !text.contains("mailflow_mta_sts_policy_mode{"),
            "no MTA-STS series where it is not looked up"
        );
    }
}
