//! The presented chain, parsed once, and what DANE-TA needs from it: the certificate or key a
//! record designates as trust anchor, and the path, date and name checks from the leaf to it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, Der, ServerName, TrustAnchor, UnixTime};
use rustls::{CertificateError, RootCertStore};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

use super::authentication::TaFailure;
use super::tlsa::{Matching, Selector, Tlsa, Usable, data_matches};

/// The presented chain, parsed once.
pub(super) struct ParsedChain<'a> {
    /// Each certificate with its parse (`None` when it doesn't parse).
    certificates: Vec<(&'a [u8], Option<X509Certificate<'a>>)>,
}

/// A DANE-TA record's anchor found for the presented chain.
pub(super) struct FoundAnchor {
    /// Where it sits (see [`super::Match::depth`]).
    pub(super) depth: usize,
    /// The anchor for path validation.
    anchor: TrustAnchor<'static>,
    /// Its certificate's dates, when the anchor was presented as a certificate.
    dates: Option<(i64, i64)>,
}

impl<'a> ParsedChain<'a> {
    /// Parses every certificate of `chain` (leaf first) once.
    pub(super) fn new(chain: &'a [CertificateDer<'_>]) -> Self {
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

    pub(super) fn matches_leaf(&self, record: &Tlsa, params: Usable) -> bool {
        self.matches_at(0, record, params)
    }

    /// Whether `record` matches any presented certificate, whatever its usage.
    pub(super) fn matches_any(&self, record: &Tlsa, params: Usable) -> bool {
        (0..self.certificates.len()).any(|depth| self.matches_at(depth, record, params))
    }

    /// The anchor a DANE-TA record designates in this chain: a presented certificate above the
    /// leaf, or for `2 1 0` a published key that signed one of the presented certificates.
    pub(super) fn trust_anchor(&self, record: &Tlsa, params: Usable) -> Option<FoundAnchor> {
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
    pub(super) fn check(
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

/// The contents of a DER SEQUENCE (tag and length stripped), if `der` is exactly one.
pub(super) fn der_contents(der: &[u8]) -> Option<&[u8]> {
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
