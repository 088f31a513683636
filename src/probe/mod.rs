//! The probe engine: walks a connector the way a sending mail server does, on every address of
//! every host, and reports what each address showed.
//!
//! A probe runs in three steps, one file each: `resolve.rs` finds the connector's hosts in order
//! of preference and their addresses; the engine fans out to every address at once; `attempt.rs`
//! holds the dialogue with one address (connect → greeting → EHLO → STARTTLS or implicit TLS →
//! TLS and certificate checks → EHLO → optional MAIL FROM / RCPT TO, then RSET → QUIT). The
//! connector-level rule of [`crate::outcome`] then makes one outcome of them all. [`dns`],
//! [`smtp`] and [`tls`] are the protocols underneath; [`limits`] caps the connections opened.

mod attempt;
pub mod dane;
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
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::config::{Config, Connector, DnsSettings, TrustAnchors};
use crate::outcome::{DnsFailure, Failure, Phase, connector_outcome};
use attempt::Attempt;
use dns::Dns;
use limits::{Limiter, NoSlot};
use resolve::ResolvedHost;
use tls::{ChainValidator, ExpectedName, TlsContext};

pub use report::{Report, TargetReport, Throttled};

/// The probes of one configuration, with the resolvers and validators they share.
#[derive(Debug)]
pub struct Engine {
    /// The TLS client every probe uses.
    tls: Arc<TlsContext>,
    /// The caps on open connections, shared with the engines of earlier configurations.
    limiter: Arc<Limiter>,
    /// Each connector by name, with what its probes share.
    connectors: HashMap<String, ConnectorProbe>,
}

/// A connector with the shared parts its probes use.
#[derive(Debug)]
struct ConnectorProbe {
    /// The connector as configured.
    connector: Arc<Connector>,
    /// The resolver of its DNS settings, shared by connectors with the same settings.
    dns: Dns,
    /// The validator of its trust anchors, shared by connectors with the same CA file.
    validator: Arc<ChainValidator>,
    /// The name its `tls_domain` asks the certificate to carry, if it sets one.
    tls_domain: Option<ExpectedName>,
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
}

impl Engine {
    /// Builds the probes of `config`: one resolver per DNS setting, one validator per CA set.
    /// Connections are opened within `limiter`'s caps, which outlive a reload.
    pub fn new(
        config: &Config,
        tls: Arc<TlsContext>,
        limiter: Arc<Limiter>,
    ) -> Result<Self, EngineError> {
        let mut resolvers: HashMap<DnsSettings, Dns> = HashMap::new();
        let mut validators: HashMap<Option<TrustAnchors>, Arc<ChainValidator>> = HashMap::new();
        let mut connectors = HashMap::with_capacity(config.connectors.len());
        for connector in &config.connectors {
            let dns = match resolvers.get(&connector.dns) {
                Some(dns) => dns.clone(),
                None => {
                    let dns = Dns::new(&connector.dns)?;
                    resolvers.insert(connector.dns.clone(), dns.clone());
                    dns
                }
            };
            let validator = validators
                .entry(connector.ca.clone())
                .or_insert_with(|| Arc::new(tls.validator(connector.ca.as_ref())))
                .clone();
            let tls_domain = connector.tls_domain.as_ref().map(ExpectedName::from);
            connectors.insert(
                connector.name.clone(),
                ConnectorProbe {
                    connector: connector.clone(),
                    dns,
                    validator,
                    tls_domain,
                },
            );
        }
        Ok(Engine {
            tls,
            limiter,
            connectors,
        })
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
        let hosts = resolve::resolve(&probe.connector.route, &probe.dns, deadline).await;
        let attempts = self.fan_out(probe, &hosts, deadline).await;
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
        }))
    }

    /// Probes every address of every host at once; the reports keep the hosts' order of
    /// preference, and a host that did not resolve reports once, without an address.
    async fn fan_out(
        &self,
        probe: &ConnectorProbe,
        hosts: &[ResolvedHost],
        deadline: Instant,
    ) -> Vec<Result<TargetReport, NoSlot>> {
        let per_host = hosts.iter().map(|resolved| async move {
            match &resolved.addresses {
                Err(failure) => vec![Ok(TargetReport {
                    host: resolved.host.to_string(),
                    address: None,
                    outcome: Err(Failure::Dns(*failure)),
                    phases: vec![(Phase::Dns, resolved.elapsed)],
                    tls: None,
                    last_reply: None,
                    tls_fallback: None,
                })],
                Ok(addresses) => {
                    let attempts = addresses.iter().map(|address| {
                        Attempt::new(self, probe, resolved, *address, deadline).run()
                    });
                    join_all(attempts).await
                }
            }
        });
        join_all(per_host).await.into_iter().flatten().collect()
    }
}
