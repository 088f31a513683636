//! DNSSEC-aware lookups for DANE: the MX, address and TLSA records of a connector, each RRset
//! with its DNSSEC status (`secure`, `insecure`, `bogus` or `indeterminate`), in the two
//! validation modes of `dns.dnssec_validation`:
//!
//! - **`exporter`**: the exporter validates in-process from its trust anchors
//!   (`dns.trust_anchor_file`, or the root's).
//!   Every query carries DO and CD, so a validating resolver in front passes signatures (and
//!   bogus data) through. The chain of trust is checked by hickory's validator; its verdicts are
//!   then checked here, because hickory reports a DS or DNSKEY fetch that failed (a time-out, a
//!   SERVFAIL) as *bogus* (hickory-dns issues 3932 and 3964). Rule: a lookup is `bogus` only on a
//!   real proof (a signature that fails or has expired, a signature missing where the chain
//!   requires one, keys no anchor validates), found on a run in which every query of the chain
//!   was answered cleanly; any hiccup on that run makes it `indeterminate`.
//! - **`resolver`**: the configured name servers validate; their AD bit says `secure`, its
//!   absence `insecure`. A SERVFAIL carrying an extended DNS error 6–12 (RFC 8914: DNSSEC bogus,
//!   signature expired, not yet valid, DNSKEY missing, RRSIGs missing, no zone key bit, NSEC
//!   missing) is the resolver's proof of `bogus`; a SERVFAIL without one is an ordinary failure.
//!
//! Every lookup ends by the caller's deadline; answers are bounded by the wire (UDP datagrams of
//! at most 4 KiB, TCP messages of at most 64 KiB) and by hickory's decoder.
//!
//! One job per file: this one holds the resolver and its lookups (and `resolver` mode);
//! `status.rs` the statuses and what a lookup found; `answer.rs` how a response reads (records
//! through CNAMEs, denials, extended errors, failures); `exporter_mode.rs` in-process validation
//! with its second look at `bogus` verdicts; `anchors.rs` the trust anchors' keys; `upstream.rs`
//! the name servers, their cache and the witness of hiccups.

mod anchors;
mod answer;
mod exporter_mode;
mod status;
#[cfg(test)]
mod tests;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::{Instant, timeout_at};

use answer::{answer, extended_errors, is_denial};
use exporter_mode::Exporter;
use upstream::{Flags, Unanswered, Upstream, is_answer};

use super::dane::Tlsa;
use super::dns::Exchanger;
use crate::config::{DnsSettings, DnssecValidation, DomainName};
use crate::outcome::DnsFailure;

pub use status::{DnssecStatus, Lookup};

/// Extended DNS errors that prove a bogus answer: 6 DNSSEC Bogus, 7 Signature Expired, 8
/// Signature Not Yet Valid, 9 DNSKEY Missing, 10 RRSIGs Missing, 11 No Zone Key Bit Set, 12 NSEC
/// Missing.
const BOGUS_EXTENDED_ERRORS: std::ops::RangeInclusive<u16> = 6..=12;

/// A DNSSEC resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No name server configured, and none in the system configuration.
    #[error("no name servers: none configured and none in the system resolver configuration")]
    NoNameServers,
    /// The system resolver configuration could not be read.
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
}

/// DNSSEC-aware lookups for one DNS configuration and validation mode; build it once and share
/// it (it caches answers and validated keys).
#[derive(Debug)]
pub struct DnssecResolver {
    /// The configured name servers, with their answer cache.
    upstream: Arc<Upstream>,
    /// Who validates.
    mode: Mode,
}

/// The validation mode with its state.
#[derive(Debug)]
enum Mode {
    /// In-process validation.
    Exporter(Box<Exporter>),
    /// The name servers' AD bit.
    Resolver,
}

impl DnssecResolver {
    /// Lookups as `settings` say: through its name servers (the system's when there are none),
    /// each query allowed its `timeout`, validated as `dnssec_validation` says, from its trust
    /// anchors in `exporter` mode.
    pub fn new(settings: &DnsSettings) -> Result<Self, SetupError> {
        let servers = if settings.nameservers.is_empty() {
            system_nameservers()?
        } else {
            settings.nameservers.clone()
        };
        if servers.is_empty() {
            return Err(SetupError::NoNameServers);
        }
        let (flags, mode) = match settings.dnssec_validation {
            DnssecValidation::Exporter => (
                Flags::Checking,
                Mode::Exporter(Box::new(Exporter::new(settings.trust_anchors.clone()))),
            ),
            DnssecValidation::Resolver => (Flags::Authenticated, Mode::Resolver),
        };
        Ok(DnssecResolver {
            upstream: Arc::new(Upstream::new(servers, settings.timeout, flags)),
            mode,
        })
    }

    /// The mail exchangers of `domain`, most preferred first. Unlike the plain resolver this
    /// applies no implicit MX: `NoRecords` and `Nxdomain` come back as such, with the status of
    /// their denial, for the caller to decide. A null MX is `NullMx`; exchangers whose names are
    /// not host names are passed over (none left: `NoRecords`), as in [`super::dns`].
    pub async fn mx(&self, domain: &DomainName, deadline: Instant) -> Lookup<Exchanger> {
        let lookup = self.lookup(domain.as_str(), RecordType::MX, deadline).await;
        let mut exchangers = lookup.map_records(|data| match data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
            _ => None,
        });
        exchangers.records = exchangers.records.and_then(|mut records| {
            if records.iter().any(|(_, exchange)| exchange.is_root()) {
                return Err(DnsFailure::NullMx);
            }
            records.sort_by_key(|(preference, _)| *preference);
            Ok(records)
        });
        exchangers.map_records(|(preference, exchange)| {
            Some(Exchanger {
                host: exchange.to_ascii().parse().ok()?,
                preference: *preference,
            })
        })
    }

    /// The addresses (A and AAAA) of `host`, asked at once. The status is the weaker of the two
    /// answers'; the records are both sets together, or, when neither has any, the more telling
    /// failure (a failed lookup wins over a denial, so that a lost AAAA answer is not taken for
    /// "no records").
    pub async fn addresses(&self, host: &str, deadline: Instant) -> Lookup<IpAddr> {
        let (v4, v6) = futures_util::join!(
            self.lookup(host, RecordType::A, deadline),
            self.lookup(host, RecordType::AAAA, deadline)
        );
        let status = v4.status.worst(v6.status);
        let address = |data: &RData| match data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        };
        let v4 = v4.map_records(address);
        let v6 = v6.map_records(address);
        let records = match (v4.records, v6.records) {
            (Ok(mut v4), Ok(v6)) => {
                v4.extend(v6);
                Ok(v4)
            }
            (Ok(records), Err(_)) | (Err(_), Ok(records)) => Ok(records),
            (Err(v4), Err(v6)) => Err(if is_denial(v4) { v6 } else { v4 }),
        };
        Lookup { status, records }
    }

    /// The TLSA records at `_PORT._tcp.HOST` (RFC 7672 §2.2).
    pub async fn tlsa(&self, host: &DomainName, port: u16, deadline: Instant) -> Lookup<Tlsa> {
        let name = format!("_{port}._tcp.{host}");
        self.lookup(&name, RecordType::TLSA, deadline)
            .await
            .map_records(|data| match data {
                RData::TLSA(tlsa) => Some(Tlsa {
                    usage: tlsa.cert_usage.into(),
                    selector: tlsa.selector.into(),
                    matching: tlsa.matching.into(),
                    data: tlsa.cert_data.clone(),
                }),
                _ => None,
            })
    }

    /// The records of type `rtype` at `name` (a CNAME chain followed), with their status.
    async fn lookup(&self, name: &str, rtype: RecordType, deadline: Instant) -> Lookup<RData> {
        let Ok(name) = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) else {
            return Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Nxdomain);
        };
        let lookup = async {
            match &self.mode {
                Mode::Exporter(exporter) => exporter.validate(&self.upstream, &name, rtype).await,
                Mode::Resolver => self.ask_resolver(&name, rtype).await,
            }
        };
        timeout_at(deadline, lookup)
            .await
            .unwrap_or_else(|_| Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Timeout))
    }

    /// `resolver` mode: the name servers' AD bit, or their extended error on a SERVFAIL.
    async fn ask_resolver(&self, name: &Name, rtype: RecordType) -> Lookup<RData> {
        let response = match self.upstream.query(name, rtype).await {
            Ok(response) => response,
            Err(Unanswered) => {
                return Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Timeout);
            }
        };
        let status = if response.metadata.authentic_data {
            DnssecStatus::Secure
        } else if response.metadata.response_code == ResponseCode::ServFail
            && extended_errors(&response).any(|code| BOGUS_EXTENDED_ERRORS.contains(&code))
        {
            DnssecStatus::Bogus
        } else if is_answer(response.metadata.response_code) {
            DnssecStatus::Insecure
        } else {
            DnssecStatus::Indeterminate
        };
        answer(&response, name, rtype, status)
    }
}

/// The name servers of the system resolver configuration (`/etc/resolv.conf`), port 53 unless
/// it says otherwise.
fn system_nameservers() -> Result<Vec<SocketAddr>, SetupError> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| SetupError::SystemConfig(e.to_string()))?;
    let mut servers = Vec::new();
    for server in config.name_servers() {
        let port = server
            .connections
            .first()
            .map(|connection| connection.port)
            .unwrap_or(53);
        let address = SocketAddr::new(server.ip, port);
        if !servers.contains(&address) {
            servers.push(address);
        }
    }
    Ok(servers)
}
