//! Name resolution for probes: MX records and addresses. The only place that looks at resolver
//! errors, turning each into a [`DnsFailure`].

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use tokio::time::{Instant, timeout_at};

use crate::config::{DnsSettings, DomainName};
use crate::outcome::DnsFailure;

/// A resolver for one DNS configuration, with its cache; build it once and share it.
#[derive(Clone)]
pub struct Dns {
    /// The resolver, with its cache.
    resolver: TokioResolver,
    /// How long one lookup may take, within the probe's deadline.
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A mail exchanger of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchanger {
    /// Its host name.
    pub host: DomainName,
    /// Its preference; lower is preferred.
    pub preference: u16,
}

impl Dns {
    /// A resolver asking `settings.nameservers`, or the system's name servers when there are none.
    pub fn new(settings: &DnsSettings) -> Result<Self, NetError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder(provider)?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|address| {
                    let connection = |protocol| {
                        let mut connection = ConnectionConfig::new(protocol);
                        connection.port = address.port();
                        connection
                    };
                    NameServerConfig::new(
                        address.ip(),
                        true,
                        vec![
                            connection(ProtocolConfig::Udp),
                            connection(ProtocolConfig::Tcp),
                        ],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let options = builder.options_mut();
        options.timeout = settings.timeout;
        options.attempts = 1;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.ndots = 0;
        Ok(Dns {
            resolver: builder.build()?,
            timeout: settings.timeout,
        })
    }

    /// The mail exchangers of `domain`, most preferred first. A domain without MX records is its
    /// own exchanger (RFC 5321 implicit MX); a null MX (RFC 7505) is [`DnsFailure::NullMx`].
    /// Exchangers whose names are not host names are passed over, as no mail can go there; when
    /// none is left, the domain has no usable records.
    pub async fn exchangers(
        &self,
        domain: &DomainName,
        deadline: Instant,
    ) -> Result<Vec<Exchanger>, DnsFailure> {
        let name = fully_qualified(domain)?;
        let deadline = deadline.min(Instant::now() + self.timeout);
        let lookup = match timeout_at(deadline, self.resolver.mx_lookup(name)).await {
            Err(_) => return Err(DnsFailure::Timeout),
            Ok(Err(error)) => match classify(&error) {
                DnsFailure::NoRecords => {
                    return Ok(vec![Exchanger {
                        host: domain.clone(),
                        preference: 0,
                    }]);
                }
                reason => return Err(reason),
            },
            Ok(Ok(lookup)) => lookup,
        };
        let mut exchangers: Vec<(u16, Name)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            })
            .collect();
        if exchangers.is_empty() {
            return Ok(vec![Exchanger {
                host: domain.clone(),
                preference: 0,
            }]);
        }
        if exchangers.iter().any(|(_, exchange)| exchange.is_root()) {
            return Err(DnsFailure::NullMx);
        }
        exchangers.sort_by_key(|(preference, _)| *preference);
        let usable: Vec<Exchanger> = exchangers
            .into_iter()
            .filter_map(|(preference, exchange)| {
                let host = exchange.to_ascii().parse().ok()?;
                Some(Exchanger { host, preference })
            })
            .collect();
        if usable.is_empty() {
            return Err(DnsFailure::NoRecords);
        }
        Ok(usable)
    }

    /// The addresses (A and AAAA) of `host`.
    pub async fn addresses(
        &self,
        host: &str,
        deadline: Instant,
    ) -> Result<Vec<IpAddr>, DnsFailure> {
        let name = fully_qualified(host)?;
        let deadline = deadline.min(Instant::now() + self.timeout);
        match timeout_at(deadline, self.resolver.lookup_ip(name)).await {
            Err(_) => Err(DnsFailure::Timeout),
            Ok(Err(error)) => Err(classify(&error)),
            Ok(Ok(lookup)) => {
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                if addresses.is_empty() {
                    Err(DnsFailure::NoRecords)
                } else {
                    Ok(addresses)
                }
            }
        }
    }
}

/// `host` as an absolute name, so that no search domain is tried.
fn fully_qualified(host: &str) -> Result<Name, DnsFailure> {
    Name::from_ascii(format!("{}.", host.trim_end_matches('.'))).map_err(|_| DnsFailure::Nxdomain)
}

/// The reason for a failed lookup.
fn classify(error: &NetError) -> DnsFailure {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            if no_records.response_code == ResponseCode::NXDomain {
                DnsFailure::Nxdomain
            } else {
                DnsFailure::NoRecords
            }
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => DnsFailure::Refused,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => DnsFailure::Nxdomain,
        NetError::Dns(_) => DnsFailure::Servfail,
        // No name server answered: unreachable servers, lost datagrams, busy pools.
        NetError::Timeout | NetError::Io(_) | NetError::NoConnections | NetError::Busy => {
            DnsFailure::Timeout
        }
        _ => DnsFailure::Servfail,
    }
}
