//! The DNSSEC status of an RRset, and what one lookup found: its records (or why there are
//! none) with that status.

use hickory_resolver::proto::dnssec::Proof;

use crate::outcome::DnsFailure;

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

    pub(super) fn of_proof(proof: Proof) -> DnssecStatus {
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
    pub(super) fn failed(status: DnssecStatus, failure: DnsFailure) -> Self {
        Lookup {
            status,
            records: Err(failure),
        }
    }

    pub(super) fn map_records<U>(self, convert: impl Fn(&T) -> Option<U>) -> Lookup<U> {
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
