//! Handshake-signature checks for the verifiers that accept any certificate (the probe's, which
//! validates chains after the handshake, and the web server's `RequestClientCert` family): the
//! certificate is not judged, but the peer must still prove it holds its key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Checks handshake signatures with one crypto provider's algorithms.
#[derive(Debug, Clone)]
pub(crate) struct HandshakeSignatures {
    /// The provider whose signature algorithms check the signatures.
    provider: Arc<CryptoProvider>,
}

impl HandshakeSignatures {
    /// Checks with `provider`'s signature algorithms.
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        HandshakeSignatures { provider }
    }

    /// A TLS 1.2 handshake signature.
    pub(crate) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    /// A TLS 1.3 handshake signature.
    pub(crate) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    /// The signature schemes these checks support.
    pub(crate) fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
