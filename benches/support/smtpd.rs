//! A fast in-process STARTTLS SMTP server (tokio + tokio-rustls) for the scale runs:
//! 220 greeting, EHLO (advertising STARTTLS), STARTTLS, TLS 1.3 handshake without session
//! tickets, EHLO, QUIT. Every read has a deadline and every line is bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How long the server waits for a command.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// Sessions counters.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    /// Connections accepted.
    pub(crate) accepted: AtomicU64,
    /// Sessions that reached QUIT after TLS.
    pub(crate) completed: AtomicU64,
}

/// The running server: one listener per address, all serving the same way.
pub(crate) struct InProcess {
    /// Every listening address; the first is 127.0.0.1.
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts listeners on 127.0.0.1 .. 127.0.0.`listeners` (free ports), with the certificate
/// `cert_der` and PKCS#8 key `key_der`.
pub(crate) fn start(cert_der: Vec<u8>, key_der: Vec<u8>, listeners: u8) -> Result<InProcess> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )?;
    // A fast target: no session tickets, so no post-handshake flight at all.
    config.send_tls13_tickets = 0;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let counters = Arc::new(Counters::default());
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for i in 1..=listeners.max(1) {
        let ip = Ipv4Addr::new(127, 0, 0, i);
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::from((ip, 0)))
            .with_context(|| format!("bind {ip}"))?;
        // A deep accept queue: a scrape of 10,000 connectors connects all at once.
        let listener = socket.listen(65535)?;
        addrs.push(listener.local_addr()?);
        tasks.push(tokio::spawn(serve(
            listener,
            acceptor.clone(),
            counters.clone(),
        )));
    }
    Ok(InProcess {
        addrs,
        counters,
        tasks,
    })
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, counters: Arc<Counters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let acceptor = acceptor.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            if session(stream, acceptor).await.unwrap_or(false) {
                counters.completed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

enum Next {
    StartTls,
    Quit,
}

/// One SMTP session; `true` when it reached QUIT after TLS.
async fn session(stream: TcpStream, acceptor: TlsAcceptor) -> Result<bool> {
    stream.set_nodelay(true)?;
    let mut plain = BufReader::new(stream);
    plain
        .get_mut()
        .write_all(b"220 bench.mailflow.test ESMTP mailflow-bench\r\n")
        .await?;
    match commands(
        &mut plain,
        b"250-bench.mailflow.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
    )
    .await?
    {
        Next::Quit => return Ok(false),
        Next::StartTls => {}
    }
    // Nothing may be pipelined after STARTTLS (RFC 3207): drop anything buffered.
    let stream = plain.into_inner();
    let tls = tokio::time::timeout(READ_LIMIT, acceptor.accept(stream))
        .await
        .context("TLS handshake timed out")??;
    let mut secure = BufReader::new(tls);
    match commands(
        &mut secure,
        b"250-bench.mailflow.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
    )
    .await?
    {
        Next::Quit => {
            let _ = secure.get_mut().shutdown().await;
            Ok(true)
        }
        Next::StartTls => Ok(false),
    }
}

/// Answers commands until QUIT or (when advertised) STARTTLS.
async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    ehlo_reply: &[u8],
) -> Result<Next> {
    let starttls_offered = ehlo_reply.windows(8).any(|w| w == b"STARTTLS");
    for _ in 0..32 {
        let mut line = Vec::with_capacity(64);
        let n = tokio::time::timeout(
            READ_LIMIT,
            (&mut *stream).take(1024).read_until(b'\n', &mut line),
        )
        .await
        .context("client idle")??;
        if n == 0 {
            anyhow::bail!("client closed");
        }
        let verb: Vec<u8> = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_uppercase)
            .collect();
        let w = stream.get_mut();
        match verb.as_slice() {
            b"EHLO" => w.write_all(ehlo_reply).await?,
            b"HELO" => w.write_all(b"250 bench.mailflow.test\r\n").await?,
            b"STARTTLS" if starttls_offered => {
                w.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(Next::StartTls);
            }
            b"QUIT" => {
                w.write_all(b"221 2.0.0 Bye\r\n").await?;
                w.flush().await?;
                return Ok(Next::Quit);
            }
            b"NOOP" | b"RSET" => w.write_all(b"250 2.0.0 Ok\r\n").await?,
            _ => {
                w.write_all(b"502 5.5.2 Error: command not recognized\r\n")
                    .await?
            }
        }
        w.flush().await?;
    }
    anyhow::bail!("too many commands")
}
