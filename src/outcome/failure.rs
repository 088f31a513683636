//! Why a probe failed, typed by the layer that failed: DNS, the TCP connect, an SMTP step,
//! STARTTLS, TLS and the certificate.
//!
//! Each layer's type names its own mail flow [`Code`] and its label [`Reason`] by an exhaustive
//! `match`: a new variant does not compile until someone decides where it belongs in `codes.md`.

use super::{Code, Phase, Reason};

/// Why one address (or one host, when DNS failed) did not complete the exchange: the layer that
/// failed, and what went wrong there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Resolving the host names (or the MX records) failed.
    Dns(DnsFailure),
    /// The TCP connection could not be opened.
    Connect(ConnectFailure),
    /// An SMTP step failed: the server refused it, broke the protocol, or the connection broke
    /// off while waiting for it.
    Smtp(SmtpStep, SmtpFault),
    /// The connector requires TLS, and STARTTLS did not give it.
    Starttls(StarttlsFailure),
    /// The TLS handshake or the certificate checks failed.
    Tls(TlsFailure),
}

impl Failure {
    /// The mail flow code of this failure, by the mapping table of `codes.md`.
    pub fn code(&self) -> Code {
        match *self {
            Failure::Dns(failure) => failure.code(),
            Failure::Connect(failure) => failure.code(),
            Failure::Smtp(step, fault) => fault.code(step),
            Failure::Starttls(failure) => failure.code(),
            Failure::Tls(failure) => failure.code(),
        }
    }

    /// The phase that failed.
    pub fn phase(&self) -> Phase {
        match *self {
            Failure::Dns(_) => Phase::Dns,
            Failure::Connect(_) => Phase::Connect,
            Failure::Smtp(step, _) => step.phase(),
            Failure::Starttls(_) => Phase::Starttls,
            Failure::Tls(_) => Phase::Tls,
        }
    }

    /// Why it failed, as a label value.
    pub fn reason(&self) -> Reason {
        match *self {
            Failure::Dns(failure) => failure.reason(),
            Failure::Connect(failure) => failure.reason(),
            Failure::Smtp(_, fault) => fault.reason(),
            Failure::Starttls(failure) => failure.reason(),
            Failure::Tls(failure) => failure.reason(),
        }
    }

    /// The server's three-digit reply code, when a reply caused the failure.
    pub fn reply(&self) -> Option<u16> {
        match *self {
            Failure::Smtp(_, fault) => fault.reply(),
            Failure::Starttls(failure) => failure.reply(),
            Failure::Dns(_) | Failure::Connect(_) | Failure::Tls(_) => None,
        }
    }
}

/// Why a name did not resolve to addresses a mail server can be reached on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    /// The name does not exist.
    Nxdomain,
    /// The DNS server answered SERVFAIL, or another error response.
    Servfail,
    /// The DNS server refused the query.
    Refused,
    /// No answer in time.
    Timeout,
    /// The name exists but has no address records (or the domain has no MX and no address).
    NoRecords,
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
}

impl DnsFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            DnsFailure::Nxdomain
            | DnsFailure::Servfail
            | DnsFailure::Refused
            | DnsFailure::Timeout
            | DnsFailure::NoRecords
            | DnsFailure::NullMx => Code::DnsQueryFailed,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            DnsFailure::Nxdomain => Reason::Nxdomain,
            DnsFailure::Servfail => Reason::Servfail,
            DnsFailure::Refused => Reason::Refused,
            DnsFailure::Timeout => Reason::Timeout,
            DnsFailure::NoRecords => Reason::NoRecords,
            DnsFailure::NullMx => Reason::NullMx,
        }
    }
}

/// Why the TCP connection could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The connection did not complete in time (or no connection slot came in time).
    Timeout,
    /// The host or the network is unreachable.
    Unreachable,
    /// The peer refused the connection (RST).
    Refused,
}

impl ConnectFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            ConnectFailure::Timeout | ConnectFailure::Unreachable => Code::ConnectionTimedOut,
            ConnectFailure::Refused => Code::ConnectionRefused,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            ConnectFailure::Timeout => Reason::Timeout,
            ConnectFailure::Unreachable => Reason::Unreachable,
            ConnectFailure::Refused => Reason::Refused,
        }
    }
}

/// The SMTP step that failed: the server's greeting, or a command and its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpStep {
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO, or its HELO fallback.
    Ehlo,
    /// The STARTTLS command itself, and the switch to TLS after its reply.
    Starttls,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// RSET and QUIT.
    Quit,
}

impl SmtpStep {
    /// The phase this step belongs to.
    pub fn phase(self) -> Phase {
        match self {
            SmtpStep::Greeting => Phase::Greeting,
            SmtpStep::Ehlo => Phase::Ehlo,
            SmtpStep::Starttls => Phase::Starttls,
            SmtpStep::Mail => Phase::Mail,
            SmtpStep::Rcpt => Phase::Rcpt,
            SmtpStep::Quit => Phase::Quit,
        }
    }
}

/// What went wrong in an SMTP step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpFault {
    /// The server refused the step with this reply code (4xx or 5xx).
    Reply(u16),
    /// A well-formed reply that has no place at this step (a greeting that is neither 220 nor an
    /// error): a protocol violation that carries its code.
    Unexpected(u16),
    /// The server broke the protocol: garbage, an over-long reply, too many reply lines, or bytes
    /// sent ahead of the TLS handshake.
    Protocol,
    /// The connection broke off, or the server fell silent.
    Broken(Breakdown),
}

impl SmtpFault {
    /// The mail flow code of this fault in `step`.
    pub fn code(self, step: SmtpStep) -> Code {
        match self {
            SmtpFault::Reply(_) => match step {
                SmtpStep::Greeting | SmtpStep::Ehlo | SmtpStep::Starttls => Code::CannotConnect,
                SmtpStep::Mail | SmtpStep::Rcpt | SmtpStep::Quit => Code::Other,
            },
            SmtpFault::Unexpected(_) | SmtpFault::Protocol => Code::Other,
            SmtpFault::Broken(breakdown) => breakdown.code(),
        }
    }

    /// The label value of this fault. A reply code below 400 (a positive reply where a refusal
    /// was expected) counts with the 4xx.
    pub fn reason(self) -> Reason {
        match self {
            SmtpFault::Reply(code) if code >= 500 => Reason::Reply5xx,
            SmtpFault::Reply(_) => Reason::Reply4xx,
            SmtpFault::Unexpected(_) | SmtpFault::Protocol => Reason::Protocol,
            SmtpFault::Broken(breakdown) => breakdown.reason(),
        }
    }

    /// The server's reply code, when a reply caused the fault.
    pub fn reply(self) -> Option<u16> {
        match self {
            SmtpFault::Reply(code) | SmtpFault::Unexpected(code) => Some(code),
            SmtpFault::Protocol | SmtpFault::Broken(_) => None,
        }
    }
}

/// How an established connection broke down, in the SMTP dialogue or during the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakdown {
    /// The peer closed the connection before the exchange finished.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// No reply in time: the server hangs.
    Timeout,
}

impl Breakdown {
    /// The mail flow code of this breakdown.
    pub fn code(self) -> Code {
        match self {
            Breakdown::Closed | Breakdown::Reset | Breakdown::Timeout => {
                Code::ConnectionClosedAbruptly
            }
        }
    }

    /// The label value of this breakdown.
    pub fn reason(self) -> Reason {
        match self {
            Breakdown::Closed => Reason::Closed,
            Breakdown::Reset => Reason::Reset,
            Breakdown::Timeout => Reason::Timeout,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_mapping_table_has_its_code() {
        use Breakdown::{Closed, Reset};
        use Failure::{Connect, Dns, Smtp, Starttls, Tls};
        use SmtpFault::{Protocol, Reply};
        use SmtpStep::{Ehlo, Greeting, Mail, Rcpt};
        let rows = [
            (Dns(DnsFailure::Nxdomain), "dns", "nxdomain", "4.4.312"),
            (Dns(DnsFailure::Servfail), "dns", "servfail", "4.4.312"),
            (Dns(DnsFailure::Refused), "dns", "refused", "4.4.312"),
            (Dns(DnsFailure::Timeout), "dns", "timeout", "4.4.312"),
            (Dns(DnsFailure::NoRecords), "dns", "no_records", "4.4.312"),
            (Dns(DnsFailure::NullMx), "dns", "null_mx", "4.4.312"),
            (
                Connect(ConnectFailure::Timeout),
                "connect",
                "timeout",
                "4.4.315",
            ),
            (
                Connect(ConnectFailure::Unreachable),
                "connect",
                "unreachable",
                "4.4.315",
            ),
            (
                Connect(ConnectFailure::Refused),
                "connect",
                "refused",
                "4.4.316",
            ),
            (
                Smtp(Greeting, Reply(421)),
                "greeting",
                "reply_4xx",
                "4.4.317",
            ),
            (
                Smtp(Greeting, Reply(554)),
                "greeting",
                "reply_5xx",
                "4.4.317",
            ),
            (Smtp(Ehlo, Reply(550)), "ehlo", "reply_5xx", "4.4.317"),
            (
                Starttls(StarttlsFailure::NotOffered),
                "starttls",
                "starttls_not_offered",
                "4.4.317",
            ),
            (
                Starttls(StarttlsFailure::Rejected(Some(454))),
                "starttls",
                "starttls_rejected",
                "4.4.317",
            ),
            (
                Tls(TlsFailure::Version(Some(OldTlsVersion::Tls10))),
                "tls",
                "tls_version",
                "4.4.317",
            ),
            (
                Tls(TlsFailure::Version(None)),
                "tls",
                "tls_version",
                "4.4.317",
            ),
            (
                Tls(TlsFailure::Handshake),
                "tls",
                "tls_handshake",
                "4.4.317",
            ),
            (
                Tls(TlsFailure::Certificate(CertificateFailure::Expired)),
                "tls",
                "cert_expired",
                "4.7.320",
            ),
            (
                Tls(TlsFailure::Certificate(CertificateFailure::NotYetValid)),
                "tls",
                "cert_not_yet_valid",
                "4.7.320",
            ),
            (
                Tls(TlsFailure::Certificate(CertificateFailure::NameMismatch)),
                "tls",
                "cert_name_mismatch",
                "4.7.320",
            ),
            (
                Tls(TlsFailure::Certificate(CertificateFailure::Untrusted)),
                "tls",
                "cert_untrusted",
                "4.7.320",
            ),
            (
                Tls(TlsFailure::Certificate(CertificateFailure::Invalid)),
                "tls",
                "cert_invalid",
                "4.7.320",
            ),
            (
                Smtp(Greeting, SmtpFault::Broken(Closed)),
                "greeting",
                "closed",
                "4.4.318",
            ),
            (Tls(TlsFailure::Broken(Reset)), "tls", "reset", "4.4.318"),
            (
                Smtp(Ehlo, SmtpFault::Broken(Breakdown::Timeout)),
                "ehlo",
                "timeout",
                "4.4.318",
            ),
            (
                Smtp(Greeting, SmtpFault::Broken(Breakdown::Timeout)),
                "greeting",
                "timeout",
                "4.4.318",
            ),
            (Smtp(Mail, Reply(550)), "mail", "reply_5xx", "other"),
            (Smtp(Rcpt, Reply(450)), "rcpt", "reply_4xx", "other"),
            (Smtp(Greeting, Protocol), "greeting", "protocol", "other"),
            (Smtp(Ehlo, Protocol), "ehlo", "protocol", "other"),
            (
                Smtp(Greeting, SmtpFault::Unexpected(250)),
                "greeting",
                "protocol",
                "other",
            ),
        ];
        for (failure, phase, reason, code) in rows {
            assert_eq!(failure.code().as_str(), code, "{failure:?}");
            assert_eq!(failure.phase().as_str(), phase, "{failure:?}");
            assert_eq!(failure.reason().as_str(), reason, "{failure:?}");
        }
    }

    #[test]
    fn reply_failures_split_on_the_first_digit() {
        let reply = |code| Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(code));
        assert_eq!(reply(421).reason(), Reason::Reply4xx);
        assert_eq!(reply(554).reason(), Reason::Reply5xx);
    }

    #[test]
    fn only_replies_carry_a_reply_code() {
        assert_eq!(
            Failure::Smtp(SmtpStep::Rcpt, SmtpFault::Reply(550)).reply(),
            Some(550)
        );
        assert_eq!(
            Failure::Smtp(SmtpStep::Greeting, SmtpFault::Unexpected(250)).reply(),
            Some(250)
        );
        assert_eq!(
            Failure::Starttls(StarttlsFailure::Rejected(Some(454))).reply(),
            Some(454)
        );
        assert_eq!(Failure::Starttls(StarttlsFailure::NotOffered).reply(), None);
        assert_eq!(
            Failure::Smtp(SmtpStep::Ehlo, SmtpFault::Protocol).reply(),
            None
        );
        assert_eq!(Failure::Connect(ConnectFailure::Refused).reply(), None);
    }
}
