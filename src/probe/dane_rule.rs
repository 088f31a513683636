//! Whether and how DANE applies to one host (codes.md, "DANE and MTA-STS"): from the DNSSEC
//! status of its address records and its TLSA answer, and the connector's `smtp_dane_mode`.

use std::sync::Arc;

use crate::config::SmtpDaneMode;
use crate::outcome::{DaneFailure, DnsFailure};

use super::dane::{Tlsa, TlsaCounts};
use super::dnssec::{DnssecStatus, Lookup};

/// What DNSSEC and TLSA showed for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDane {
    /// The DNSSEC status of the host's address records (of the MX RRset when that failed).
    pub status: DnssecStatus,
    /// Its TLSA answer.
    pub tlsa: TlsaAnswer,
}

/// The TLSA answer at `_PORT._tcp.HOST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsaAnswer {
    /// Not looked up: the host's addresses (or the MX RRset) are not secure, or it has none.
    NotAsked,
    /// The lookup failed: a bogus answer, or one whose status could not be established.
    Failed(DaneFailure),
    /// An answer (records or their denial) proven to be outside every signed zone.
    Insecure,
    /// A secure answer: the records, none for a secure denial.
    Secure(Arc<[Tlsa]>),
}

impl TlsaAnswer {
    /// The answer of a TLSA `lookup` made for a host whose addresses are secure: once they
    /// are, any failure is `4.7.324`, never "no DANE".
    pub fn of(lookup: Lookup<Tlsa>) -> TlsaAnswer {
        match (lookup.status, lookup.records) {
            (DnssecStatus::Bogus, _) => TlsaAnswer::Failed(DaneFailure::DnssecBogus),
            (DnssecStatus::Secure, Ok(records)) => TlsaAnswer::Secure(records.into()),
            (DnssecStatus::Secure, Err(DnsFailure::NoRecords | DnsFailure::Nxdomain)) => {
                TlsaAnswer::Secure(Arc::new([]))
            }
            (DnssecStatus::Insecure, Ok(_) | Err(DnsFailure::NoRecords | DnsFailure::Nxdomain)) => {
                TlsaAnswer::Insecure
            }
            (
                DnssecStatus::Secure | DnssecStatus::Insecure | DnssecStatus::Indeterminate,
                Err(_),
            )
            | (DnssecStatus::Indeterminate, Ok(_)) => {
                TlsaAnswer::Failed(DaneFailure::TlsaLookupFailed)
            }
        }
    }

    /// The secure records, if the answer is secure.
    pub fn secure(&self) -> Option<&[Tlsa]> {
        match self {
            TlsaAnswer::Secure(records) => Some(records),
            TlsaAnswer::NotAsked | TlsaAnswer::Failed(_) | TlsaAnswer::Insecure => None,
        }
    }

    /// The usable and unusable records of a secure answer (`mailflow_dane_tlsa_records`).
    pub fn counts(&self) -> Option<TlsaCounts> {
        self.secure().map(TlsaCounts::of)
    }
}

/// What DANE asks of the probe of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaneRule {
    /// DANE does not apply: the connector's `tls_settings` rule alone.
    Off,
    /// The host fails before any connection.
    Fail(DaneFailure),
    /// Only unusable records: TLS is required, nothing is authenticated.
    TlsOnly,
    /// TLS is required and the chain must match these records (at least one usable).
    Authenticate(Arc<[Tlsa]>),
}

impl DaneRule {
    /// Whether DANE applies (MTA-STS is then not applied to the host).
    pub fn applies(&self) -> bool {
        match self {
            DaneRule::TlsOnly | DaneRule::Authenticate(_) => true,
            DaneRule::Off | DaneRule::Fail(_) => false,
        }
    }
}

impl HostDane {
    /// The rule for a host with these findings under `mode` (never `none`: then DANE is not
    /// looked up at all). `mandatory` fails every host without a secure usable record.
    pub fn rule(&self, mode: SmtpDaneMode) -> DaneRule {
        let rule = match &self.tlsa {
            TlsaAnswer::Failed(failure) => return DaneRule::Fail(*failure),
            TlsaAnswer::NotAsked | TlsaAnswer::Insecure => DaneRule::Off,
            TlsaAnswer::Secure(records) if records.iter().any(Tlsa::is_usable) => {
                DaneRule::Authenticate(records.clone())
            }
            TlsaAnswer::Secure(records) if records.is_empty() => DaneRule::Off,
            TlsaAnswer::Secure(_) => DaneRule::TlsOnly,
        };
        match (mode, rule) {
            (SmtpDaneMode::Mandatory, DaneRule::Off | DaneRule::TlsOnly) => {
                DaneRule::Fail(DaneFailure::Required)
            }
            (_, rule) => rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlsa(usage: u8) -> Tlsa {
        Tlsa {
            usage,
            selector: 1,
            matching: 1,
            data: vec![0; 32],
        }
    }

    fn host(status: DnssecStatus, tlsa: TlsaAnswer) -> HostDane {
        HostDane { status, tlsa }
    }

    #[test]
    fn a_failed_tlsa_lookup_is_never_no_dane() {
        let servfail = Lookup {
            status: DnssecStatus::Indeterminate,
            records: Err(DnsFailure::Servfail),
        };
        assert_eq!(
            TlsaAnswer::of(servfail),
            TlsaAnswer::Failed(DaneFailure::TlsaLookupFailed)
        );
        let bogus = Lookup {
            status: DnssecStatus::Bogus,
            records: Ok(vec![tlsa(3)]),
        };
        assert_eq!(
            TlsaAnswer::of(bogus),
            TlsaAnswer::Failed(DaneFailure::DnssecBogus)
        );
        let denial = Lookup::<Tlsa> {
            status: DnssecStatus::Secure,
            records: Err(DnsFailure::NoRecords),
        };
        assert_eq!(TlsaAnswer::of(denial).counts(), Some(TlsaCounts::of(&[])));
    }

    #[test]
    fn the_rule_follows_the_records_and_the_mode() {
        use SmtpDaneMode::{Mandatory, Opportunistic};
        let secure =
            |records: Vec<Tlsa>| host(DnssecStatus::Secure, TlsaAnswer::Secure(records.into()));
        let usable = secure(vec![tlsa(1), tlsa(3)]);
        assert!(matches!(
            usable.rule(Opportunistic),
            DaneRule::Authenticate(_)
        ));
        assert!(matches!(usable.rule(Mandatory), DaneRule::Authenticate(_)));
        let unusable = secure(vec![tlsa(0), tlsa(1)]);
        assert_eq!(unusable.rule(Opportunistic), DaneRule::TlsOnly);
        assert_eq!(
            unusable.rule(Mandatory),
            DaneRule::Fail(DaneFailure::Required)
        );
        let none = secure(vec![]);
        assert_eq!(none.rule(Opportunistic), DaneRule::Off);
        assert_eq!(none.rule(Mandatory), DaneRule::Fail(DaneFailure::Required));
        let unsigned = host(DnssecStatus::Insecure, TlsaAnswer::NotAsked);
        assert_eq!(unsigned.rule(Opportunistic), DaneRule::Off);
        assert_eq!(
            unsigned.rule(Mandatory),
            DaneRule::Fail(DaneFailure::Required)
        );
        let failed = host(
            DnssecStatus::Secure,
            TlsaAnswer::Failed(DaneFailure::TlsaLookupFailed),
        );
        assert_eq!(
            failed.rule(Opportunistic),
            DaneRule::Fail(DaneFailure::TlsaLookupFailed)
        );
        assert!(!failed.rule(Opportunistic).applies());
        assert!(usable.rule(Opportunistic).applies());
    }
}
