//! Whom an operator turns to: who runs the other end of a connector, and whom to contact about
//! each code, by the connector's `type`.

use crate::config::ConnectorType;
use crate::outcome::Code;

/// Who runs the other end of a connector of `connector_type`, for people.
pub fn owner(connector_type: ConnectorType) -> &'static str {
    match connector_type {
        ConnectorType::OnPremises => "your organisation's on-premises servers",
        ConnectorType::Partner => "a partner organisation",
    }
}

/// Whom to contact about `code` on a connector of `connector_type`; `None` while mail flows.
pub fn whom_to_contact(connector_type: ConnectorType, code: Code) -> Option<&'static str> {
    use ConnectorType::{OnPremises, Partner};
    Some(match (connector_type, code) {
        (_, Code::Ok) => return None,
        (Partner, Code::DnsQueryFailed) => {
            "the partner organisation: the DNS records of their domain are theirs to fix"
        }
        (Partner, Code::ConnectionTimedOut | Code::ConnectionRefused) => {
            "the partner organisation: their mail servers or firewall do not take your \
             connections (check your own outbound network first if other connectors fail too)"
        }
        (Partner, Code::CannotConnect) => {
            "the partner organisation: their server refuses the session, or its STARTTLS or TLS"
        }
        (Partner, Code::ConnectionClosedAbruptly) => {
            "the partner organisation: their server or a firewall in front of it breaks the \
             session off (your network team if other connectors fail the same way)"
        }
        (Partner, Code::CertificateValidationFailed) => {
            "the partner organisation: their server's certificate; or whoever set this \
             connector's TLS settings, if those ask more than the partner ever offered"
        }
        (Partner, Code::Other) => {
            "the partner organisation if their server rejected the envelope or broke the \
             protocol; whoever set up this connector if its sender or recipient is wrong"
        }
        (OnPremises, Code::DnsQueryFailed) => {
            "your DNS administrators: the names of your on-premises servers do not resolve"
        }
        (OnPremises, Code::ConnectionTimedOut | Code::ConnectionRefused) => {
            "your on-premises mail team and your network or firewall team: the server or \
             port 25 is not reachable from the sending side"
        }
        (OnPremises, Code::CannotConnect) => {
            "your on-premises mail team: the server's SMTP service or its STARTTLS and TLS \
             settings"
        }
        (OnPremises, Code::ConnectionClosedAbruptly) => {
            "your on-premises mail team, and your network team for firewalls that inspect SMTP"
        }
        (OnPremises, Code::CertificateValidationFailed) => {
            "your on-premises mail team: the certificate of the on-premises server"
        }
        (OnPremises, Code::Other) => {
            "your on-premises mail team: the server's reply says what it refused"
        }
        (Partner, Code::StarttlsNotSupported) => {
            "the partner organisation: their domain asks for TLS (DANE or MTA-STS) and their \
             server does not give it"
        }
        (
            Partner,
            Code::DaneCertificateExpired | Code::TlsaInvalid | Code::DaneCertificateHostMismatch,
        ) => {
            "the partner organisation: their certificate no longer matches the TLSA records \
             their domain publishes (DANE)"
        }
        (Partner, Code::DnssecInvalid) => {
            "the partner organisation: their domain's DNSSEC signatures do not validate"
        }
        (Partner, Code::MtaStsMxNotListed | Code::MtaStsCertificateInvalid) => {
            "the partner organisation: their MTA-STS policy and their mail servers disagree"
        }
        (OnPremises, Code::StarttlsNotSupported) => {
            "your on-premises mail team: your domain asks for TLS (DANE or MTA-STS) and the \
             server does not give it"
        }
        (
            OnPremises,
            Code::DaneCertificateExpired | Code::TlsaInvalid | Code::DaneCertificateHostMismatch,
        ) => {
            "your on-premises mail team and your DNS administrators: the server's certificate \
             and the TLSA records must be renewed together"
        }
        (OnPremises, Code::DnssecInvalid) => {
            "your DNS administrators: the zone's DNSSEC signatures or keys are broken"
        }
        (OnPremises, Code::MtaStsMxNotListed | Code::MtaStsCertificateInvalid) => {
            "your on-premises mail team and whoever publishes your MTA-STS policy: the policy \
             and the servers must agree"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_names_whom_to_contact_by_who_runs_the_connector() {
        for code in Code::ALL {
            let partner = whom_to_contact(ConnectorType::Partner, code);
            let on_premises = whom_to_contact(ConnectorType::OnPremises, code);
            if code == Code::Ok {
                assert_eq!((partner, on_premises), (None, None));
                continue;
            }
            let partner = partner.expect("partner");
            let on_premises = on_premises.expect("on-premises");
            assert!(partner.starts_with("the partner organisation"), "{code}");
            assert!(on_premises.starts_with("your "), "{code}");
        }
    }
}
