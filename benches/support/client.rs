//! The harness's own STARTTLS probe client (rustls), used only to diagnose the TLS 1.3
//! session-ticket stall: it counts the NewSessionTicket messages a target sends and times a bare
//! probe (greeting, EHLO, STARTTLS, TLS, EHLO, QUIT) with the exporter's TLS choice (resumption
//! disabled), as it is and with `TCP_QUICKACK` (once after the handshake, or re-armed after every
//! read from the socket), to show what it takes to avoid the stall.

use mailflow_exporter::probe::tls::AcceptAnyCertificate;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, NamedGroup};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How the client behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Like the exporter: resumption disabled (rustls still offers `psk_dhe_ke`).
    NoResumption,
    /// The same, plus `TCP_QUICKACK` once, right after the handshake.
    QuickAckOnce,
    /// The same, with `TCP_QUICKACK` re-armed after every read from the socket (Linux leaves
    /// quick-ACK mode by itself, and an ACK owed for unread data is not sent early).
    QuickAckEveryRead,
}

/// Builds client configurations.
pub(crate) struct Clients {
    provider: Arc<CryptoProvider>,
    no_resumption: Arc<ClientConfig>,
}

impl Clients {
    pub(crate) fn new() -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = base_config(&provider)?;
        config.resumption = Resumption::disabled();
        Ok(Clients {
            no_resumption: Arc::new(config),
            provider,
        })
    }

    /// One probe of `127.0.0.1:port` in `mode`: its wall time.
    pub(crate) async fn probe(&self, port: u16, mode: Mode) -> Result<Duration> {
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(10),
            exchange(port, self.no_resumption.clone(), mode),
        )
        .await
        .context("probe timed out")??;
        Ok(started.elapsed())
    }

    /// How many TLS 1.3 NewSessionTicket messages the target on `port` sends in one session
    /// (seen by a client that keeps tickets).
    pub(crate) async fn count_tickets(&self, port: u16) -> Result<usize> {
        let store = Arc::new(CountingStore::default());
        let mut config = base_config(&self.provider)?;
        config.resumption = Resumption::store(store.clone());
        tokio::time::timeout(
            Duration::from_secs(10),
            exchange(port, Arc::new(config), Mode::NoResumption),
        )
        .await
        .context("probe timed out")??;
        Ok(store.tickets.load(Ordering::Relaxed))
    }
}

fn base_config(provider: &Arc<CryptoProvider>) -> Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider.clone())))
        .with_no_client_auth())
}

async fn exchange(port: u16, config: Arc<ClientConfig>, mode: Mode) -> Result<()> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let tcp = QuickAck {
        inner: tcp,
        every_read: matches!(mode, Mode::QuickAckEveryRead),
    };
    let mut plain = BufReader::new(tcp);
    expect(&mut plain, 220).await?;
    send(&mut plain, "EHLO prober").await?;
    expect(&mut plain, 250).await?;
    send(&mut plain, "STARTTLS").await?;
    expect(&mut plain, 220).await?;
    let tcp = plain.into_inner();
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    if matches!(mode, Mode::QuickAckOnce) {
        socket2::SockRef::from(&tls.get_ref().0.inner).set_tcp_quickack(true)?;
    }
    let mut secure = BufReader::new(tls);
    send(&mut secure, "EHLO prober").await?;
    expect(&mut secure, 250).await?;
    send(&mut secure, "QUIT").await?;
    expect(&mut secure, 221).await?;
    Ok(())
}

async fn send<S: AsyncWrite + AsyncRead + Unpin>(s: &mut BufReader<S>, line: &str) -> Result<()> {
    let w = s.get_mut();
    w.write_all(format!("{line}\r\n").as_bytes()).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<S: AsyncRead + Unpin>(s: &mut BufReader<S>, code: u16) -> Result<()> {
    for _ in 0..64 {
        let mut line = String::new();
        let n = (&mut *s).take(2048).read_line(&mut line).await?;
        if n == 0 {
            bail!("closed while waiting for {code}");
        }
        let got: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if got != code {
            bail!("expected {code}, got {:?}", line.trim_end());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
    bail!("reply too long")
}

/// A TCP stream that may re-arm `TCP_QUICKACK` after every read.
struct QuickAck {
    inner: TcpStream,
    every_read: bool,
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.every_read && matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let _ = socket2::SockRef::from(&self.inner).set_tcp_quickack(true);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A session store that keeps nothing and counts the TLS 1.3 tickets it is offered.
#[derive(Debug, Default)]
struct CountingStore {
    tickets: AtomicUsize,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {
        self.tickets.fetch_add(1, Ordering::Relaxed);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}
