//! How a DNS response reads: the records of a type at a name through a CNAME chain, the status of
//! a positive or negative validated answer, the extended DNS errors (RFC 8914) it carries, and
//! the failure an error response or a validator error means.

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{DnsResponse, ResponseCode};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::status::{DnssecStatus, Lookup};
use super::upstream::is_answer;
use crate::outcome::DnsFailure;

/// The longest CNAME chain followed inside one answer.
const MAX_CNAME_CHAIN: usize = 8;
/// EDNS option code of an extended DNS error (RFC 8914).
pub(super) const EDNS_EXTENDED_ERROR: u16 = 15;

/// The records of `rtype` for `name` in `response` (through a CNAME chain), or why there are
/// none, with `status`.
pub(super) fn answer(
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
pub(super) fn chain_status(answers: &[Record], name: &Name, rtype: RecordType) -> DnssecStatus {
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
pub(super) fn denial_status(response: &DnsResponse) -> DnssecStatus {
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
pub(super) fn extended_errors(response: &DnsResponse) -> impl Iterator<Item = u16> + '_ {
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
pub(super) fn negative(code: ResponseCode) -> DnsFailure {
    if code == ResponseCode::NXDomain {
        DnsFailure::Nxdomain
    } else {
        DnsFailure::NoRecords
    }
}

/// Whether a failure is a denial (the name or type proven absent) rather than a failed lookup.
pub(super) fn is_denial(failure: DnsFailure) -> bool {
    match failure {
        DnsFailure::Nxdomain | DnsFailure::NoRecords | DnsFailure::NullMx => true,
        DnsFailure::Servfail | DnsFailure::Refused | DnsFailure::Timeout => false,
    }
}

/// The failure an error response code means.
pub(super) fn failure_of_code(code: ResponseCode) -> DnsFailure {
    match code {
        ResponseCode::Refused => DnsFailure::Refused,
        ResponseCode::NXDomain => DnsFailure::Nxdomain,
        ResponseCode::NoError => DnsFailure::NoRecords,
        _ => DnsFailure::Servfail,
    }
}

/// The failure a validator error means.
pub(super) fn failure_of(error: &NetError) -> DnsFailure {
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
