//! A real DNS server for the tests: dnsmasq on 127.0.0.1:<free port>, no upstream, no
//! /etc/hosts, started once per test binary, with the records below.
//!
//! What dnsmasq 2.90 really answers (checked with dig, and by `fixtures::dnsmasq_*`):
//! - names under `mf.test` are local (`local=/mf.test/`): unknown ones get NXDOMAIN, a name that
//!   only has a TXT record gets NOERROR with no answer (NODATA);
//! - a name outside every local domain gets REFUSED (there is no upstream server);
//! - dnsmasq never makes up a SERVFAIL for a dead upstream: it stays silent. So `servfail.mf.test`
//!   is forwarded to a tiny in-process upstream that answers SERVFAIL, and dnsmasq passes that
//!   rcode on ("reply error is SERVFAIL" in its log);
//! - a null MX (RFC 7505) is a raw record, `dns-rr=NAME,15,000000` (preference 0, exchange ".").
//!
//! For "no answer in time" there is `silent()`: a UDP socket (and a TCP listener on the same port)
//! that never answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::dns_wire::{TYPE_A, frame, query, read_framed, servfail_reply};

/// A name with one A record, 127.0.0.1 (and no AAAA).
pub const GOOD: &str = "good.mf.test";
/// A name with A 127.0.0.1 that the valid test certificate names.
pub const MX_HOST: &str = "mx.mf.test";
/// A name with A 127.0.0.1 and AAAA ::1.
pub const DUAL: &str = "dual.mf.test";
/// A name that does not exist (NXDOMAIN).
pub const NXDOMAIN: &str = "nope.mf.test";
/// A name that exists (TXT) but has no A/AAAA and no MX.
pub const NO_RECORDS: &str = "norecords.mf.test";
/// A domain with MX 10 mx1.mf.test (A 127.0.0.1).
pub const MX_DOMAIN: &str = "mxdom.mf.test";
/// MX host of `MX_DOMAIN`.
pub const MX_DOMAIN_HOST: &str = "mx1.mf.test";
/// A domain with MX 20 mxb.mf.test (127.0.0.4), listed first, and MX 10 mxa.mf.test (127.0.0.3).
pub const MX_PREF: &str = "mxpref.mf.test";
/// A domain with a null MX (RFC 7505).
pub const NULL_MX: &str = "nullmx.mf.test";
/// A name whose lookup gets SERVFAIL.
pub const SERVFAIL: &str = "host.servfail.mf.test";
/// A name whose lookup gets REFUSED.
pub const REFUSED: &str = "host.refused.test";

/// The running dnsmasq.
pub struct Dns {
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    /// Its working directory (config and log).
    pub dir: PathBuf,
    child: Mutex<Child>,
}

impl Dns {
    /// `"127.0.0.1:PORT"`, for the config's `nameservers`.
    pub fn nameserver(&self) -> String {
        self.addr.to_string()
    }

    /// dnsmasq's log (queries and forwards).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Whether dnsmasq is still running.
    pub fn running(&self) -> bool {
        self.child
            .lock()
            .map(|mut c| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false)
    }
}

/// The DNS server, started on first use.
pub fn dns() -> &'static Dns {
    static DNS: OnceLock<Dns> = OnceLock::new();
    DNS.get_or_init(start)
}

/// A nameserver that never answers (UDP and TCP on one port).
pub fn silent() -> SocketAddr {
    static SILENT: OnceLock<SocketAddr> = OnceLock::new();
    *SILENT.get_or_init(|| {
        let (udp, tcp, addr) = udp_and_tcp();
        // Keep both sockets alive for the life of the process; read nothing, answer nothing.
        std::thread::spawn(move || {
            let _udp = udp;
            let mut held = Vec::new();
            for s in tcp.incoming().flatten().take(1000) {
                held.push(s);
            }
        });
        addr
    })
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn udp_and_tcp() -> (UdpSocket, TcpListener, SocketAddr) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp, addr);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// An upstream that answers every query with SERVFAIL (UDP and TCP on one port).
fn servfail_upstream() -> SocketAddr {
    let (udp, tcp, addr) = udp_and_tcp();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if let Some(reply) = servfail_reply(&buf[..n]) {
                let _ = udp.send_to(&reply, from);
            }
        }
    });
    std::thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let Ok(query) = read_framed(&mut s) else {
                        return;
                    };
                    let Some(reply) = servfail_reply(&query) else {
                        return;
                    };
                    if s.write_all(&frame(&reply)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(port: u16, servfail: SocketAddr) -> String {
    format!(
        "port={port}
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
pid-file=
log-queries
local=/mf.test/
host-record={GOOD},127.0.0.1
host-record={MX_HOST},127.0.0.1
host-record={DUAL},127.0.0.1,::1
host-record={MX_DOMAIN_HOST},127.0.0.1
host-record=mxa.mf.test,127.0.0.3
host-record=mxb.mf.test,127.0.0.4
mx-host={MX_DOMAIN},{MX_DOMAIN_HOST},10
mx-host={MX_PREF},mxb.mf.test,20
mx-host={MX_PREF},mxa.mf.test,10
txt-record={NO_RECORDS},\"exists without addresses\"
dns-rr={NULL_MX},15,000000
server=/servfail.mf.test/{}#{}
",
        servfail.ip(),
        servfail.port()
    )
}

fn start() -> Dns {
    let dir = super::kept_dir("mailflow-dns-");
    let upstream = servfail_upstream();
    for attempt in 0..5 {
        let port = udp_and_tcp().2.port();
        let conf = dir.join("dnsmasq.conf");
        std::fs::write(&conf, config(port, upstream)).expect("write dnsmasq.conf");
        let mut child = Command::new("/usr/sbin/dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start /usr/sbin/dnsmasq");
        super::reaper::on_exit(&format!("kill {} 2>/dev/null", child.id()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Up when it answers GOOD; given up on when it exits (e.g. its port was taken meanwhile).
        let up = crate::common::poll(Duration::from_secs(5), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(false);
            }
            match query(addr, GOOD, TYPE_A, Duration::from_millis(200)) {
                Ok(answer) if answer.rcode == 0 && !answer.records.is_empty() => Ok(true),
                _ => Err(()),
            }
        });
        if up == Ok(true) {
            return Dns {
                addr,
                dir,
                child: Mutex::new(child),
            };
        }
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        eprintln!("dnsmasq attempt {attempt} on port {port} failed: {err}");
    }
    panic!("dnsmasq did not start; see {}", dir.display());
}
