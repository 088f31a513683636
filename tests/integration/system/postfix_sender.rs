//! A real Postfix (the Debian package) as a *sender*, whose queue the exporter reads.
//!
//! It runs from its own `config_directory`, `queue_directory` and `data_directory` under a
//! temporary directory (never /etc/postfix), has no SMTP server at all (mail is submitted with
//! `sendmail -C DIR`), and delivers only over the routes it is given: `transport_maps` sends each
//! recipient domain to one loopback next hop, and everything else fails locally (`error:`).
//! `soft_bounce = yes` keeps every failure in the queue as a deferral, and the long back-off keeps
//! deferred mail where it is (no second attempt during a test), so the queue holds still once
//! every message has its delay reason.
//!
//! Name lookups stay on the machine: the `smtp` client runs chrooted in the queue directory,
//! whose `etc/resolv.conf` names only a dnsmasq started here on a loopback address
//! (`127.53.x.y:53`, answering NXDOMAIN for `.invalid`, no upstream servers, no /etc/hosts);
//! glibc reads `/etc/resolv.conf` inside the chroot. No other Postfix process looks names up
//! (`myhostname` is set, every next hop but the `.invalid` one is an IP literal, `inet_protocols
//! = ipv4`). [`Sender::dns_queries`] lists what dnsmasq was asked, so a test can check that the
//! lookup really went there.
//!
//! As root, `sendmail -C DIR` and `postqueue -c DIR` need no `alternate_config_directories` in
//! the default main.cf (Postfix skips that check for root; /etc/postfix/main.cf need not even
//! exist).
//!
//! [`Sender`] stops Postfix (`postfix stop`, waiting for the master to exit) and dnsmasq, and
//! removes the directory when dropped, also when a test panics.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::dns_wire::{RCODE_NXDOMAIN, TYPE_A, query};

/// Where Debian installs Postfix's commands.
const SBIN: &str = "/usr/sbin";

/// One recipient domain and where Postfix sends it.
#[derive(Clone, Debug)]
pub struct Route {
    /// The recipient domain (`d-refused.test`).
    pub domain: String,
    /// The `smtp:` next hop, as in `transport_maps`: `[127.0.0.11]:2525`, `[name.invalid]:25`.
    pub next_hop: String,
    /// The TLS policy for that next hop (`smtp_tls_policy_maps`: `encrypt`, `secure`, ...), if any.
    pub tls_policy: Option<String>,
}

impl Route {
    /// A route without a TLS policy.
    pub fn new(domain: &str, next_hop: &str) -> Route {
        Route {
            domain: domain.to_owned(),
            next_hop: next_hop.to_owned(),
            tls_policy: None,
        }
    }

    /// The same route with a TLS policy.
    pub fn tls(mut self, policy: &str) -> Route {
        self.tls_policy = Some(policy.to_owned());
        self
    }
}

/// The running sender Postfix, and its loopback DNS server.
pub struct Sender {
    dir: tempfile::TempDir,
    dns: Option<Child>,
    dns_addr: Ipv4Addr,
}

impl Sender {
    /// Starts dnsmasq and Postfix with `routes`; panics (after cleaning up) when either does not
    /// come up.
    pub fn start(routes: &[Route]) -> Sender {
        let dir = tempfile::Builder::new()
            .prefix("mailflow-postfix-sender-")
            .tempdir()
            .expect("create a temporary directory");
        let mut sender = Sender {
            dir,
            dns: None,
            dns_addr: Ipv4Addr::LOCALHOST,
        };
        let base = sender.dir.path().to_owned();
        // Postfix insists on root-owned directories that its unprivileged daemons can traverse
        // (tempfile makes them 0700), and a data directory owned by postfix.
        for d in ["", "conf", "queue", "queue/etc", "data"] {
            let d = base.join(d);
            std::fs::create_dir_all(&d).expect("create a Postfix directory");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                .expect("chmod a Postfix directory");
        }
        run(Command::new("chown")
            .arg("postfix:postfix")
            .arg(base.join("data")))
        .expect("chown the data directory");

        sender.start_dns();
        let conf = sender.conf();
        std::fs::write(
            base.join("queue/etc/resolv.conf"),
            format!(
                "nameserver {}\noptions timeout:1 attempts:1\n",
                sender.dns_addr
            ),
        )
        .expect("write the chroot's resolv.conf");
        std::fs::write(base.join("queue/etc/hosts"), "127.0.0.1 localhost\n")
            .expect("write the chroot's hosts");
        std::fs::write(conf.join("main.cf"), main_cf(&base)).expect("write main.cf");
        // No smtpd at all; `smtp` (the only service that looks names up) runs chrooted in the
        // queue directory, so that it reads the queue directory's etc/resolv.conf.
        let master_cf = super::postfix_services::internal_services(true);
        std::fs::write(conf.join("master.cf"), master_cf).expect("write master.cf");
        let mut transport = String::new();
        let mut policies = String::new();
        for route in routes {
            transport.push_str(&format!("{} smtp:{}\n", route.domain, route.next_hop));
            if let Some(policy) = &route.tls_policy {
                policies.push_str(&format!("{} {policy}\n", route.next_hop));
            }
        }
        std::fs::write(conf.join("transport"), transport).expect("write transport");
        std::fs::write(conf.join("tls_policy"), policies).expect("write tls_policy");

        let started = sender.postfix(&["start"]);
        if let Err(e) = started {
            panic!("postfix start failed: {e}\n{}", sender.log());
        }
        // The queue manager and pickup are up when showq answers through postqueue.
        if let Err(e) = crate::common::poll(Duration::from_secs(15), || sender.queue()) {
            panic!("Postfix did not come up: {e}\n{}", sender.log())
        }
        sender
    }

    /// The configuration directory (`-c` / `-C` argument).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// The command that lists the queue as JSON lines.
    pub fn queue_command(&self) -> Vec<String> {
        vec![
            format!("{SBIN}/postqueue"),
            "-c".to_owned(),
            self.conf().display().to_string(),
            "-j".to_owned(),
        ]
    }

    /// Submits one small message from `sender@test.invalid` to `recipient`.
    pub fn send(&self, recipient: &str) {
        let mut child = Command::new(format!("{SBIN}/sendmail"))
            .arg("-C")
            .arg(self.conf())
            .args(["-f", "sender@test.invalid", "--", recipient])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sendmail");
        let message = format!(
            "From: sender@test.invalid\nTo: {recipient}\nSubject: mailflow queue test\n\n\
             A message that can only be deferred.\n"
        );
        child
            .stdin
            .take()
            .expect("sendmail stdin")
            .write_all(message.as_bytes())
            .expect("write the message to sendmail");
        let out = child.wait_with_output().expect("wait for sendmail");
        assert!(
            out.status.success(),
            "sendmail to {recipient} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The queue as `postqueue -j` lists it, one JSON object per message.
    pub fn queue(&self) -> Result<Vec<serde_json::Value>, String> {
        let command = self.queue_command();
        let out = run(Command::new(&command[0]).args(&command[1..]))?;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
            .collect()
    }

    /// Waits (polling, at most `limit`) until the queue holds `messages` messages
    /// and every recipient of each has a delay reason; returns that queue.
    pub fn wait_deferred(&self, messages: usize, limit: Duration) -> Vec<serde_json::Value> {
        let waited = crate::common::poll(limit, || {
            let queue = self.queue().unwrap_or_default();
            let ready = queue.len() == messages
                && queue.iter().all(|m| {
                    m["recipients"].as_array().is_some_and(|rcpts| {
                        rcpts.iter().all(|r| r["delay_reason"].as_str().is_some())
                    })
                });
            if ready { Ok(queue) } else { Err(queue) }
        });
        waited.unwrap_or_else(|queue| {
            panic!(
                "after {limit:?}, the queue does not hold {messages} deferred messages:\n{}\n\
                 Postfix log:\n{}",
                queue
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.log()
            )
        })
    }

    /// Postfix's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The `query[TYPE] NAME from ADDR` lines of the loopback DNS server's log.
    pub fn dns_queries(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(" query[").map(|(_, q)| format!("query[{q}")))
            .collect()
    }

    /// The loopback address the chrooted smtp client sends its DNS queries to (port 53).
    pub fn dns_address(&self) -> Ipv4Addr {
        self.dns_addr
    }

    fn postfix(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(format!("{SBIN}/postfix"))
            .arg("-c")
            .arg(self.conf())
            .args(args))
    }

    /// dnsmasq on port 53 of a loopback address of its own (a resolv.conf can't name a port).
    fn start_dns(&mut self) {
        let log = self.dir.path().join("dnsmasq.log");
        let pid = std::process::id();
        for attempt in 0..8u32 {
            let seed = pid.wrapping_add(attempt.wrapping_mul(7919));
            let addr = Ipv4Addr::new(127, 53, (seed >> 8) as u8, (seed % 250 + 2) as u8);
            let mut child = Command::new("/usr/sbin/dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--port=53",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--pid-file=",
                    "--log-queries",
                    "--local=/invalid/",
                ])
                .arg(format!("--listen-address={addr}"))
                .arg(format!("--log-facility={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start /usr/sbin/dnsmasq");
            // Up when it answers; given up on when it exits (e.g. the address was taken).
            let up = crate::common::poll(Duration::from_secs(5), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Ok(false);
                }
                if nxdomain((addr, 53).into(), "ready.invalid") {
                    Ok(true)
                } else {
                    Err(())
                }
            });
            if up == Ok(true) {
                self.dns = Some(child);
                self.dns_addr = addr;
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start on any 127.53.x.y:53");
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let master = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let _ = self.postfix(&["stop"]);
        if let Some(pid) = master {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            if !crate::common::eventually(Duration::from_secs(10), || !proc.exists()) {
                let _ = self.postfix(&["abort"]);
            }
        }
        if let Some(mut dns) = self.dns.take() {
            let _ = dns.kill();
            let _ = dns.wait();
        }
    }
}

/// Whether the DNS server at `server` answers NXDOMAIN for `name` (type A) within 200 ms.
fn nxdomain(server: SocketAddr, name: &str) -> bool {
    query(server, name, TYPE_A, Duration::from_millis(200))
        .is_ok_and(|answer| answer.rcode == RCODE_NXDOMAIN)
}

/// Runs a command; its standard output on success, else its output and status.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn main_cf(base: &Path) -> String {
    let b = base.display();
    format!(
        "{base_cf}transport_maps = texthash:{b}/conf/transport
default_transport = error:no route in the mailflow queue test
relay_transport = error:no route in the mailflow queue test
local_transport = error:no local delivery in the mailflow queue test
virtual_transport = error:no local delivery in the mailflow queue test
soft_bounce = yes
notify_classes =
delay_warning_time = 0
alias_maps =
alias_database =
biff = no
smtp_host_lookup = dns
smtp_connect_timeout = 2s
smtp_helo_timeout = 2s
smtp_starttls_timeout = 5s
smtp_mail_timeout = 5s
smtp_rcpt_timeout = 5s
smtp_quit_timeout = 2s
smtp_rset_timeout = 2s
smtp_tls_security_level = none
smtp_tls_policy_maps = texthash:{b}/conf/tls_policy
smtp_tls_loglevel = 1
minimal_backoff_time = 1h
maximal_backoff_time = 2h
queue_run_delay = 1h
maillog_file_prefixes = {b}
maillog_file = {b}/maillog
",
        base_cf = super::postfix_services::base_main_cf(
            base,
            "sender.mf.test",
            "mf.test",
            "test.invalid"
        ),
    )
}
