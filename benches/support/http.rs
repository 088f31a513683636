//! A minimal HTTP/1.1 client over tokio TCP, the same for both exporters: one keep-alive
//! connection per scraper, `Content-Length` or chunked bodies, a hard deadline on every request
//! and a bounded body size.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The largest body read (a `/probe` of 10,000 connectors is tens of MiB).
const MAX_BODY: usize = 512 << 20;
/// What Prometheus asks for (OpenMetrics first); sent to both exporters.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// The largest header block read.
const MAX_HEAD: usize = 64 << 10;

/// One keep-alive HTTP connection to an exporter (reconnects when the server closes it).
pub(crate) struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A response: its status and body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub(crate) fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Client {
    /// A client for the server at `addr` (only loopback addresses are ever used).
    pub(crate) fn new(addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to talk to {addr}: the harness only uses loopback");
        }
        Ok(Client {
            addr,
            stream: None,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// `GET path`, telling the server a Prometheus scrape timeout of `scrape_timeout`; the whole
    /// exchange (connect included) must finish within `limit`.
    pub(crate) async fn get(
        &mut self,
        path: &str,
        scrape_timeout: Duration,
        limit: Duration,
    ) -> Result<Response> {
        match timeout(limit, self.exchange(path, scrape_timeout)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                self.stream = None;
                Err(error)
            }
            Err(_) => {
                self.stream = None;
                bail!("GET {path}: no complete answer within {limit:?}")
            }
        }
    }

    async fn exchange(&mut self, path: &str, scrape_timeout: Duration) -> Result<Response> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mailflow-bench\r\nAccept: {ACCEPT}\r\n\
             X-Prometheus-Scrape-Timeout-Seconds: {}\r\n\r\n",
            self.addr,
            scrape_timeout.as_secs_f64()
        );
        // A kept connection may have been closed by the server meanwhile: retry once, fresh.
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if self.stream.is_none() {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connect to {}", self.addr))?;
                stream.set_nodelay(true)?;
                self.stream = Some(stream);
                self.buf.clear();
            }
            match self.round_trip(request.as_bytes()).await {
                Ok(response) => return Ok(response),
                Err(error) if reused && attempt == 0 && self.buf.is_empty() => {
                    let _ = error;
                    self.stream = None;
                }
                Err(error) => {
                    self.stream = None;
                    return Err(error);
                }
            }
        }
        bail!("GET {path}: the connection kept closing")
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<Response> {
        let Some(stream) = self.stream.as_mut() else {
            bail!("not connected");
        };
        stream.write_all(request).await?;
        self.buf.clear();
        // The header block.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                bail!("header block too long");
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("header block not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let body = if chunked {
            loop {
                // A chunked body ends with the zero-size chunk; decode once it may be complete.
                if self.buf[head_end..].ends_with(b"0\r\n\r\n")
                    && let Some(body) = dechunk(&self.buf[head_end..])?
                {
                    break body;
                }
                if self.buf.len() - head_end > MAX_BODY {
                    bail!("body too long");
                }
                read_more(stream, &mut self.buf).await?;
            }
        } else if let Some(length) = length {
            if length > MAX_BODY {
                bail!("body too long: {length}");
            }
            while self.buf.len() < head_end + length {
                read_more(stream, &mut self.buf).await?;
            }
            self.buf[head_end..head_end + length].to_vec()
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            loop {
                let before = self.buf.len();
                stream.read_buf(&mut self.buf).await?;
                if self.buf.len() == before {
                    break;
                }
                if self.buf.len() - head_end > MAX_BODY {
                    bail!("body too long");
                }
            }
            self.buf[head_end..].to_vec()
        };
        self.buf.clear();
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    buf.reserve(64 << 10);
    let n = stream.read_buf(buf).await?;
    if n == 0 {
        bail!("connection closed mid-response");
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body; `None` while it is incomplete.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::with_capacity(data.len());
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers (none expected), then the final CRLF.
            return Ok(find(data, b"\r\n").map(|_| body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
