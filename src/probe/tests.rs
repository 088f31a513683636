//! The engine against scripted SMTP servers on 127.0.0.1, in process: the plain-text retry after
//! a failed opportunistic TLS handshake, and TLS version mismatches.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::limits::{ConnectionCaps, Limiter};
use super::tls::TlsContext;
use super::{Engine, Report};
use crate::config::parse;
use crate::outcome::{Failure, OldTlsVersion, SmtpFault, SmtpStep, TlsFailure};

/// What a scripted server does on one connection.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Greets with 220, advertises STARTTLS, answers it with 220, then sends these bytes instead
    /// of a ServerHello and hangs up.
    BrokenTls(&'static [u8]),
    /// Greets with 220 and takes any envelope, without STARTTLS.
    Plain,
    /// Greets with this line and hangs up.
    Greeting(&'static str),
}

/// A scripted server: connection `n` follows `scripts[n]` (the last one for any later), and
/// every command it received is kept, per connection.
struct ScriptedServer {
    address: SocketAddr,
    commands: Arc<Mutex<Vec<Vec<String>>>>,
}

impl ScriptedServer {
    async fn start(scripts: &'static [Script]) -> ScriptedServer {
        Self::start_on("127.0.0.1", 0, scripts).await
    }

    /// The same on `ip` and `port` (0: any free one).
    async fn start_on(ip: &str, port: u16, scripts: &'static [Script]) -> ScriptedServer {
        let listener = TcpListener::bind((ip, port)).await.expect("bind");
        let address = listener.local_addr().expect("address");
        let commands = Arc::new(Mutex::new(Vec::new()));
        let seen = commands.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = scripts[n.min(scripts.len() - 1)];
                let index = {
                    let mut all = seen.lock().expect("lock");
                    all.push(Vec::new());
                    all.len() - 1
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let record = |line: &str| seen.lock().expect("lock")[index].push(line.into());
                    serve(stream, script, record).await;
                });
            }
        });
        ScriptedServer { address, commands }
    }

    /// The commands of each connection so far.
    fn commands(&self) -> Vec<Vec<String>> {
        self.commands.lock().expect("lock").clone()
    }
}

async fn serve(stream: tokio::net::TcpStream, script: Script, record: impl Fn(&str)) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = match script {
        Script::Greeting(line) => {
            let _ = write.write_all(format!("{line}\r\n").as_bytes()).await;
            return;
        }
        Script::BrokenTls(_) | Script::Plain => "220 scripted ESMTP\r\n",
    };
    let _ = write.write_all(greeting.as_bytes()).await;
    while let Ok(Some(line)) = lines.next_line().await {
        record(&line);
        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
        let reply: &[u8] = match (verb.as_str(), script) {
            ("EHLO", Script::BrokenTls(_)) => b"250-scripted\r\n250 STARTTLS\r\n",
            ("EHLO", _) => b"250-scripted\r\n250 PIPELINING\r\n",
            ("STARTTLS", Script::BrokenTls(bytes)) => {
                let _ = write.write_all(b"220 go ahead\r\n").await;
                // Wait for the ClientHello, then answer it wrongly and hang up.
                let mut hello = [0u8; 2048];
                let _ = lines.get_mut().read(&mut hello).await;
                let _ = write.write_all(bytes).await;
                return;
            }
            ("QUIT", _) => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            ("MAIL" | "RCPT" | "RSET", _) => b"250 ok\r\n",
            _ => b"502 not here\r\n",
        };
        let _ = write.write_all(reply).await;
    }
}

/// A TLS 1.0 ServerHello record, as a server that speaks nothing newer sends it.
const TLS10_SERVER_HELLO: &[u8] = &[
    0x16, 3, 1, 0, 42, 2, 0, 0, 38, 3, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0, 0, 0x2f, 0,
];

/// An engine with one connector `c` to `smart_hosts` on `port`, with `tls_settings` and `extra`
/// configuration lines, opening connections within `limiter`.
fn engine(
    smart_hosts: &str,
    port: u16,
    tls_settings: &str,
    extra: &str,
    limiter: Arc<Limiter>,
) -> Engine {
    let yaml = format!(
        "connectors:\n  - name: c\n    smart_hosts: [{smart_hosts}]\n    port: {port}\n    \
         timeout: 5s\n    helo_name: probe.mf.test\n    tls_settings: {tls_settings}\n{extra}"
    );
    let config = parse(&yaml, Path::new("test.yml")).expect("config");
    let tls = Arc::new(TlsContext::new().expect("tls"));
    Engine::new(&config, tls, limiter).expect("engine")
}

/// Probes one connector to `server` with `tls_settings` and `extra` configuration lines.
async fn probe(server: &ScriptedServer, tls_settings: &str, extra: &str) -> Report {
    let limiter = Arc::new(Limiter::new(ConnectionCaps::default()));
    let port = server.address.port();
    let engine = engine("127.0.0.1", port, tls_settings, extra, limiter);
    let deadline = Instant::now() + Duration::from_secs(5);
    engine
        .probe("c", deadline)
        .await
        .expect("a known connector")
        .expect("a probe that ran")
}

#[tokio::test]
async fn opportunistic_tls_that_fails_is_retried_without_tls() {
    static SCRIPTS: [Script; 2] = [Script::BrokenTls(b"this is not TLS\r\n"), Script::Plain];
    let server = ScriptedServer::start(&SCRIPTS).await;
    let envelope = "    mail_from: probe@mf.test\n    rcpt_to: postmaster@mf.test\n";
    let report = probe(&server, "opportunistic", envelope).await;
    assert_eq!(report.outcome, Ok(()));
    let target = &report.targets[0];
    assert_eq!(target.outcome, Ok(()));
    assert_eq!(target.tls_fallback, Some(TlsFailure::Handshake));
    assert!(target.tls.is_none());
    let commands = server.commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(
        commands[0],
        ["EHLO probe.mf.test", "STARTTLS"].map(String::from)
    );
    let verbs: Vec<&str> = commands[1]
        .iter()
        .map(|c| c.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]);
}

#[tokio::test]
async fn a_server_speaking_only_tls_1_0_fails_required_tls_on_the_version() {
    static SCRIPTS: [Script; 2] = [Script::BrokenTls(TLS10_SERVER_HELLO), Script::Plain];
    let server = ScriptedServer::start(&SCRIPTS).await;
    let report = probe(&server, "encryption_only", "").await;
    let version = Failure::Tls(TlsFailure::Version(Some(OldTlsVersion::Tls10)));
    assert_eq!(report.outcome, Err(version));
    assert_eq!(version.code().as_str(), "4.4.317");
    assert_eq!(version.reason().as_str(), "tls_version");
    assert_eq!(report.targets[0].tls_fallback, None);
    assert_eq!(server.commands().len(), 1, "no plain-text retry");

    // The same server under opportunistic TLS delivers in plain text.
    let server = ScriptedServer::start(&SCRIPTS).await;
    let report = probe(&server, "opportunistic", "").await;
    assert_eq!(report.outcome, Ok(()));
    assert_eq!(
        report.targets[0].tls_fallback,
        Some(TlsFailure::Version(Some(OldTlsVersion::Tls10)))
    );
}

#[tokio::test]
async fn a_failing_plain_text_retry_is_the_outcome() {
    static SCRIPTS: [Script; 2] = [
        Script::BrokenTls(b"garbage"),
        Script::Greeting("554 5.3.2 not now"),
    ];
    let server = ScriptedServer::start(&SCRIPTS).await;
    let report = probe(&server, "opportunistic", "").await;
    assert_eq!(
        report.outcome,
        Err(Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(554)))
    );
    assert_eq!(report.targets[0].tls_fallback, Some(TlsFailure::Handshake));
    assert_eq!(server.commands().len(), 2);
}

/// A limiter allowing one connection per address.
fn one_per_address() -> Arc<Limiter> {
    Arc::new(Limiter::new(ConnectionCaps {
        total: 8,
        per_address: 1,
    }))
}

#[tokio::test]
async fn a_probe_without_a_connection_slot_did_not_run() {
    static SCRIPTS: [Script; 1] = [Script::Plain];
    let server = ScriptedServer::start(&SCRIPTS).await;
    let limiter = one_per_address();
    let engine = engine(
        "127.0.0.1",
        server.address.port(),
        "none",
        "",
        limiter.clone(),
    );
    // Another probe holds the only slot of the address.
    let held = limiter
        .acquire(server.address, Instant::now() + Duration::from_secs(1))
        .await
        .expect("the only slot");
    let deadline = Instant::now() + Duration::from_millis(200);
    let throttled = engine
        .probe("c", deadline)
        .await
        .expect("a known connector")
        .expect_err("no slot, no probe");
    assert_eq!(throttled.no_slot.address, server.address);
    assert_eq!(throttled.connector.name, "c");
    assert!(server.commands().is_empty(), "no connection was opened");
    // Once the slot is free, the probe runs.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = engine.probe("c", deadline).await.expect("known");
    assert_eq!(report.map(|r| r.outcome).ok(), Some(Ok(())));
}

#[tokio::test]
async fn another_address_that_delivers_makes_the_connector_ok() {
    static SCRIPTS: [Script; 1] = [Script::Plain];
    let server = ScriptedServer::start(&SCRIPTS).await;
    let port = server.address.port();
    // The same server on two loopback addresses; the first one's only slot is taken.
    let second = ScriptedServer::start_on("127.0.0.2", port, &SCRIPTS).await;
    let limiter = one_per_address();
    let engine = engine("127.0.0.1, 127.0.0.2", port, "none", "", limiter.clone());
    let _held = limiter
        .acquire(server.address, Instant::now() + Duration::from_secs(1))
        .await
        .expect("the only slot");
    let deadline = Instant::now() + Duration::from_millis(500);
    let report = engine
        .probe("c", deadline)
        .await
        .expect("a known connector")
        .expect("delivered through the second address");
    assert_eq!(report.outcome, Ok(()));
    let addresses: Vec<_> = report.targets.iter().map(|t| t.address).collect();
    assert_eq!(addresses, [Some(second.address.ip())]);
}
