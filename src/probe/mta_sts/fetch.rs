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
use crate::outcome::{CertificateFailure, TlsFailure};
use crate::probe::tls::classify_handshake_error;

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
                .ok()
                .filter(|addresses| !addresses.is_empty())
                .ok_or(FetchFailure::Dns)?;
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
    /// The certificate is not valid for `mta-sts.DOMAIN`.
    Certificate(CertificateFailure),
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
            FetchFailure::Certificate(failure) => write!(
                f,
                "the policy host's certificate is not valid ({})",
                failure.reason().as_str()
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

/// A failed handshake: a certificate finding, or else a plain TLS failure.
fn classify_handshake(error: &std::io::Error) -> FetchFailure {
    match classify_handshake_error(error, None) {
        TlsFailure::Certificate(failure) => FetchFailure::Certificate(failure),
        TlsFailure::Version(_) | TlsFailure::Handshake | TlsFailure::Broken(_) => FetchFailure::Tls,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::mta_sts::LookupFailure;
    use crate::probe::mta_sts::policy::Mode;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd,
    };
    use rustls::pki_types::PrivateKeyDer;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const HOST: &str = "mta-sts.example.test";
    const POLICY: &str =
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        der: CertificateDer<'static>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).expect("CA").der().clone();
        Ca { params, key, der }
    }

    /// A leaf for `names` signed by `ca`, valid until `until` (year).
    fn leaf(
        ca: &Ca,
        names: &[&str],
        until: i32,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .expect("leaf");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// What a test server does once it has read the request head.
    enum Behaviour {
        /// Sends these bytes and closes.
        Reply(Vec<u8>),
        /// Sends a 200 text/plain head without a length, then data until the client goes away
        /// (at most 64 MiB).
        Endless,
        /// Answers nothing and keeps the connection open.
        Silent,
    }

    fn reply(status: &str, headers: &str, body: &str) -> Behaviour {
        Behaviour::Reply(
            format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    fn policy_reply(content_type: &str, body: &str) -> Behaviour {
        reply("200 OK", &format!("Content-Type: {content_type}\r\n"), body)
    }

    /// A one-connection HTTPS server on 127.0.0.1 presenting `chain`; returns its port.
    async fn serve(
        chain: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        behaviour: Behaviour,
    ) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain.0, chain.1)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            match behaviour {
                Behaviour::Reply(bytes) => {
                    let _ = tls.write_all(&bytes).await;
                    let _ = tls.shutdown().await;
                }
                Behaviour::Endless => {
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n").await;
                    let chunk = [b'x'; 16 * 1024];
                    for _ in 0..4096 {
                        if tls.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                }
                Behaviour::Silent => std::future::pending::<()>().await,
            }
        });
        port
    }

    async fn fetch_at(
        client: &PolicyClient,
        port: u16,
        within: Duration,
    ) -> Result<Policy, FetchFailure> {
        let addresses = [IpAddr::from([127, 0, 0, 1])];
        timeout_at(
            Instant::now() + within,
            client.fetch_from(HOST, &addresses, port),
        )
        .await
        .unwrap_or(Err(FetchFailure::Timeout))
    }

    fn client(ca: &Ca) -> PolicyClient {
        PolicyClient::new([ca.der.clone()]).expect("client")
    }

    #[tokio::test]
    async fn a_good_policy_is_fetched_and_parsed() {
        let ca = ca("policy CA");
        for content_type in [
            "text/plain",
            "text/plain; charset=utf-8",
            "TEXT/PLAIN ;charset=us-ascii",
        ] {
            let port = serve(leaf(&ca, &[HOST], 2090), policy_reply(content_type, POLICY)).await;
            let policy = fetch_at(&client(&ca), port, Duration::from_secs(10))
                .await
                .expect("policy");
            assert_eq!(policy.mode, Mode::Enforce, "{content_type}");
            assert_eq!(policy.max_age, Duration::from_secs(86400));
        }
    }

    #[tokio::test]
    async fn every_bad_answer_is_its_own_failure() {
        let ca = ca("policy CA");
        let cases = [
            (reply("404 Not Found", "Content-Type: text/plain\r\n", "no"), FetchFailure::Status(404)),
            (reply("500 Oops", "Content-Type: text/plain\r\n", POLICY), FetchFailure::Status(500)),
            (reply("204 No Content", "Content-Type: text/plain\r\n", ""), FetchFailure::Status(204)),
            (
                reply("301 Moved Permanently", "Location: https://elsewhere.example/\r\n", ""),
                FetchFailure::Redirect(301),
            ),
            (reply("302 Found", "Location: /x\r\n", ""), FetchFailure::Redirect(302)),
            (policy_reply("text/html", POLICY), FetchFailure::MediaType),
            (policy_reply("text/plainx", POLICY), FetchFailure::MediaType),
            (reply("200 OK", "", POLICY), FetchFailure::MediaType),
            (
                policy_reply("text/plain", "version: STSv1\nmode: enforce\nmax_age: 1\n"),
                FetchFailure::Parse(Policy::parse(b"version: STSv1\nmode: enforce\nmax_age: 1\n").unwrap_err()),
            ),
            (
                policy_reply("text/plain", &"a".repeat(MAX_POLICY_SIZE + 1)),
                FetchFailure::TooLarge,
            ),
            (
                Behaviour::Reply(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n{}",
                        &POLICY[..20]
                    )
                    .into_bytes(),
                ),
                FetchFailure::Http,
            ),
            (Behaviour::Reply(b"SMTP ready\r\n\r\n".to_vec()), FetchFailure::Http),
            (
                reply("200 OK", &format!("Content-Type: text/plain\r\nX-Big: {}\r\n", "b".repeat(20_000)), POLICY),
                FetchFailure::Http,
            ),
            (
                reply("200 OK", &"X-Many: 1\r\n".repeat(100), POLICY),
                FetchFailure::Http,
            ),
            (Behaviour::Endless, FetchFailure::TooLarge),
        ];
        for (behaviour, expected) in cases {
            let port = serve(leaf(&ca, &[HOST], 2090), behaviour).await;
            let started = std::time::Instant::now();
            let result = fetch_at(&client(&ca), port, Duration::from_secs(10)).await;
            assert_eq!(result, Err(expected), "{}", expected.as_str());
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} took {:?}",
                expected.as_str(),
                started.elapsed()
            );
        }
    }

    #[tokio::test]
    async fn a_policy_of_exactly_the_limit_is_accepted() {
        let ca = ca("policy CA");
        let padding = MAX_POLICY_SIZE - POLICY.len() - "pad: \n".len();
        let body = format!("{POLICY}pad: {}\n", "p".repeat(padding));
        assert_eq!(body.len(), MAX_POLICY_SIZE);
        let port = serve(leaf(&ca, &[HOST], 2090), policy_reply("text/plain", &body)).await;
        assert!(
            fetch_at(&client(&ca), port, Duration::from_secs(10))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_certificate_must_be_valid_for_the_policy_host() {
        let other = ca("another CA");
        let ca = ca("policy CA");
        let cases = [
            (
                leaf(&ca, &["mta-sts.other.test"], 2090),
                CertificateFailure::NameMismatch,
            ),
            (
                leaf(&ca, &["example.test"], 2090),
                CertificateFailure::NameMismatch,
            ),
            (leaf(&ca, &[HOST], 2021), CertificateFailure::Expired),
            (leaf(&other, &[HOST], 2090), CertificateFailure::Untrusted),
        ];
        for (chain, failure) in cases {
            let port = serve(chain, policy_reply("text/plain", POLICY)).await;
            let result = fetch_at(&client(&ca), port, Duration::from_secs(10)).await;
            assert_eq!(
                result,
                Err(FetchFailure::Certificate(failure)),
                "{failure:?}"
            );
        }
        let port = serve(
            leaf(&ca, &["*.example.test"], 2090),
            policy_reply("text/plain", POLICY),
        )
        .await;
        assert!(
            fetch_at(&client(&ca), port, Duration::from_secs(10))
                .await
                .is_ok(),
            "a wildcard name is fine"
        );
    }

    #[tokio::test]
    async fn connection_failures() {
        let ca = ca("policy CA");
        // A port that was free a moment ago: refused.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        assert_eq!(
            fetch_at(&client(&ca), closed, Duration::from_secs(5)).await,
            Err(FetchFailure::Connect)
        );
        // Not TLS at all.
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = plain.local_addr().expect("addr").port();
        tokio::spawn(async move {
            if let Ok((mut tcp, _)) = plain.accept().await {
                let _ = tcp.write_all(b"220 mail ESMTP\r\n").await;
            }
        });
        assert_eq!(
            fetch_at(&client(&ca), port, Duration::from_secs(5)).await,
            Err(FetchFailure::Tls)
        );
    }

    #[tokio::test]
    async fn a_silent_server_is_given_up_at_the_deadline() {
        let ca = ca("policy CA");
        let port = serve(leaf(&ca, &[HOST], 2090), Behaviour::Silent).await;
        let started = std::time::Instant::now();
        let result = fetch_at(&client(&ca), port, Duration::from_millis(300)).await;
        assert_eq!(result, Err(FetchFailure::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A resolver whose every lookup fails.
    #[derive(Clone)]
    struct NoAnswers;

    impl Resolve for NoAnswers {
        async fn txt(&self, _: &str) -> Result<Vec<String>, LookupFailure> {
            Err(LookupFailure::Failed)
        }
        async fn addresses(&self, _: &str) -> Result<Vec<IpAddr>, LookupFailure> {
            Err(LookupFailure::NotFound)
        }
    }

    #[tokio::test]
    async fn an_unresolvable_policy_host_is_a_dns_failure() {
        let domain = PolicyDomain::new("example.test").expect("domain");
        let result = client(&ca("policy CA"))
            .fetch(&domain, &NoAnswers, Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(result, Err(FetchFailure::Dns));
    }
}
