//! Fetching a policy (RFC 8461 §3.3): `GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt` with a
//! certificate valid for `mta-sts.DOMAIN`, status 200 only, no redirect followed, media type
//! `text/plain`, at most [`MAX_POLICY_SIZE`] bytes, all before a deadline. Every way it can go
//! wrong is one [`FetchFailure`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::policy::{Policy, PolicyError};
use super::{PolicyDomain, Resolve};
use crate::outcome::Reason;
use crate::probe::tls::classify_certificate_error;

/// The largest policy accepted, in bytes (RFC 8461 §3.3 suggests 64 KiB); reading stops beyond.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// Where the policy lives on the policy host.
const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The HTTPS port.
const HTTPS_PORT: u16 = 443;

/// hyper's read buffer, which bounds the response head and each body chunk.
const READ_BUFFER: usize = 16 * 1024;

/// The most response header lines accepted.
const MAX_HEADERS: usize = 64;

/// Fetches policies over HTTPS, trusting one set of anchors; build one per CA set, once, and
/// clone it freely (clones share the TLS configuration).
#[derive(Clone)]
pub struct PolicyClient {
    connector: TlsConnector,
}

impl fmt::Debug for PolicyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyClient").finish_non_exhaustive()
    }
}

impl PolicyClient {
    /// A client trusting `trust_anchors`: the system roots, plus the connector's `ca_file`
    /// where it has one. Certificates that are not usable anchors are skipped.
    pub fn new(
        trust_anchors: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<PolicyClient, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(trust_anchors);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // One request per connection: nothing to resume.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(PolicyClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Fetches and parses the policy of `domain`, resolving `mta-sts.DOMAIN` through
    /// `resolver`; fails with [`FetchFailure::Timeout`] at `deadline`.
    pub async fn fetch<R: Resolve>(
        &self,
        domain: &PolicyDomain,
        resolver: &R,
        deadline: Instant,
    ) -> Result<Policy, FetchFailure> {
        let host = format!("mta-sts.{domain}");
        let fetch = async {
            let addresses = resolver
                .addresses(&host)
                .await
                .map_err(|_| FetchFailure::Dns)?;
            self.fetch_from(&host, &addresses, HTTPS_PORT).await
        };
        timeout_at(deadline, fetch)
            .await
            .unwrap_or(Err(FetchFailure::Timeout))
    }

    /// Fetches the policy from `host`, at the first of `addresses` that accepts a connection
    /// on `port`.
    async fn fetch_from(
        &self,
        host: &str,
        addresses: &[IpAddr],
        port: u16,
    ) -> Result<Policy, FetchFailure> {
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| FetchFailure::Dns)?;
        let tcp = connect(addresses, port).await?;
        let tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| classify_handshake(&e))?;
        let body = get(tls, host).await?;
        Policy::parse(&body).map_err(FetchFailure::Parse)
    }
}

/// Why a policy could not be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchFailure {
    /// `mta-sts.DOMAIN` has no address (or its lookup failed).
    Dns,
    /// No address accepted a TCP connection.
    Connect,
    /// The TLS handshake failed for a reason other than the certificate.
    Tls,
    /// The certificate is not valid for `mta-sts.DOMAIN` (a certificate reason of `codes.md`).
    Certificate(Reason),
    /// The server broke HTTP (a malformed response, or the connection ended early).
    Http,
    /// A redirect (3xx), which senders must not follow.
    Redirect(u16),
    /// A status other than 200 and other than a redirect.
    Status(u16),
    /// The media type is not `text/plain`.
    MediaType,
    /// The body is larger than [`MAX_POLICY_SIZE`].
    TooLarge,
    /// The fetch did not finish before its deadline.
    Timeout,
    /// The body is not a valid policy.
    Parse(PolicyError),
}

impl FetchFailure {
    /// Every kind of failure as a bounded word, for logs and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            FetchFailure::Dns => "dns",
            FetchFailure::Connect => "connect",
            FetchFailure::Tls => "tls",
            FetchFailure::Certificate(_) => "certificate",
            FetchFailure::Http => "http",
            FetchFailure::Redirect(_) => "redirect",
            FetchFailure::Status(_) => "status",
            FetchFailure::MediaType => "media_type",
            FetchFailure::TooLarge => "too_large",
            FetchFailure::Timeout => "timeout",
            FetchFailure::Parse(_) => "parse",
        }
    }
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchFailure::Dns => f.write_str("the policy host's name did not resolve"),
            FetchFailure::Connect => {
                f.write_str("no address of the policy host accepted a connection")
            }
            FetchFailure::Tls => f.write_str("the TLS handshake with the policy host failed"),
            FetchFailure::Certificate(reason) => write!(
                f,
                "the policy host's certificate is not valid ({})",
                reason.as_str()
            ),
            FetchFailure::Http => f.write_str("the policy host broke HTTP"),
            FetchFailure::Redirect(status) => {
                write!(
                    f,
                    "the policy host redirected (status {status}); redirects are not followed"
                )
            }
            FetchFailure::Status(status) => write!(f, "the policy host answered status {status}"),
            FetchFailure::MediaType => f.write_str("the policy is not served as text/plain"),
            FetchFailure::TooLarge => {
                write!(f, "the policy is larger than {MAX_POLICY_SIZE} bytes")
            }
            FetchFailure::Timeout => f.write_str("the policy fetch did not finish in time"),
            FetchFailure::Parse(error) => write!(f, "the policy is malformed: {error}"),
        }
    }
}

impl std::error::Error for FetchFailure {}

/// A TCP connection to the first of `addresses` that accepts one.
async fn connect(addresses: &[IpAddr], port: u16) -> Result<TcpStream, FetchFailure> {
    for address in addresses {
        if let Ok(stream) = TcpStream::connect((*address, port)).await {
            // Small request, small replies: don't wait for delayed ACKs.
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
    Err(FetchFailure::Connect)
}

/// The certificate reason inside a failed handshake, else a plain TLS failure.
fn classify_handshake(error: &std::io::Error) -> FetchFailure {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => {
            FetchFailure::Certificate(classify_certificate_error(tls))
        }
        _ => FetchFailure::Tls,
    }
}

/// Sends the one GET over `stream` and reads the body, within the limits.
async fn get<S>(stream: S, host: &str) -> Result<Vec<u8>, FetchFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .max_headers(MAX_HEADERS)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|_| FetchFailure::Http)?;
    let request = Request::get(POLICY_PATH)
        .header(HOST, host)
        .header(
            USER_AGENT,
            concat!("mailflow_exporter/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|_| FetchFailure::Http)?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| FetchFailure::Http)?;
        read_policy(response).await
    };
    tokio::pin!(exchange);
    tokio::select! {
        result = &mut exchange => result,
        // The connection ended first: what it read is still in the body channel.
        _ = connection => exchange.await,
    }
}

/// Checks the status and head of `response`, then reads its body up to [`MAX_POLICY_SIZE`].
async fn read_policy(response: Response<Incoming>) -> Result<Vec<u8>, FetchFailure> {
    let status = response.status();
    if status.is_redirection() {
        return Err(FetchFailure::Redirect(status.as_u16()));
    }
    if status != StatusCode::OK {
        return Err(FetchFailure::Status(status.as_u16()));
    }
    let headers = response.headers();
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|media_type| media_type.eq_ignore_ascii_case("text/plain")) {
        return Err(FetchFailure::MediaType);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_POLICY_SIZE as u64) {
        return Err(FetchFailure::TooLarge);
    }
    let mut body = response.into_body();
    let mut policy = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| FetchFailure::Http)?;
        if let Ok(data) = frame.into_data() {
            if policy.len() + data.len() > MAX_POLICY_SIZE {
                return Err(FetchFailure::TooLarge);
            }
            policy.extend_from_slice(&data);
        }
    }
    Ok(policy)
}
