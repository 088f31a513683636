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

mod anchors;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode,
};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::time::{Instant, timeout_at};

use anchors::{KeysFailure, TrustedKeys, covers, trusted_keys};
use upstream::{Checked, Flags, Unanswered, Upstream, Witness, is_answer};

use super::dane::Tlsa;
use super::dns::Exchanger;
use crate::config::{DnsSettings, DnssecTrustAnchors, DnssecValidation, DomainName};
use crate::outcome::DnsFailure;

/// The longest CNAME chain followed inside one answer.
const MAX_CNAME_CHAIN: usize = 8;
/// EDNS option code of an extended DNS error (RFC 8914).
const EDNS_EXTENDED_ERROR: u16 = 15;
/// Extended DNS errors that prove a bogus answer: 6 DNSSEC Bogus, 7 Signature Expired, 8
/// Signature Not Yet Valid, 9 DNSKEY Missing, 10 RRSIGs Missing, 11 No Zone Key Bit Set, 12 NSEC
/// Missing.
const BOGUS_EXTENDED_ERRORS: std::ops::RangeInclusive<u16> = 6..=12;

/// The DNSSEC status of an RRset (RFC 4033 §5), as `mailflow_dnssec_status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnssecStatus {
    /// A chain of signatures leads from a trust anchor to the RRset.
    Secure,
    /// Proven to lie outside every signed zone (an unsigned delegation).
    Insecure,
    /// Ought to be signed, and the signatures fail: bad, expired, missing, or keys no anchor
    /// validates.
    Bogus,
    /// Could not be established either way: the chain of trust could not be followed.
    Indeterminate,
}

impl DnssecStatus {
    /// Every status, in the order of the `status` label values.
    pub const ALL: [DnssecStatus; 4] = [
        DnssecStatus::Secure,
        DnssecStatus::Insecure,
        DnssecStatus::Bogus,
        DnssecStatus::Indeterminate,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecStatus::Secure => "secure",
            DnssecStatus::Insecure => "insecure",
            DnssecStatus::Bogus => "bogus",
            DnssecStatus::Indeterminate => "indeterminate",
        }
    }

    /// The weaker of two statuses, for RRsets that count together (a CNAME and its target, the A
    /// and AAAA records of a host): bogus, then indeterminate, then insecure, then secure.
    pub fn worst(self, other: DnssecStatus) -> DnssecStatus {
        let rank = |status| match status {
            DnssecStatus::Secure => 0,
            DnssecStatus::Insecure => 1,
            DnssecStatus::Indeterminate => 2,
            DnssecStatus::Bogus => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    fn of_proof(proof: Proof) -> DnssecStatus {
        match proof {
            Proof::Secure => DnssecStatus::Secure,
            Proof::Insecure => DnssecStatus::Insecure,
            Proof::Bogus => DnssecStatus::Bogus,
            Proof::Indeterminate => DnssecStatus::Indeterminate,
        }
    }
}

/// What one lookup found: the records or why there are none, and the DNSSEC status of the answer.
///
/// The status belongs to whatever answered: the records, or the denial of their existence
/// (a `secure` NODATA or NXDOMAIN is a proven absence). A lookup that brought no answer at all
/// (a time-out, a SERVFAIL) is `indeterminate`, except in `resolver` mode where a SERVFAIL with
/// an extended DNS error 6–12 is `bogus`. A `bogus` answer keeps its records, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup<T> {
    /// The DNSSEC status of the answer.
    pub status: DnssecStatus,
    /// The records (never an empty list), or why there are none.
    pub records: Result<Vec<T>, DnsFailure>,
}

impl<T> Lookup<T> {
    fn failed(status: DnssecStatus, failure: DnsFailure) -> Self {
        Lookup {
            status,
            records: Err(failure),
        }
    }

    fn map_records<U>(self, convert: impl Fn(&T) -> Option<U>) -> Lookup<U> {
        Lookup {
            status: self.status,
            records: self.records.and_then(|records| {
                let converted: Vec<U> = records.iter().filter_map(convert).collect();
                if converted.is_empty() {
                    Err(DnsFailure::NoRecords)
                } else {
                    Ok(converted)
                }
            }),
        }
    }
}

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

/// In-process validation: the anchors and the validator built on their zones' keys.
struct Exporter {
    /// The trust anchors.
    anchors: DnssecTrustAnchors,
    /// The validated keys and the validator shared by lookups, while the keys are valid.
    shared: Mutex<Option<Shared>>,
}

/// A validator over validated anchor keys. Its validation cache is shared by the lookups; a
/// `bogus` verdict from it is always checked again on a fresh one (see [`DnssecResolver`]).
#[derive(Clone)]
struct Shared {
    /// The anchor zones' keys.
    keys: TrustedKeys,
    /// hickory's validator on them.
    validator: DnssecDnsHandle<Checked>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("anchors", &self.anchors)
            .finish_non_exhaustive()
    }
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
                Mode::Exporter(Box::new(Exporter {
                    anchors: settings.trust_anchors.clone(),
                    shared: Mutex::new(None),
                })),
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
                Mode::Exporter(exporter) => self.validate(exporter, &name, rtype).await,
                Mode::Resolver => self.ask_resolver(&name, rtype).await,
            }
        };
        timeout_at(deadline, lookup)
            .await
            .unwrap_or_else(|_| Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Timeout))
    }

    /// `exporter` mode: validated by hickory on the shared validator; a `bogus` verdict is
    /// checked again on a fresh validator whose every query a [`Witness`] sees, and only stands
    /// if none of them had a hiccup.
    async fn validate(&self, exporter: &Exporter, name: &Name, rtype: RecordType) -> Lookup<RData> {
        if !covers(&exporter.anchors, name) {
            return self
                .unvalidated(name, rtype, DnssecStatus::Indeterminate)
                .await;
        }
        let shared = match exporter.shared(&self.upstream).await {
            Ok(shared) => shared,
            Err(KeysFailure::Unobtainable) => {
                tracing::debug!(%name, "DNSSEC: the trust anchors' keys could not be fetched");
                return self
                    .unvalidated(name, rtype, DnssecStatus::Indeterminate)
                    .await;
            }
            Err(KeysFailure::NotValidated) => {
                tracing::debug!(%name, "DNSSEC: no trust anchor validates the anchor zones' keys");
                return self.unvalidated(name, rtype, DnssecStatus::Bogus).await;
            }
        };
        let first = validated(&shared.validator, name, rtype).await;
        if first.status != DnssecStatus::Bogus {
            return first;
        }
        let witness = Arc::new(Witness::default());
        let fresh = DnssecDnsHandle::with_trust_anchor(
            Checked::new(self.upstream.clone(), Some(witness.clone())),
            shared.keys.anchors.clone(),
        );
        let mut second = validated(&fresh, name, rtype).await;
        if second.status == DnssecStatus::Bogus
            && let Some((hiccup, query_name, query_type)) = witness.hiccup()
        {
            tracing::debug!(
                %name, %rtype, ?hiccup, %query_name, %query_type,
                "DNSSEC: not bogus but indeterminate: a query of the chain of trust failed"
            );
            second.status = DnssecStatus::Indeterminate;
        }
        second
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

    /// The answer as the name servers give it, with a status decided elsewhere.
    async fn unvalidated(
        &self,
        name: &Name,
        rtype: RecordType,
        status: DnssecStatus,
    ) -> Lookup<RData> {
        match self.upstream.query(name, rtype).await {
            Ok(response) => answer(&response, name, rtype, status),
            Err(Unanswered) => Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Timeout),
        }
    }
}

impl Exporter {
    /// The shared validator, rebuilt when the anchor zones' keys must be checked again and
    /// have changed.
    async fn shared(&self, upstream: &Arc<Upstream>) -> Result<Shared, KeysFailure> {
        let now = Instant::now();
        if let Some(shared) = self.current().filter(|s| s.keys.valid_until > now) {
            return Ok(shared);
        }
        let keys = trusted_keys(&self.anchors, upstream, unix_now()).await?;
        let mut guard = self.shared.lock().map_err(|_| KeysFailure::Unobtainable)?;
        let shared = match guard.take() {
            // The same keys: keep the validator, and with it its validation cache.
            Some(old) if old.keys.keys == keys.keys => Shared {
                keys,
                validator: old.validator,
            },
            _ => Shared {
                validator: DnssecDnsHandle::with_trust_anchor(
                    Checked::new(upstream.clone(), None),
                    keys.anchors.clone(),
                ),
                keys,
            },
        };
        *guard = Some(shared.clone());
        Ok(shared)
    }

    fn current(&self) -> Option<Shared> {
        self.shared.lock().ok().and_then(|shared| shared.clone())
    }
}

/// Asks `validator` for `name` `rtype` and reads the verdicts it left on the records.
async fn validated(
    validator: &DnssecDnsHandle<Checked>,
    name: &Name,
    rtype: RecordType,
) -> Lookup<RData> {
    let mut options = DnsRequestOptions::default();
    options.edns_set_dnssec_ok = true;
    let request = DnsRequest::from_query(Query::query(name.clone(), rtype), options);
    match validator.send(request).first_answer().await {
        Ok(response) => {
            let denial = denial_status(&response);
            let mut lookup = answer(&response, name, rtype, denial);
            if lookup.records.is_ok() {
                lookup.status = chain_status(&response.answers, name, rtype);
            }
            lookup
        }
        // A negative answer whose denial did not prove out: `proof` says how.
        Err(NetError::Dns(DnsError::Nsec {
            response, proof, ..
        })) => Lookup::failed(
            DnssecStatus::of_proof(proof),
            negative(response.metadata.response_code),
        ),
        Err(error) => Lookup::failed(DnssecStatus::Indeterminate, failure_of(&error)),
    }
}

/// The records of `rtype` for `name` in `response` (through a CNAME chain), or why there are
/// none, with `status`.
fn answer(
    response: &DnsResponse,
    name: &Name,
    rtype: RecordType,
    status: DnssecStatus,
) -> Lookup<RData> {
    let code = response.metadata.response_code;
    if !is_answer(code) {
        return Lookup::failed(status, failure_of_code(code));
    }
    let (_, records) = follow(&response.answers, name, rtype);
    if records.is_empty() {
        return Lookup::failed(status, negative(code));
    }
    Lookup {
        status,
        records: Ok(records
            .into_iter()
            .map(|record| record.data.clone())
            .collect()),
    }
}

/// The records of `rtype` reached from `name` through at most [`MAX_CNAME_CHAIN`] CNAMEs, and
/// the CNAME records passed on the way.
fn follow<'a>(
    answers: &'a [Record],
    name: &Name,
    rtype: RecordType,
) -> (Vec<&'a Record>, Vec<&'a Record>) {
    let mut current = name.clone();
    let mut cnames = Vec::new();
    for _ in 0..MAX_CNAME_CHAIN {
        let found: Vec<&Record> = answers
            .iter()
            .filter(|record| record.name == current && record.record_type() == rtype)
            .collect();
        if !found.is_empty() {
            return (cnames, found);
        }
        let next = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(target) if record.name == current => Some((record, target.0.clone())),
            _ => None,
        });
        match next {
            Some((record, target)) => {
                cnames.push(record);
                current = target;
            }
            None => break,
        }
    }
    (cnames, Vec::new())
}

/// The status of a positive validated answer: the weakest verdict among the records used.
fn chain_status(answers: &[Record], name: &Name, rtype: RecordType) -> DnssecStatus {
    let (cnames, records) = follow(answers, name, rtype);
    cnames
        .iter()
        .chain(records.iter())
        .map(|record| DnssecStatus::of_proof(record.proof))
        .fold(DnssecStatus::Secure, DnssecStatus::worst)
}

/// The status of a negative answer hickory's validator let through: `secure` when a validated
/// NSEC or NSEC3 record proves it, otherwise `insecure` (hickory only lets an unproven denial
/// through when the zone is proven unsigned). CNAMEs on the way count too.
fn denial_status(response: &DnsResponse) -> DnssecStatus {
    let proven = response.authorities.iter().any(|record| {
        matches!(record.record_type(), RecordType::NSEC | RecordType::NSEC3)
            && record.proof == Proof::Secure
    });
    let denial = if proven {
        DnssecStatus::Secure
    } else {
        DnssecStatus::Insecure
    };
    response
        .answers
        .iter()
        .filter(|record| record.record_type() == RecordType::CNAME)
        .map(|record| DnssecStatus::of_proof(record.proof))
        .fold(denial, DnssecStatus::worst)
}

/// The extended DNS error codes (RFC 8914) of `response`.
fn extended_errors(response: &DnsResponse) -> impl Iterator<Item = u16> + '_ {
    response
        .edns
        .iter()
        .flat_map(|edns| {
            edns.options()
                .get_all(EdnsCode::Unknown(EDNS_EXTENDED_ERROR))
        })
        .filter_map(|option| match option {
            EdnsOption::Unknown(_, data) => match data.as_slice() {
                [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
                _ => None,
            },
            _ => None,
        })
}

/// The failure of an answer without records.
fn negative(code: ResponseCode) -> DnsFailure {
    if code == ResponseCode::NXDomain {
        DnsFailure::Nxdomain
    } else {
        DnsFailure::NoRecords
    }
}

/// Whether a failure is a denial (the name or type proven absent) rather than a failed lookup.
fn is_denial(failure: DnsFailure) -> bool {
    match failure {
        DnsFailure::Nxdomain | DnsFailure::NoRecords | DnsFailure::NullMx => true,
        DnsFailure::Servfail | DnsFailure::Refused | DnsFailure::Timeout => false,
    }
}

/// The failure an error response code means.
fn failure_of_code(code: ResponseCode) -> DnsFailure {
    match code {
        ResponseCode::Refused => DnsFailure::Refused,
        ResponseCode::NXDomain => DnsFailure::Nxdomain,
        ResponseCode::NoError => DnsFailure::NoRecords,
        _ => DnsFailure::Servfail,
    }
}

/// The failure a validator error means.
fn failure_of(error: &NetError) -> DnsFailure {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => negative(no_records.response_code),
        NetError::Dns(DnsError::ResponseCode(code)) => failure_of_code(*code),
        NetError::Timeout | NetError::Io(_) | NetError::NoConnections | NetError::Busy => {
            DnsFailure::Timeout
        }
        // hickory's error enums are non-exhaustive; anything else failed the lookup.
        _ => DnsFailure::Servfail,
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

/// Now, in Unix seconds, as RRSIG validity periods count it (modulo 2^32, RFC 4034 §3.1.5).
fn unix_now() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    // Serial-number arithmetic: the value wraps.
    (seconds % (1u64 << 32)) as u32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use hickory_resolver::proto::op::{Edns, Message, OpCode};
    use hickory_resolver::proto::rr::rdata::{A, CNAME};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn a(owner: &str, proof: Proof) -> Record {
        let mut record = Record::from_rdata(name(owner), 60, RData::A(A::new(127, 0, 0, 1)));
        record.proof = proof;
        record
    }

    fn cname(owner: &str, target: &str, proof: Proof) -> Record {
        let mut record = Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))));
        record.proof = proof;
        record
    }

    fn response(code: ResponseCode, answers: Vec<Record>) -> DnsResponse {
        let mut message = Message::response(1, OpCode::Query);
        message.metadata.response_code = code;
        message.add_query(Query::query(name("www.example.test."), RecordType::A));
        message.insert_answers(answers);
        DnsResponse::from_message(message).unwrap()
    }

    #[test]
    fn statuses_have_their_label_values_and_an_order() {
        let labels: Vec<&str> = DnssecStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(labels, ["secure", "insecure", "bogus", "indeterminate"]);
        use DnssecStatus::*;
        assert_eq!(Secure.worst(Insecure), Insecure);
        assert_eq!(Insecure.worst(Indeterminate), Indeterminate);
        assert_eq!(Bogus.worst(Indeterminate), Bogus);
        assert_eq!(Indeterminate.worst(Bogus), Bogus);
        assert_eq!(Secure.worst(Secure), Secure);
    }

    #[test]
    fn error_codes_and_errors_map_to_dns_failures() {
        assert_eq!(
            failure_of_code(ResponseCode::ServFail),
            DnsFailure::Servfail
        );
        assert_eq!(failure_of_code(ResponseCode::FormErr), DnsFailure::Servfail);
        assert_eq!(failure_of_code(ResponseCode::Refused), DnsFailure::Refused);
        assert_eq!(
            failure_of_code(ResponseCode::NXDomain),
            DnsFailure::Nxdomain
        );
        assert_eq!(failure_of(&NetError::Timeout), DnsFailure::Timeout);
        assert_eq!(
            failure_of(&NetError::Dns(DnsError::ResponseCode(
                ResponseCode::Refused
            ))),
            DnsFailure::Refused
        );
    }

    #[test]
    fn answers_follow_cnames_and_take_the_weakest_verdict() {
        let owner = name("www.example.test.");
        let answers = vec![
            cname("www.example.test.", "host.example.test.", Proof::Secure),
            a("host.example.test.", Proof::Secure),
            a("other.example.test.", Proof::Bogus),
        ];
        let found = answer(
            &response(ResponseCode::NoError, answers.clone()),
            &owner,
            RecordType::A,
            DnssecStatus::Secure,
        );
        assert_eq!(found.records.unwrap().len(), 1);
        assert_eq!(
            chain_status(&answers, &owner, RecordType::A),
            DnssecStatus::Secure
        );
        let insecure_alias = vec![
            cname("www.example.test.", "host.example.test.", Proof::Insecure),
            a("host.example.test.", Proof::Secure),
        ];
        assert_eq!(
            chain_status(&insecure_alias, &owner, RecordType::A),
            DnssecStatus::Insecure
        );
        let looping = vec![
            cname("www.example.test.", "loop.example.test.", Proof::Secure),
            cname("loop.example.test.", "www.example.test.", Proof::Secure),
        ];
        let none = answer(
            &response(ResponseCode::NoError, looping),
            &owner,
            RecordType::A,
            DnssecStatus::Secure,
        );
        assert_eq!(none.records, Err(DnsFailure::NoRecords));
        let nx = answer(
            &response(ResponseCode::NXDomain, vec![]),
            &owner,
            RecordType::A,
            DnssecStatus::Insecure,
        );
        assert_eq!(
            nx,
            Lookup::failed(DnssecStatus::Insecure, DnsFailure::Nxdomain)
        );
        let servfail = answer(
            &response(ResponseCode::ServFail, vec![]),
            &owner,
            RecordType::A,
            DnssecStatus::Indeterminate,
        );
        assert_eq!(servfail.records, Err(DnsFailure::Servfail));
    }

    #[test]
    fn reads_extended_dns_errors() {
        let mut message = response(ResponseCode::ServFail, vec![]).into_message();
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDNS_EXTENDED_ERROR, vec![0, 7]));
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDNS_EXTENDED_ERROR, vec![0, 22, b'x']));
        edns.options_mut()
            .insert(EdnsOption::Unknown(10, vec![1; 8]));
        message.set_edns(edns);
        let bytes = message.to_vec().unwrap();
        let decoded = DnsResponse::from_buffer(bytes).unwrap();
        assert_eq!(extended_errors(&decoded).collect::<Vec<_>>(), vec![7, 22]);
    }
}
