//! TLS on one address: the handshake, then the certificate judged by whichever rules apply to
//! the host: DANE (its TLSA records), an MTA-STS `enforce` policy, or the connector's
//! `tls_settings`.

use rustls::pki_types::{ServerName, UnixTime};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::Attempt;
use crate::config::{Host, Route, TlsDomain};
use crate::outcome::{CertificateFailure, DaneFailure, Failure, MtaStsFailure, Phase, TlsFailure};
use crate::probe::dane::{self, Authentication, TaFailure, Tlsa};
use crate::probe::dane_rule::DaneRule;
use crate::probe::hello::Watched;
use crate::probe::quickack::QuickAck;
use crate::probe::report::DaneCheck;
use crate::probe::tls::{ExpectedName, TlsFacts};

impl Attempt<'_> {
    /// The TLS handshake and the certificate checks the connector asks for.
    pub(super) async fn start_tls(
        &mut self,
        stream: QuickAck,
    ) -> Result<TlsStream<Watched<QuickAck>>, Failure> {
        let started = Instant::now();
        let server_name = server_name(self.host);
        let result = self
            .engine
            .tls
            .handshake(stream, server_name.clone(), self.deadline)
            .await;
        let outcome = match result {
            Err(failure) => Err(Failure::Tls(failure)),
            Ok(stream) => {
                let expected = match &self.probe.tls_domain {
                    Some(domain) => domain.clone(),
                    None => ExpectedName::Exact(server_name.clone()),
                };
                let facts = self.probe.validator.facts(&stream, &expected);
                let outcome = match self.dane_rule.clone() {
                    // Where DANE applies it replaces the certificate rules of `tls_settings`.
                    DaneRule::Authenticate(records) => {
                        self.dane_finding(&stream, &records, server_name)
                    }
                    DaneRule::TlsOnly => Ok(()),
                    DaneRule::Off | DaneRule::Fail(_) => {
                        let policy_finding = self.policy_finding(&stream, &facts, server_name);
                        let finding = facts
                            .certificate
                            .as_ref()
                            .and_then(|c| c.enforced_finding(self.connector().tls_settings));
                        match (policy_finding, finding) {
                            (Some(failure), _) => {
                                Err(Failure::MtaSts(MtaStsFailure::Certificate(failure)))
                            }
                            (None, Some(failure)) => {
                                Err(Failure::Tls(TlsFailure::Certificate(failure)))
                            }
                            (None, None) => Ok(()),
                        }
                    }
                };
                self.tls = Some(facts);
                outcome.map(|()| stream)
            }
        };
        self.add_phase(Phase::Tls, started.elapsed());
        outcome
    }

    /// Authenticates the chain `stream` presented with the host's TLSA `records` (RFC 7672),
    /// recording how it fared. DANE-TA names are the host, the connector's `tls_domain`, and for
    /// an MX connector the recipient domain.
    fn dane_finding<S>(
        &mut self,
        stream: &TlsStream<S>,
        records: &[Tlsa],
        host_name: ServerName<'static>,
    ) -> Result<(), Failure> {
        let (_, connection) = stream.get_ref();
        let chain = connection.peer_certificates().unwrap_or_default();
        let mut names = vec![host_name];
        if let Some(TlsDomain::Exact(domain)) = &self.connector().tls_domain {
            names.push(domain.server_name());
        }
        if let Route::Mx(domain) = &self.connector().route {
            names.push(domain.server_name());
        }
        let authentication = dane::authenticate(records, chain, &names, UnixTime::now());
        let rollover_ready = dane::rollover_ready(records, chain);
        let record = |index: usize| records.get(index).cloned();
        let (check, outcome) = match authentication {
            // Checked by the caller: only called with a usable record.
            Authentication::NoUsableRecords => (None, Ok(())),
            Authentication::Matched(matched) => {
                (Some((record(matched.record), None, false)), Ok(()))
            }
            Authentication::TaRejected { matched, failure } => {
                let (failure, broken) = match failure {
                    TaFailure::Expired => (DaneFailure::TaExpired, false),
                    TaFailure::NotYetValid => (DaneFailure::TaNotYetValid, false),
                    TaFailure::NameMismatch => (DaneFailure::TaNameMismatch, false),
                    TaFailure::Invalid => (DaneFailure::Mismatch, true),
                };
                (
                    Some((record(matched.record), None, broken)),
                    Err(Failure::Dane(failure)),
                )
            }
            Authentication::Mismatch { needed } => (
                Some((None, needed, false)),
                Err(Failure::Dane(DaneFailure::Mismatch)),
            ),
        };
        self.dane_check = check.map(|(matched, needed, broken_chain)| DaneCheck {
            matched,
            needed,
            rollover_ready,
            broken_chain,
        });
        outcome
    }

    /// What an `enforce` policy finds wrong with the certificate (RFC 8461 §4.2: a chain to a
    /// trusted root, valid dates, and the host's own name, whatever the connector's
    /// `tls_settings` ask); `None` where no such policy applies or the certificate passes.
    /// `facts` were validated against the connector's expected name: the host's, unless a
    /// `tls_domain` asks for another, and then the chain is validated again for the host.
    fn policy_finding<S>(
        &self,
        stream: &TlsStream<S>,
        facts: &TlsFacts,
        host_name: ServerName<'static>,
    ) -> Option<CertificateFailure> {
        if !self.mta_sts_enforced {
            return None;
        }
        let Some(certificate) = &facts.certificate else {
            // No certificate that can be read: nothing the policy could accept.
            return Some(CertificateFailure::Invalid);
        };
        if self.probe.tls_domain.is_none() {
            return certificate.finding;
        }
        self.probe
            .validator
            .facts(stream, &ExpectedName::Exact(host_name))
            .certificate
            .map_or(Some(CertificateFailure::Invalid), |c| c.finding)
    }
}

/// The TLS name of `host`, sent as SNI when it is a DNS name and expected in the certificate when
/// the connector sets no `tls_domain`: the host's DNS name, or the address of an IP literal.
fn server_name(host: &Host) -> ServerName<'static> {
    match host {
        Host::Name(name) => name.server_name(),
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_tls_name_comes_from_the_typed_host() {
        let name: crate::config::DomainName = "mx.example.test".parse().expect("name");
        assert_eq!(
            server_name(&Host::Name(name)),
            ServerName::try_from("mx.example.test").expect("name")
        );
        let literal: IpAddr = "2001:db8::25".parse().expect("ip");
        assert_eq!(
            server_name(&Host::Ip(literal)),
            ServerName::IpAddress(literal.into())
        );
    }
}
