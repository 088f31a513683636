//! MTA-STS in one probe of a connector: whose policy applies, the lookups the probe runs before
//! it connects (the policy and the TLS-RPT record, at once), and what the policy asks of each
//! host.
//!
//! The policy domain is the first recipient domain of an MX connector, and the first smart
//! host of a smart-host connector when that is a name (an IP literal has no policy). A host is
//! held to the policy only when it is a name, a policy is in force, and DANE does not apply to
//! it (RFC 8461 §2: DANE takes precedence).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::{Connector, Host, MtaStsMode, Route, TlsSettings};

use super::cache::PolicyCache;
use super::fetch::PolicyClient;
use super::policy::{HostVerdict, Mode, MxPattern};
use super::tlsrpt::TlsRpt;
use super::{Discovery, PolicyDomain, Resolve, discover};

/// How a connector's probes look MTA-STS up; built once per configuration.
#[derive(Clone, Debug)]
pub struct StsSetup {
    /// The domain whose policy applies.
    pub domain: PolicyDomain,
    /// Fetches the policy, trusting the system roots and the connector's `ca_file`.
    pub client: PolicyClient,
}

impl StsSetup {
    /// The domain whose policy applies to `connector`; `None` where MTA-STS is not looked up:
    /// `mta_sts_mode: none`, `tls_settings: none` (never TLS), or a first smart host that is an
    /// IP literal.
    pub fn policy_domain(connector: &Connector) -> Option<PolicyDomain> {
        let looked_up = match connector.mta_sts_mode {
            MtaStsMode::Opportunistic => connector.tls_settings != TlsSettings::None,
            MtaStsMode::None => false,
        };
        if !looked_up {
            return None;
        }
        match &connector.route {
            Route::Mx(domain) => PolicyDomain::new(domain),
            Route::SmartHosts(hosts) => match hosts.first()? {
                Host::Name(name) => PolicyDomain::new(name),
                Host::Ip(_) => None,
            },
        }
    }

    /// Looks up the policy (through `cache`) and the TLS-RPT record at once, through
    /// `resolver`, waiting at most until `deadline`; `now` is the probe's wall-clock time.
    pub async fn look_up<R>(
        &self,
        resolver: &R,
        cache: &PolicyCache,
        now: SystemTime,
        deadline: Instant,
    ) -> MtaStsReport
    where
        R: Resolve + Clone + 'static,
    {
        let started = Instant::now();
        let (discovery, tlsrpt) = tokio::join!(
            discover(&self.domain, resolver, &self.client, cache, now, deadline),
            TlsRpt::lookup(&self.domain, resolver, deadline),
        );
        MtaStsReport {
            domain: self.domain.clone(),
            discovery,
            tlsrpt,
            elapsed: started.elapsed(),
            hosts: Vec::new(),
        }
    }
}

/// What MTA-STS showed at one probe of a connector.
#[derive(Clone, Debug)]
pub struct MtaStsReport {
    /// The policy domain.
    pub domain: PolicyDomain,
    /// The `_mta-sts` record and the policy in force, if any.
    pub discovery: Discovery,
    /// The `_smtp._tls` record.
    pub tlsrpt: TlsRpt,
    /// How long the lookups took (they run beside the MX and address lookups).
    pub elapsed: Duration,
    /// What the policy in force said about each host that was judged, in order of preference.
    pub hosts: Vec<HostMatch>,
}

/// What the policy in force said about one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMatch {
    /// The host's name.
    pub host: String,
    /// The first `mx` pattern it matches; `None` when none does.
    pub pattern: Option<MxPattern>,
    /// DANE applies to the host, so the policy was not applied to it.
    pub dane_applies: bool,
}

/// What the policy asks of the probe of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRule {
    /// Nothing: no policy in force, a policy that only reports, DANE applies, or an IP literal.
    Free,
    /// An `enforce` policy lists the host: TLS is required, with a certificate valid for it.
    Enforced,
    /// An `enforce` policy does not list the host: a sending server does not connect to it.
    Refused,
}

impl MtaStsReport {
    /// What the policy in force asks of `host`, to which DANE applies or not; a named host is
    /// recorded in [`MtaStsReport::hosts`] whenever a policy is in force.
    pub fn judge(&mut self, host: &Host, dane_applies: bool) -> HostRule {
        let Host::Name(name) = host else {
            return HostRule::Free;
        };
        let Some(cached) = self.discovery.policy() else {
            return HostRule::Free;
        };
        let verdict = cached.policy.verdict(name);
        let rule = match (verdict, cached.policy.mode) {
            _ if dane_applies => HostRule::Free,
            (HostVerdict::Refused, _) => HostRule::Refused,
            (HostVerdict::Listed(_), Mode::Enforce) => HostRule::Enforced,
            (HostVerdict::Listed(_), Mode::Testing | Mode::None) | (HostVerdict::Unlisted, _) => {
                HostRule::Free
            }
        };
        let pattern = cached.policy.matching_pattern(name).cloned();
        self.hosts.push(HostMatch {
            host: name.to_string(),
            pattern,
            dane_applies,
        });
        rule
    }
}

#[cfg(test)]
impl MtaStsReport {
    /// A report for `example.test`, whose record announces id `id2`: with `policy`, that
    /// policy fetched at `fetched_at` (the same as under the earlier id `id1`) is in force;
    /// without, its fetch failed with status 404. The TLS-RPT record is read from `tlsrpt`,
    /// and each of `hosts` is judged.
    pub(crate) fn fixture(
        policy: Option<&str>,
        fetched_at: SystemTime,
        hosts: &[&str],
        tlsrpt: &[&str],
    ) -> MtaStsReport {
        use super::StsLookup;
        use super::cache::{CachedPolicy, FetchAttempt, PolicyStatus};
        use super::fetch::FetchFailure;
        use super::policy::Policy;
        use super::record::{StsPublication, StsRecord};
        use std::sync::Arc;

        let cached = policy.map(|text| {
            let policy = Policy::parse(text.as_bytes()).expect("policy");
            Arc::new(CachedPolicy {
                expires_at: fetched_at + policy.max_age,
                policy,
                id: "id2".into(),
                fetched_at,
                same_policy_as: Some("id1".into()),
            })
        });
        let result = match cached {
            Some(_) => Ok(()),
            None => Err(FetchFailure::Status(404)),
        };
        let mut report = MtaStsReport {
            domain: PolicyDomain::new("example.test").expect("domain"),
            discovery: Discovery {
                record: StsLookup::Answer(StsPublication::Published(StsRecord {
                    id: "id2".into(),
                })),
                status: PolicyStatus {
                    policy: cached,
                    last_fetch: Some(FetchAttempt {
                        id: "id2".into(),
                        at: fetched_at,
                        result,
                    }),
                    fetching: false,
                },
            },
            tlsrpt: TlsRpt::from_txt(tlsrpt),
            elapsed: Duration::from_millis(3),
            hosts: Vec::new(),
        };
        for host in hosts {
            report.judge(&Host::Name(host.parse().expect("host name")), false);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;
    use std::sync::Arc;

    fn connector(yaml: &str) -> Arc<Connector> {
        let config =
            parse(&format!("connectors:\n  - {yaml}\n"), Path::new("t.yml")).expect("config");
        config.connectors[0].clone()
    }

    #[test]
    fn the_policy_domain_follows_the_route() {
        let mx = connector(
            "name: a\n    use_mx_record: true\n    recipient_domains: [Fabrikam.COM, other.test]",
        );
        assert_eq!(
            StsSetup::policy_domain(&mx).map(|d| d.to_string()),
            Some("fabrikam.com".into())
        );
        let smart = connector("name: b\n    smart_hosts: [relay.contoso.com, 192.0.2.1]");
        assert_eq!(
            StsSetup::policy_domain(&smart).map(|d| d.to_string()),
            Some("relay.contoso.com".into())
        );
        let literal = connector("name: c\n    smart_hosts: [192.0.2.1, relay.contoso.com]");
        assert_eq!(StsSetup::policy_domain(&literal), None);
        let plain = connector(
            "name: d\n    use_mx_record: true\n    recipient_domains: [fabrikam.com]\n    tls_settings: none",
        );
        assert_eq!(
            StsSetup::policy_domain(&plain),
            None,
            "never TLS: no MTA-STS"
        );
        let off = connector(
            "name: e\n    use_mx_record: true\n    recipient_domains: [fabrikam.com]\n    mta_sts_mode: none",
        );
        assert_eq!(StsSetup::policy_domain(&off), None, "mta_sts_mode: none");
    }

    fn report(policy: Option<&str>) -> MtaStsReport {
        MtaStsReport::fixture(policy, SystemTime::now(), &[], &[])
    }

    fn name(host: &str) -> Host {
        Host::Name(host.parse().expect("host name"))
    }

    #[test]
    fn an_enforce_policy_holds_listed_hosts_and_refuses_the_others() {
        let mut report = report(Some(
            "version: STSv1\nmode: enforce\nmax_age: 600\nmx: *.example.test\n",
        ));
        assert_eq!(
            report.judge(&name("mx.example.test"), false),
            HostRule::Enforced
        );
        assert_eq!(
            report.judge(&name("deep.mx.example.test"), false),
            HostRule::Refused
        );
        assert_eq!(
            report.judge(&name("deep.mx.example.test"), true),
            HostRule::Free,
            "DANE takes precedence"
        );
        assert_eq!(
            report.judge(&Host::Ip("192.0.2.1".parse().expect("ip")), false),
            HostRule::Free
        );
        let seen: Vec<(&str, Option<String>, bool)> = report
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.as_str(),
                    h.pattern.as_ref().map(ToString::to_string),
                    h.dane_applies,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("mx.example.test", Some("*.example.test".into()), false),
                ("deep.mx.example.test", None, false),
                ("deep.mx.example.test", None, true),
            ]
        );
    }

    #[test]
    fn testing_none_and_absent_policies_hold_nothing() {
        let mut testing = report(Some(
            "version: STSv1\nmode: testing\nmax_age: 600\nmx: mx.example.test\n",
        ));
        assert_eq!(testing.judge(&name("other.test"), false), HostRule::Free);
        assert_eq!(
            testing.judge(&name("mx.example.test"), false),
            HostRule::Free
        );
        assert_eq!(testing.hosts.len(), 2, "still reported");
        let mut none = report(Some("version: STSv1\nmode: none\nmax_age: 600\n"));
        assert_eq!(none.judge(&name("mx.example.test"), false), HostRule::Free);
        let mut absent = report(None);
        assert_eq!(
            absent.judge(&name("mx.example.test"), false),
            HostRule::Free
        );
        assert!(absent.hosts.is_empty(), "nothing to match without a policy");
    }
}
