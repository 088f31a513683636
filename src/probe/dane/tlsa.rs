//! The TLSA record (RFC 6698) as SMTP reads it: parsed from RDATA, shown in presentation form,
//! sorted into usable and unusable (RFC 7672 §3.1), and compared with certificate or key bytes.

use std::fmt;

use ring::digest;
use x509_parser::prelude::{FromDer, X509Certificate};

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

/// Whether `covered` (certificate or SPKI bytes) matches the record's data.
pub(super) fn data_matches(covered: &[u8], record: &Tlsa, matching: Matching) -> bool {
    match matching {
        Matching::Full => covered == record.data.as_slice(),
        Matching::Sha256 => digest::digest(&digest::SHA256, covered).as_ref() == record.data,
        Matching::Sha512 => digest::digest(&digest::SHA512, covered).as_ref() == record.data,
    }
}
