//! The server's first TLS record, watched on its way in: when a handshake fails, the version the
//! server's ServerHello offered says whether the two sides simply share no TLS version (a server
//! that speaks only TLS 1.0 or 1.1), whatever error the TLS library returned for it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::outcome::OldTlsVersion;

/// The bytes of the first record that tell its kind and the ServerHello's version: the record
/// header (5), the handshake header (4), then `server_version` (2).
const HEAD: usize = 11;
/// The record type of a handshake record.
const HANDSHAKE: u8 = 0x16;
/// The handshake type of a ServerHello.
const SERVER_HELLO: u8 = 0x02;

/// A stream that keeps the first bytes the server sends and passes everything through.
#[derive(Debug)]
pub(super) struct Watched<S> {
    /// The stream underneath.
    inner: S,
    /// The first bytes read, up to [`HEAD`].
    head: [u8; HEAD],
    /// How many of `head` are filled.
    seen: usize,
}

impl<S> Watched<S> {
    /// Watches what the server sends over `inner`.
    pub(super) fn new(inner: S) -> Self {
        Watched {
            inner,
            head: [0; HEAD],
            seen: 0,
        }
    }

    /// The version the server's ServerHello offered, when it is one the probe does not speak
    /// (older than TLS 1.2); `None` when the server sent no ServerHello (an alert, nothing, or
    /// garbage) or offered TLS 1.2 or later.
    pub(super) fn old_version_offered(&self) -> Option<OldTlsVersion> {
        if self.seen < HEAD || self.head[0] != HANDSHAKE || self.head[5] != SERVER_HELLO {
            return None;
        }
        match [self.head[9], self.head[10]] {
            [3, 0] => Some(OldTlsVersion::Ssl3),
            [3, 1] => Some(OldTlsVersion::Tls10),
            [3, 2] => Some(OldTlsVersion::Tls11),
            _ => None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.seen < HEAD {
            let fresh = &buf.filled()[before..];
            let take = fresh.len().min(HEAD - this.seen);
            this.head[this.seen..this.seen + take].copy_from_slice(&fresh[..take]);
            this.seen += take;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What `old_version_offered` says after the server sent `bytes`, read in small pieces.
    async fn offered(bytes: &[u8]) -> Option<OldTlsVersion> {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(bytes).await.expect("write");
        drop(server);
        let mut watched = Watched::new(client);
        let mut piece = [0u8; 3];
        while watched.read(&mut piece).await.expect("read") > 0 {}
        watched.old_version_offered()
    }

    /// A ServerHello record header offering `version`, and a few bytes of its body.
    fn server_hello(version: [u8; 2]) -> Vec<u8> {
        let mut record = vec![HANDSHAKE, 3, 1, 0, 60, SERVER_HELLO, 0, 0, 56];
        record.extend_from_slice(&version);
        record.extend_from_slice(&[0xaa; 8]);
        record
    }

    #[tokio::test]
    async fn reads_the_version_of_an_old_server_hello() {
        assert_eq!(
            offered(&server_hello([3, 1])).await,
            Some(OldTlsVersion::Tls10)
        );
        assert_eq!(
            offered(&server_hello([3, 2])).await,
            Some(OldTlsVersion::Tls11)
        );
        assert_eq!(
            offered(&server_hello([3, 0])).await,
            Some(OldTlsVersion::Ssl3)
        );
        // TLS 1.2 (and 1.3, which also says 3,3 here) is no version problem.
        assert_eq!(offered(&server_hello([3, 3])).await, None);
    }

    #[tokio::test]
    async fn alerts_garbage_and_short_reads_offer_nothing() {
        // A protocol_version alert.
        assert_eq!(offered(&[0x15, 3, 1, 0, 2, 2, 70]).await, None);
        assert_eq!(offered(b"220 this is not TLS\r\n").await, None);
        assert_eq!(offered(&server_hello([3, 1])[..10]).await, None);
    }

    #[tokio::test]
    async fn passes_everything_through() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut watched = Watched::new(client);
        watched.write_all(b"hello").await.expect("write");
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        server.write_all(b"0123456789abcdef").await.expect("write");
        drop(server);
        let mut all = Vec::new();
        watched.read_to_end(&mut all).await.expect("read");
        assert_eq!(all, b"0123456789abcdef");
    }
}
