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
//!
//! One job per file: `tlsa.rs` holds the record and its usability, `authentication.rs` the
//! verdict on a presented chain (and whether the next renewal keeps it), `chain.rs` the presented
//! chain parsed once and the DANE-TA checks on it.

mod authentication;
mod chain;
#[cfg(test)]
mod tests;
mod tlsa;

pub use authentication::{Authentication, Match, TaFailure, authenticate, rollover_ready};
pub use tlsa::{Matching, Selector, Tlsa, TlsaCounts, TruncatedTlsa, Unusable, Usable, Usage};
