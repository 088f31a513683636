//! TLS for probes: one client configuration for every probe, the handshake, and the certificate
//! checks.
//!
//! The handshake itself accepts any certificate (handshake signatures are still verified), so that
//! the presented chain is always available. Validation then runs on that chain with the webpki
//! verifier, and the connector's `tls_settings` decide whether a finding fails the probe. That is
//! how an expired certificate still reports its expiry when validation refuses it.
//!
//! A finding names what is wrong with the chain, as a sending server's TLS library would see it,
//! not which error the verifier happened to return first: a chain whose issuers do not lead to a
//! trust anchor (a self-signed certificate, with or without the CA flag; an unknown issuer) is
//! untrusted before anything else is looked at.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, PeerIncompatible,
    RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::{TlsDomain, TlsSettings, TrustAnchors};
use crate::outcome::{Breakdown, CertificateFailure, OldTlsVersion, TlsFailure};
use crate::tls_signatures::HandshakeSignatures;

use super::hello::Watched;

/// The most certificate names kept for people.
const MAX_NAMES: usize = 16;

/// What probes share for TLS: the client configuration and the system trust anchors, built once.
pub struct TlsContext {
    /// The client every handshake uses: accepts any chain, verifies handshake signatures.
    connector: TlsConnector,
    /// The cryptography of the client and of the validators.
    provider: Arc<CryptoProvider>,
    /// The system's trust anchors, the base of every validator.
    system_roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("system_roots", &self.system_roots.len())
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Builds the shared client configuration and loads the system's trust anchors.
    pub fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider.clone())))
            .with_no_client_auth();
        // A probe never resumes a session: don't keep tickets.
        config.resumption = rustls::client::Resumption::disabled();
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(error = %error, "could not load some system trust anchors");
        }
        Ok(TlsContext {
            connector: TlsConnector::from(Arc::new(config)),
            provider,
            system_roots: loaded.certs,
        })
    }

    /// A validator trusting the system roots and `extra` anchors; build one per CA set, once.
    pub fn validator(&self, extra: Option<&TrustAnchors>) -> ChainValidator {
        let mut roots = RootCertStore::empty();
        let extra = extra.map(|ca| &ca.certificates[..]).unwrap_or_default();
        let anchors = || self.system_roots.iter().chain(extra);
        roots.add_parsable_certificates(anchors().cloned());
        let anchor_subjects = anchors()
            .filter_map(|der| X509Certificate::from_der(der).ok())
            .map(|(_, anchor)| anchor.subject().as_raw().to_vec())
            .collect();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .ok();
        ChainValidator {
            verifier,
            anchor_subjects,
        }
    }

    /// Runs the TLS handshake over `stream`, sending `server_name` as SNI when it is a name.
    /// The session reads through a [`Watched`] stream, which remembers the version the server
    /// offered in case the handshake fails on it.
    pub(super) async fn handshake<S>(
        &self,
        stream: S,
        server_name: ServerName<'static>,
        deadline: Instant,
    ) -> Result<TlsStream<Watched<S>>, TlsFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let connect = self
            .connector
            .connect(server_name, Watched::new(stream))
            .into_fallible();
        match timeout_at(deadline, connect).await {
            Err(_) => Err(TlsFailure::Broken(Breakdown::Timeout)),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err((error, watched))) => Err(classify_handshake_error(
                &error,
                watched.old_version_offered(),
            )),
        }
    }
}

/// Validates presented chains against one set of trust anchors.
#[derive(Debug)]
pub struct ChainValidator {
    /// `None` when there is no trust anchor at all: every chain is then untrusted.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    /// The subjects (DER) of the trust anchors, to tell whether a chain's issuers lead to one.
    anchor_subjects: HashSet<Vec<u8>>,
}

/// The name a certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedName {
    /// Exactly this name or address.
    Exact(ServerName<'static>),
    /// Any host directly under this domain (`tls_domain: "*.domain"`).
    AnyUnder(String),
}

impl From<&TlsDomain> for ExpectedName {
    /// The name a connector's `tls_domain` asks for: `*.domain` is any host directly under
    /// `domain`, anything else exactly that name.
    fn from(tls_domain: &TlsDomain) -> Self {
        match tls_domain {
            TlsDomain::Exact(name) => ExpectedName::Exact(name.server_name()),
            TlsDomain::Wildcard(parent) => ExpectedName::AnyUnder(parent.to_string()),
        }
    }
}

/// What the TLS session and the server's certificate showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// Negotiated protocol version, e.g. `TLS 1.3`.
    pub version: &'static str,
    /// Negotiated cipher suite.
    pub cipher: &'static str,
    /// The presented certificate, if any.
    pub certificate: Option<CertificateFacts>,
}

/// The facts of a presented certificate chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The leaf's subject, RFC 4514 style.
    pub subject: String,
    /// The leaf's issuer, RFC 4514 style.
    pub issuer: String,
    /// The leaf's serial number, lower-case hex.
    pub serial: String,
    /// The leaf's DNS and IP names (bounded).
    pub names: Vec<String>,
    /// The leaf's expiry, Unix seconds.
    pub not_after: i64,
    /// The earliest expiry in the presented chain, Unix seconds.
    pub chain_not_after: i64,
    /// What full validation (chain and name) found; `None` when it passed.
    pub finding: Option<CertificateFailure>,
}

impl CertificateFacts {
    /// Whether the certificate passes full validation, whatever the connector enforces.
    pub fn valid(&self) -> bool {
        self.finding.is_none()
    }

    /// The finding that fails a connector with `settings`, if any.
    pub fn enforced_finding(&self, settings: TlsSettings) -> Option<CertificateFailure> {
        match self.finding? {
            CertificateFailure::NameMismatch if !settings.validates_name() => None,
            finding if settings.validates_chain() => Some(finding),
            _ => None,
        }
    }
}

impl ChainValidator {
    /// Collects the facts of an established session and validates its chain against `expected`.
    pub fn facts<S>(&self, stream: &TlsStream<S>, expected: &ExpectedName) -> TlsFacts {
        let (_, connection) = stream.get_ref();
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
            _ => "unknown",
        };
        let cipher = connection
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            .unwrap_or("unknown");
        let certificate = connection
            .peer_certificates()
            .and_then(|chain| self.certificate_facts(chain, expected, UnixTime::now()));
        TlsFacts {
            version,
            cipher,
            certificate,
        }
    }

    /// The facts of `chain` (leaf first), validated at `now`.
    pub fn certificate_facts(
        &self,
        chain: &[CertificateDer<'static>],
        expected: &ExpectedName,
        now: UnixTime,
    ) -> Option<CertificateFacts> {
        let (leaf_der, intermediates) = chain.split_first()?;
        let (_, leaf) = X509Certificate::from_der(leaf_der).ok()?;
        let parsed: Vec<X509Certificate<'_>> = chain
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok())
            .map(|(_, cert)| cert)
            .collect();
        let names = leaf_names(&leaf);
        let chain_not_after = parsed
            .iter()
            .map(|cert| cert.validity().not_after.timestamp())
            .min()
            .unwrap_or_else(|| leaf.validity().not_after.timestamp());
        let finding = match &self.verifier {
            None => Some(CertificateFailure::Untrusted),
            Some(verifier) => {
                let name = match expected {
                    ExpectedName::Exact(name) => Some(name.clone()),
                    ExpectedName::AnyUnder(domain) => name_under(&names, domain),
                };
                // Without a candidate name the chain is still checked, against a name that can't
                // match, so that a chain problem wins over the name problem.
                let name = name.unwrap_or_else(|| {
                    ServerName::try_from("name-mismatch.invalid").unwrap_or(ServerName::IpAddress(
                        std::net::Ipv4Addr::UNSPECIFIED.into(),
                    ))
                });
                verifier
                    .verify_server_cert(leaf_der, intermediates, &name, &[], now)
                    .err()
                    .map(|error| {
                        if self.reaches_anchor(&leaf, &parsed) {
                            classify_certificate_error(&error)
                        } else {
                            CertificateFailure::Untrusted
                        }
                    })
            }
        };
        Some(CertificateFacts {
            subject: leaf.subject().to_string(),
            issuer: leaf.issuer().to_string(),
            serial: leaf
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            names,
            not_after: leaf.validity().not_after.timestamp(),
            chain_not_after,
            finding,
        })
    }
}

impl ChainValidator {
    /// Whether the issuers of `leaf` lead to a trust anchor by name: its issuer is an anchor, or
    /// another certificate of `chain` whose own issuer leads to one. A self-signed leaf (CA flag
    /// or not) and a leaf from an unknown issuer do not; whether the signatures along the way
    /// hold is the verifier's part.
    fn reaches_anchor(&self, leaf: &X509Certificate<'_>, chain: &[X509Certificate<'_>]) -> bool {
        let mut current = leaf;
        // Each step climbs to another certificate of the chain, so it has at most that many.
        for _ in 0..=chain.len() {
            let issuer = current.issuer().as_raw();
            if self.anchor_subjects.contains(issuer) {
                return true;
            }
            let next = chain.iter().find(|cert| {
                cert.subject().as_raw() == issuer && cert.as_ref() != current.as_ref()
            });
            match next {
                Some(cert) => current = cert,
                None => return false,
            }
        }
        false
    }
}

/// The DNS and IP names of a certificate, bounded.
fn leaf_names(leaf: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = leaf.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .take(MAX_NAMES)
        .collect()
}

/// A concrete host name under `domain` that the certificate's `names` cover, if any.
fn name_under(names: &[String], domain: &str) -> Option<ServerName<'static>> {
    names.iter().find_map(|name| {
        let candidate = if name.strip_prefix("*.") == Some(domain) {
            format!("mailflow-probe.{domain}")
        } else {
            let (first, rest) = name.split_once('.')?;
            if rest != domain || first.is_empty() || first.contains('*') {
                return None;
            }
            name.clone()
        };
        ServerName::try_from(candidate).ok()
    })
}

/// What a certificate that failed validation has wrong.
fn classify_certificate_error(error: &rustls::Error) -> CertificateFailure {
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertificateFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateFailure::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateFailure::NameMismatch
            }
            CertificateError::UnknownIssuer => CertificateFailure::Untrusted,
            // rustls' error enums are non-exhaustive: anything else is the catch-all defect.
            _ => CertificateFailure::Invalid,
        },
        _ => CertificateFailure::Invalid,
    }
}

/// Why a handshake failed. A server that offered a version older than TLS 1.2 shares none with
/// the probe, whatever error that became; otherwise the rustls error inside the io error
/// decides, else the io kind.
pub(crate) fn classify_handshake_error(
    error: &std::io::Error,
    offered: Option<OldTlsVersion>,
) -> TlsFailure {
    if offered.is_some() {
        return TlsFailure::Version(offered);
    }
    if let Some(inner) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return match inner {
            rustls::Error::InvalidCertificate(_) => {
                TlsFailure::Certificate(classify_certificate_error(inner))
            }
            // The server refused every version the probe offered.
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion) => {
                TlsFailure::Version(None)
            }
            rustls::Error::PeerIncompatible(
                PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
            ) => TlsFailure::Version(None),
            // rustls' error enums are non-exhaustive: anything else is the catch-all.
            _ => TlsFailure::Handshake,
        };
    }
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
            TlsFailure::Broken(Breakdown::Closed)
        }
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
            TlsFailure::Broken(Breakdown::Reset)
        }
        std::io::ErrorKind::TimedOut => TlsFailure::Broken(Breakdown::Timeout),
        _ => TlsFailure::Handshake,
    }
}

/// Accepts any certificate during the handshake (validation happens afterwards, on the facts),
/// but verifies the handshake signatures, so the session is still bound to the presented key.
#[derive(Debug)]
pub struct AcceptAnyCertificate {
    signatures: HandshakeSignatures,
}

impl AcceptAnyCertificate {
    /// The verifier probes use, checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCertificate {
            signatures: HandshakeSignatures::new(provider),
        }
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    struct TestCa {
        params: CertificateParams,
        key: KeyPair,
        der: CertificateDer<'static>,
    }

    fn ca(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa {
            der: cert.der().clone(),
            params,
            key,
        }
    }

    fn leaf(
        ca: &TestCa,
        names: &[&str],
        not_before_days: i64,
        not_after_days: i64,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(not_before_days);
        params.not_after = now + time::Duration::days(not_after_days);
        let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
        params.signed_by(&key, &issuer).expect("leaf").der().clone()
    }

    /// A self-signed server certificate for `name`, as `openssl req -x509` makes it (CA flag
    /// set) when `ca_flag`, else as an end entity; valid from `not_before_days` to
    /// `not_after_days` from now.
    fn self_signed(
        name: &str,
        ca_flag: bool,
        not_before_days: i64,
        not_after_days: i64,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = if ca_flag {
            rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
        } else {
            rcgen::IsCa::ExplicitNoCa
        };
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(not_before_days);
        params.not_after = now + time::Duration::days(not_after_days);
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    /// An intermediate CA under `parent`.
    fn intermediate(parent: &TestCa, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = rcgen::Issuer::from_params(&parent.params, &parent.key);
        let cert = params.signed_by(&key, &issuer).expect("intermediate");
        TestCa {
            der: cert.der().clone(),
            params,
            key,
        }
    }

    fn chain_finding(
        validator: &ChainValidator,
        chain: &[CertificateDer<'static>],
        expected: &str,
    ) -> Option<CertificateFailure> {
        let expected = ExpectedName::from(&expected.parse::<TlsDomain>().expect("name"));
        validator
            .certificate_facts(chain, &expected, UnixTime::now())
            .expect("facts")
            .finding
    }

    #[test]
    fn a_chain_that_leads_to_no_anchor_is_untrusted_whatever_else_is_wrong() {
        let trusted = ca("Test CA");
        let v = validator(&trusted);
        let name = "mx.example.test";
        let untrusted = Some(CertificateFailure::Untrusted);
        // Self-signed, as an end entity and as `openssl req -x509` makes it (a CA).
        assert_eq!(
            finding(&v, self_signed(name, false, -1, 30), name),
            untrusted
        );
        assert_eq!(
            finding(&v, self_signed(name, true, -1, 30), name),
            untrusted
        );
        // Self-signed and expired, or naming another host: the trust problem comes first, as
        // it does for OpenSSL.
        assert_eq!(
            finding(&v, self_signed(name, true, -30, -1), name),
            untrusted
        );
        assert_eq!(
            finding(&v, self_signed("other.test", true, -1, 30), name),
            untrusted
        );
        // An unknown issuer, also when its certificate is presented with the leaf.
        let other = ca("Other CA");
        let from_other = leaf(&other, &[name], -1, 30);
        assert_eq!(finding(&v, from_other.clone(), name), untrusted);
        assert_eq!(
            chain_finding(&v, &[from_other, other.der.clone()], name),
            untrusted
        );
    }

    #[test]
    fn intermediates_lead_to_the_anchor_only_when_presented() {
        let trusted = ca("Test CA");
        let v = validator(&trusted);
        let middle = intermediate(&trusted, "Test Intermediate");
        let name = "mx.example.test";
        let good = leaf(&middle, &[name], -1, 30);
        assert_eq!(
            chain_finding(&v, &[good.clone(), middle.der.clone()], name),
            None
        );
        // Without the intermediate, the issuer is unknown.
        assert_eq!(
            chain_finding(&v, &[good], name),
            Some(CertificateFailure::Untrusted)
        );
        // With it, other defects keep their own names.
        let expired = leaf(&middle, &[name], -30, -1);
        assert_eq!(
            chain_finding(&v, &[expired, middle.der.clone()], name),
            Some(CertificateFailure::Expired)
        );
    }

    #[test]
    fn a_damaged_signature_under_a_known_issuer_is_invalid() {
        let trusted = ca("Test CA");
        let v = validator(&trusted);
        let name = "mx.example.test";
        let mut damaged = leaf(&trusted, &[name], -1, 30).to_vec();
        if let Some(last) = damaged.last_mut() {
            *last ^= 0x01;
        }
        assert_eq!(
            finding(&v, CertificateDer::from(damaged), name),
            Some(CertificateFailure::Invalid)
        );
    }

    /// The failure of a handshake with a server that answers the ClientHello with `reply`.
    async fn handshake_failure(reply: Vec<u8>) -> TlsFailure {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut hello = [0u8; 4096];
            let _ = server.read(&mut hello).await;
            if reply.is_empty() {
                return; // Hang up.
            }
            let _ = server.write_all(&reply).await;
            // Stay until the client gives up.
            let _ = server.read(&mut hello).await;
        });
        let context = TlsContext::new().expect("context");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let name = ServerName::try_from("mx.example.test").expect("name");
        context
            .handshake(client, name, deadline)
            .await
            .expect_err("the handshake fails")
    }

    /// A ServerHello record for `version` without extensions (TLS_RSA_WITH_AES_128_CBC_SHA).
    fn old_server_hello(version: [u8; 2]) -> Vec<u8> {
        let mut body = version.to_vec();
        body.extend_from_slice(&[0x5a; 32]); // random
        body.extend_from_slice(&[0, 0x00, 0x2f, 0]); // no session id, cipher, no compression
        let mut message = vec![0x02, 0, 0, body.len() as u8];
        message.extend_from_slice(&body);
        let mut record = vec![0x16, version[0], version[1], 0, message.len() as u8];
        record.extend_from_slice(&message);
        record
    }

    /// A fatal alert record with `description`.
    fn alert(description: u8) -> Vec<u8> {
        vec![0x15, 3, 1, 0, 2, 2, description]
    }

    #[tokio::test]
    async fn a_server_without_a_shared_version_is_a_version_failure() {
        assert_eq!(
            handshake_failure(old_server_hello([3, 1])).await,
            TlsFailure::Version(Some(OldTlsVersion::Tls10))
        );
        assert_eq!(
            handshake_failure(old_server_hello([3, 2])).await,
            TlsFailure::Version(Some(OldTlsVersion::Tls11))
        );
        // OpenSSL refuses with a protocol_version alert (70): the version is not said.
        assert_eq!(
            handshake_failure(alert(70)).await,
            TlsFailure::Version(None)
        );
    }

    #[tokio::test]
    async fn other_handshake_failures_stay_handshake_failures() {
        // handshake_failure (40), e.g. no shared cipher.
        assert_eq!(handshake_failure(alert(40)).await, TlsFailure::Handshake);
        assert_eq!(
            handshake_failure(b"220 not TLS at all\r\n".to_vec()).await,
            TlsFailure::Handshake
        );
        assert_eq!(
            handshake_failure(Vec::new()).await,
            TlsFailure::Broken(Breakdown::Closed)
        );
    }

    fn validator(ca: &TestCa) -> ChainValidator {
        let context = TlsContext::new().expect("context");
        context.validator(Some(&TrustAnchors {
            path: "ca.pem".into(),
            certificates: vec![ca.der.clone()].into(),
        }))
    }

    fn finding(
        validator: &ChainValidator,
        chain: CertificateDer<'static>,
        expected: &str,
    ) -> Option<CertificateFailure> {
        let expected = ExpectedName::from(&expected.parse::<TlsDomain>().expect("name"));
        validator
            .certificate_facts(&[chain], &expected, UnixTime::now())
            .expect("facts")
            .finding
    }

    #[test]
    fn tells_certificate_defects_apart() {
        let trusted = ca("Test CA");
        let other = ca("Other CA");
        let v = validator(&trusted);
        let good = leaf(&trusted, &["mx.example.test"], -1, 30);
        assert_eq!(finding(&v, good.clone(), "mx.example.test"), None);
        assert_eq!(finding(&v, good.clone(), "*.example.test"), None);
        assert_eq!(
            finding(&v, good, "other.example.test"),
            Some(CertificateFailure::NameMismatch)
        );
        assert_eq!(
            finding(
                &v,
                leaf(&trusted, &["mx.example.test"], -30, -1),
                "mx.example.test"
            ),
            Some(CertificateFailure::Expired)
        );
        assert_eq!(
            finding(
                &v,
                leaf(&trusted, &["mx.example.test"], 1, 30),
                "mx.example.test"
            ),
            Some(CertificateFailure::NotYetValid)
        );
        assert_eq!(
            finding(
                &v,
                leaf(&other, &["mx.example.test"], -1, 30),
                "mx.example.test"
            ),
            Some(CertificateFailure::Untrusted)
        );
        // A chain problem wins over a name problem.
        assert_eq!(
            finding(
                &v,
                leaf(&trusted, &["mx.example.test"], -30, -1),
                "*.elsewhere.test"
            ),
            Some(CertificateFailure::Expired)
        );
    }

    #[test]
    fn records_the_leaf_identity_and_expiry() {
        let trusted = ca("Test CA");
        let v = validator(&trusted);
        let cert = leaf(&trusted, &["mx.example.test", "127.0.0.1"], -1, 10);
        let facts = v
            .certificate_facts(
                &[cert],
                &ExpectedName::Exact(ServerName::try_from("mx.example.test").expect("name")),
                UnixTime::now(),
            )
            .expect("facts");
        assert_eq!(facts.subject, "CN=mx.example.test");
        assert_eq!(facts.issuer, "CN=Test CA");
        assert!(!facts.serial.is_empty());
        assert_eq!(facts.names, vec!["mx.example.test", "127.0.0.1"]);
        let in_ten_days = UnixTime::now().as_secs() as i64 + 10 * 86400;
        assert!((facts.not_after - in_ten_days).abs() < 120);
        assert_eq!(facts.chain_not_after, facts.not_after);
    }

    #[test]
    fn enforcement_follows_tls_settings() {
        let facts = |finding| CertificateFacts {
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            names: Vec::new(),
            not_after: 0,
            chain_not_after: 0,
            finding,
        };
        let mismatch = facts(Some(CertificateFailure::NameMismatch));
        let expired = facts(Some(CertificateFailure::Expired));
        assert_eq!(mismatch.enforced_finding(TlsSettings::EncryptionOnly), None);
        assert_eq!(
            mismatch.enforced_finding(TlsSettings::CertificateValidation),
            None
        );
        assert_eq!(
            mismatch.enforced_finding(TlsSettings::DomainValidation),
            Some(CertificateFailure::NameMismatch)
        );
        assert_eq!(expired.enforced_finding(TlsSettings::Opportunistic), None);
        assert_eq!(
            expired.enforced_finding(TlsSettings::CertificateValidation),
            Some(CertificateFailure::Expired)
        );
        assert!(!expired.valid());
        assert!(facts(None).valid());
    }
}
