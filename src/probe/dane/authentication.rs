//! The verdict of a TLSA RRset on a presented chain: which record matched, or why none did, and
//! whether the next certificate renewal would keep DANE working.

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::chain::ParsedChain;
use super::tlsa::{Tlsa, Usable, Usage};

/// Where a usable record matched the presented chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index of the record in the RRset given.
    pub record: usize,
    /// DANE-EE or DANE-TA.
    pub usage: Usage,
    /// Position in the chain of the certificate matched (0 the leaf). For a published `2 1 0`
    /// key that only signed the chain, the chain's length: the anchor sits above it.
    pub depth: usize,
}

/// Why a chain that a DANE-TA record matched is still refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaFailure {
    /// A certificate from the leaf up to the trust anchor has expired (`4.7.322`).
    Expired,
    /// A certificate from the leaf up to the trust anchor is not valid yet.
    NotYetValid,
    /// The leaf names none of the reference identifiers (`4.7.325`).
    NameMismatch,
    /// The chain does not lead from the leaf to the anchor (bad signature, missing link, a CA
    /// certificate that may not issue, bad encoding).
    Invalid,
}

/// What the TLSA records say about a presented chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// No usable record: TLS is required, but nothing is authenticated.
    NoUsableRecords,
    /// A usable record matched, and every check its usage requires passed.
    Matched(Match),
    /// A DANE-TA record matched the chain, but the chain failed the checks DANE-TA requires.
    TaRejected {
        /// The first DANE-TA match, in record order.
        matched: Match,
        /// What failed for it.
        failure: TaFailure,
    },
    /// No usable record matches the presented chain.
    Mismatch {
        /// The `3 1 1` record the served leaf would need (`None` without a parsable leaf).
        needed: Option<Tlsa>,
    },
}

/// Authenticates `chain` (DER certificates, leaf first) with `records`, the TLSA RRset of the
/// host. `names` are the reference identifiers for DANE-TA (the host, the connector's
/// `tls_domain`, for an MX connector the recipient domain); `now` is the time for DANE-TA's
/// date checks.
///
/// A DANE-EE match wins at once. Otherwise each DANE-TA match is checked in record order and the
/// first that passes wins; if none passes, the first one's failure is reported.
pub fn authenticate(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    names: &[ServerName<'_>],
    now: UnixTime,
) -> Authentication {
    let parsed = ParsedChain::new(chain);
    let usable: Vec<(usize, &Tlsa, Usable)> = records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| Some((index, record, record.usability().ok()?)))
        .collect();
    if usable.is_empty() {
        return Authentication::NoUsableRecords;
    }
    let ee = usable.iter().find_map(|(index, record, params)| {
        (params.usage == Usage::DaneEe && parsed.matches_leaf(record, *params)).then_some(Match {
            record: *index,
            usage: Usage::DaneEe,
            depth: 0,
        })
    });
    if let Some(matched) = ee {
        return Authentication::Matched(matched);
    }
    let mut first_rejection = None;
    for (index, record, params) in &usable {
        if params.usage != Usage::DaneTa {
            continue;
        }
        let Some(anchor) = parsed.trust_anchor(record, *params) else {
            continue;
        };
        let matched = Match {
            record: *index,
            usage: Usage::DaneTa,
            depth: anchor.depth,
        };
        match anchor.check(chain, names, now) {
            Ok(()) => return Authentication::Matched(matched),
            Err(failure) => {
                first_rejection.get_or_insert(Authentication::TaRejected { matched, failure });
            }
        }
    }
    first_rejection.unwrap_or_else(|| Authentication::Mismatch {
        needed: chain.first().and_then(|leaf| Tlsa::for_leaf(leaf)),
    })
}

/// Whether the next certificate renewal would keep DANE working (`mailflow_dane_rollover_ready`):
/// a usable record matches today's chain, and either a DANE-TA record matches it or another
/// usable DANE-EE record matches no certificate presented today (a pre-published next key).
/// Matching here compares data only, as `mailflow_dane_match` does: a DANE-TA match counts even
/// when its name or date checks fail.
pub fn rollover_ready(records: &[Tlsa], chain: &[CertificateDer<'_>]) -> bool {
    let parsed = ParsedChain::new(chain);
    let usable: Vec<(&Tlsa, Usable)> = records
        .iter()
        .filter_map(|record| Some((record, record.usability().ok()?)))
        .collect();
    let matches_today = |record: &Tlsa, params: Usable| match params.usage {
        Usage::DaneEe => parsed.matches_leaf(record, params),
        Usage::DaneTa => parsed.trust_anchor(record, params).is_some(),
    };
    let any_match = usable
        .iter()
        .any(|(record, params)| matches_today(record, *params));
    let ta_match = usable
        .iter()
        .any(|(record, params)| params.usage == Usage::DaneTa && matches_today(record, *params));
    let next_key = usable.iter().any(|(record, params)| {
        params.usage == Usage::DaneEe && !parsed.matches_any(record, *params)
    });
    any_match && (ta_match || next_key)
}
