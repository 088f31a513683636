//! A real Postfix (the Debian package) for the tests, started once per test binary.
//!
//! It runs from its own `config_directory`, `queue_directory` and `data_directory` under a
//! temporary directory (never /etc/postfix), listens only on 127.0.0.1, on free ports, one smtpd
//! listener per situation (master.cf `-o` overrides), and can never deliver anything: every
//! transport is `discard:` (RCPT TO is accepted, nothing ever leaves), and the probe never sends DATA
//! anyway. It is stopped (`postfix stop`)
//! and its directory removed when the test binary exits.
//!
//! Each listener's banner names it (`220 mx.mf.test ESMTP fixture-NAME`), which is how the start
//! is verified.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::certs::{Leaf, certs};

/// The listeners: name, what it is.
pub const LISTENERS: &[&str] = &[
    // STARTTLS with the valid leaf (chain: leaf + test CA)
    "valid",
    // STARTTLS with an expired / not yet valid / wrong-name / other-CA / self-signed /
    // bad-signature leaf
    "expired",
    "notyet",
    "wrongname",
    "untrusted",
    "selfsigned",
    // self-signed with the CA flag, as `openssl req -x509` makes it
    "selfsigned_ca",
    "badsig",
    // no STARTTLS at all
    "notls",
    // TLS from the first byte (smtps, wrapper mode) with the valid leaf
    "implicit",
    // STARTTLS, but only TLS 1.0 (which the probe's TLS library refuses)
    "tls10",
    // the valid STARTTLS listener, but every RCPT TO is rejected (554)
    "rcpt_reject",
];

/// The running Postfix.
pub struct Postfix {
    /// Its base directory (conf/, queue/, data/, maillog).
    pub dir: PathBuf,
    ports: BTreeMap<&'static str, u16>,
}

impl Postfix {
    /// The port of listener `name` (one of `LISTENERS`).
    pub fn port(&self, name: &str) -> u16 {
        *self
            .ports
            .get(name)
            .unwrap_or_else(|| panic!("no Postfix listener {name}"))
    }

    /// Postfix's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

/// Postfix, started on first use.
pub fn postfix() -> &'static Postfix {
    static POSTFIX: OnceLock<Postfix> = OnceLock::new();
    POSTFIX.get_or_init(start)
}

/// A connector to a Postfix listener at 127.0.0.1, trusting the test CA.
pub fn postfix_connector(name: &str, listener: &str, tls: &str, extra: &[(&str, &str)]) -> String {
    let port = postfix().port(listener).to_string();
    let ca = certs().ca_file.display().to_string();
    let mut fields: Vec<(&str, &str)> = vec![
        ("smart_hosts", "[127.0.0.1]"),
        ("port", &port),
        ("tls_settings", tls),
        ("ca_file", &ca),
    ];
    fields.extend_from_slice(extra);
    crate::common::exporter::connector(name, &fields)
}

fn tls_options(leaf: &Leaf) -> String {
    format!(
        "-o smtpd_tls_security_level=may -o smtpd_tls_cert_file={} -o smtpd_tls_key_file={}",
        leaf.chain_file.display(),
        leaf.key_file.display()
    )
}

fn listener_options(name: &str) -> String {
    let c = certs();
    match name {
        "valid" => tls_options(&c.valid),
        "expired" => tls_options(&c.expired),
        "notyet" => tls_options(&c.notyet),
        "wrongname" => tls_options(&c.wrongname),
        "untrusted" => tls_options(&c.untrusted),
        "selfsigned" => tls_options(&c.selfsigned),
        "selfsigned_ca" => tls_options(&c.selfsigned_ca),
        "badsig" => tls_options(&c.badsig),
        "notls" => "-o smtpd_tls_security_level=none".to_string(),
        "implicit" => format!("{} -o smtpd_tls_wrappermode=yes", tls_options(&c.valid)),
        "tls10" => format!(
            "{} -o smtpd_tls_protocols=>=TLSv1,<=TLSv1 -o smtpd_tls_mandatory_protocols=>=TLSv1,<=TLSv1 \
             -o tls_medium_cipherlist=DEFAULT:@SECLEVEL=0 -o tls_high_cipherlist=DEFAULT:@SECLEVEL=0",
            tls_options(&c.valid)
        ),
        "rcpt_reject" => format!(
            "{} -o smtpd_recipient_restrictions=reject",
            tls_options(&c.valid)
        ),
        other => panic!("unknown listener {other}"),
    }
}

fn main_cf(base: &Path) -> String {
    let b = base.display();
    format!(
        "{base_cf}default_transport = discard:the mailflow test fixture never delivers
relay_transport = discard:the mailflow test fixture never delivers
local_transport = discard:the mailflow test fixture never delivers
virtual_transport = discard:the mailflow test fixture never delivers
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
maillog_file_prefixes = {b}
maillog_file = {b}/maillog
smtpd_tls_loglevel = 1
",
        base_cf = super::postfix_services::base_main_cf(base, "mx.mf.test", "mf.test", "mf.test"),
    )
}

fn master_cf(ports: &BTreeMap<&'static str, u16>) -> String {
    let mut cf = String::new();
    for (name, port) in ports {
        cf.push_str(&format!(
            "127.0.0.1:{port} inet n - n - - smtpd -o syslog_name=postfix-{name} \
             -o {{smtpd_banner = $myhostname ESMTP fixture-{name}}} {}\n",
            listener_options(name)
        ));
    }
    cf.push_str(&super::postfix_services::internal_services(false));
    cf
}

fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn start() -> Postfix {
    for attempt in 0..3 {
        // Stopped before its directory goes: `postfix stop`, then wait (bounded) for the master.
        let base = super::kept_dir_then("mailflow-postfix-", |b| {
            let b = b.display();
            format!(
                "/usr/sbin/postfix -c '{b}/conf' stop >/dev/null 2>&1; \
                 for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
                   kill -0 $(cat '{b}/queue/pid/master.pid' 2>/dev/null) 2>/dev/null || break; \
                   sleep 0.25; done"
            )
        });
        let conf = base.join("conf");
        // Postfix insists on root-owned, not group/world-writable queue and config directories
        // that its unprivileged daemons can traverse, and a data directory owned by postfix.
        for d in [&base, &conf, &base.join("queue"), &base.join("data")] {
            std::fs::create_dir_all(d).expect("create Postfix directory");
            run(Command::new("chmod").arg("755").arg(d));
        }
        run(Command::new("chown")
            .args(["postfix:postfix"])
            .arg(base.join("data")));
        let ports: BTreeMap<&'static str, u16> = LISTENERS
            .iter()
            .copied()
            .zip(crate::common::net::free_ports(LISTENERS.len()))
            .collect();
        std::fs::write(conf.join("main.cf"), main_cf(&base)).expect("write main.cf");
        std::fs::write(conf.join("master.cf"), master_cf(&ports)).expect("write master.cf");
        let conf_arg = conf.display().to_string();
        let (ok, out) = run(Command::new("/usr/sbin/postfix").args(["-c", &conf_arg, "start"]));
        if !ok {
            eprintln!(
                "postfix start (attempt {attempt}) failed: {out}\n{}",
                log(&base)
            );
            let _ = run(Command::new("/usr/sbin/postfix").args(["-c", &conf_arg, "stop"]));
            continue;
        }
        let postfix = Postfix {
            dir: base.clone(),
            ports,
        };
        match wait_ready(&postfix) {
            Ok(()) => return postfix,
            Err(e) => {
                eprintln!("Postfix (attempt {attempt}) not ready: {e}\n{}", log(&base));
                let _ = run(Command::new("/usr/sbin/postfix").args(["-c", &conf_arg, "stop"]));
            }
        }
    }
    panic!("could not start Postfix");
}

fn log(base: &Path) -> String {
    std::fs::read_to_string(base.join("maillog")).unwrap_or_default()
}

/// Every listener greets with its own banner within 15 s.
fn wait_ready(p: &Postfix) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    for (name, port) in &p.ports {
        let left = deadline.saturating_duration_since(Instant::now());
        if *name == "implicit" {
            // TLS from the first byte: a plain connect is all we can check here.
            crate::common::poll(left, || TcpStream::connect(("127.0.0.1", *port)))
                .map_err(|e| format!("listener {name} on {port} never accepted: {e}"))?;
            continue;
        }
        let greeting = crate::common::poll(left, || banner(*port))
            .map_err(|e| format!("listener {name} on {port}: {e}"))?;
        if !greeting.contains(&format!("fixture-{name}")) {
            return Err(format!(
                "port {port} greets {greeting:?}, not listener {name}"
            ));
        }
    }
    Ok(())
}

/// Connect, read the greeting, QUIT.
pub fn banner(port: u16) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let _ = std::io::Write::write_all(&mut &s, b"QUIT\r\n");
    Ok(line.trim_end().to_string())
}
