//! The probe engine: walks a connector the way a sending mail server does, on every address of
//! every host, and reports what each address showed.
//!
//! A probe runs in three steps, one file each: `resolve.rs` finds the connector's hosts in order
//! of preference and their addresses, while [`mta_sts::check`] looks up the destination's
//! MTA-STS policy and TLS-RPT record; the engine fans out to every address at once (except to
//! the hosts an `enforce` policy refuses, which are not contacted); `attempt.rs`
//! holds the dialogue with one address (connect → greeting → EHLO → STARTTLS or implicit TLS →
//! TLS and certificate checks → EHLO → optional MAIL FROM / RCPT TO, then RSET → QUIT). The
//! connector-level rule of [`crate::outcome`] then makes one outcome of them all. [`dns`],
//! [`smtp`] and [`tls`] are the protocols underneath; [`limits`] caps the connections opened.

mod attempt;
pub mod dane;
pub mod dane_rule;
pub mod dns;
pub mod dnssec;
mod hello;
pub mod limits;
pub mod mta_sts;
mod quickack;
mod report;
mod resolve;
pub mod smtp;
#[cfg(test)]
mod tests;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::config::{Config, Connector, DnsSettings, SmtpDaneMode, TlsSettings, TrustAnchors};
use crate::outcome::{DnsFailure, Failure, MtaStsFailure, Phase, connector_outcome};
use attempt::Attempt;
use dane_rule::DaneRule;
use dns::Dns;
use dnssec::DnssecResolver;
use limits::{Limiter, NoSlot};
use mta_sts::PolicyDomain;
use mta_sts::cache::PolicyCache;
use mta_sts::check::{HostRule, MtaStsReport, StsSetup};
use mta_sts::fetch::PolicyClient;
use resolve::{Resolution, ResolvedHost};
use tls::{ChainValidator, ExpectedName, TlsContext};

pub use report::{DaneCheck, Report, TargetDane, TargetReport, Throttled};

/// The probes of one configuration, with the resolvers and validators they share.
#[derive(Debug)]
pub struct Engine {
    /// The TLS client every probe uses.
    tls: Arc<TlsContext>,
    /// The caps on open connections, shared with the engines of earlier configurations.
    limiter: Arc<Limiter>,
    /// Each connector by name, with what its probes share.
    connectors: HashMap<String, ConnectorProbe>,
    /// MTA-STS policies by domain, shared with the engines of earlier configurations.
    policies: Arc<PolicyCache>,
}

/// A connector with the shared parts its probes use.
#[derive(Debug)]
struct ConnectorProbe {
    /// The connector as configured.
    connector: Arc<Connector>,
    /// The resolver of its DNS settings, shared by connectors with the same settings (behind an
    /// `Arc`: the resolver handle is several hundred bytes, times every connector).
    dns: Arc<Dns>,
    /// The DNSSEC-aware resolver of its DNS settings where it checks DANE (`smtp_dane_mode` not
    /// `none`, `tls_settings` not `none`), shared likewise.
    dnssec: Option<Arc<DnssecResolver>>,
    /// The validator of its trust anchors, shared by connectors with the same CA file.
    validator: Arc<ChainValidator>,
    /// The name its `tls_domain` asks the certificate to carry, if it sets one.
    tls_domain: Option<ExpectedName>,
    /// Its MTA-STS policy domain and policy client; `None` where MTA-STS is not looked up.
    mta_sts: Option<StsSetup>,
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The TLS client could not be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A resolver could not be set up (e.g. an unreadable /etc/resolv.conf).
    #[error("cannot set up the DNS resolver: {0}")]
    Dns(#[from] hickory_resolver::net::NetError),
    /// The DNSSEC-aware resolver of a DANE connector could not be set up.
    #[error("cannot set up the DNSSEC resolver: {0}")]
    Dnssec(#[from] dnssec::SetupError),
}

impl Engine {
    /// Builds the probes of `config`: one resolver per DNS setting, one validator and one
    /// MTA-STS policy client per CA set. Connections are opened within `limiter`'s caps, and
    /// policies are kept in `policies`; both outlive a reload.
    pub fn new(
        config: &Config,
        tls: Arc<TlsContext>,
        limiter: Arc<Limiter>,
        policies: Arc<PolicyCache>,
    ) -> Result<Self, EngineError> {
        let mut resolvers: HashMap<DnsSettings, Arc<Dns>> = HashMap::new();
        let mut dnssec_resolvers: HashMap<DnsSettings, Arc<DnssecResolver>> = HashMap::new();
        let mut validators: HashMap<Option<TrustAnchors>, Arc<ChainValidator>> = HashMap::new();
        let mut policy_clients: HashMap<Option<TrustAnchors>, PolicyClient> = HashMap::new();
        let mut connectors = HashMap::with_capacity(config.connectors.len());
        for connector in &config.connectors {
            let dns = match resolvers.get(&connector.dns) {
                Some(dns) => dns.clone(),
                None => {
                    let dns = Arc::new(Dns::new(&connector.dns)?);
                    resolvers.insert(connector.dns.clone(), dns.clone());
                    dns
                }
            };
            let checks_dane = connector.smtp_dane_mode != SmtpDaneMode::None
                && connector.tls_settings != TlsSettings::None;
            let dnssec = match (checks_dane, dnssec_resolvers.get(&connector.dns)) {
                (false, _) => None,
                (true, Some(resolver)) => Some(resolver.clone()),
                (true, None) => {
                    let resolver = Arc::new(DnssecResolver::new(&connector.dns)?);
                    dnssec_resolvers.insert(connector.dns.clone(), resolver.clone());
                    Some(resolver)
                }
            };
            let validator = validators
                .entry(connector.ca.clone())
                .or_insert_with(|| Arc::new(tls.validator(connector.ca.as_ref())))
                .clone();
            let tls_domain = connector.tls_domain.as_ref().map(ExpectedName::from);
            let mta_sts = match StsSetup::policy_domain(connector) {
                None => None,
                Some(domain) => {
                    let client = match policy_clients.get(&connector.ca) {
                        Some(client) => client.clone(),
                        None => {
                            let extra = connector.ca.as_ref().map(|ca| &ca.certificates[..]);
                            let anchors =
                                tls.system_roots().iter().chain(extra.unwrap_or_default());
                            let client = PolicyClient::new(anchors.cloned())?;
                            policy_clients.insert(connector.ca.clone(), client.clone());
                            client
                        }
                    };
                    Some(StsSetup { domain, client })
                }
            };
            connectors.insert(
                connector.name.clone(),
                ConnectorProbe {
                    connector: connector.clone(),
                    dns,
                    dnssec,
                    validator,
                    tls_domain,
                    mta_sts,
                },
            );
        }
        Ok(Engine {
            tls,
            limiter,
            connectors,
            policies,
        })
    }

    /// The MTA-STS policy domains of this engine's connectors (the policy cache keeps only
    /// these across a reload).
    pub fn policy_domains(&self) -> impl Iterator<Item = &PolicyDomain> {
        self.connectors
            .values()
            .filter_map(|probe| probe.mta_sts.as_ref().map(|setup| &setup.domain))
    }

    /// Whether `name` is a connector of this engine.
    pub fn has(&self, name: &str) -> bool {
        self.connectors.contains_key(name)
    }

    /// Probes the connector `name` by `deadline` (capped further by its own timeout); `None`
    /// when there is no such connector. [`Throttled`] when the engine's own caps kept an address
    /// from being probed and no other address delivered: the connector's outcome is then
    /// unknown.
    pub async fn probe(&self, name: &str, deadline: Instant) -> Option<Result<Report, Throttled>> {
        let probe = self.connectors.get(name)?;
        let started = Instant::now();
        let deadline = deadline.min(started + probe.connector.timeout);
        // A slow policy host must not eat the time of the SMTP exchanges: after half the
        // budget, the probe goes on as a sender without the policy would (the fetch goes on in
        // the background and fills the cache for the next probe).
        let policy_deadline = started + deadline.saturating_duration_since(started) / 2;
        let (resolution, mut mta_sts) = tokio::join!(
            self.resolve(probe, deadline),
            self.look_up_mta_sts(probe, policy_deadline),
        );
        let Resolution {
            mut hosts,
            mx_status,
        } = resolution;
        for resolved in &mut hosts {
            resolved.dane_applies = resolved
                .dane
                .as_ref()
                .is_some_and(|dane| dane.rule(probe.connector.smtp_dane_mode).applies());
        }
        let attempts = self
            .fan_out(probe, &hosts, mta_sts.as_mut(), deadline)
            .await;
        let mut targets = Vec::with_capacity(attempts.len());
        let mut no_slot = None;
        for attempt in attempts {
            match attempt {
                Ok(target) => targets.push(target),
                Err(missed) => {
                    no_slot.get_or_insert(missed);
                }
            }
        }
        let delivered = targets.iter().any(|t| t.outcome.is_ok());
        if let (Some(no_slot), false) = (no_slot, delivered) {
            return Some(Err(Throttled {
                connector: probe.connector.clone(),
                no_slot,
                duration: started.elapsed(),
            }));
        }
        // A validated connector has at least one host, so at least one target.
        let outcome = connector_outcome(targets.iter().map(|t| &t.outcome))
            .unwrap_or(Err(Failure::Dns(DnsFailure::NoRecords)));
        Some(Ok(Report {
            connector: probe.connector.clone(),
            outcome,
            duration: started.elapsed(),
            targets,
            mta_sts,
            mx_dnssec: mx_status,
        }))
    }

    /// The connector's hosts and their addresses, through the DNSSEC-aware resolver where the
    /// connector checks DANE.
    async fn resolve(&self, probe: &ConnectorProbe, deadline: Instant) -> Resolution {
        let route = &probe.connector.route;
        match &probe.dnssec {
            None => resolve::resolve(route, &probe.dns, deadline).await,
            Some(resolver) => {
                resolve::resolve_secure(route, resolver, &probe.dns, probe.connector.port, deadline)
                    .await
            }
        }
    }

    /// The MTA-STS policy and TLS-RPT record of `probe`'s connector, waiting until `deadline`
    /// at most; `None` where they are not looked up.
    async fn look_up_mta_sts(
        &self,
        probe: &ConnectorProbe,
        deadline: Instant,
    ) -> Option<MtaStsReport> {
        let setup = probe.mta_sts.as_ref()?;
        let resolver = probe.dns.resolver();
        Some(
            setup
                .look_up(resolver, &self.policies, SystemTime::now(), deadline)
                .await,
        )
    }

    /// Probes every address of every host at once; the reports keep the hosts' order of
    /// preference, and a host that did not resolve reports once, without an address. Each host
    /// that resolved is first judged by the MTA-STS policy in force, if any: the addresses of a
    /// host it refuses are not contacted.
    async fn fan_out(
        &self,
        probe: &ConnectorProbe,
        hosts: &[ResolvedHost],
        mut mta_sts: Option<&mut MtaStsReport>,
        deadline: Instant,
    ) -> Vec<Result<TargetReport, NoSlot>> {
        let policy_time = mta_sts.as_ref().map(|report| report.elapsed);
        let rules: Vec<HostRule> = hosts
            .iter()
            .map(
                |resolved| match (&resolved.addresses, mta_sts.as_deref_mut()) {
                    (Ok(_), Some(report)) => report.judge(&resolved.host, resolved.dane_applies),
                    (Ok(_), None) | (Err(_), _) => HostRule::Free,
                },
            )
            .collect();
        let per_host = hosts.iter().zip(rules).map(|(resolved, rule)| async move {
            let mut phases = vec![(Phase::Dns, resolved.elapsed)];
            phases.extend(policy_time.map(|elapsed| (Phase::MtaSts, elapsed)));
            let dane_rule = resolved.dane.as_ref().map_or(DaneRule::Off, |dane| {
                dane.rule(probe.connector.smtp_dane_mode)
            });
            let dane = resolved.dane.as_ref().map(|host| TargetDane {
                host: host.clone(),
                check: None,
            });
            match (&resolved.addresses, rule, dane_rule) {
                (Err(failure), _, _) => vec![Ok(TargetReport {
                    host: resolved.host.to_string(),
                    address: None,
                    outcome: Err(*failure),
                    phases,
                    tls: None,
                    last_reply: None,
                    tls_fallback: None,
                    dane,
                })],
                // DANE's DNS failures hold the mail before any connection.
                (Ok(addresses), _, DaneRule::Fail(failure)) => {
                    held_back(resolved, addresses, Failure::Dane(failure), &phases, &dane)
                }
                (Ok(addresses), HostRule::Refused, _) => held_back(
                    resolved,
                    addresses,
                    Failure::MtaSts(MtaStsFailure::MxNotInPolicy),
                    &phases,
                    &dane,
                ),
                (Ok(addresses), HostRule::Free | HostRule::Enforced, dane_rule) => {
                    let enforced = rule == HostRule::Enforced;
                    let attempts = addresses.iter().map(|address| {
                        Attempt::new(self, probe, resolved, *address, deadline)
                            .under_mta_sts(policy_time, enforced)
                            .under_dane(dane_rule.clone())
                            .run()
                    });
                    join_all(attempts).await
                }
            }
        });
        join_all(per_host).await.into_iter().flatten().collect()
    }
}

/// The reports of a host whose addresses are not contacted: `failure` holds the mail before
/// any connection (a DANE lookup that failed, or an MTA-STS policy that refuses the host).
fn held_back(
    resolved: &ResolvedHost,
    addresses: &[IpAddr],
    failure: Failure,
    phases: &[(Phase, Duration)],
    dane: &Option<TargetDane>,
) -> Vec<Result<TargetReport, NoSlot>> {
    addresses
        .iter()
        .map(|address| {
            Ok(TargetReport {
                host: resolved.host.to_string(),
                address: Some(*address),
                outcome: Err(failure),
                phases: phases.to_vec(),
                tls: None,
                last_reply: None,
                tls_fallback: None,
                dane: dane.clone(),
            })
        })
        .collect()
}
