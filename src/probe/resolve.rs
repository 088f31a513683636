//! The first step of a probe: a connector's hosts in order of preference, each with its
//! addresses or the DNS failure that kept it from having any. Where the connector checks DANE,
//! the names resolve through the DNSSEC-aware resolver instead, and each host also gets its
//! DNSSEC status and, when its addresses are secure, its TLSA records ([`HostDane`]).

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::config::{DomainName, Host, Route};
use crate::outcome::{DaneFailure, DnsFailure, Failure};

use super::dane_rule::{HostDane, TlsaAnswer};
use super::dns::{Dns, Exchanger};
use super::dnssec::{DnssecResolver, DnssecStatus};

/// A host and what its name resolved to.
#[derive(Debug)]
pub(super) struct ResolvedHost {
    /// The host: a smart host as configured, an MX host, or the MX domain itself when its MX
    /// lookup failed.
    pub host: Host,
    /// Its addresses, or why it has none.
    pub addresses: Result<Vec<IpAddr>, Failure>,
    /// How long resolving took, from the start of the probe (MX lookup included).
    pub elapsed: Duration,
    /// Whether DANE applies to the host (RFC 7672); MTA-STS is then not applied to it.
    pub dane_applies: bool,
    /// What DNSSEC and TLSA showed for the host; `None` where the connector does not check DANE.
    pub dane: Option<HostDane>,
}

/// Every host of a connector, and the DNSSEC status of its MX RRset where DANE is checked.
#[derive(Debug)]
pub(super) struct Resolution {
    /// The hosts in order of preference.
    pub hosts: Vec<ResolvedHost>,
    /// The DNSSEC status of the MX RRset (or of its denial), for an MX connector checking DANE.
    pub mx_status: Option<DnssecStatus>,
}

/// The hosts of `route` in order of preference (first smart host, lowest MX preference), each
/// with its addresses or its DNS failure, resolved through `dns` by `deadline`. The hosts of a
/// route are looked up at once.
pub(super) async fn resolve(route: &Route, dns: &Dns, deadline: Instant) -> Resolution {
    let started = Instant::now();
    let hosts: Vec<Host> = match route {
        Route::SmartHosts(hosts) => hosts.clone(),
        Route::Mx(domain) => match dns.exchangers(domain, deadline).await {
            Ok(exchangers) => exchangers.into_iter().map(|e| Host::Name(e.host)).collect(),
            Err(failure) => {
                return Resolution {
                    hosts: vec![unresolved(domain, Failure::Dns(failure), started, None)],
                    mx_status: None,
                };
            }
        },
    };
    let lookups = hosts.into_iter().map(|host| async move {
        let addresses = match &host {
            Host::Ip(ip) => Ok(vec![*ip]),
            Host::Name(name) => dns.addresses(name, deadline).await.map_err(Failure::Dns),
        };
        ResolvedHost {
            host,
            addresses,
            elapsed: started.elapsed(),
            dane_applies: false,
            dane: None,
        }
    });
    Resolution {
        hosts: join_all(lookups).await,
        mx_status: None,
    }
}

/// As [`resolve`], through the DNSSEC-aware `resolver`, for a connector that checks DANE on
/// `port`: each host gets its DNSSEC status, and the hosts whose addresses (and MX RRset) are
/// secure their TLSA records. A bogus MX or address answer fails the host as `4.7.324`.
pub(super) async fn resolve_secure(
    route: &Route,
    resolver: &DnssecResolver,
    dns: &Dns,
    port: u16,
    deadline: Instant,
) -> Resolution {
    let started = Instant::now();
    let (hosts, mx_status) = match route {
        Route::SmartHosts(hosts) => (hosts.clone(), None),
        Route::Mx(domain) => {
            let lookup = resolver.mx(domain, deadline).await;
            let exchangers = match (lookup.status, lookup.records) {
                (DnssecStatus::Bogus, _) => Err(Failure::Dane(DaneFailure::DnssecBogus)),
                // RFC 5321 implicit MX: the domain is its own exchanger.
                (_, Err(DnsFailure::NoRecords)) => Ok(vec![Exchanger {
                    host: domain.clone(),
                    preference: 0,
                }]),
                (_, Err(failure)) => Err(Failure::Dns(failure)),
                (_, Ok(exchangers)) => Ok(exchangers),
            };
            match exchangers {
                Ok(exchangers) => (
                    exchangers.into_iter().map(|e| Host::Name(e.host)).collect(),
                    Some(lookup.status),
                ),
                Err(failure) => {
                    let dane = HostDane {
                        status: lookup.status,
                        tlsa: TlsaAnswer::NotAsked,
                    };
                    return Resolution {
                        hosts: vec![unresolved(domain, failure, started, Some(dane))],
                        mx_status: Some(lookup.status),
                    };
                }
            }
        }
    };
    let lookups = hosts.into_iter().map(|host| async move {
        let (addresses, dane) = match &host {
            // DANE never applies to an IP literal: it has no records to look up or show.
            Host::Ip(ip) => (Ok(vec![*ip]), None),
            // Nor to localhost, which the local resolver answers without asking DNS servers.
            Host::Name(name) if name.is_localhost() => (
                dns.addresses(name, deadline).await.map_err(Failure::Dns),
                None,
            ),
            Host::Name(name) => {
                let (addresses, dane) =
                    secure_host(resolver, name, mx_status, port, deadline).await;
                (addresses, Some(dane))
            }
        };
        ResolvedHost {
            host,
            addresses,
            elapsed: started.elapsed(),
            dane_applies: false,
            dane,
        }
    });
    Resolution {
        hosts: join_all(lookups).await,
        mx_status,
    }
}

/// The addresses of `name` and what DNSSEC and TLSA showed for it; the TLSA records are looked
/// up only when the addresses (and the MX RRset, `mx_status`, if any) are secure.
async fn secure_host(
    resolver: &DnssecResolver,
    name: &DomainName,
    mx_status: Option<DnssecStatus>,
    port: u16,
    deadline: Instant,
) -> (Result<Vec<IpAddr>, Failure>, HostDane) {
    let lookup = resolver.addresses(name.as_str(), deadline).await;
    let status = lookup.status;
    let addresses = match (status, lookup.records) {
        (DnssecStatus::Bogus, _) => Err(Failure::Dane(DaneFailure::DnssecBogus)),
        (_, records) => records.map_err(Failure::Dns),
    };
    let chain_secure = mx_status.is_none_or(|mx| mx == DnssecStatus::Secure);
    let tlsa = if addresses.is_ok() && status == DnssecStatus::Secure && chain_secure {
        TlsaAnswer::of(resolver.tlsa(name, port, deadline).await)
    } else {
        TlsaAnswer::NotAsked
    };
    (addresses, HostDane { status, tlsa })
}

/// The report of a name that did not resolve.
fn unresolved(
    domain: &DomainName,
    failure: Failure,
    started: Instant,
    dane: Option<HostDane>,
) -> ResolvedHost {
    ResolvedHost {
        host: Host::Name(domain.clone()),
        addresses: Err(failure),
        elapsed: started.elapsed(),
        dane_applies: false,
        dane,
    }
}
