//! TLS failures: STARTTLS that did not give TLS, the handshake (with the old versions a server
//! may offer instead), and the certificate checks.

use super::{Breakdown, Code, Reason};

/// Why STARTTLS did not give the TLS the connector requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StarttlsFailure {
    /// The server does not advertise STARTTLS.
    NotOffered,
    /// STARTTLS was answered with this reply code instead of 220 (`None` when the reply had no
    /// readable code, which only a Postfix delay reason can show).
    Rejected(Option<u16>),
}

impl StarttlsFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            StarttlsFailure::NotOffered | StarttlsFailure::Rejected(_) => Code::CannotConnect,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            StarttlsFailure::NotOffered => Reason::StarttlsNotOffered,
            StarttlsFailure::Rejected(_) => Reason::StarttlsRejected,
        }
    }

    /// The server's reply code, when a reply caused the failure.
    pub fn reply(self) -> Option<u16> {
        match self {
            StarttlsFailure::NotOffered => None,
            StarttlsFailure::Rejected(reply) => reply,
        }
    }
}

/// Why TLS failed: the handshake, or the certificate checks the connector asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server and the probe share no TLS version: the server speaks only versions older
    /// than TLS 1.2, which Exchange Online never sends with. Carries the version the server's
    /// ServerHello offered, when it sent one (a server may refuse with an alert instead).
    Version(Option<OldTlsVersion>),
    /// The handshake failed for another reason that is not the certificate (ciphers, alerts,
    /// garbage).
    Handshake,
    /// The connection broke off, or the server fell silent, during the handshake.
    Broken(Breakdown),
    /// The certificate failed validation.
    Certificate(CertificateFailure),
}

impl TlsFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            TlsFailure::Version(_) | TlsFailure::Handshake => Code::CannotConnect,
            TlsFailure::Broken(breakdown) => breakdown.code(),
            TlsFailure::Certificate(failure) => failure.code(),
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            TlsFailure::Version(_) => Reason::TlsVersion,
            TlsFailure::Handshake => Reason::TlsHandshake,
            TlsFailure::Broken(breakdown) => breakdown.reason(),
            TlsFailure::Certificate(failure) => failure.reason(),
        }
    }
}

/// A TLS version older than the ones the probe speaks (TLS 1.2 and 1.3), as a server offered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldTlsVersion {
    /// SSL 3.0.
    Ssl3,
    /// TLS 1.0.
    Tls10,
    /// TLS 1.1.
    Tls11,
}

impl OldTlsVersion {
    /// The version's name, for people (never a label value).
    pub fn as_str(self) -> &'static str {
        match self {
            OldTlsVersion::Ssl3 => "SSL 3.0",
            OldTlsVersion::Tls10 => "TLS 1.0",
            OldTlsVersion::Tls11 => "TLS 1.1",
        }
    }
}

impl std::fmt::Display for OldTlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What certificate validation found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateFailure {
    /// A certificate of the chain has expired.
    Expired,
    /// A certificate of the chain is not valid yet.
    NotYetValid,
    /// The certificate does not name the expected host.
    NameMismatch,
    /// The chain does not lead to a trusted root (unknown issuer, self-signed).
    Untrusted,
    /// Any other defect: bad signature, bad encoding, revoked.
    Invalid,
}

impl CertificateFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            CertificateFailure::Expired
            | CertificateFailure::NotYetValid
            | CertificateFailure::NameMismatch
            | CertificateFailure::Untrusted
            | CertificateFailure::Invalid => Code::CertificateValidationFailed,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            CertificateFailure::Expired => Reason::CertExpired,
            CertificateFailure::NotYetValid => Reason::CertNotYetValid,
            CertificateFailure::NameMismatch => Reason::CertNameMismatch,
            CertificateFailure::Untrusted => Reason::CertUntrusted,
            CertificateFailure::Invalid => Reason::CertInvalid,
        }
    }
}
