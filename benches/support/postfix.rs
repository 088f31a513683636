//! A real Postfix (Debian's 3.7) as the benchmark's target, started from its own configuration,
//! queue and data directories under the harness's temporary directory (never /etc/postfix), with
//! two STARTTLS listeners on 127.0.0.1:
//!
//! - `stock`: Postfix's stock TLS settings (TLS 1.3 with a session ticket after the handshake);
//! - `noticket`: no session tickets at all: `tls_ssl_options = NO_TICKET` (which, in TLS 1.3,
//!   only switches OpenSSL to *stateful* tickets) plus an OpenSSL configuration with
//!   `NumTickets = 0` (which, without NO_TICKET, still leaves Postfix's own stateless ticket).
//!
//! It never delivers anything (every transport is `discard:`); the probes never send DATA
//! anyway. `postfix stop` on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const POSTFIX: &str = "/usr/sbin/postfix";

/// The running Postfix.
pub(crate) struct Postfix {
    base: PathBuf,
    conf: PathBuf,
    /// Port of the listener with stock TLS settings (tickets on).
    pub(crate) stock: u16,
    /// Port of the listener without session tickets.
    pub(crate) noticket: u16,
}

impl Postfix {
    /// Starts Postfix under `base` (which must exist) with certificate chain `cert` and `key`.
    pub(crate) fn start(base: &Path, cert: &Path, key: &Path) -> Result<Self> {
        if !Path::new(POSTFIX).exists() {
            bail!("{POSTFIX} not found: install Postfix (scripts/bench does)");
        }
        let conf = base.join("conf");
        for dir in [
            base.to_path_buf(),
            conf.clone(),
            base.join("queue"),
            base.join("data"),
        ] {
            std::fs::create_dir_all(&dir)?;
            // Postfix wants root-owned, not group/world-writable directories its unprivileged
            // daemons can traverse.
            chmod(&dir, "755")?;
        }
        run(Command::new("chown")
            .arg("postfix:postfix")
            .arg(base.join("data")))?;
        let stock = super::procs::free_port()?;
        let mut noticket = super::procs::free_port()?;
        while noticket == stock {
            noticket = super::procs::free_port()?;
        }
        let openssl_cnf = base.join("no-tickets.cnf");
        std::fs::write(
            &openssl_cnf,
            "openssl_conf = bench_init\npostfix = bench_init\n[bench_init]\nssl_conf = bench_ssl\n\
             [bench_ssl]\nsystem_default = bench_tickets\n[bench_tickets]\nNumTickets = 0\n",
        )?;
        std::fs::write(conf.join("main.cf"), main_cf(base, cert, key))?;
        std::fs::write(
            conf.join("master.cf"),
            master_cf(stock, noticket, &openssl_cnf),
        )?;
        let postfix = Postfix {
            base: base.to_path_buf(),
            conf,
            stock,
            noticket,
        };
        run(Command::new(POSTFIX)
            .arg("-c")
            .arg(&postfix.conf)
            .arg("start"))
        .with_context(|| format!("postfix start; its log:\n{}", postfix.log_tail()))?;
        for port in [stock, noticket] {
            wait_greeting(port).with_context(|| {
                format!("Postfix listener {port}; its log:\n{}", postfix.log_tail())
            })?;
        }
        Ok(postfix)
    }

    /// The tail of Postfix's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.base.join("maillog")).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// CPU seconds used so far by this Postfix: its master, the children it has reaped, and its
    /// live children (smtpd, tlsmgr, anvil, postlogd...).
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let pid_file = self.base.join("queue/pid/master.pid");
        let master: u32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
        let mut total = super::procs::cpu_seconds_with_children(master)?;
        for pid in super::procs::children(master) {
            total += super::procs::cpu_seconds(pid).unwrap_or(0.0);
        }
        Ok(total)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid_file = self.base.join("queue/pid/master.pid");
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        // Wait (bounded) for the master to go before the directory is removed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let alive = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn chmod(path: &Path, mode: &str) -> Result<()> {
    run(Command::new("chmod").arg(mode).arg(path))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn main_cf(base: &Path, cert: &Path, key: &Path) -> String {
    let b = base.display();
    format!(
        "{base_cf}default_transport = discard:the benchmark never delivers
relay_transport = discard:the benchmark never delivers
local_transport = discard:the benchmark never delivers
virtual_transport = discard:the benchmark never delivers
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
default_process_limit = 200
maillog_file_prefixes = {b}
maillog_file = {b}/maillog
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
",
        cert = cert.display(),
        key = key.display(),
        base_cf = super::postfix_services::base_main_cf(
            base,
            "mx.bench.test",
            "bench.test",
            "bench.test"
        ),
    )
}

fn master_cf(stock: u16, noticket: u16, openssl_cnf: &Path) -> String {
    format!(
        "127.0.0.1:{stock} inet n - n - - smtpd -o syslog_name=bench-stock
127.0.0.1:{noticket} inet n - n - - smtpd -o syslog_name=bench-noticket -o tls_ssl_options=NO_TICKET -o tls_config_file={cnf}
{services}",
        cnf = openssl_cnf.display(),
        services = super::postfix_services::internal_services(false),
    )
}

/// Waits (at most 15 s) for a 220 greeting on `port`, then says QUIT.
fn wait_greeting(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match greeting(port) {
            Ok(line) if line.starts_with("220") => return Ok(()),
            Ok(line) => bail!("port {port} greets {line:?}"),
            Err(e) if Instant::now() > deadline => return Err(e.context("no greeting in 15 s")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn greeting(port: u16) -> Result<String> {
    let stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let _ = (&stream).write_all(b"QUIT\r\n");
    Ok(line.trim_end().to_string())
}
