//! An accepted connection: served within the connection cap or turned away with a 503, then,
//! once its client sends a first byte, the TLS handshake when configured and HTTP/1.1 or HTTP/2.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Gate;
use super::request::respond_to;
use crate::exporter::Exporter;

/// How long a client may take for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, also the next request's on a kept
/// alive connection: an idle connection is closed after this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections being turned away at once (each holds a descriptor for at most
/// [`REJECTION_TIME`]); past it, further ones are closed without an answer.
pub(super) const REJECTING_MAX: usize = 64;
/// How long turning a connection away may take: writing the 503, then reading what the client
/// sent meanwhile so that closing does not reset the connection under the answer.
const REJECTION_TIME: Duration = Duration::from_secs(1);
/// How much of the client's request is read (and dropped) while turning it away.
const REJECTION_DRAIN_BYTES: usize = 16 * 1024;

/// Serves an accepted connection within the cap, or turns it away.
pub(super) fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: &Arc<Exporter>,
    gate: &Arc<Gate>,
    graceful: &GracefulShutdown,
) {
    if let Ok(permit) = gate.connections.clone().try_acquire_owned() {
        let served = connection(
            stream,
            peer,
            exporter.clone(),
            gate.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            served.await;
            drop(permit);
        });
        return;
    }
    exporter.metrics().http_connection_rejected();
    tracing::debug!(peer = %peer, "connection cap reached: turning a connection away");
    // Over TLS a plain answer would be garbage, and a handshake is what a flood should not get.
    if exporter.web().tls_acceptor().is_some() {
        return;
    }
    let Ok(permit) = gate.rejecting.clone().try_acquire_owned() else {
        return;
    };
    let cap = gate.limits.max_connections;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REJECTION_TIME, turn_away(stream, cap)).await;
        drop(permit);
    });
}

/// Answers 503 on a connection past the cap, without reading its request first.
async fn turn_away(mut stream: TcpStream, cap: usize) -> std::io::Result<()> {
    let body =
        format!("too many open connections (--web.max-connections {cap}): try again later\n");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Read what the client sent, so that closing does not reset the connection before the
    // client has read the answer.
    let mut buffer = [0u8; 1024];
    let mut drained = 0;
    while drained < REJECTION_DRAIN_BYTES {
        match stream.read(&mut buffer).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// One accepted connection, counted while open: once its client has sent a first byte (within
/// the header timeout), the TLS handshake when configured, then HTTP/1.1, or HTTP/2 when the
/// client chose it during the handshake.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) {
    // The guard borrows its own handle on the exporter, so that `exporter` can move on below.
    let counted = exporter.clone();
    let _open = counted.metrics().http_connection_opened();
    // Nothing is allocated for a connection (buffers, TLS state) before its client sends
    // something: a flood of idle connections costs a socket and a small task each, and leaves
    // no scattered buffers behind in the allocator once it is over.
    // (`readable()` may wake at once on a new socket; a peek waits for a byte.)
    match tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut [0u8; 1])).await {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::debug!(peer = %peer, error = %error, "connection failed before a request");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "connection idle past the header timeout: closed");
            return;
        }
    }
    // Boxed: the idle task above stays small; the state of TLS and HTTP is allocated now.
    Box::pin(handshake_and_serve(stream, peer, exporter, gate, watcher)).await;
}

/// The TLS handshake when configured, then HTTP/1.1 or HTTP/2 as negotiated.
async fn handshake_and_serve(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) {
    let Some(acceptor) = exporter.web().tls_acceptor() else {
        return serve_http(stream, peer, false, &exporter, gate, watcher).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(stream, peer, http2, &exporter, gate, watcher).await;
        }
        Ok(Err(error)) => {
            tracing::debug!(peer = %peer, error = %error, "TLS handshake with a client failed");
        }
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake with a client timed out"),
    }
}

async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    http2: bool,
    exporter: &Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let exporter = exporter.clone();
        hyper::service::service_fn(move |request| {
            let (exporter, gate) = (exporter.clone(), gate.clone());
            async move { Ok::<_, Infallible>(respond_to(&exporter, &gate, peer, request).await) }
        })
    };
    let io = TokioIo::new(stream);
    let served = if http2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        watcher.watch(connection).await
    } else {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(io, service);
        watcher.watch(connection).await
    };
    if let Err(error) = served {
        tracing::debug!(peer = %peer, error = %error, "HTTP connection ended with an error");
    }
}
