//! The bounded vocabulary of a probe's outcome: codes, phases and reasons (see `codes.md`); the
//! failures of each layer ([`Failure`] and the types it wraps), which map onto them; and the rule
//! that turns the outcomes of a connector's addresses into the connector's own outcome.
//!
//! The failures sit one layer per module, all re-exported here: `failure` (the sum of the
//! layers), `dns`, `connection` (TCP connect and breakdowns), `smtp`, `tls` (STARTTLS, the
//! handshake, the certificate), `mta_sts`, `dane`, and `tls_required` (TLS that MTA-STS or DANE
//! require and that did not come about).

mod connection;
mod dane;
mod dns;
mod failure;
mod mta_sts;
mod smtp;
mod tls;
mod tls_required;

use std::fmt;

pub use connection::{Breakdown, ConnectFailure};
pub use dane::DaneFailure;
pub use dns::DnsFailure;
pub use failure::Failure;
pub use mta_sts::MtaStsFailure;
pub use smtp::{SmtpFault, SmtpStep};
pub use tls::{CertificateFailure, OldTlsVersion, StarttlsFailure, TlsFailure};
pub use tls_required::TlsRequired;

/// A mail flow outcome code, as Microsoft 365 names connector delivery failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The whole SMTP exchange succeeded.
    Ok,
    /// 4.4.312: the destination's name could not be resolved.
    DnsQueryFailed,
    /// 4.4.315: no TCP connection could be made in time (or the network is unreachable).
    ConnectionTimedOut,
    /// 4.4.316: the destination actively refused the connection.
    ConnectionRefused,
    /// 4.4.317: connected, but the server answered with an error or lacks what the connector needs.
    CannotConnect,
    /// 4.4.318: the session started and then broke off.
    ConnectionClosedAbruptly,
    /// 4.7.320: the server's certificate failed the validation the connector asks for.
    CertificateValidationFailed,
    /// 4.7.321: the destination requires TLS (an MTA-STS `enforce` policy, or DANE), and the
    /// server offers no STARTTLS, refuses it, or the handshake fails.
    StarttlsNotSupported,
    /// 4.7.322: DANE applies (DANE-TA) and a certificate of the chain has expired.
    DaneCertificateExpired,
    /// 4.7.323: DANE applies and no usable TLSA record matches the presented chain, or any other
    /// DANE failure (`smtp_dane_mode: mandatory` without a secure usable TLSA record).
    TlsaInvalid,
    /// 4.7.324: the destination's DNSSEC answers are bogus, or its TLSA lookup failed.
    DnssecInvalid,
    /// 4.7.325: DANE applies (DANE-TA) and the certificate names neither the host nor its domain.
    DaneCertificateHostMismatch,
    /// 4.4.8: the destination's MTA-STS `enforce` policy does not list the host.
    MtaStsMxNotListed,
    /// 4.7.5: the destination's MTA-STS `enforce` policy applies and the certificate is not
    /// valid for the host.
    MtaStsCertificateInvalid,
    /// Anything else: envelope rejected, protocol violations.
    Other,
}

impl Code {
    /// Every code, in the order they are exposed.
    pub const ALL: [Code; 15] = [
        Code::Ok,
        Code::DnsQueryFailed,
        Code::ConnectionTimedOut,
        Code::ConnectionRefused,
        Code::CannotConnect,
        Code::ConnectionClosedAbruptly,
        Code::CertificateValidationFailed,
        Code::StarttlsNotSupported,
        Code::DaneCertificateExpired,
        Code::TlsaInvalid,
        Code::DnssecInvalid,
        Code::DaneCertificateHostMismatch,
        Code::MtaStsMxNotListed,
        Code::MtaStsCertificateInvalid,
        Code::Other,
    ];

    /// The label value of this code (`ok`, `4.4.312`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::DnsQueryFailed => "4.4.312",
            Code::ConnectionTimedOut => "4.4.315",
            Code::ConnectionRefused => "4.4.316",
            Code::CannotConnect => "4.4.317",
            Code::ConnectionClosedAbruptly => "4.4.318",
            Code::CertificateValidationFailed => "4.7.320",
            Code::StarttlsNotSupported => "4.7.321",
            Code::DaneCertificateExpired => "4.7.322",
            Code::TlsaInvalid => "4.7.323",
            Code::DnssecInvalid => "4.7.324",
            Code::DaneCertificateHostMismatch => "4.7.325",
            Code::MtaStsMxNotListed => "4.4.8",
            Code::MtaStsCertificateInvalid => "4.7.5",
            Code::Other => "other",
        }
    }

    /// The short name of this code, for people.
    pub fn title(self) -> &'static str {
        match self {
            Code::Ok => "delivered",
            Code::DnsQueryFailed => "DNS query failed",
            Code::ConnectionTimedOut => "connection timed out",
            Code::ConnectionRefused => "connection refused",
            Code::CannotConnect => "cannot connect to remote server",
            Code::ConnectionClosedAbruptly => "connection closed abruptly",
            Code::CertificateValidationFailed => "certificate validation failed",
            Code::StarttlsNotSupported => "STARTTLS not supported",
            Code::DaneCertificateExpired => "certificate expired (DANE)",
            Code::TlsaInvalid => "TLSA invalid",
            Code::DnssecInvalid => "DNSSEC invalid",
            Code::DaneCertificateHostMismatch => "certificate host mismatch (DANE)",
            Code::MtaStsMxNotListed => "MX host failed MTA-STS validation",
            Code::MtaStsCertificateInvalid => "certificate failed MTA-STS validation",
            Code::Other => "other error",
        }
    }

    /// What this code usually means and what to do about it, for people.
    pub fn advice(self) -> &'static str {
        match self {
            Code::Ok => "The destination accepted the whole exchange; mail flows.",
            Code::DnsQueryFailed => {
                "The destination's name did not resolve. Usual causes: trouble at the domain's DNS \
                 host, an expired domain whose MX record is gone, or a recently changed MX record \
                 that resolvers still cache. Work with the DNS host; for a partner's domain, \
                 contact the partner."
            }
            Code::ConnectionTimedOut => {
                "No TCP connection could be opened. Usual causes: the destination server is down, \
                 the connector's smart host points at a wrong address, or the network changed \
                 (new provider, new addresses). Check the server, the smart host setting and \
                 recent network changes; for a partner, contact the partner."
            }
            Code::ConnectionRefused => {
                "The destination refused the connection. Usual causes: a firewall blocks the \
                 sending addresses on TCP port 25, or the on-premises server was retired on \
                 purpose. Allow the sender's address ranges on port 25; if the server is gone on \
                 purpose, disable or remove the connector so mail to it is rejected at once."
            }
            Code::CannotConnect => {
                "The server answered, but with an error (service not available) or without what \
                 the connector requires, such as STARTTLS or a working TLS handshake. Check the \
                 server's TLS settings and certificate and the connector's TLS settings; for a \
                 partner, contact the partner."
            }
            Code::ConnectionClosedAbruptly => {
                "The session started and then broke off or stalled. Usual causes: a firewall \
                 that inspects SMTP and misbehaves, a server that hangs, crashes or runs out of \
                 resources, or network trouble between the two sides. Find which applies; for \
                 network trouble involve the network team."
            }
            Code::CertificateValidationFailed => {
                "The server's certificate did not pass the validation the connector asks for: \
                 expired, not yet valid, not naming the expected host, or from an untrusted \
                 issuer. Fix the certificate or the connector's TLS settings so queued mail can \
                 be delivered; for a partner, contact the partner."
            }
            Code::StarttlsNotSupported => {
                "The destination asks for secure mail (an MTA-STS policy in enforce mode, or \
                 DANE records), so TLS is required, but the server did not offer STARTTLS, \
                 refused it, or the handshake failed. Sending servers that honour the policy \
                 queue the mail instead of sending it in plain text. Restore STARTTLS on the \
                 server (protocols, ciphers, certificate installed), or have the domain withdraw \
                 the requirement; for a partner, contact the partner."
            }
            Code::DaneCertificateExpired => {
                "The destination publishes DANE-TA records (TLSA usage 2) and a certificate of \
                 the chain the server presents has expired. Sending servers that check DANE \
                 queue the mail and bounce it after the retry window. Renew the certificate \
                 under the same trust anchor; for a partner, contact the partner."
            }
            Code::TlsaInvalid => {
                "The destination publishes DNSSEC-signed TLSA records and none that is usable \
                 matches the certificate the server presents (the classic case: a certificate \
                 renewed without updating TLSA), or the connector's smtp_dane_mode is mandatory \
                 and the destination has no secure usable TLSA record. Publish the TLSA record of \
                 the served certificate (probe CONNECTOR prints it), or serve the certificate the \
                 records name; for a partner, contact the partner."
            }
            Code::DnssecInvalid => {
                "The destination's DNSSEC answers (MX, address or TLSA records) fail validation \
                 (bad or expired signatures, keys no trust anchor validates), or the TLSA lookup \
                 of a host whose addresses are signed failed. Sending servers that check DANE \
                 hold the mail. Re-sign the zone or fix the DS records at the parent; for a \
                 partner, contact the partner."
            }
            Code::DaneCertificateHostMismatch => {
                "The destination publishes DANE-TA records (TLSA usage 2) and the certificate \
                 names neither the host nor its domain. Serve a certificate that names the MX \
                 host; for a partner, contact the partner."
            }
            Code::MtaStsMxNotListed => {
                "The destination's MTA-STS policy is in enforce mode and lists no mx pattern that \
                 matches this host, so sending servers that honour the policy refuse to deliver \
                 to it, without connecting. Usual causes: the MX records changed and the policy \
                 file was not updated, or a typo in an mx line. Add the host to the policy file \
                 (and change the id of the _mta-sts record), or point the MX back at a listed \
                 host; for a partner, contact the partner."
            }
            Code::MtaStsCertificateInvalid => {
                "The destination's MTA-STS policy is in enforce mode and the server's certificate \
                 is not valid for the host: expired, not yet valid, not naming the host, or from \
                 an untrusted issuer. Sending servers that honour the policy refuse to deliver. \
                 Renew or replace the certificate so that a public CA vouches for the host's \
                 name; for a partner, contact the partner."
            }
            Code::Other => {
                "Something else went wrong, such as a rejected sender or recipient or a server \
                 that broke the protocol. Read the server's reply to find the cause, or fix the \
                 connector's configuration."
            }
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step of the path a sending mail server walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Resolving the host names (and MX records) to addresses.
    Dns,
    /// Checking the host against the destination's MTA-STS policy, before connecting.
    MtaSts,
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO (and the HELO fallback), before and after TLS.
    Ehlo,
    /// The STARTTLS command.
    Starttls,
    /// The TLS handshake and the certificate checks.
    Tls,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// RSET and QUIT.
    Quit,
}

impl Phase {
    /// Every phase, in the order a probe walks them.
    pub const ALL: [Phase; 10] = [
        Phase::Dns,
        Phase::MtaSts,
        Phase::Connect,
        Phase::Greeting,
        Phase::Ehlo,
        Phase::Starttls,
        Phase::Tls,
        Phase::Mail,
        Phase::Rcpt,
        Phase::Quit,
    ];

    /// The label value of this phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::MtaSts => "mta_sts",
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "ehlo",
            Phase::Starttls => "starttls",
            Phase::Tls => "tls",
            Phase::Mail => "mail",
            Phase::Rcpt => "rcpt",
            Phase::Quit => "quit",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a phase failed: the bounded `reason` label values. Each layer's failure type (see
/// [`Failure`]) says which of them it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The name does not exist.
    Nxdomain,
    /// The DNS server answered SERVFAIL or another error.
    Servfail,
    /// The DNS server refused the query, or the peer refused the TCP connection.
    Refused,
    /// No answer in time.
    Timeout,
    /// The name exists but has no usable address records.
    NoRecords,
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
    /// The host or network is unreachable.
    Unreachable,
    /// The server answered with a 4xx reply.
    Reply4xx,
    /// The server answered with a 5xx reply.
    Reply5xx,
    /// TLS is required but the server does not advertise STARTTLS.
    StarttlsNotOffered,
    /// STARTTLS was answered with something other than 220.
    StarttlsRejected,
    /// The server and the probe share no TLS version (the server speaks only TLS 1.0/1.1).
    TlsVersion,
    /// The TLS handshake failed for another reason that is not the certificate.
    TlsHandshake,
    /// The certificate has expired.
    CertExpired,
    /// The certificate is not valid yet.
    CertNotYetValid,
    /// The certificate does not name the expected host.
    CertNameMismatch,
    /// The chain does not lead to a trusted root.
    CertUntrusted,
    /// Any other certificate defect.
    CertInvalid,
    /// The peer closed the connection before the exchange finished.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// The peer broke the SMTP protocol (garbage, over-long replies, too many lines).
    Protocol,
    /// The destination's MTA-STS `enforce` policy does not list the host.
    MxNotInPolicy,
    /// An MX, address or TLSA answer fails DNSSEC validation.
    DnssecBogus,
    /// The TLSA lookup of a host whose addresses are secure failed.
    TlsaLookupFailed,
    /// `smtp_dane_mode: mandatory` and no secure TLSA RRset with a usable record.
    DaneRequired,
    /// DANE applies and no usable TLSA record matches the presented chain.
    TlsaMismatch,
}

impl Reason {
    /// The label value of this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nxdomain => "nxdomain",
            Reason::Servfail => "servfail",
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::NoRecords => "no_records",
            Reason::NullMx => "null_mx",
            Reason::Unreachable => "unreachable",
            Reason::Reply4xx => "reply_4xx",
            Reason::Reply5xx => "reply_5xx",
            Reason::StarttlsNotOffered => "starttls_not_offered",
            Reason::StarttlsRejected => "starttls_rejected",
            Reason::TlsVersion => "tls_version",
            Reason::TlsHandshake => "tls_handshake",
            Reason::CertExpired => "cert_expired",
            Reason::CertNotYetValid => "cert_not_yet_valid",
            Reason::CertNameMismatch => "cert_name_mismatch",
            Reason::CertUntrusted => "cert_untrusted",
            Reason::CertInvalid => "cert_invalid",
            Reason::Closed => "closed",
            Reason::Reset => "reset",
            Reason::Protocol => "protocol",
            Reason::MxNotInPolicy => "mx_not_in_policy",
            Reason::DnssecBogus => "dnssec_bogus",
            Reason::TlsaLookupFailed => "tlsa_lookup_failed",
            Reason::DaneRequired => "dane_required",
            Reason::TlsaMismatch => "tlsa_mismatch",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one address (or of a whole connector).
pub type Outcome = Result<(), Failure>;

/// The code of an outcome.
pub fn code_of(outcome: &Outcome) -> Code {
    match outcome {
        Ok(()) => Code::Ok,
        Err(failure) => failure.code(),
    }
}

/// The connector-level rule: `ok` when any address delivered, else the outcome of the most
/// preferred one. `outcomes` must be in order of preference; an empty list is not possible for a
/// validated connector, and yields `None`.
pub fn connector_outcome<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Option<Outcome> {
    let mut first = None;
    for outcome in outcomes {
        if outcome.is_ok() {
            return Some(Ok(()));
        }
        first.get_or_insert(*outcome);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_delivers_when_any_address_delivers() {
        let refused = Err(Failure::Connect(ConnectFailure::Refused));
        let timeout = Err(Failure::Connect(ConnectFailure::Timeout));
        assert_eq!(connector_outcome(&[refused, Ok(())]), Some(Ok(())));
        assert_eq!(connector_outcome(&[refused, timeout]), Some(refused));
        assert_eq!(connector_outcome(&[timeout, refused]), Some(timeout));
        assert_eq!(connector_outcome(&[]), None);
    }
}
