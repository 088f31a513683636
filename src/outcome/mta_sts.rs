//! MTA-STS failures: how a destination's `enforce` policy was broken (RFC 8461).

use super::{CertificateFailure, Code, Failure, Phase, Reason, TlsRequired};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{
        Breakdown, ConnectFailure, DnsFailure, SmtpFault, SmtpStep, StarttlsFailure, TlsFailure,
    };

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
}
