//! Scripted SMTP servers on 127.0.0.1, one std thread per connection, for the faults a real
//! server cannot be made to show (421 greeting, reset mid-reply, silent hang, garbage, …).
//!
//! A `Server` runs a handler for every connection and records every line the client sends (raw,
//! with its line ending), so tests can assert the exact bytes of the probe's commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a handler waits for a client line before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

type Handler = dyn Fn(&mut Conn) + Send + Sync + 'static;

struct Shared {
    raw: Mutex<Vec<String>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// A scripted server; stops accepting when dropped.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Listen on 127.0.0.1:0 and run `handler` for each connection.
    pub fn start(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Server::with_listener(listener, handler)
    }

    /// Listen on `ip:port` (e.g. another loopback address) and run `handler`.
    pub fn start_on(
        ip: &str,
        port: u16,
        handler: impl Fn(&mut Conn) + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind((ip, port))?;
        Ok(Server::with_listener(listener, handler))
    }

    /// Listen on `ip`, a free port, and greet every connection with `421` (service not
    /// available), and nothing more.
    pub fn greeting_421_on(ip: &str) -> Server {
        Server::start_on(ip, 0, |c| c.line("421 4.3.2 Service not available"))
            .unwrap_or_else(|e| panic!("bind {ip}: {e}"))
    }

    /// Serve a standard dialogue.
    pub fn dialogue(d: Dialogue) -> Server {
        Server::start(move |c| {
            c.serve(&d);
        })
    }

    fn with_listener(
        listener: TcpListener,
        handler: impl Fn(&mut Conn) + Send + Sync + 'static,
    ) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            raw: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&accept_shared);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    if let Some(mut conn) = Conn::new(stream, shared) {
                        handler(&mut conn);
                    }
                });
            }
        });
        Server { addr, shared }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every line received so far, raw (with its line ending).
    pub fn raw(&self) -> Vec<String> {
        self.shared
            .raw
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Every line received so far, without line ending.
    pub fn commands(&self) -> Vec<String> {
        self.raw()
            .iter()
            .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
            .collect()
    }

    /// Wait (at most `max`) until a command with this verb has been received; true if it was.
    /// The exporter may answer its scrape before this server's thread has read the last line.
    pub fn wait_for_verb(&self, verb: &str, max: Duration) -> bool {
        super::eventually(max, || self.verbs().iter().any(|v| v == verb))
    }

    /// The received commands' verbs (first word, upper-cased).
    pub fn verbs(&self) -> Vec<String> {
        self.commands()
            .iter()
            .map(|c| {
                c.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// One accepted connection, seen from the server.
pub struct Conn {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    shared: Arc<Shared>,
}

/// How a standard dialogue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent QUIT.
    Quit,
    /// The client closed, or a read failed or timed out.
    Eof,
    /// The server answered STARTTLS with 220: the caller continues (TLS faults).
    StartTls,
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Option<Conn> {
        stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
        let _ = stream.set_nodelay(true);
        let reader = BufReader::new(stream.try_clone().ok()?);
        Some(Conn {
            reader,
            stream,
            shared,
        })
    }

    /// Write raw bytes; errors are ignored (the client may be gone).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Write one reply line with CRLF.
    pub fn line(&mut self, text: &str) {
        self.send(format!("{text}\r\n").as_bytes());
    }

    /// Read one line from the client (at most 4096 bytes) and record it; None on EOF or error.
    pub fn read_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(4096)
            .read_until(b'\n', &mut buf)
            .ok()?;
        if n == 0 {
            return None;
        }
        let raw = String::from_utf8_lossy(&buf).into_owned();
        if let Ok(mut log) = self.shared.raw.lock() {
            log.push(raw.clone());
        }
        Some(raw.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Make the close an RST (SO_LINGER 0): the connection is reset as soon as the handler
    /// returns (the handler should return right after).
    pub fn reset_now(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Close gracefully (FIN) now.
    pub fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Say nothing; read and record what the client sends until it closes or `max` passes.
    pub fn hang(&mut self, max: Duration) {
        let start = Instant::now();
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        while start.elapsed() < max {
            let mut buf = [0u8; 512];
            match self.reader.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }

    /// Answers DATA like a mail server: 354, the message up to its lone dot (read and dropped,
    /// at most 10000 lines), then 250.
    fn take_message(&mut self) {
        self.line("354 End data with <CR><LF>.<CR><LF>");
        let mut reader = (&mut self.reader).take(4096);
        for _ in 0..10_000 {
            let mut line = Vec::new();
            reader.set_limit(4096);
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim_ascii_end() == b"." => {
                    self.line("250 2.0.0 Ok: queued");
                    return;
                }
                Ok(_) => {}
            }
        }
    }

    /// Run a standard dialogue (greeting, then commands until QUIT, EOF or a STARTTLS 220).
    pub fn serve(&mut self, d: &Dialogue) -> End {
        self.line(&d.greeting);
        self.commands(d)
    }

    /// Answer commands per `d` (no greeting).
    pub fn commands(&mut self, d: &Dialogue) -> End {
        for _ in 0..100 {
            let Some(cmd) = self.read_line() else {
                return End::Eof;
            };
            let verb = cmd
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => {
                    let lines = d.ehlo_lines();
                    let reply = lines.iter().map(|l| format!("{l}\r\n")).collect::<String>();
                    self.send(reply.as_bytes());
                }
                "HELO" => self.line(&d.helo),
                "STARTTLS" => match &d.starttls {
                    Some(reply) => {
                        self.line(reply);
                        if reply.starts_with("220") {
                            return End::StartTls;
                        }
                    }
                    None => self.line("502 5.5.1 STARTTLS not available"),
                },
                "MAIL" => self.line(&d.mail),
                "RCPT" => self.line(&d.rcpt),
                "RSET" => self.line("250 2.0.0 Ok"),
                "NOOP" => self.line("250 2.0.0 Ok"),
                "DATA" if d.accepts_data => self.take_message(),
                "DATA" => self.line("554 5.5.1 this fixture never takes DATA"),
                "QUIT" => {
                    self.line("221 2.0.0 Bye");
                    return End::Quit;
                }
                _ => self.line("502 5.5.2 Error: command not recognized"),
            }
        }
        End::Eof
    }
}

/// The replies of a well-behaved server; change the fields to script a fault.
#[derive(Debug, Clone)]
pub struct Dialogue {
    /// The greeting line.
    pub greeting: String,
    /// EHLO reply: either a multi-line 250 (the lines without the 250-/250 prefixes) or a
    /// rejection line (see `ehlo_reject`).
    pub ehlo_keywords: Vec<String>,
    /// If set, EHLO is answered with this single line instead.
    pub ehlo_reject: Option<String>,
    /// The HELO reply.
    pub helo: String,
    /// None: STARTTLS not advertised; Some(reply): advertised, answered with reply.
    pub starttls: Option<String>,
    /// MAIL FROM reply.
    pub mail: String,
    /// RCPT TO reply.
    pub rcpt: String,
    /// Whether DATA is taken (354, the message, 250) as a mail server would; otherwise it is
    /// refused (a probe never sends it).
    pub accepts_data: bool,
}

impl Default for Dialogue {
    fn default() -> Self {
        Dialogue {
            greeting: "220 fixture.mf.test ESMTP mailflow fixture".into(),
            ehlo_keywords: vec![
                "fixture.mf.test".into(),
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "8BITMIME".into(),
            ],
            ehlo_reject: None,
            helo: "250 fixture.mf.test".into(),
            starttls: None,
            mail: "250 2.1.0 Ok".into(),
            rcpt: "250 2.1.5 Ok".into(),
            accepts_data: false,
        }
    }
}

impl Dialogue {
    /// The EHLO reply lines, with STARTTLS advertised (last) when configured.
    pub fn ehlo_lines(&self) -> Vec<String> {
        if let Some(reject) = &self.ehlo_reject {
            return vec![reject.clone()];
        }
        let mut keywords = self.ehlo_keywords.clone();
        if self.starttls.is_some() {
            keywords.push("STARTTLS".into());
        }
        let n = keywords.len();
        keywords
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if i + 1 == n {
                    format!("250 {k}")
                } else {
                    format!("250-{k}")
                }
            })
            .collect()
    }
}
