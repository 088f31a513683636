//! The TLS side of the web configuration: PEM reading, client certificate policies and the
//! rustls server configuration, built once per load.

use crate::tls_signatures::HandshakeSignatures;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// `client_auth_type`: whether client certificates are asked for, required and verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is asked for; any (or none) is accepted.
    RequestClientCert,
    /// Some certificate is required; any is accepted.
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate is required and must chain to `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// The values `client_auth_type` accepts (`RequireClientCert` is the toolkit's old name).
    pub(super) const NAMES: &'static str = "NoClientCert, RequestClientCert, \
        RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    /// Parses a `client_auth_type` value; empty means the default, `NoClientCert`.
    pub(super) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether presented certificates are verified against the client CAs.
    pub(super) fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a client must present a certificate.
    pub(super) fn requires_certificate(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// A validated `tls_server_config`, its files read.
pub(super) struct ServerTls {
    /// The server's certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's private key.
    pub key: PrivateKeyDer<'static>,
    /// The client certificate policy.
    pub client_auth: ClientAuth,
    /// Trust anchors for client certificates (also sent as hints); may be empty.
    pub client_cas: Vec<CertificateDer<'static>>,
    /// The protocol versions to offer.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// TLS 1.2 cipher suites to keep, by rustls name; `None`: all of the provider's.
    pub cipher_suites: Option<Vec<&'static str>>,
    /// Key exchange groups, in order of preference; `None`: the provider's.
    pub groups: Option<Vec<NamedGroup>>,
    /// Choose the cipher suite by the server's order rather than the client's.
    pub prefer_server_cipher_suites: bool,
    /// Client certificate SANs of which one must be present; empty: no such check.
    pub client_allowed_sans: Vec<String>,
    /// Offer HTTP/2 (ALPN `h2`) beside HTTP/1.1.
    pub http2: bool,
}

/// Which part of `tls_server_config` a build failure is about.
#[derive(Debug)]
pub(super) enum BuildError {
    /// The certificate and key (e.g. they do not match).
    Certificate(String),
    /// The client CAs.
    ClientCa(String),
    /// The versions, cipher suites and groups (e.g. nothing left to negotiate).
    Protocol(String),
}

/// Builds the rustls server configuration; ALPN offers HTTP/1.1 only.
pub(super) fn server_config(settings: ServerTls) -> Result<Arc<ServerConfig>, BuildError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &settings.cipher_suites {
        provider.cipher_suites.retain(|suite| {
            suite.version() == &rustls::version::TLS13
                || suite
                    .suite()
                    .as_str()
                    .is_some_and(|name| names.contains(&name))
        });
    }
    if let Some(groups) = &settings.groups {
        let available = std::mem::take(&mut provider.kx_groups);
        provider.kx_groups = groups
            .iter()
            .filter_map(|g| available.iter().find(|a| a.name() == *g).copied())
            .collect();
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.versions)
        .map_err(|e| BuildError::Protocol(e.to_string()))?;
    let verifier = client_verifier(&settings, &provider)?;
    let mut config = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    }
    .with_single_cert(settings.chain, settings.key)
    .map_err(|e| BuildError::Certificate(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = if settings.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    Ok(Arc::new(config))
}

/// Reads PEM certificates from `bytes`; at least one is required.
pub(super) fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certificates.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) found".to_owned());
    }
    Ok(certificates)
}

/// Reads the first PEM private key (PKCS#8, PKCS#1 or SEC1) from `bytes`.
pub(super) fn private_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) found".to_owned()
        }
        other => format!("invalid PEM private key: {other}"),
    })
}

/// The client certificate verifier for the policy; `None` for `NoClientCert`.
fn client_verifier(
    settings: &ServerTls,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, BuildError> {
    let mut roots = RootCertStore::empty();
    for ca in &settings.client_cas {
        roots
            .add(ca.clone())
            .map_err(|e| BuildError::ClientCa(format!("unusable CA certificate: {e}")))?;
    }
    let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => return Ok(None),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AcceptAnyClientCert {
                signatures: HandshakeSignatures::new(provider.clone()),
                mandatory: settings.client_auth.requires_certificate(),
                hints: roots.subjects(),
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if settings.client_auth.requires_certificate() {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder
                .build()
                .map_err(|e| BuildError::ClientCa(e.to_string()))?
        }
    };
    if settings.client_allowed_sans.is_empty() {
        return Ok(Some(verifier));
    }
    Ok(Some(Arc::new(AllowedSans {
        inner: verifier,
        allowed: settings.client_allowed_sans.clone(),
    })))
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is accepted, but the
/// handshake signatures are still checked, so the client holds the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyClientCert {
    /// Checks the handshake signatures.
    signatures: HandshakeSignatures,
    /// Whether a certificate is required.
    mandatory: bool,
    /// The client CAs' subjects, sent as hints.
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// `client_allowed_sans`: after the policy's own checks, the client certificate must carry one
/// of the allowed subject alternative names (DNS name, email, IP address or URI), exactly.
#[derive(Debug)]
struct AllowedSans {
    /// The policy's verifier.
    inner: Arc<dyn ClientCertVerifier>,
    /// The allowed names.
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificate's DNS, email, IP and URI subject alternative names; `None` if it does not
/// parse.
fn subject_alt_names(der: &CertificateDer<'_>) -> Option<Vec<String>> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let Some(extension) = cert.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    Some(
        extension
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    Some((*s).to_owned())
                }
                GeneralName::IPAddress(bytes) => ip_address(bytes).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect(),
    )
}

/// An IP address SAN (4 or 16 bytes).
fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// The TLS 1.2 cipher suite names the provider knows (TLS 1.3 suites are not configurable).
pub(super) fn tls12_cipher_suite_names() -> Vec<&'static str> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS12)
        .filter_map(|s| s.suite().as_str())
        .collect()
}

/// Names of TLS 1.3 suites, accepted in `cipher_suites` and ignored, as Go does.
pub(super) const TLS13_CIPHER_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// A `curve_preferences` name (Go's spelling) as a rustls group the ring provider offers.
pub(super) fn named_group(name: &str) -> Option<NamedGroup> {
    match name {
        "CurveP256" => Some(NamedGroup::secp256r1),
        "CurveP384" => Some(NamedGroup::secp384r1),
        "X25519" => Some(NamedGroup::X25519),
        _ => None,
    }
}
