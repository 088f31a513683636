//! DANE for SMTP (RFC 7672, with the operational rules of RFC 7671): which TLSA records are usable,
//! and whether the certificate chain a server presented matches them. Pure logic: no I/O, the
//! time is an argument.
//!
//! - A record is **usable** for SMTP when its usage is DANE-TA (2) or DANE-EE (3), its selector is
//!   the whole certificate (0) or its SubjectPublicKeyInfo (1), and its matching type is the full
//!   data (0), SHA-256 (1) or SHA-512 (2), with data of the right length. Usages 0 and 1 (PKIX-TA,
//!   PKIX-EE) are unusable for SMTP.
//! - **DANE-EE** matches the leaf certificate or its key, and nothing else is checked: no name, no
//!   dates, no chain.
//! - **DANE-TA** matches a certificate of the chain above the leaf (or, for a `2 1 0` record, a
//!   published key that signed a certificate of the chain); then the chain from the leaf must
//!   reach it, every certificate on the way (the trust anchor included, when it was presented)
//!   must be within its dates, and the leaf must name one of the reference identifiers.

use std::fmt;
use std::sync::Arc;

use ring::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, Der, ServerName, TrustAnchor, UnixTime};
use rustls::{CertificateError, RootCertStore};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

/// Length of a SHA-256 digest.
const SHA256_LEN: usize = 32;
/// Length of a SHA-512 digest.
const SHA512_LEN: usize = 64;

/// One TLSA record (RFC 6698): certificate usage, selector, matching type and the data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 the whole certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// Matching type: 0 the data itself, 1 its SHA-256 digest, 2 its SHA-512 digest.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

/// TLSA RDATA too short to hold usage, selector and matching type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TLSA record data of {0} bytes is shorter than its 3-byte header")]
pub struct TruncatedTlsa(pub usize);

/// DANE-TA or DANE-EE: the two usages SMTP uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// 2: a trust anchor the chain must reach; names and dates are checked.
    DaneTa,
    /// 3: the server's own certificate or key; nothing else is checked.
    DaneEe,
}

/// What part of a certificate a record covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// 0: the whole DER certificate.
    Certificate,
    /// 1: the DER SubjectPublicKeyInfo.
    PublicKey,
}

/// How the covered bytes are compared with the record's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Matching {
    /// 0: byte for byte.
    Full,
    /// 1: SHA-256 digest.
    Sha256,
    /// 2: SHA-512 digest.
    Sha512,
}

/// The parameters of a usable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Usable {
    /// DANE-TA or DANE-EE.
    pub usage: Usage,
    /// Certificate or public key.
    pub selector: Selector,
    /// Full data or digest.
    pub matching: Matching,
}

/// Why a record can't be used for SMTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unusable {
    /// Usage 0 (PKIX-TA) or 1 (PKIX-EE): not for SMTP (RFC 7672 §3.1.3).
    PkixUsage(u8),
    /// A usage no RFC defines.
    UnknownUsage(u8),
    /// A selector no RFC defines.
    UnknownSelector(u8),
    /// A matching type no RFC defines.
    UnknownMatching(u8),
    /// Digest data of the wrong length, or empty full data.
    DataLength {
        /// The bytes the matching type needs (0 for "at least one").
        expected: usize,
        /// The bytes the record has.
        found: usize,
    },
}

impl Tlsa {
    /// Parses TLSA RDATA (RFC 6698 §2.1): three one-byte fields, then the data.
    pub fn from_rdata(rdata: &[u8]) -> Result<Self, TruncatedTlsa> {
        match rdata {
            [usage, selector, matching, data @ ..] => Ok(Tlsa {
                usage: *usage,
                selector: *selector,
                matching: *matching,
                data: data.to_vec(),
            }),
            _ => Err(TruncatedTlsa(rdata.len())),
        }
    }

    /// The `3 1 1` record that matches `leaf` (DER): what to publish for this certificate.
    /// `None` when the certificate can't be parsed.
    pub fn for_leaf(leaf: &[u8]) -> Option<Tlsa> {
        let (_, certificate) = X509Certificate::from_der(leaf).ok()?;
        Some(Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: digest::digest(&digest::SHA256, certificate.public_key().raw)
                .as_ref()
                .to_vec(),
        })
    }

    /// Whether, and how, SMTP can use this record.
    pub fn usability(&self) -> Result<Usable, Unusable> {
        let usage = match self.usage {
            2 => Usage::DaneTa,
            3 => Usage::DaneEe,
            0 | 1 => return Err(Unusable::PkixUsage(self.usage)),
            other => return Err(Unusable::UnknownUsage(other)),
        };
        let selector = match self.selector {
            0 => Selector::Certificate,
            1 => Selector::PublicKey,
            other => return Err(Unusable::UnknownSelector(other)),
        };
        let (matching, expected) = match self.matching {
            0 => (Matching::Full, None),
            1 => (Matching::Sha256, Some(SHA256_LEN)),
            2 => (Matching::Sha512, Some(SHA512_LEN)),
            other => return Err(Unusable::UnknownMatching(other)),
        };
        let found = self.data.len();
        match expected {
            Some(expected) if found != expected => Err(Unusable::DataLength { expected, found }),
            None if found == 0 => Err(Unusable::DataLength { expected: 0, found }),
            _ => Ok(Usable {
                usage,
                selector,
                matching,
            }),
        }
    }

    /// Whether SMTP can use this record.
    pub fn is_usable(&self) -> bool {
        self.usability().is_ok()
    }
}

impl fmt::Display for Tlsa {
    /// Presentation form: `3 1 1 0a1b…` (lower-case hex, as a zone file carries it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        if self.data.is_empty() {
            // RFC 6698 presentation of empty data.
            return f.write_str("-");
        }
        self.data
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// How many records of an RRset SMTP can and can't use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsaCounts {
    /// Usable records.
    pub usable: usize,
    /// Unusable records.
    pub unusable: usize,
}

impl TlsaCounts {
    /// Counts the usable and unusable records of `records`.
    pub fn of(records: &[Tlsa]) -> Self {
        let usable = records.iter().filter(|record| record.is_usable()).count();
        TlsaCounts {
            usable,
            unusable: records.len() - usable,
        }
    }
}

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

/// The presented chain, parsed once.
struct ParsedChain<'a> {
    /// Each certificate with its parse (`None` when it doesn't parse).
    certificates: Vec<(&'a [u8], Option<X509Certificate<'a>>)>,
}

/// A DANE-TA record's anchor found for the presented chain.
struct FoundAnchor {
    /// Where it sits (see [`Match::depth`]).
    depth: usize,
    /// The anchor for path validation.
    anchor: TrustAnchor<'static>,
    /// Its certificate's dates, when the anchor was presented as a certificate.
    dates: Option<(i64, i64)>,
}

impl<'a> ParsedChain<'a> {
    fn new(chain: &'a [CertificateDer<'_>]) -> Self {
        ParsedChain {
            certificates: chain
                .iter()
                .map(|der| {
                    let bytes: &'a [u8] = der.as_ref();
                    (bytes, X509Certificate::from_der(bytes).ok().map(|(_, c)| c))
                })
                .collect(),
        }
    }

    /// Whether `record` matches the certificate at `depth`.
    fn matches_at(&self, depth: usize, record: &Tlsa, params: Usable) -> bool {
        let Some((der, parsed)) = self.certificates.get(depth) else {
            return false;
        };
        let covered = match params.selector {
            Selector::Certificate => *der,
            Selector::PublicKey => match parsed {
                Some(certificate) => certificate.public_key().raw,
                None => return false,
            },
        };
        data_matches(covered, record, params.matching)
    }

    fn matches_leaf(&self, record: &Tlsa, params: Usable) -> bool {
        self.matches_at(0, record, params)
    }

    /// Whether `record` matches any presented certificate, whatever its usage.
    fn matches_any(&self, record: &Tlsa, params: Usable) -> bool {
        (0..self.certificates.len()).any(|depth| self.matches_at(depth, record, params))
    }

    /// The anchor a DANE-TA record designates in this chain: a presented certificate above the
    /// leaf, or for `2 1 0` a published key that signed one of the presented certificates.
    fn trust_anchor(&self, record: &Tlsa, params: Usable) -> Option<FoundAnchor> {
        let presented = (1..self.certificates.len()).find_map(|depth| {
            if !self.matches_at(depth, record, params) {
                return None;
            }
            let (der, parsed) = self.certificates.get(depth)?;
            let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(*der))
                .ok()?
                .to_owned();
            let dates = parsed.as_ref().map(|certificate| {
                let validity = certificate.validity();
                (
                    validity.not_before.timestamp(),
                    validity.not_after.timestamp(),
                )
            });
            Some(FoundAnchor {
                depth,
                anchor,
                dates,
            })
        });
        if presented.is_some()
            || (params.selector, params.matching) != (Selector::PublicKey, Matching::Full)
        {
            return presented;
        }
        self.published_key_anchor(&record.data)
    }

    /// A `2 1 0` key that is not presented but signed a presented certificate: the anchor is
    /// that key under the name of the signed certificate's issuer (RFC 7671 §5.2.2).
    fn published_key_anchor(&self, spki_der: &[u8]) -> Option<FoundAnchor> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let spki_contents = der_contents(spki_der)?;
        self.certificates.iter().find_map(|(_, parsed)| {
            let certificate = parsed.as_ref()?;
            certificate.verify_signature(Some(&spki)).ok()?;
            let subject = der_contents(certificate.issuer().as_raw())?;
            Some(FoundAnchor {
                depth: self.certificates.len(),
                anchor: TrustAnchor {
                    subject: Der::from(subject.to_vec()),
                    subject_public_key_info: Der::from(spki_contents.to_vec()),
                    name_constraints: None,
                },
                dates: None,
            })
        })
    }
}

impl FoundAnchor {
    /// DANE-TA's checks: the chain reaches the anchor, the dates hold, the leaf names one of
    /// `names`.
    fn check(
        &self,
        chain: &[CertificateDer<'_>],
        names: &[ServerName<'_>],
        now: UnixTime,
    ) -> Result<(), TaFailure> {
        if let Some((not_before, not_after)) = self.dates {
            let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if now > not_after {
                return Err(TaFailure::Expired);
            }
            if now < not_before {
                return Err(TaFailure::NotYetValid);
            }
        }
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(TaFailure::Invalid);
        };
        let roots = RootCertStore {
            roots: vec![self.anchor.clone()],
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Ok(verifier) =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()
        else {
            return Err(TaFailure::Invalid);
        };
        let mut failure = TaFailure::NameMismatch;
        for name in names {
            match verifier.verify_server_cert(leaf, intermediates, name, &[], now) {
                Ok(_) => return Ok(()),
                Err(error) => match classify(&error) {
                    TaFailure::NameMismatch => {}
                    // Dates and chain don't depend on the name: no other name can pass.
                    other => {
                        failure = other;
                        break;
                    }
                },
            }
        }
        Err(failure)
    }
}

/// What a path-validation error means for DANE-TA.
fn classify(error: &rustls::Error) -> TaFailure {
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TaFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TaFailure::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TaFailure::NameMismatch
            }
            // rustls' enum is non-exhaustive: everything else breaks the chain.
            _ => TaFailure::Invalid,
        },
        _ => TaFailure::Invalid,
    }
}

/// Whether `covered` (certificate or SPKI bytes) matches the record's data.
fn data_matches(covered: &[u8], record: &Tlsa, matching: Matching) -> bool {
    match matching {
        Matching::Full => covered == record.data.as_slice(),
        Matching::Sha256 => digest::digest(&digest::SHA256, covered).as_ref() == record.data,
        Matching::Sha512 => digest::digest(&digest::SHA512, covered).as_ref() == record.data,
    }
}

/// The contents of a DER SEQUENCE (tag and length stripped), if `der` is exactly one.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    (rest.len() == length).then_some(rest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData,
    };
    use time::{Duration, OffsetDateTime};

    /// A certificate with its key, able to issue more.
    struct Issued {
        params: CertificateParams,
        key: KeyPair,
        der: CertificateDer<'static>,
    }

    impl Issued {
        fn spki(&self) -> Vec<u8> {
            self.key.subject_public_key_info()
        }
    }

    fn params(name: &str, ca: bool, days: (i64, i64)) -> CertificateParams {
        let names = if ca { vec![] } else { vec![name.to_owned()] };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let now = OffsetDateTime::now_utc();
        params.not_before = now + Duration::days(days.0);
        params.not_after = now + Duration::days(days.1);
        params
    }

    fn root(name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let params = params(name, true, (-10, 3650));
        let der = params.self_signed(&key).unwrap().der().clone();
        Issued { params, key, der }
    }

    fn issue(issuer: &Issued, name: &str, ca: bool, days: (i64, i64)) -> Issued {
        let key = KeyPair::generate().unwrap();
        let params = params(name, ca, days);
        let signer = Issuer::from_params(&issuer.params, &issuer.key);
        let der = params.signed_by(&key, &signer).unwrap().der().clone();
        Issued { params, key, der }
    }

    /// Root → intermediate → leaf for `mx.example.test`, all valid today.
    struct Pki {
        root: Issued,
        intermediate: Issued,
        leaf: Issued,
    }

    fn pki() -> Pki {
        let root = root("Test Root");
        let intermediate = issue(&root, "Test Intermediate", true, (-5, 1000));
        let leaf = issue(&intermediate, "mx.example.test", false, (-1, 90));
        Pki {
            root,
            intermediate,
            leaf,
        }
    }

    fn chain(certificates: &[&Issued]) -> Vec<CertificateDer<'static>> {
        certificates.iter().map(|c| c.der.clone()).collect()
    }

    fn sha256(bytes: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
    }

    fn sha512(bytes: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA512, bytes).as_ref().to_vec()
    }

    fn tlsa(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn names(list: &[&str]) -> Vec<ServerName<'static>> {
        list.iter()
            .map(|n| ServerName::try_from(n.to_string()).unwrap())
            .collect()
    }

    fn auth(records: &[Tlsa], chain: &[CertificateDer<'static>], host: &str) -> Authentication {
        authenticate(records, chain, &names(&[host]), UnixTime::now())
    }

    fn matched(record: usize, usage: Usage, depth: usize) -> Authentication {
        Authentication::Matched(Match {
            record,
            usage,
            depth,
        })
    }

    #[test]
    fn parses_rdata() {
        assert_eq!(
            Tlsa::from_rdata(&[3, 1, 1, 0xab, 0xcd]),
            Ok(tlsa(3, 1, 1, vec![0xab, 0xcd]))
        );
        assert_eq!(Tlsa::from_rdata(&[2, 0, 0]), Ok(tlsa(2, 0, 0, vec![])));
        assert_eq!(Tlsa::from_rdata(&[3, 1]), Err(TruncatedTlsa(2)));
        assert_eq!(
            TruncatedTlsa(2).to_string(),
            "TLSA record data of 2 bytes is shorter than its 3-byte header"
        );
    }

    #[test]
    fn presentation_form() {
        assert_eq!(tlsa(3, 1, 1, vec![0x0a, 0xff]).to_string(), "3 1 1 0aff");
        assert_eq!(tlsa(2, 0, 0, vec![]).to_string(), "2 0 0 -");
    }

    #[test]
    fn tells_usable_records_from_unusable_ones() {
        let usable = |u, s, m, len| tlsa(u, s, m, vec![7; len]).usability();
        assert_eq!(
            usable(3, 1, 1, 32),
            Ok(Usable {
                usage: Usage::DaneEe,
                selector: Selector::PublicKey,
                matching: Matching::Sha256
            })
        );
        assert_eq!(
            usable(2, 0, 2, 64),
            Ok(Usable {
                usage: Usage::DaneTa,
                selector: Selector::Certificate,
                matching: Matching::Sha512
            })
        );
        assert!(usable(3, 0, 0, 300).is_ok());
        assert_eq!(usable(0, 1, 1, 32), Err(Unusable::PkixUsage(0)));
        assert_eq!(usable(1, 1, 1, 32), Err(Unusable::PkixUsage(1)));
        assert_eq!(usable(4, 1, 1, 32), Err(Unusable::UnknownUsage(4)));
        assert_eq!(usable(3, 2, 1, 32), Err(Unusable::UnknownSelector(2)));
        assert_eq!(usable(3, 1, 3, 32), Err(Unusable::UnknownMatching(3)));
        assert_eq!(
            usable(3, 1, 1, 31),
            Err(Unusable::DataLength {
                expected: 32,
                found: 31
            })
        );
        assert_eq!(
            usable(3, 1, 2, 32),
            Err(Unusable::DataLength {
                expected: 64,
                found: 32
            })
        );
        assert_eq!(
            usable(3, 1, 0, 0),
            Err(Unusable::DataLength {
                expected: 0,
                found: 0
            })
        );
        let records = [
            tlsa(3, 1, 1, vec![1; 32]),
            tlsa(1, 1, 1, vec![1; 32]),
            tlsa(2, 1, 1, vec![1; 31]),
        ];
        assert_eq!(
            TlsaCounts::of(&records),
            TlsaCounts {
                usable: 1,
                unusable: 2
            }
        );
    }

    #[test]
    fn dane_ee_matches_the_leaf_in_every_selector_and_matching_type() {
        let p = pki();
        let served = chain(&[&p.leaf, &p.intermediate]);
        let leaf = p.leaf.der.to_vec();
        let spki = p.leaf.spki();
        for record in [
            tlsa(3, 1, 1, sha256(&spki)),
            tlsa(3, 1, 2, sha512(&spki)),
            tlsa(3, 1, 0, spki.clone()),
            tlsa(3, 0, 1, sha256(&leaf)),
            tlsa(3, 0, 2, sha512(&leaf)),
            tlsa(3, 0, 0, leaf.clone()),
        ] {
            let shown = record.to_string();
            assert_eq!(
                auth(&[record], &served, "mx.example.test"),
                matched(0, Usage::DaneEe, 0),
                "{shown}"
            );
        }
    }

    #[test]
    fn dane_ee_ignores_names_and_dates() {
        let p = pki();
        let expired = issue(&p.intermediate, "old.example.test", false, (-100, -10));
        let record = tlsa(3, 1, 1, sha256(&expired.spki()));
        assert_eq!(
            auth(&[record], &chain(&[&expired]), "mx.other.test"),
            matched(0, Usage::DaneEe, 0)
        );
    }

    #[test]
    fn a_stale_record_after_a_renewal_is_a_mismatch_naming_the_record_needed() {
        let p = pki();
        let renewed = issue(&p.intermediate, "mx.example.test", false, (0, 90));
        let stale = tlsa(3, 1, 1, sha256(&p.leaf.spki()));
        let needed = tlsa(3, 1, 1, sha256(&renewed.spki()));
        assert_eq!(
            auth(
                &[stale],
                &chain(&[&renewed, &p.intermediate]),
                "mx.example.test"
            ),
            Authentication::Mismatch {
                needed: Some(needed.clone())
            }
        );
        assert_eq!(Tlsa::for_leaf(&renewed.der), Some(needed));
        assert_eq!(
            auth(&[tlsa(3, 1, 1, vec![0; 32])], &[], "mx.example.test"),
            Authentication::Mismatch { needed: None }
        );
    }

    #[test]
    fn dane_ta_matches_a_presented_ca_certificate_or_key() {
        let p = pki();
        let served = chain(&[&p.leaf, &p.intermediate, &p.root]);
        let host = "mx.example.test";
        assert_eq!(
            auth(&[tlsa(2, 0, 1, sha256(&p.root.der))], &served, host),
            matched(0, Usage::DaneTa, 2)
        );
        assert_eq!(
            auth(
                &[tlsa(2, 1, 1, sha256(&p.intermediate.spki()))],
                &served,
                host
            ),
            matched(0, Usage::DaneTa, 1)
        );
        // An unusable record first does not shift the index reported.
        assert_eq!(
            auth(
                &[
                    tlsa(1, 1, 1, sha256(&p.leaf.spki())),
                    tlsa(2, 1, 2, sha512(&p.root.spki()))
                ],
                &served,
                host
            ),
            matched(1, Usage::DaneTa, 2)
        );
    }

    #[test]
    fn dane_ta_never_matches_the_leaf_itself() {
        let p = pki();
        let record = tlsa(2, 1, 1, sha256(&p.leaf.spki()));
        assert!(matches!(
            auth(
                &[record],
                &chain(&[&p.leaf, &p.intermediate]),
                "mx.example.test"
            ),
            Authentication::Mismatch { .. }
        ));
    }

    #[test]
    fn dane_ta_checks_the_name_against_every_reference_identifier() {
        let p = pki();
        let served = chain(&[&p.leaf, &p.intermediate]);
        let record = [tlsa(2, 0, 1, sha256(&p.intermediate.der))];
        let mismatch = Authentication::TaRejected {
            matched: Match {
                record: 0,
                usage: Usage::DaneTa,
                depth: 1,
            },
            failure: TaFailure::NameMismatch,
        };
        assert_eq!(auth(&record, &served, "mail.example.test"), mismatch);
        assert_eq!(
            authenticate(&record, &served, &[], UnixTime::now()),
            mismatch
        );
        assert_eq!(
            authenticate(
                &record,
                &served,
                &names(&["example.test", "mx.example.test"]),
                UnixTime::now()
            ),
            matched(0, Usage::DaneTa, 1)
        );
    }

    #[test]
    fn dane_ta_checks_the_dates_of_the_chain_and_the_anchor() {
        let p = pki();
        let record = [tlsa(2, 1, 1, sha256(&p.intermediate.spki()))];
        let rejected = |failure| Authentication::TaRejected {
            matched: Match {
                record: 0,
                usage: Usage::DaneTa,
                depth: 1,
            },
            failure,
        };
        let expired = issue(&p.intermediate, "mx.example.test", false, (-100, -1));
        assert_eq!(
            auth(
                &record,
                &chain(&[&expired, &p.intermediate]),
                "mx.example.test"
            ),
            rejected(TaFailure::Expired)
        );
        let early = issue(&p.intermediate, "mx.example.test", false, (2, 90));
        assert_eq!(
            auth(
                &record,
                &chain(&[&early, &p.intermediate]),
                "mx.example.test"
            ),
            rejected(TaFailure::NotYetValid)
        );
        let old_ca = issue(&p.root, "Old Intermediate", true, (-100, -1));
        let leaf = issue(&old_ca, "mx.example.test", false, (-1, 90));
        assert_eq!(
            auth(
                &[tlsa(2, 1, 1, sha256(&old_ca.spki()))],
                &chain(&[&leaf, &old_ca]),
                "mx.example.test"
            ),
            rejected(TaFailure::Expired)
        );
    }

    #[test]
    fn dane_ta_needs_the_chain_to_reach_the_anchor() {
        let p = pki();
        let stranger = root("Stranger CA");
        let record = [tlsa(2, 0, 1, sha256(&stranger.der))];
        assert_eq!(
            auth(&record, &chain(&[&p.leaf, &stranger]), "mx.example.test"),
            Authentication::TaRejected {
                matched: Match {
                    record: 0,
                    usage: Usage::DaneTa,
                    depth: 1
                },
                failure: TaFailure::Invalid
            }
        );
    }

    #[test]
    fn a_published_2_1_0_key_may_sign_the_chain_without_being_presented() {
        let p = pki();
        let record = [tlsa(2, 1, 0, p.intermediate.spki())];
        assert_eq!(
            auth(&record, &chain(&[&p.leaf]), "mx.example.test"),
            matched(0, Usage::DaneTa, 1)
        );
        // A digest can't stand in for a key that was not presented.
        let digest = [tlsa(2, 1, 1, sha256(&p.intermediate.spki()))];
        assert!(matches!(
            auth(&digest, &chain(&[&p.leaf]), "mx.example.test"),
            Authentication::Mismatch { .. }
        ));
        // Nor can a key that signed nothing presented.
        let other = [tlsa(2, 1, 0, p.root.spki())];
        assert!(matches!(
            auth(&other, &chain(&[&p.leaf]), "mx.example.test"),
            Authentication::Mismatch { .. }
        ));
    }

    #[test]
    fn dane_ee_wins_over_a_failing_dane_ta() {
        let p = pki();
        let records = [
            tlsa(2, 1, 1, sha256(&p.intermediate.spki())),
            tlsa(3, 1, 1, sha256(&p.leaf.spki())),
        ];
        assert_eq!(
            auth(
                &records,
                &chain(&[&p.leaf, &p.intermediate]),
                "wrong.example.test"
            ),
            matched(1, Usage::DaneEe, 0)
        );
    }

    #[test]
    fn only_pkix_usages_authenticate_nothing() {
        let p = pki();
        let records = [
            tlsa(0, 0, 1, sha256(&p.root.der)),
            tlsa(1, 1, 1, sha256(&p.leaf.spki())),
        ];
        assert_eq!(
            auth(
                &records,
                &chain(&[&p.leaf, &p.intermediate]),
                "mx.example.test"
            ),
            Authentication::NoUsableRecords
        );
        assert_eq!(
            auth(&[], &[], "mx.example.test"),
            Authentication::NoUsableRecords
        );
    }

    #[test]
    fn rollover_is_ready_with_a_next_key_or_a_trust_anchor() {
        let p = pki();
        let served = chain(&[&p.leaf, &p.intermediate]);
        let current = tlsa(3, 1, 1, sha256(&p.leaf.spki()));
        let next_key = KeyPair::generate().unwrap();
        let next = tlsa(3, 1, 1, sha256(&next_key.subject_public_key_info()));
        let ta = tlsa(2, 1, 1, sha256(&p.intermediate.spki()));
        assert!(!rollover_ready(std::slice::from_ref(&current), &served));
        assert!(rollover_ready(&[current.clone(), next.clone()], &served));
        assert!(rollover_ready(std::slice::from_ref(&ta), &served));
        assert!(rollover_ready(&[current.clone(), ta], &served));
        // Nothing matches today: a renewal can't break what is already broken, but it isn't ready.
        assert!(!rollover_ready(std::slice::from_ref(&next), &served));
        // The "next" record must not match a certificate presented today: an EE record for the
        // intermediate's key matches a presented certificate, so it is no pre-published key.
        let intermediate_ee = tlsa(3, 1, 1, sha256(&p.intermediate.spki()));
        assert!(!rollover_ready(
            &[current.clone(), intermediate_ee],
            &served
        ));
        // An unusable record is no next key.
        let unusable = tlsa(1, 1, 1, sha256(&next_key.subject_public_key_info()));
        assert!(!rollover_ready(&[current, unusable], &served));
    }

    #[test]
    fn der_contents_reads_short_and_long_lengths() {
        assert_eq!(der_contents(&[0x30, 0x02, 1, 2]), Some(&[1u8, 2][..]));
        let mut long = vec![0x30, 0x81, 200];
        long.extend(std::iter::repeat_n(9, 200));
        assert_eq!(der_contents(&long).map(<[u8]>::len), Some(200));
        assert_eq!(der_contents(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(der_contents(&[0x31, 0x00]), None);
        assert_eq!(der_contents(&[0x30, 0x80]), None);
    }
}
