//! Why a probe failed, typed by the layer that failed: DNS, the destination's MTA-STS policy,
//! the TCP connect, an SMTP step, STARTTLS, TLS and the certificate.
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
    /// The destination's MTA-STS policy, in `enforce` mode, refused the host or was broken by
    /// the server.
    MtaSts(MtaStsFailure),
    /// The TCP connection could not be opened.
    Connect(ConnectFailure),
    /// An SMTP step failed: the server refused it, broke the protocol, or the connection broke
    /// off while waiting for it.
    Smtp(SmtpStep, SmtpFault),
    /// The connector requires TLS, and STARTTLS did not give it.
    Starttls(StarttlsFailure),
    /// The TLS handshake or the certificate checks failed.
    Tls(TlsFailure),
    /// The destination's DANE promise (DNSSEC-signed TLSA records) was broken, or could not be
    /// checked.
    Dane(DaneFailure),
}

impl Failure {
    /// The mail flow code of this failure, by the mapping table of `codes.md`.
    pub fn code(&self) -> Code {
        match *self {
            Failure::Dns(failure) => failure.code(),
            Failure::MtaSts(failure) => failure.code(),
            Failure::Connect(failure) => failure.code(),
            Failure::Smtp(step, fault) => fault.code(step),
            Failure::Starttls(failure) => failure.code(),
            Failure::Tls(failure) => failure.code(),
            Failure::Dane(failure) => failure.code(),
        }
    }

    /// The phase that failed.
    pub fn phase(&self) -> Phase {
        match *self {
            Failure::Dns(_) => Phase::Dns,
            Failure::MtaSts(failure) => failure.phase(),
            Failure::Connect(_) => Phase::Connect,
            Failure::Smtp(step, _) => step.phase(),
            Failure::Starttls(_) => Phase::Starttls,
            Failure::Tls(_) => Phase::Tls,
            Failure::Dane(failure) => failure.phase(),
        }
    }

    /// Why it failed, as a label value.
    pub fn reason(&self) -> Reason {
        match *self {
            Failure::Dns(failure) => failure.reason(),
            Failure::MtaSts(failure) => failure.reason(),
            Failure::Connect(failure) => failure.reason(),
            Failure::Smtp(_, fault) => fault.reason(),
            Failure::Starttls(failure) => failure.reason(),
            Failure::Tls(failure) => failure.reason(),
            Failure::Dane(failure) => failure.reason(),
        }
    }

    /// The server's three-digit reply code, when a reply caused the failure.
    pub fn reply(&self) -> Option<u16> {
        match *self {
            Failure::Smtp(_, fault) => fault.reply(),
            Failure::Starttls(failure) => failure.reply(),
            Failure::MtaSts(failure) => failure.reply(),
            Failure::Dane(failure) => failure.reply(),
            Failure::Dns(_) | Failure::Connect(_) | Failure::Tls(_) => None,
        }
    }
}

/// How an MTA-STS policy in `enforce` mode was broken (RFC 8461 §4, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtaStsFailure {
    /// The host matches no `mx` pattern of the policy: a sending server does not connect to it.
    MxNotInPolicy,
    /// The policy requires TLS, and STARTTLS or the handshake did not give it.
    TlsRequired(TlsRequired),
    /// The certificate is not valid for the host: the chain to a trusted root, the dates, or the
    /// host's name (the checks the policy makes, whatever the connector's `tls_settings`).
    Certificate(CertificateFailure),
}

impl MtaStsFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            MtaStsFailure::MxNotInPolicy => Code::MtaStsMxNotListed,
            MtaStsFailure::TlsRequired(failure) => failure.code(),
            MtaStsFailure::Certificate(_) => Code::MtaStsCertificateInvalid,
        }
    }

    /// The phase that failed.
    pub fn phase(self) -> Phase {
        match self {
            MtaStsFailure::MxNotInPolicy => Phase::MtaSts,
            MtaStsFailure::TlsRequired(failure) => failure.phase(),
            MtaStsFailure::Certificate(_) => Phase::Tls,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            MtaStsFailure::MxNotInPolicy => Reason::MxNotInPolicy,
            MtaStsFailure::TlsRequired(failure) => failure.reason(),
            MtaStsFailure::Certificate(failure) => failure.reason(),
        }
    }

    /// The server's reply code, when a reply caused the failure.
    pub fn reply(self) -> Option<u16> {
        match self {
            MtaStsFailure::TlsRequired(failure) => failure.reply(),
            MtaStsFailure::MxNotInPolicy | MtaStsFailure::Certificate(_) => None,
        }
    }

    /// `failure` as it counts where an `enforce` policy applies to the host: STARTTLS and
    /// handshake failures become [`MtaStsFailure::TlsRequired`]; every other failure stays what
    /// it is (certificates are judged against the policy where they are checked).
    pub fn under_enforce(failure: Failure) -> Failure {
        TlsRequired::of(failure).map_or(failure, |required| {
            Failure::MtaSts(MtaStsFailure::TlsRequired(required))
        })
    }
}

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
    fn of(failure: Failure) -> Option<TlsRequired> {
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
        use Failure::{Connect, Dns, MtaSts, Smtp, Starttls, Tls};
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
            (
                MtaSts(MtaStsFailure::MxNotInPolicy),
                "mta_sts",
                "mx_not_in_policy",
                "4.4.8",
            ),
            (
                MtaSts(MtaStsFailure::TlsRequired(TlsRequired::Starttls(
                    StarttlsFailure::NotOffered,
                ))),
                "starttls",
                "starttls_not_offered",
                "4.7.321",
            ),
            (
                MtaSts(MtaStsFailure::TlsRequired(TlsRequired::Starttls(
                    StarttlsFailure::Rejected(Some(454)),
                ))),
                "starttls",
                "starttls_rejected",
                "4.7.321",
            ),
            (
                MtaSts(MtaStsFailure::TlsRequired(TlsRequired::Handshake)),
                "tls",
                "tls_handshake",
                "4.7.321",
            ),
            (
                MtaSts(MtaStsFailure::Certificate(CertificateFailure::Untrusted)),
                "tls",
                "cert_untrusted",
                "4.7.5",
            ),
            (
                MtaSts(MtaStsFailure::Certificate(CertificateFailure::Expired)),
                "tls",
                "cert_expired",
                "4.7.5",
            ),
            (
                MtaSts(MtaStsFailure::Certificate(CertificateFailure::NotYetValid)),
                "tls",
                "cert_not_yet_valid",
                "4.7.5",
            ),
            (
                MtaSts(MtaStsFailure::Certificate(CertificateFailure::NameMismatch)),
                "tls",
                "cert_name_mismatch",
                "4.7.5",
            ),
            (
                MtaSts(MtaStsFailure::Certificate(CertificateFailure::Invalid)),
                "tls",
                "cert_invalid",
                "4.7.5",
            ),
        ];
        for (failure, phase, reason, code) in rows {
            assert_eq!(failure.code().as_str(), code, "{failure:?}");
            assert_eq!(failure.phase().as_str(), phase, "{failure:?}");
            assert_eq!(failure.reason().as_str(), reason, "{failure:?}");
        }
    }

    #[test]
    fn an_enforce_policy_turns_missing_tls_into_4_7_321_and_leaves_the_rest() {
        let refused = Failure::Starttls(StarttlsFailure::Rejected(Some(454)));
        let escalated = MtaStsFailure::under_enforce(refused);
        assert_eq!(escalated.code(), Code::StarttlsNotSupported);
        assert_eq!(escalated.phase(), Phase::Starttls);
        assert_eq!(
            escalated.reply(),
            Some(454),
            "the server's reply stays visible"
        );
        assert_eq!(
            MtaStsFailure::under_enforce(Failure::Tls(TlsFailure::Handshake)).code(),
            Code::StarttlsNotSupported
        );
        for unchanged in [
            Failure::Tls(TlsFailure::Broken(Breakdown::Reset)),
            Failure::Tls(TlsFailure::Certificate(CertificateFailure::NameMismatch)),
            Failure::Connect(ConnectFailure::Refused),
            Failure::Smtp(SmtpStep::Rcpt, SmtpFault::Reply(550)),
            Failure::Dns(DnsFailure::Nxdomain),
        ] {
            assert_eq!(MtaStsFailure::under_enforce(unchanged), unchanged);
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
