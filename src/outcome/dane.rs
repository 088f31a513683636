//! DANE failures: how a destination's DANE promise (DNSSEC-signed TLSA records, RFC 7672) was
//! broken, or could not be checked.

use super::{Code, Failure, Phase, Reason, TlsRequired};

/// How a destination's DANE promise (RFC 7672) was broken, or could not be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaneFailure {
    /// An MX, address or TLSA answer fails DNSSEC validation.
    DnssecBogus,
    /// The TLSA lookup of a host whose addresses are secure failed (SERVFAIL, time-out, an
    /// answer whose status cannot be established).
    TlsaLookupFailed,
    /// `smtp_dane_mode: mandatory`, and the host has no secure TLSA RRset with a usable record.
    Required,
    /// DANE applies, so TLS is required, and STARTTLS or the handshake did not give it.
    TlsRequired(TlsRequired),
    /// No usable TLSA record matches the presented chain (also a DANE-TA match whose chain does
    /// not lead to the anchor).
    Mismatch,
    /// DANE-TA: a certificate from the leaf up to the anchor has expired.
    TaExpired,
    /// DANE-TA: a certificate from the leaf up to the anchor is not valid yet.
    TaNotYetValid,
    /// DANE-TA: the leaf names none of the reference identifiers.
    TaNameMismatch,
}

impl DaneFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            DaneFailure::DnssecBogus | DaneFailure::TlsaLookupFailed => Code::DnssecInvalid,
            DaneFailure::Required | DaneFailure::Mismatch | DaneFailure::TaNotYetValid => {
                Code::TlsaInvalid
            }
            DaneFailure::TlsRequired(failure) => failure.code(),
            DaneFailure::TaExpired => Code::DaneCertificateExpired,
            DaneFailure::TaNameMismatch => Code::DaneCertificateHostMismatch,
        }
    }

    /// The phase that failed.
    pub fn phase(self) -> Phase {
        match self {
            DaneFailure::DnssecBogus | DaneFailure::TlsaLookupFailed | DaneFailure::Required => {
                Phase::Dns
            }
            DaneFailure::TlsRequired(failure) => failure.phase(),
            DaneFailure::Mismatch
            | DaneFailure::TaExpired
            | DaneFailure::TaNotYetValid
            | DaneFailure::TaNameMismatch => Phase::Tls,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            DaneFailure::DnssecBogus => Reason::DnssecBogus,
            DaneFailure::TlsaLookupFailed => Reason::TlsaLookupFailed,
            DaneFailure::Required => Reason::DaneRequired,
            DaneFailure::TlsRequired(failure) => failure.reason(),
            DaneFailure::Mismatch => Reason::TlsaMismatch,
            DaneFailure::TaExpired => Reason::CertExpired,
            DaneFailure::TaNotYetValid => Reason::CertNotYetValid,
            DaneFailure::TaNameMismatch => Reason::CertNameMismatch,
        }
    }

    /// The server's reply code, when a reply caused the failure.
    pub fn reply(self) -> Option<u16> {
        match self {
            DaneFailure::TlsRequired(failure) => failure.reply(),
            DaneFailure::DnssecBogus
            | DaneFailure::TlsaLookupFailed
            | DaneFailure::Required
            | DaneFailure::Mismatch
            | DaneFailure::TaExpired
            | DaneFailure::TaNotYetValid
            | DaneFailure::TaNameMismatch => None,
        }
    }

    /// `failure` as it counts where DANE applies to the host: TLS is required, so STARTTLS and
    /// handshake failures become [`DaneFailure::TlsRequired`]; every other failure stays.
    pub fn under_dane(failure: Failure) -> Failure {
        TlsRequired::of(failure).map_or(failure, |required| {
            Failure::Dane(DaneFailure::TlsRequired(required))
        })
    }
}
