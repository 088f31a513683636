//! Hostile and broken mail servers: each case is classified per codes.md, the exporter never
//! panics, and its memory stays flat over many rounds of probing all of them at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::exporter::Exporter;
use crate::common::{http, metrics};

/// How a hostile server treats each connection.
#[derive(Clone, Copy, Debug)]
enum Hostility {
    /// Sends its greeting one byte per second.
    SlowGreeting,
    /// Answers EHLO with `250-` lines that never end.
    EndlessContinuation,
    /// Greets with a single line of 1 MiB.
    HugeLine,
    /// Greets with binary garbage.
    BinaryGarbage,
    /// Has a NUL inside its greeting.
    NulInReply,
    /// Accepts STARTTLS, then sends garbage instead of a ServerHello.
    GarbageServerHello,
    /// Greets, then never reads again (and never answers).
    NeverReads,
    /// Accepts STARTTLS, reads the ClientHello, then resets the connection.
    ResetInHandshake,
}

/// (connector, hostility, tls_settings, code, phase, reason)
const CASES: &[(&str, Hostility, &str, &str, &str, &str)] = &[
    (
        "slow-greeting",
        Hostility::SlowGreeting,
        "opportunistic",
        "4.4.318",
        "greeting",
        "timeout",
    ),
    (
        "endless-250",
        Hostility::EndlessContinuation,
        "opportunistic",
        "other",
        "ehlo",
        "protocol",
    ),
    (
        "huge-line",
        Hostility::HugeLine,
        "opportunistic",
        "other",
        "greeting",
        "protocol",
    ),
    (
        "binary-garbage",
        Hostility::BinaryGarbage,
        "opportunistic",
        "other",
        "greeting",
        "protocol",
    ),
    (
        "nul-in-reply",
        Hostility::NulInReply,
        "opportunistic",
        "other",
        "greeting",
        "protocol",
    ),
    (
        "garbage-hello",
        Hostility::GarbageServerHello,
        "encryption_only",
        "4.4.317",
        "tls",
        "tls_handshake",
    ),
    (
        "never-reads",
        Hostility::NeverReads,
        "opportunistic",
        "4.4.318",
        "ehlo",
        "timeout",
    ),
    (
        "reset-handshake",
        Hostility::ResetInHandshake,
        "encryption_only",
        "4.4.318",
        "tls",
        "reset",
    ),
];

/// A hostile server on loopback; it stops with the test.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Server {
    fn start(hostility: Hostility) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stopped = stopped.clone();
                        std::thread::spawn(move || {
                            let _ = session(stream, hostility, &stopped);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { port, stop }
    }
}

fn session(mut stream: TcpStream, hostility: Hostility, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    match hostility {
        Hostility::SlowGreeting => {
            for byte in b"220 slow.test ESMTP\r\n" {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                stream.write_all(&[*byte])?;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Hostility::EndlessContinuation => {
            stream.write_all(b"220 endless.test ESMTP\r\n")?;
            reader.read_line(&mut line)?;
            // Bounded: far more lines than any reader should accept, then stop.
            for _ in 0..100_000 {
                if stream.write_all(b"250-PIPELINING\r\n").is_err() {
                    break;
                }
            }
        }
        Hostility::HugeLine => {
            let mut greeting = b"220 ".to_vec();
            greeting.resize(1 << 20, b'x');
            greeting.extend_from_slice(b"\r\n");
            let _ = stream.write_all(&greeting);
        }
        Hostility::BinaryGarbage => {
            let garbage: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let _ = stream.write_all(&garbage);
        }
        Hostility::NulInReply => stream.write_all(b"220 nul\0inside ESMTP\r\n")?,
        Hostility::GarbageServerHello | Hostility::ResetInHandshake => {
            stream.write_all(b"220 tls.test ESMTP\r\n")?;
            reader.read_line(&mut line)?;
            stream.write_all(b"250-tls.test\r\n250 STARTTLS\r\n")?;
            line.clear();
            reader.read_line(&mut line)?;
            stream.write_all(b"220 go ahead\r\n")?;
            let mut hello = [0u8; 512];
            let _ = reader.read(&mut hello)?;
            if matches!(hostility, Hostility::GarbageServerHello) {
                stream.write_all(b"this is not a TLS record at all\r\n")?;
            } else {
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
        }
        Hostility::NeverReads => {
            stream.write_all(b"220 deaf.test ESMTP\r\n")?;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // Hold the connection until the client goes away (bounded by the read timeout).
    let mut sink = [0u8; 1024];
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// The resident set size of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn hostile_servers_are_classified_and_memory_stays_flat() {
    let servers: Vec<Server> = CASES.iter().map(|(_, h, ..)| Server::start(*h)).collect();
    let mut config = String::from(
        "defaults:\n  timeout: 1500ms\n  helo_name: probe.hostile.test\nconnectors:\n",
    );
    for ((name, _, tls, ..), server) in CASES.iter().zip(&servers) {
        config.push_str(&format!(
            "  - name: {name}\n    smart_hosts: [127.0.0.1]\n    port: {}\n    tls_settings: {tls}\n",
            server.port
        ));
    }
    let mut exporter = Exporter::start(&config);
    let scrape = |exporter: &Exporter| {
        let started = Instant::now();
        let response = http::get(
            exporter.addr,
            "/probe",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "4")],
        )
        .expect("scrape");
        assert_eq!(response.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        metrics::Metrics::parse(&response.body)
    };

    // Every case, classified per codes.md.
    let first = scrape(&exporter);
    let mut wrong = Vec::new();
    for (name, _, _, code, phase, reason) in CASES {
        let failure = first.failure(name);
        let got = failure
            .as_ref()
            .map(|f| (f.code.as_str(), f.phase.as_str(), f.reason.as_str()));
        if got != Some((code, phase, reason)) {
            wrong.push(format!(
                "{name}: got {got:?}, expected ({code}, {phase}, {reason})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Memory: settle for a few rounds, then many more rounds must not grow it.
    for _ in 0..3 {
        scrape(&exporter);
    }
    let settled = rss_kib(exporter.pid());
    for _ in 0..8 {
        scrape(&exporter);
    }
    let after = rss_kib(exporter.pid());
    assert!(exporter.is_running(), "the exporter died");
    assert!(
        after < settled + 8 * 1024,
        "RSS grew from {settled} KiB to {after} KiB over 8 rounds of hostile probes"
    );
    println!("hostile: RSS {settled} KiB after 4 rounds, {after} KiB after 12");
}
