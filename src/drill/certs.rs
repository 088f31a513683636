//! Certificates for the fire drill: a drill CA, leaves in every state a mail server's certificate
//! can be in, and a rustls server configuration for each.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// The certificates the drill's TLS targets present.
pub struct DrillCertificates {
    /// The drill CA, PEM: the trust anchor its connectors get through `ca_file`.
    pub ca_pem: String,
    /// Valid for `localhost` and 127.0.0.1, expiring in 10 days (an expiry warning).
    pub valid: Arc<ServerConfig>,
    /// Valid, expiring in 2 days (an expiry that is critical).
    pub expiring: Arc<ServerConfig>,
    /// Expired yesterday.
    pub expired: Arc<ServerConfig>,
    /// Names only `wrong-name.drill.invalid`.
    pub wrong_name: Arc<ServerConfig>,
    /// Signed by a CA nobody trusts.
    pub untrusted: Arc<ServerConfig>,
}

/// Why the drill's certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// rcgen failed.
    #[error("cannot generate a drill certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the result.
    #[error("cannot use a drill certificate: {0}")]
    Tls(#[from] rustls::Error),
}

impl DrillCertificates {
    /// Generates the CAs and leaves.
    pub fn generate() -> Result<Self, CertificateError> {
        let now = OffsetDateTime::now_utc();
        let (ca_params, ca_key, ca_pem) = authority("mailflow drill CA")?;
        let (other_params, other_key, _) = authority("untrusted drill CA")?;
        let trusted = Issuer::from_params(&ca_params, &ca_key);
        let untrusted = Issuer::from_params(&other_params, &other_key);
        let local = ["localhost", "127.0.0.1"];
        Ok(DrillCertificates {
            ca_pem,
            valid: leaf(
                &trusted,
                &local,
                now - Duration::days(1),
                now + Duration::days(10),
            )?,
            expiring: leaf(
                &trusted,
                &local,
                now - Duration::days(1),
                now + Duration::days(2),
            )?,
            expired: leaf(
                &trusted,
                &local,
                now - Duration::days(30),
                now - Duration::days(1),
            )?,
            wrong_name: leaf(
                &trusted,
                &["wrong-name.drill.invalid"],
                now - Duration::days(1),
                now + Duration::days(300),
            )?,
            untrusted: leaf(
                &untrusted,
                &local,
                now - Duration::days(1),
                now + Duration::days(300),
            )?,
        })
    }
}

fn authority(name: &str) -> Result<(CertificateParams, KeyPair, String), CertificateError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key)?.pem();
    Ok((params, key, pem))
}

fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Arc<ServerConfig>, CertificateError> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("drill"),
    );
    params.not_before = not_before;
    params.not_after = not_after;
    let certificate = params.signed_by(&key, issuer)?;
    let chain = vec![CertificateDer::from(certificate.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}
