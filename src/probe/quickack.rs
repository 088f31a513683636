//! A TCP stream that acknowledges what it receives at once (TCP_QUICKACK, re-armed after every
//! read).
//!
//! Why: after a TLS 1.3 handshake, OpenSSL servers (a stock Postfix) send NewSessionTicket
//! records. If the client's kernel delays its ACK for them, the server's next small write (the
//! reply to EHLO) waits behind Nagle's algorithm for that ACK: about 40 ms on most probes, which
//! would be the slowest phase of a healthy probe and a lie about the server. Linux leaves quick-ack
//! mode by itself, so setting it once is not enough; setting it after every read keeps every
//! ACK immediate. Elsewhere the wrapper changes nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] whose ACKs are never delayed.
#[derive(Debug)]
pub struct QuickAck(TcpStream);

impl QuickAck {
    /// Wraps `stream`, arming quick ACKs right away.
    pub fn new(stream: TcpStream) -> Self {
        let stream = QuickAck(stream);
        stream.arm();
        stream
    }

    #[cfg(target_os = "linux")]
    fn arm(&self) {
        // A failure only costs the optimisation, never the probe.
        let _ = self.0.set_quickack(true);
    }

    #[cfg(not(target_os = "linux"))]
    fn arm(&self) {}
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.arm();
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
