//! The real Postfix queue, end to end: a real Postfix (the Debian package) queues real messages
//! towards loopback next hops that fail in different ways, and the exporter's `/metrics` counts
//! them per connector and code, with the age of each connector's oldest message.
//!
//! Nothing leaves the machine: every next hop is a server of this test on 127.0.0.x (or a closed
//! port there), and the one name to resolve goes to a dnsmasq on a loopback address (see
//! `system/postfix_sender.rs`), which the test checks.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::exporter::Exporter;
use crate::common::net::closed_port;
use crate::system::postfix_sender::{Route, Sender};

/// The failure codes, every one of which the exporter reports per connector (from 0).
const FAILURE_CODES: [&str; 7] = [
    "4.4.312", "4.4.315", "4.4.316", "4.4.317", "4.4.318", "4.7.320", "other",
];

/// The queue manager's prefix for mail it did not try because the destination just failed.
const SUSPENDED: &str = "delivery temporarily suspended: ";

/// How long the scripted servers live at most, whatever the test does.
const SERVER_LIFETIME: Duration = Duration::from_secs(120);

/// Stops the scripted servers (and waits for them) when the test ends, also on a panic.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a scripted server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Accepts and never says anything.
    Hang,
    /// Greets with 421 and closes.
    Greet421,
    /// A plain ESMTP server that does not offer STARTTLS.
    NoStarttls,
    /// Offers STARTTLS and presents a self-signed certificate.
    BadCertificate(Arc<rustls::ServerConfig>),
}

impl Servers {
    fn new() -> Servers {
        Servers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// A server on `ip`, port chosen by the system; returns the port.
    fn serve(&mut self, ip: Ipv4Addr, behaviour: Behaviour) -> u16 {
        let listener = TcpListener::bind((ip, 0)).expect("bind a loopback test server");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            let started = Instant::now();
            let connections = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                while !stop.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIFETIME {
                    match listener.accept() {
                        // At most 32 sessions per server; more are closed at once.
                        Ok((stream, _)) if connections.fetch_add(1, Ordering::SeqCst) < 32 => {
                            let behaviour = behaviour.clone();
                            let stop = &stop;
                            scope.spawn(move || session(stream, &behaviour, stop, started));
                        }
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }));
        port
    }
}

/// One SMTP session of a scripted server; bounded by the stop flag, the server's lifetime and
/// 5 s read timeouts.
fn session(stream: TcpStream, behaviour: &Behaviour, stop: &AtomicBool, started: Instant) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    match behaviour {
        Behaviour::Hang => {
            // Hold the connection, silent, until Postfix gives up (closes) or the test ends.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0u8; 512];
            let mut stream = stream;
            while !stop.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIFETIME {
                match stream.read(&mut buf) {
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
        Behaviour::Greet421 => {
            let mut stream = stream;
            let _ = stream.write_all(
                b"421 4.3.2 busy.mf.test Service not available, closing transmission channel\r\n",
            );
        }
        Behaviour::NoStarttls => {
            let reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let _ = esmtp(reader, stream, "notls.mf.test", false);
        }
        Behaviour::BadCertificate(config) => {
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut plain = stream;
            let _ = plain.write_all(b"220 badcert.mf.test ESMTP\r\n");
            // EHLO (offering STARTTLS), then STARTTLS; anything else ends the session.
            let mut line = String::new();
            for _ in 0..4 {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let verb = line.trim().to_ascii_uppercase();
                if verb.starts_with("EHLO") {
                    let _ = plain.write_all(
                        b"250-badcert.mf.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
                    );
                } else if verb == "STARTTLS" {
                    let _ = plain.write_all(b"220 2.0.0 Ready to start TLS\r\n");
                    break;
                } else {
                    let _ = plain.write_all(b"221 2.0.0 Bye\r\n");
                    return;
                }
            }
            // Nothing may have been pipelined after STARTTLS.
            if !reader.buffer().is_empty() {
                return;
            }
            let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(connection, plain);
            // Postfix rejects the certificate after the handshake; it may still say QUIT.
            let mut buf = [0u8; 1024];
            for _ in 0..8 {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                        let reply: &[u8] = if text.starts_with("QUIT") {
                            b"221 2.0.0 Bye\r\n"
                        } else if text.starts_with("EHLO") {
                            b"250 badcert.mf.test\r\n"
                        } else {
                            b"502 5.5.2 Not here\r\n"
                        };
                        let _ = tls.write_all(reply);
                        let _ = tls.flush();
                    }
                }
            }
        }
    }
}

/// A minimal ESMTP dialogue up to QUIT (at most 16 commands); `starttls` says whether EHLO
/// offers STARTTLS.
fn esmtp(
    mut reader: BufReader<TcpStream>,
    mut writer: TcpStream,
    name: &str,
    starttls: bool,
) -> std::io::Result<()> {
    writer.write_all(format!("220 {name} ESMTP\r\n").as_bytes())?;
    let mut line = String::new();
    for _ in 0..16 {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.trim().to_ascii_uppercase();
        let reply = if verb.starts_with("EHLO") {
            if starttls {
                format!("250-{name}\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
            } else {
                format!("250-{name}\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            }
        } else if verb.starts_with("HELO") || verb.starts_with("RSET") || verb.starts_with("NOOP") {
            format!("250 {name}\r\n")
        } else if verb.starts_with("QUIT") {
            writer.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 Not here\r\n".to_owned()
        };
        writer.write_all(reply.as_bytes())?;
    }
    Ok(())
}

/// A TLS server configuration with a fresh self-signed certificate (no client trusts it).
fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["badcert.mf.test".to_owned()])
        .expect("generate a self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .expect("server certificate");
    Arc::new(config)
}

/// One connector of the test: the recipient domain Postfix routes, the code its delay reasons
/// must map to, and how many messages are queued for it.
struct Case {
    connector: &'static str,
    domain: &'static str,
    code: &'static str,
    messages: usize,
    /// The delay reason Postfix must give (after `delivery temporarily suspended: `, if any):
    /// the exact text, or its start when it ends in the server's free text.
    reason: String,
    exact: bool,
    /// Its YAML entry in the exporter's configuration.
    yaml: String,
}

#[test]
fn the_real_queue_is_counted_per_connector_and_code() {
    let test_started = Instant::now();
    let mut servers = Servers::new();
    let refused_ip = Ipv4Addr::new(127, 0, 0, 11);
    let hang_ip = Ipv4Addr::new(127, 0, 0, 12);
    let busy_ip = Ipv4Addr::new(127, 0, 0, 13);
    let notls_ip = Ipv4Addr::new(127, 0, 0, 14);
    let badcert_ip = Ipv4Addr::new(127, 0, 0, 15);
    let stray_ip = Ipv4Addr::new(127, 0, 0, 16);
    let refused_port = closed_port(&refused_ip.to_string());
    let stray_port = closed_port(&stray_ip.to_string());
    let hang_port = servers.serve(hang_ip, Behaviour::Hang);
    let busy_port = servers.serve(busy_ip, Behaviour::Greet421);
    let notls_port = servers.serve(notls_ip, Behaviour::NoStarttls);
    let badcert_port = servers.serve(badcert_ip, Behaviour::BadCertificate(self_signed_tls()));

    // Connectors point at their own next hop (their smart host and port are only ever probed on
    // /probe, which this test never asks for). `busy` has no recipient_domains: its messages are
    // matched by the next hop named in the delay reason.
    let smart = |name: &str, ip: Ipv4Addr, port: u16, domain: &str, extra: &str| {
        let domains = if domain.is_empty() {
            String::new()
        } else {
            format!("\n    recipient_domains: [{domain}]")
        };
        format!("  - name: {name}\n    smart_hosts: [\"{ip}\"]\n    port: {port}{domains}{extra}\n")
    };
    let cases = [
        Case {
            connector: "refused",
            domain: "d-refused.test",
            code: "4.4.316",
            messages: 3,
            reason: format!("connect to {refused_ip}[{refused_ip}]:{refused_port}: Connection refused"),
            exact: true,
            yaml: smart("refused", refused_ip, refused_port, "d-refused.test", ""),
        },
        Case {
            connector: "hang",
            domain: "d-hang.test",
            code: "4.4.318",
            messages: 2,
            reason: format!(
                "conversation with {hang_ip}[{hang_ip}] timed out while receiving the initial server greeting"
            ),
            exact: true,
            yaml: smart("hang", hang_ip, hang_port, "d-hang.test", ""),
        },
        Case {
            connector: "dns",
            domain: "d-dns.test",
            code: "4.4.312",
            messages: 2,
            reason: "Host or domain name not found. Name service error for name=name.invalid type=A: Host not found".to_owned(),
            exact: true,
            yaml: "  - name: dns\n    smart_hosts: [name.invalid]\n    recipient_domains: [d-dns.test]\n".to_owned(),
        },
        Case {
            connector: "busy",
            domain: "d-busy.test",
            code: "4.4.317",
            messages: 2,
            reason: format!("host {busy_ip}[{busy_ip}] refused to talk to me: 421 4.3.2 "),
            exact: false,
            yaml: smart("busy", busy_ip, busy_port, "", ""),
        },
        Case {
            connector: "notls",
            domain: "d-notls.test",
            code: "4.4.317",
            messages: 2,
            reason: format!("TLS is required, but was not offered by host {notls_ip}[{notls_ip}]"),
            exact: true,
            yaml: smart(
                "notls",
                notls_ip,
                notls_port,
                "d-notls.test",
                "\n    tls_settings: encryption_only",
            ),
        },
        Case {
            connector: "badcert",
            domain: "d-badcert.test",
            code: "4.7.320",
            messages: 2,
            reason: "Server certificate not verified".to_owned(),
            exact: true,
            // Upper case on purpose: domains match case-insensitively.
            yaml: smart(
                "badcert",
                badcert_ip,
                badcert_port,
                "D-BadCert.TEST",
                "\n    tls_settings: certificate_validation",
            ),
        },
    ];
    // A domain that no connector names, towards a next hop that no connector has.
    let stray_domain = "d-stray.test";
    let stray_reason =
        format!("connect to {stray_ip}[{stray_ip}]:{stray_port}: Connection refused");

    let mut routes: Vec<Route> = vec![
        Route::new("d-refused.test", &format!("[{refused_ip}]:{refused_port}")),
        Route::new("d-hang.test", &format!("[{hang_ip}]:{hang_port}")),
        Route::new("d-dns.test", "[name.invalid]:25"),
        Route::new("d-busy.test", &format!("[{busy_ip}]:{busy_port}")),
        Route::new("d-notls.test", &format!("[{notls_ip}]:{notls_port}")).tls("encrypt"),
        Route::new("d-badcert.test", &format!("[{badcert_ip}]:{badcert_port}")).tls("secure"),
    ];
    routes.push(Route::new(
        stray_domain,
        &format!("[{stray_ip}]:{stray_port}"),
    ));
    let postfix = Sender::start(&routes);

    // The first message of each connector, then (2 s later, so that the oldest is older than
    // the rest) the others. `first_queued[i]` is taken when sendmail has returned: the message's
    // arrival time is no later.
    let mut first_queued = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        postfix.send(&format!("user0@{}", case.domain));
        first_queued.push((i, Instant::now()));
    }
    std::thread::sleep(Duration::from_secs(2));
    for case in &cases {
        for n in 1..case.messages {
            postfix.send(&format!("user{n}@{}", case.domain));
        }
    }
    postfix.send(&format!("someone@{stray_domain}"));
    let total: usize = cases.iter().map(|c| c.messages).sum::<usize>() + 1;
    let queue = postfix.wait_deferred(total, Duration::from_secs(40));

    // Postfix's own wording, per domain (the record of what the exporter is given).
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for message in &queue {
        for rcpt in message["recipients"].as_array().expect("recipients") {
            let address = rcpt["address"].as_str().expect("address");
            let domain = address.rsplit_once('@').expect("domain").1.to_owned();
            let reason = rcpt["delay_reason"].as_str().expect("delay_reason");
            seen.entry(domain).or_default().push(reason.to_owned());
        }
    }
    for (domain, reasons) in &seen {
        for reason in reasons {
            eprintln!("{domain}: {reason}");
        }
    }
    let check_reason = |domain: &str, expected: &str, exact: bool| {
        let reasons = seen.get(domain).expect("messages for the domain");
        for reason in reasons {
            let text = reason.strip_prefix(SUSPENDED).unwrap_or(reason);
            let ok = if exact {
                text == expected
            } else {
                text.starts_with(expected)
            };
            assert!(
                ok,
                "{domain}: Postfix gave {reason:?}, expected {expected:?}{}",
                if exact { "" } else { "..." }
            );
        }
    };
    for case in &cases {
        check_reason(case.domain, &case.reason, case.exact);
        assert_eq!(seen[case.domain].len(), case.messages, "{}", case.domain);
    }
    check_reason(stray_domain, &stray_reason, true);

    // The only name looked up went to the loopback DNS server (the resolver in force is ours).
    let queries = postfix.dns_queries();
    assert!(
        queries
            .iter()
            .any(|q| q.starts_with("query[A] name.invalid from 127.")),
        "the smtp client did not ask the loopback DNS server at {}: {queries:?}",
        postfix.dns_address()
    );

    let mut config = String::from("connectors:\n");
    for case in &cases {
        config.push_str(&case.yaml);
    }
    let command = postfix
        .queue_command()
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Probes (never run here) would resolve names through the loopback DNS server as well.
    config.push_str(&format!(
        "defaults:\n  dns:\n    nameservers: [\"{}:53\"]\npostfix_queue:\n  command: [{command}]\n  timeout: 10s\n",
        postfix.dns_address()
    ));
    let exporter = Exporter::start(&config);

    let before_scrape = Instant::now();
    let metrics = exporter.metrics();
    let after_scrape = Instant::now();

    assert_eq!(
        metrics.expect("mailflow_postfix_queue_read_success", &[]),
        1.0,
        "{}",
        metrics.lines_of("mailflow_postfix_queue_read")
    );
    let queue_lines = metrics.lines_of("mailflow_postfix_queue");
    eprintln!("{queue_lines}");
    for (i, case) in cases.iter().enumerate() {
        for code in FAILURE_CODES {
            let expected = if code == case.code { case.messages } else { 0 };
            assert_eq!(
                metrics.expect(
                    "mailflow_postfix_queue_messages",
                    &[("connector", case.connector), ("code", code)],
                ),
                expected as f64,
                "messages of {} with code {code}:\n{queue_lines}",
                case.connector
            );
        }
        let age = metrics.expect(
            "mailflow_postfix_queue_oldest_age_seconds",
            &[("connector", case.connector)],
        );
        let queued = first_queued[i].1;
        // Whole seconds: at least the whole seconds since the first message was queued, and
        // at most the time since just before it (plus rounding).
        let least = before_scrape.duration_since(queued).as_secs() as f64;
        let most = after_scrape.duration_since(test_started).as_secs_f64() + 1.0;
        assert!(
            age >= least && age <= most,
            "oldest age of {} is {age}, expected between {least} and {most}:\n{queue_lines}",
            case.connector
        );
        assert!(
            age >= 2.0,
            "the oldest message of {} is older than the others",
            case.connector
        );
    }
    for code in FAILURE_CODES {
        let expected = if code == "4.4.316" { 1.0 } else { 0.0 };
        assert_eq!(
            metrics.expect(
                "mailflow_postfix_queue_messages",
                &[("connector", "(unmatched)"), ("code", code)],
            ),
            expected,
            "unmatched messages with code {code}:\n{queue_lines}"
        );
    }
    let unmatched_age = metrics.expect(
        "mailflow_postfix_queue_oldest_age_seconds",
        &[("connector", "(unmatched)")],
    );
    assert!(
        unmatched_age <= after_scrape.duration_since(test_started).as_secs_f64() + 1.0,
        "{queue_lines}"
    );

    drop(exporter);
    drop(postfix);
    drop(servers);
    eprintln!("took {:?}", test_started.elapsed());
}
