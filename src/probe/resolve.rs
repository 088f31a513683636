//! The first step of a probe: a connector's hosts in order of preference, each with its
//! addresses or the DNS failure that kept it from having any.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::config::{Host, Route};
use crate::outcome::DnsFailure;

use super::dns::Dns;

/// A host and what its name resolved to.
#[derive(Debug)]
pub(super) struct ResolvedHost {
    /// The host: a smart host as configured, an MX host, or the MX domain itself when its MX
    /// lookup failed.
    pub host: Host,
    /// Its addresses, or why it has none.
    pub addresses: Result<Vec<IpAddr>, DnsFailure>,
    /// How long resolving took, from the start of the probe (MX lookup included).
    pub elapsed: Duration,
    /// Whether DANE applies to the host (RFC 7672); MTA-STS is then not applied to it. Always
    /// false until the DANE lookups are wired in, which set it.
    pub dane_applies: bool,
}

/// The hosts of `route` in order of preference (first smart host, lowest MX preference), each
/// with its addresses or its DNS failure, resolved through `dns` by `deadline`. The hosts of a
/// route are looked up at once.
pub(super) async fn resolve(route: &Route, dns: &Dns, deadline: Instant) -> Vec<ResolvedHost> {
    let started = Instant::now();
    let hosts: Vec<Host> = match route {
        Route::SmartHosts(hosts) => hosts.clone(),
        Route::Mx(domain) => match dns.exchangers(domain, deadline).await {
            Ok(exchangers) => exchangers.into_iter().map(|e| Host::Name(e.host)).collect(),
            Err(failure) => {
                return vec![ResolvedHost {
                    host: Host::Name(domain.clone()),
                    addresses: Err(failure),
                    elapsed: started.elapsed(),
                    dane_applies: false,
                }];
            }
        },
    };
    let lookups = hosts.into_iter().map(|host| async move {
        let addresses = match &host {
            Host::Ip(ip) => Ok(vec![*ip]),
            Host::Name(name) => dns.addresses(name, deadline).await,
        };
        ResolvedHost {
            host,
            addresses,
            elapsed: started.elapsed(),
            dane_applies: false,
        }
    });
    join_all(lookups).await
}
