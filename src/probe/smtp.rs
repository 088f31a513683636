//! The SMTP side of a probe: a strict, bounded reply reader and the commands a sending server
//! issues, generic over the stream (plain TCP or TLS).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use crate::outcome::{Breakdown, SmtpFault};

/// The longest reply line accepted, CRLF included (RFC 5321 asks for 512; servers exceed it).
pub const MAX_LINE_BYTES: usize = 2048;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 128;
/// The most bytes one reply may have.
pub const MAX_REPLY_BYTES: usize = 32 * 1024;
/// The longest reply text kept for people (the last line of the last reply).
const MAX_KEPT_TEXT: usize = 256;

/// Why an SMTP exchange broke down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpError {
    /// No reply (or no room to write) before the deadline.
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// The peer broke the protocol: garbage, an over-long line, too many lines, mixed codes.
    Protocol,
}

impl SmtpError {
    fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => SmtpError::Closed,
            io::ErrorKind::TimedOut => SmtpError::Timeout,
            io::ErrorKind::InvalidData => SmtpError::Protocol,
            _ => SmtpError::Reset,
        }
    }
}

impl From<SmtpError> for SmtpFault {
    fn from(error: SmtpError) -> Self {
        match error {
            SmtpError::Timeout => SmtpFault::Broken(Breakdown::Timeout),
            SmtpError::Closed => SmtpFault::Broken(Breakdown::Closed),
            SmtpError::Reset => SmtpFault::Broken(Breakdown::Reset),
            SmtpError::Protocol => SmtpFault::Protocol,
        }
    }
}

/// One SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// Whether the code is 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether an EHLO reply advertises `keyword` (case-insensitive), on any line, the last too.
    pub fn advertises(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }
}

/// An SMTP client session over `stream`, reading replies through a small fixed buffer.
pub struct Session<S> {
    stream: S,
    buffer: Box<[u8; MAX_LINE_BYTES]>,
    start: usize,
    end: usize,
    /// The last reply line seen, for people (`probe` output), bounded.
    last_reply: Option<String>,
}

impl<S> Session<S> {
    /// The last reply line the server sent, if any (code and text, bounded).
    pub fn last_reply(&self) -> Option<&str> {
        self.last_reply.as_deref()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session over a freshly opened stream.
    pub fn new(stream: S) -> Self {
        Session {
            stream,
            buffer: Box::new([0; MAX_LINE_BYTES]),
            start: 0,
            end: 0,
            last_reply: None,
        }
    }

    /// Reads one reply, by `deadline`.
    pub async fn read_reply(&mut self, deadline: Instant) -> Result<Reply, SmtpError> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line_len = self.fill_line(deadline).await?;
            total += line_len;
            if total > MAX_REPLY_BYTES || lines.len() >= MAX_REPLY_LINES {
                return Err(SmtpError::Protocol);
            }
            let raw = &self.buffer[self.start..self.start + line_len];
            self.start += line_len;
            let (line_code, last, text) = parse_line(raw)?;
            if *code.get_or_insert(line_code) != line_code {
                return Err(SmtpError::Protocol);
            }
            self.last_reply = Some(bounded_text(line_code, &text));
            lines.push(text);
            if last {
                return Ok(Reply {
                    code: line_code,
                    lines,
                });
            }
        }
    }

    /// Sends `command` (without CRLF) and reads the reply, by `deadline`.
    pub async fn command(&mut self, command: &str, deadline: Instant) -> Result<Reply, SmtpError> {
        self.send(command, deadline).await?;
        self.read_reply(deadline).await
    }

    /// Sends `command` followed by CRLF, by `deadline`.
    pub async fn send(&mut self, command: &str, deadline: Instant) -> Result<(), SmtpError> {
        let mut line = Vec::with_capacity(command.len() + 2);
        line.extend_from_slice(command.as_bytes());
        line.extend_from_slice(b"\r\n");
        let write = async {
            self.stream.write_all(&line).await?;
            self.stream.flush().await
        };
        match timeout_at(deadline, write).await {
            Err(_) => Err(SmtpError::Timeout),
            Ok(Err(error)) => Err(SmtpError::from_io(&error)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Gives the stream back for a TLS upgrade. Bytes the server sent ahead of the handshake
    /// (after its reply to STARTTLS) are a protocol violation: they could be injected.
    pub fn into_stream(self) -> Result<S, SmtpError> {
        if self.start == self.end {
            Ok(self.stream)
        } else {
            Err(SmtpError::Protocol)
        }
    }

    /// Makes sure a whole line (up to LF) is buffered at `start`; returns its length.
    async fn fill_line(&mut self, deadline: Instant) -> Result<usize, SmtpError> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buffer[self.start + scanned..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                return Ok(scanned + pos + 1);
            }
            scanned = self.end - self.start;
            if scanned >= MAX_LINE_BYTES {
                return Err(SmtpError::Protocol);
            }
            if self.end == MAX_LINE_BYTES {
                // Move the partial line to the front to make room.
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let read = timeout_at(deadline, self.stream.read(&mut self.buffer[self.end..])).await;
            match read {
                Err(_) => return Err(SmtpError::Timeout),
                Ok(Err(error)) => return Err(SmtpError::from_io(&error)),
                Ok(Ok(0)) => return Err(SmtpError::Closed),
                Ok(Ok(n)) => self.end += n,
            }
        }
    }
}

/// Parses one reply line (with its line ending): its code, whether it is the last line, its text.
fn parse_line(raw: &[u8]) -> Result<(u16, bool, String), SmtpError> {
    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 3 || line.contains(&0) {
        return Err(SmtpError::Protocol);
    }
    let digits = &line[..3];
    if !(b'2'..=b'5').contains(&digits[0])
        || !digits[1].is_ascii_digit()
        || !digits[2].is_ascii_digit()
    {
        return Err(SmtpError::Protocol);
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(SmtpError::Protocol),
    };
    if text.iter().any(|&b| b < 0x20 && b != b'\t') {
        return Err(SmtpError::Protocol);
    }
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// `code text`, cut to a length fit for a person to read.
fn bounded_text(code: u16, text: &str) -> String {
    let mut kept = format!("{code} {text}");
    if kept.len() > MAX_KEPT_TEXT {
        let mut cut = MAX_KEPT_TEXT;
        while !kept.is_char_boundary(cut) {
            cut -= 1;
        }
        kept.truncate(cut);
        kept.push('…');
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    async fn replies(input: &[u8]) -> Vec<Result<Reply, SmtpError>> {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        server.write_all(input).await.expect("write");
        drop(server);
        let mut session = Session::new(client);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut out = Vec::new();
        for _ in 0..4 {
            let reply = session.read_reply(deadline).await;
            let stop = reply.is_err();
            out.push(reply);
            if stop {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn reads_single_and_multiline_replies() {
        let got =
            replies(b"220 mx.test ESMTP\r\n250-mx.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n").await;
        assert_eq!(
            got[0],
            Ok(Reply {
                code: 220,
                lines: vec!["mx.test ESMTP".into()]
            })
        );
        let ehlo = got[1].clone().expect("ehlo");
        assert_eq!(ehlo.code, 250);
        assert!(ehlo.advertises("starttls"));
        assert!(!ehlo.advertises("mx.test"));
        assert_eq!(got[2], Err(SmtpError::Closed));
    }

    #[tokio::test]
    async fn accepts_bare_codes_and_lf_endings() {
        let got = replies(b"250\n221 bye\n").await;
        assert_eq!(got[0].as_ref().map(|r| r.code), Ok(250));
        assert_eq!(got[1].as_ref().map(|r| r.code), Ok(221));
    }

    #[tokio::test]
    async fn rejects_protocol_violations() {
        for bad in [
            &b"hello there\r\n"[..],
            b"220-a\r\n250 b\r\n",
            b"22\r\n",
            b"220xhello\r\n",
            b"220 nul\0here\r\n",
            b"620 six hundred\r\n",
        ] {
            assert_eq!(replies(bad).await[0], Err(SmtpError::Protocol), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn bounds_line_length_and_line_count() {
        let long = [b"220 ".as_slice(), &[b'x'; MAX_LINE_BYTES], b"\r\n"].concat();
        assert_eq!(replies(&long).await[0], Err(SmtpError::Protocol));
        let many = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(replies(&many).await[0], Err(SmtpError::Protocol));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (client, _server) = tokio::io::duplex(64);
        let mut session = Session::new(client);
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(session.read_reply(deadline).await, Err(SmtpError::Timeout));
    }

    #[tokio::test]
    async fn keeps_the_last_line_bounded() {
        let long_text = [b"554 ".as_slice(), &[b'y'; 1000], b"\r\n"].concat();
        let (client, mut server) = tokio::io::duplex(4096);
        server.write_all(&long_text).await.expect("write");
        let mut session = Session::new(client);
        let reply = session
            .read_reply(Instant::now() + Duration::from_secs(1))
            .await
            .expect("reply");
        assert_eq!(reply.code, 554);
        assert!(
            session
                .last_reply()
                .is_some_and(|t| t.len() <= MAX_KEPT_TEXT + 3)
        );
    }

    #[tokio::test]
    async fn bytes_after_the_starttls_reply_are_refused() {
        let (client, mut server) = tokio::io::duplex(4096);
        server
            .write_all(b"220 go ahead\r\nJUNK")
            .await
            .expect("write");
        let mut session = Session::new(client);
        session
            .read_reply(Instant::now() + Duration::from_secs(1))
            .await
            .expect("reply");
        // Give the junk time to land in the buffer: it arrived with the reply.
        assert!(matches!(session.into_stream(), Err(SmtpError::Protocol)));
    }
}
