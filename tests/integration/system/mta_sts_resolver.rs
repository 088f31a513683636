//! postfix-mta-sts-resolver (the Debian package): an MTA-STS implementation independent of the
//! exporter, serving Postfix's `smtp_tls_policy_maps` over a socketmap on a loopback port.
//!
//! It reads `/etc/resolv.conf` (through c-ares) and the system's CA bundle (through Python's
//! ssl). So that it asks only the MTA-STS world, it runs in a mount namespace of its own
//! (`unshare -m`, private propagation) where a resolv.conf naming the world's DNS server is
//! bind-mounted over `/etc/resolv.conf`; `SSL_CERT_FILE` names the world's CA. Nothing of the
//! host changes. It is killed, and its directory removed, when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon, installed by the Debian package.
const DAEMON: &str = "/usr/bin/mta-sts-daemon";

/// A running mta-sts-daemon.
pub struct Resolver {
    /// Where its socketmap listens.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Resolver {
    /// Starts the daemon on a free loopback port, resolving through `nameserver` (port 53) and
    /// trusting `ca_file`; panics (with its log) when it does not answer within 15 s.
    pub fn start(nameserver: Ipv4Addr, ca_file: &std::path::Path) -> Resolver {
        let dir = tempfile::Builder::new()
            .prefix("mailflow-mta-sts-resolver-")
            .tempdir()
            .expect("create a temporary directory");
        let port = crate::common::net::free_ports(1)[0];
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {nameserver}\noptions timeout:2 attempts:1\n"),
        )
        .expect("write resolv.conf");
        // (`reuse_port: false` fails in 1.1.2: the daemon only binds with SO_REUSEPORT.)
        let config = dir.path().join("mta-sts-daemon.yml");
        std::fs::write(
            &config,
            format!(
                "host: 127.0.0.1\nport: {port}\nreuse_port: true\nshutdown_timeout: 1\n\
                 cache:\n  type: internal\ndefault_zone:\n  strict_testing: false\n  timeout: 4\n"
            ),
        )
        .expect("write the daemon's configuration");
        let log = dir.path().join("daemon.log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/resolv.conf && \
                 exec \"$2\" -c \"$3\" -v debug -l \"$4\" --disable-uvloop",
            )
            .arg("sh")
            .arg(&resolv)
            .arg(DAEMON)
            .arg(&config)
            .arg(&log)
            .env("SSL_CERT_FILE", ca_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unshare");
        super::reaper::on_exit(&format!("kill {} 2>/dev/null", child.id()));
        let mut resolver = Resolver {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&resolver.addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || !matches!(resolver.child.try_wait(), Ok(None)) {
                panic!("mta-sts-daemon did not start:\n{}", resolver.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        resolver
    }

    /// The `smtp_tls_policy_maps` value that asks it.
    pub fn policy_map(&self) -> String {
        format!("socketmap:inet:{}:postfix", self.addr)
    }

    /// What it answers Postfix for the next hop `key` (e.g. `enforce.sts.test:2525`), as a
    /// socketmap reply: `OK secure match=...`, or `NOTFOUND `.
    pub fn query(&self, key: &str) -> String {
        let request = format!("postfix {key}");
        let mut stream =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        write!(stream, "{}:{request},", request.len()).expect("send the request");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        // A netstring: LENGTH:TEXT, — read up to the comma that ends it.
        while stream.read(&mut byte).unwrap_or(0) == 1 && reply.len() < 4096 {
            reply.push(byte[0]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((length, text)) = text.split_once(':')
                && length.parse::<usize>().is_ok_and(|n| text.len() == n + 1)
            {
                return text.trim_end_matches(',').to_owned();
            }
        }
        panic!(
            "no socketmap reply for {key}: {:?}\n{}",
            String::from_utf8_lossy(&reply),
            self.log()
        );
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
