//! DNS failures: why a name did not resolve to addresses a mail server can be reached on.

use super::{Code, Reason};

/// Why a name did not resolve to addresses a mail server can be reached on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    /// The name does not exist.
    Nxdomain,
    /// The DNS server answered SERVFAIL, or another error response.
    Servfail,
    /// The DNS server refused the query.
    Refused,
    /// No answer in time.
    Timeout,
    /// The name exists but has no address records (or the domain has no MX and no address).
    NoRecords,
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
}

impl DnsFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            DnsFailure::Nxdomain
            | DnsFailure::Servfail
            | DnsFailure::Refused
            | DnsFailure::Timeout
            | DnsFailure::NoRecords
            | DnsFailure::NullMx => Code::DnsQueryFailed,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            DnsFailure::Nxdomain => Reason::Nxdomain,
            DnsFailure::Servfail => Reason::Servfail,
            DnsFailure::Refused => Reason::Refused,
            DnsFailure::Timeout => Reason::Timeout,
            DnsFailure::NoRecords => Reason::NoRecords,
            DnsFailure::NullMx => Reason::NullMx,
        }
    }
}
