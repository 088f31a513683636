//! Why a probe failed, typed by the layer that failed: DNS, the destination's MTA-STS policy,
//! the TCP connect, an SMTP step, STARTTLS, TLS and the certificate, or DANE. [`Failure`] is
//! the sum of the layers; each layer's type lives in its own module beside this one.
//!
//! Each layer's type names its own mail flow [`Code`] and its label [`Reason`] by an exhaustive
//! `match`: a new variant does not compile until someone decides where it belongs in `codes.md`.

use super::{
    Code, ConnectFailure, DaneFailure, DnsFailure, MtaStsFailure, Phase, Reason, SmtpFault,
    SmtpStep, StarttlsFailure, TlsFailure,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Breakdown, CertificateFailure, OldTlsVersion, TlsRequired};

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
