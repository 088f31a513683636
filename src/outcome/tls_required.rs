//! TLS that the destination itself requires (an MTA-STS `enforce` policy, or DANE) and that did
//! not come about: which failures count so, and how they map to 4.7.321.

use super::{Code, Failure, OldTlsVersion, Phase, Reason, StarttlsFailure, TlsFailure};

/// Why TLS that the destination itself requires (an MTA-STS `enforce` policy, or DANE) did not come
/// about: Exchange Online's 4.7.321 starttls-not-supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRequired {
    /// STARTTLS was not offered, or was refused.
    Starttls(StarttlsFailure),
    /// No shared TLS version (the server offers only versions the probe refuses).
    Version(Option<OldTlsVersion>),
    /// The TLS handshake failed for a reason that is not the certificate.
    Handshake,
}

impl TlsRequired {
    /// The part of `failure` that means TLS did not come about, when the destination requires
    /// it: STARTTLS and handshake failures. Certificates are judged where they are checked, and
    /// every other failure is not about TLS.
    pub(super) fn of(failure: Failure) -> Option<TlsRequired> {
        match failure {
            Failure::Starttls(starttls) => Some(TlsRequired::Starttls(starttls)),
            Failure::Tls(TlsFailure::Handshake) => Some(TlsRequired::Handshake),
            Failure::Tls(TlsFailure::Version(version)) => Some(TlsRequired::Version(version)),
            Failure::Tls(TlsFailure::Broken(_) | TlsFailure::Certificate(_))
            | Failure::Dns(_)
            | Failure::MtaSts(_)
            | Failure::Dane(_)
            | Failure::Connect(_)
            | Failure::Smtp(..) => None,
        }
    }

    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            TlsRequired::Starttls(_) | TlsRequired::Version(_) | TlsRequired::Handshake => {
                Code::StarttlsNotSupported
            }
        }
    }

    /// The phase that failed.
    pub fn phase(self) -> Phase {
        match self {
            TlsRequired::Starttls(_) => Phase::Starttls,
            TlsRequired::Version(_) | TlsRequired::Handshake => Phase::Tls,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            TlsRequired::Starttls(failure) => failure.reason(),
            TlsRequired::Version(_) => Reason::TlsVersion,
            TlsRequired::Handshake => Reason::TlsHandshake,
        }
    }

    /// The server's reply code, when a reply caused the failure.
    pub fn reply(self) -> Option<u16> {
        match self {
            TlsRequired::Starttls(failure) => failure.reply(),
            TlsRequired::Version(_) | TlsRequired::Handshake => None,
        }
    }
}
