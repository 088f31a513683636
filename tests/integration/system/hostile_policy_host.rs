//! A hostile MTA-STS policy host for the world of `mta_sts_world`: one HTTPS listener (port 443 of
//! a world address) that completes a proper TLS handshake, with the certificate of the name the
//! client asks for (SNI), and then answers `GET /.well-known/mta-sts.txt` in the way that name
//! stands for: endless, huge, slow or malformed. Every session ends by itself: when the client
//! goes away, when the world's test binary ends, or after [`SESSION_LIMIT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCertUsingSni;
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The longest a session lasts, whatever the client does.
pub const SESSION_LIMIT: Duration = Duration::from_secs(60);

/// The most sessions served at once (more wait for the listener's backlog).
const MAX_SESSIONS: usize = 64;

/// How a hostile policy host answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostility {
    /// 200 `text/plain` without a length, then `mx:` lines without end.
    EndlessBody,
    /// 200 `text/plain` announcing 10 GB, then as much as the client reads.
    HugeLength,
    /// `Transfer-Encoding: chunked` with a chunk of 2^64 - 1 bytes, then data without end.
    HugeChunk,
    /// A status line, then header lines without end.
    EndlessHeaders,
    /// `HTTP/1.1 200 ` and then one line that never ends.
    EndlessStatusLine,
    /// A good head and policy start, then one byte every 100 ms.
    Dribble,
    /// Binary garbage after the handshake.
    Garbage,
}

impl Hostility {
    /// Writes the answer to `stream` until the client goes away or the session's time is up.
    fn answer(self, stream: &mut impl Write, until: Instant) -> std::io::Result<()> {
        let head_200 = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n";
        let endless = |stream: &mut dyn Write, chunk: &[u8], pause: Duration| loop {
            if Instant::now() > until {
                return Ok(());
            }
            stream.write_all(chunk)?;
            if !pause.is_zero() {
                stream.flush()?;
                std::thread::sleep(pause);
            }
        };
        let body_start = "version: STSv1\nmode: enforce\nmax_age: 86400\n";
        match self {
            Hostility::EndlessBody => {
                write!(stream, "{head_200}\r\n{body_start}")?;
                endless(
                    stream,
                    &b"mx: mx.endless.sts.test\n".repeat(512),
                    Duration::ZERO,
                )
            }
            Hostility::HugeLength => {
                write!(
                    stream,
                    "{head_200}Content-Length: 10000000000\r\n\r\n{body_start}"
                )?;
                endless(
                    stream,
                    &b"mx: mx.huge.sts.test\n".repeat(512),
                    Duration::ZERO,
                )
            }
            Hostility::HugeChunk => {
                write!(
                    stream,
                    "{head_200}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{body_start}"
                )?;
                endless(
                    stream,
                    &b"mx: mx.chunk.sts.test\n".repeat(512),
                    Duration::ZERO,
                )
            }
            Hostility::EndlessHeaders => {
                write!(stream, "{head_200}")?;
                endless(stream, &b"X-Padding: pad\r\n".repeat(256), Duration::ZERO)
            }
            Hostility::EndlessStatusLine => {
                write!(stream, "HTTP/1.1 200 ")?;
                endless(stream, &[b'x'; 4096], Duration::ZERO)
            }
            Hostility::Dribble => {
                write!(stream, "{head_200}\r\n")?;
                stream.flush()?;
                endless(stream, b"m", Duration::from_millis(100))
            }
            Hostility::Garbage => {
                let garbage: Vec<u8> = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                    .collect();
                endless(stream, &garbage, Duration::ZERO)
            }
        }
    }
}

/// Serves `listener`: each policy host in `hosts` (`(policy host name, hostility)`) with the
/// certificate `DIR/DOMAIN.pem` and key `DIR/DOMAIN.key`, where the policy host is
/// `mta-sts.DOMAIN`.
pub fn serve(listener: TcpListener, dir: &Path, hosts: &[(String, Hostility)]) {
    let mut certificates = ResolvesServerCertUsingSni::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for (host, _) in hosts {
        let domain = host.strip_prefix("mta-sts.").expect("a policy host");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join(format!("{domain}.pem")))
                .expect("the hostile host's chain")
                .collect::<Result<_, _>>()
                .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{domain}.key")))
            .expect("the hostile host's key");
        let key = provider
            .key_provider
            .load_private_key(key)
            .expect("a usable key");
        certificates
            .add(host, CertifiedKey::new(chain, key))
            .expect("a certificate for the name");
    }
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificates));
    let config = Arc::new(config);
    let hosts: Arc<Vec<(String, Hostility)>> = Arc::new(hosts.to_vec());
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if running.load(std::sync::atomic::Ordering::SeqCst) >= MAX_SESSIONS {
                continue;
            }
            let (config, hosts, running) = (config.clone(), hosts.clone(), running.clone());
            running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = session(stream, config, &hosts);
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
}

/// One client: the handshake, its request, and the hostile answer for the name it asked for.
fn session(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    hosts: &[(String, Hostility)],
) -> std::io::Result<()> {
    let until = Instant::now() + SESSION_LIMIT;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let connection = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(connection, tcp);
    // Read the request head (bounded), which also completes the handshake.
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    for _ in 0..64 {
        line.clear();
        if reader.by_ref().take(8192).read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let name = tls.conn.server_name().unwrap_or_default().to_owned();
    let Some((_, hostility)) = hosts.iter().find(|(host, _)| *host == name) else {
        return Ok(());
    };
    let result = hostility.answer(&mut tls, until);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    result
}
