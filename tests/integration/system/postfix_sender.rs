//! A real Postfix (the Debian package) as a *sender*: one whose queue the exporter reads, or one
//! whose deliveries the agreement test compares with the exporter's word.
//!
//! It runs from its own `config_directory`, `queue_directory` and `data_directory` under a
//! temporary directory (never /etc/postfix), has no SMTP server at all (mail is submitted with
//! `sendmail -C DIR`), and delivers only over the routes it is given: `transport_maps` sends each
//! recipient domain to one loopback next hop, and everything else fails locally (`error:`).
//! Two modes ([`SenderMode`]):
//! - `Hold`: `soft_bounce = yes` keeps every failure in the queue as a deferral, and the long
//!   back-off keeps deferred mail where it is (no second attempt during a test), so the queue
//!   holds still once every message has its delay reason. No TLS.
//! - `Deliver`: configured like Exchange Online's sending side: opportunistic TLS by default,
//!   TLS 1.2 at least (`smtp_tls_protocols` and `smtp_tls_mandatory_protocols`), the test CA as
//!   trust anchor, per-route TLS policies, real bounces for refusals, and retries within seconds
//!   (`queue_run_delay`, `minimal_backoff_time`, `maximal_backoff_time`). [`Sender::wait_outcomes`]
//!   reads each message's fate from the log (`status=sent`, `bounced`, `deferred`).
//!
//! Name lookups stay on the machine: the `smtp` client runs chrooted in the queue directory,
//! whose `etc/resolv.conf` names only a dnsmasq started here on a loopback address
//! (`127.53.x.y:53`, answering NXDOMAIN for `.invalid` and 127.0.0.1 for every name under
//! `hop.test`, so that routes to one loopback server can each have their own name and TLS
//! policy; no upstream servers, no /etc/hosts);
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

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
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

/// How the sender treats failures, and what TLS it speaks.
#[derive(Clone, Copy, Debug)]
pub enum SenderMode<'a> {
    /// Every failure a deferral that stays in the queue, no retry during a test, no TLS.
    Hold,
    /// Like Exchange Online's sending side: opportunistic TLS 1.2+ with per-route policies,
    /// trusting `ca_file`; bounces for refusals; retries within seconds.
    Deliver {
        /// The trust anchors (PEM) for the `verify` and `secure` policies.
        ca_file: &'a str,
    },
}

/// How a sender differs from the usual one, beyond its [`SenderMode`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Resolve names through this DNS server (port 53) instead of a dnsmasq of its own.
    pub nameserver: Option<Ipv4Addr>,
    /// Extra `main.cf` lines, after the usual ones; a parameter set here replaces the usual
    /// setting.
    pub main_cf: String,
}

/// How Postfix's log says one recipient's delivery ended (its last status line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// `sent`, `deferred` or `bounced`.
    pub status: String,
    /// The rest of the log line: the relay, the delays and the reason.
    pub line: String,
}

/// What became of one message, from the sender's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// `status=sent`.
    Sent,
    /// `status=bounced`, with Postfix's reason.
    Bounced(String),
    /// `status=deferred` on the first attempt and on a retry, with the last reason.
    Deferred(String),
}

/// The running sender Postfix, and its loopback DNS server.
pub struct Sender {
    dir: tempfile::TempDir,
    dns: Option<Child>,
    dns_addr: Ipv4Addr,
}

impl Sender {
    /// Starts dnsmasq and Postfix with `routes` in mode `Hold`; panics (after cleaning up) when
    /// either does not come up.
    pub fn start(routes: &[Route]) -> Sender {
        Sender::start_with(routes, SenderMode::Hold)
    }

    /// Starts dnsmasq and Postfix with `routes` in `mode`; panics (after cleaning up) when
    /// either does not come up.
    pub fn start_with(routes: &[Route], mode: SenderMode<'_>) -> Sender {
        Sender::start_with_options(routes, mode, &Options::default())
    }

    /// Starts Postfix with `routes` in `mode`, changed by `options` (and dnsmasq, unless
    /// `options` names a DNS server); panics (after cleaning up) when it does not come up.
    pub fn start_with_options(routes: &[Route], mode: SenderMode<'_>, options: &Options) -> Sender {
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

        match options.nameserver {
            Some(nameserver) => sender.dns_addr = nameserver,
            None => sender.start_dns(),
        }
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
        std::fs::write(
            conf.join("main.cf"),
            with_overrides(&main_cf(&base, mode), &options.main_cf),
        )
        .expect("write main.cf");
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
        self.send_from("sender@test.invalid", recipient);
    }

    /// Submits one small message from `from` to `recipient`.
    pub fn send_from(&self, from: &str, recipient: &str) {
        let mut child = Command::new(format!("{SBIN}/sendmail"))
            .arg("-C")
            .arg(self.conf())
            .args(["-f", from, "--", recipient])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sendmail");
        let message = format!(
            "From: {from}\nTo: {recipient}\nSubject: mailflow sender test\n\n\
             A test message of the mailflow exporter's tests.\n"
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

    /// How the delivery to `recipient` ended, from the last `to=<RECIPIENT>` line of the log
    /// that has a status; `None` before one was tried.
    pub fn logged(&self, recipient: &str) -> Option<Logged> {
        let to = format!("to=<{recipient}>");
        self.log()
            .lines()
            .rev()
            .filter(|line| line.contains(&to))
            .filter_map(|line| {
                let (_, rest) = line.split_once(" status=")?;
                let status = rest.split_whitespace().next()?;
                Some(Logged {
                    status: status.to_owned(),
                    line: line
                        .split_once(&to)
                        .map_or(line, |(_, l)| l)
                        .trim_start_matches([',', ' '])
                        .to_owned(),
                })
            })
            .next()
    }

    /// Waits (polling, at most `limit`) until each of `recipients` has a delivery status;
    /// returns them in order.
    pub fn wait_deliveries(&self, recipients: &[String], limit: Duration) -> Vec<Logged> {
        let done = crate::common::poll(limit, || {
            recipients
                .iter()
                .map(|r| self.logged(r))
                .collect::<Option<Vec<Logged>>>()
                .ok_or(())
        });
        done.unwrap_or_else(|()| {
            panic!(
                "after {limit:?}, not every recipient of {recipients:?} has a status:\n{}",
                self.log()
            )
        })
    }

    /// Waits (polling, at most `limit`) until every one of `recipients` has its outcome in the
    /// log: sent, bounced, or deferred twice (the first attempt and a retry); panics with
    /// Postfix's warnings and log when one does not.
    pub fn wait_outcomes(&self, recipients: &[&str], limit: Duration) -> HashMap<String, Delivery> {
        let waited = crate::common::poll(limit, || {
            let seen = log_outcomes(&self.log());
            let outcomes: HashMap<String, Delivery> = recipients
                .iter()
                .filter_map(|r| Some((r.to_string(), seen.get(*r)?.outcome()?)))
                .collect();
            if outcomes.len() == recipients.len() {
                Ok(outcomes)
            } else {
                Err(outcomes)
            }
        });
        waited.unwrap_or_else(|outcomes| {
            let missing: Vec<&&str> = recipients
                .iter()
                .filter(|r| !outcomes.contains_key(**r))
                .collect();
            let log = self.log();
            let troubles: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("warning:") || l.contains("fatal:") || l.contains("panic:"))
                .collect();
            panic!(
                "after {limit:?}, no outcome for {missing:?}\nPostfix's warnings:\n{}\n\
                 Postfix log:\n{log}",
                troubles.join("\n")
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
        // Each sender of this process tries its own addresses: two tests with a sender each run
        // at once, and one's dnsmasq must not pass for the other's.
        static SENDERS: AtomicU32 = AtomicU32::new(0);
        let sender = SENDERS.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join("dnsmasq.log");
        let pid = std::process::id();
        for attempt in 0..8u32 {
            let try_number = sender.wrapping_mul(8).wrapping_add(attempt);
            let seed = pid.wrapping_add(try_number.wrapping_mul(7919));
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
                    "--address=/hop.test/127.0.0.1",
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

/// What the log says of one recipient so far.
#[derive(Default)]
struct LogOutcome {
    /// Delivered.
    sent: bool,
    /// Bounced, with the reason.
    bounced: Option<String>,
    /// Deferrals by the SMTP client (real attempts), with the last reason.
    deferrals: usize,
    /// The reason of the last deferral.
    deferred: Option<String>,
}

impl LogOutcome {
    /// The outcome, once there is one.
    fn outcome(&self) -> Option<Delivery> {
        if self.sent {
            return Some(Delivery::Sent);
        }
        if let Some(why) = &self.bounced {
            return Some(Delivery::Bounced(why.clone()));
        }
        match &self.deferred {
            Some(why) if self.deferrals >= 2 => Some(Delivery::Deferred(why.clone())),
            _ => None,
        }
    }
}

/// Every recipient's outcome so far in a Postfix log, from its lines
/// `... postfix/smtp[PID]: ID: to=<RCPT>, relay=..., status=STATUS (REASON)`.
fn log_outcomes(log: &str) -> HashMap<String, LogOutcome> {
    let mut outcomes: HashMap<String, LogOutcome> = HashMap::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once(" to=<") else {
            continue;
        };
        let Some((recipient, rest)) = rest.split_once('>') else {
            continue;
        };
        let Some((_, status)) = rest.split_once(" status=") else {
            continue;
        };
        let (word, reason) = status.split_once(' ').unwrap_or((status, ""));
        let reason = reason
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(reason)
            .to_owned();
        let outcome = outcomes.entry(recipient.to_owned()).or_default();
        match word {
            "sent" => outcome.sent = true,
            "bounced" => outcome.bounced = Some(reason),
            "deferred" => {
                // The queue manager defers mail for a destination that just failed without
                // trying it: only the SMTP client's deferrals are attempts.
                if line.contains(" postfix/smtp[") {
                    outcome.deferrals += 1;
                }
                outcome.deferred = Some(reason);
            }
            _ => {}
        }
    }
    outcomes
}

/// `usual` without the parameters that `extra` sets again, then `extra`. Never two entries for
/// one parameter: Postfix warns about an overridden entry in every process it starts, and its
/// log daemon sends its own warnings to its own socket, which holds only
/// `net.unix.max_dgram_qlen` datagrams (10 by default): when the other processes' warnings fill
/// it first, postlogd blocks on itself for good, nothing is logged any more, and `postfix stop`
/// hangs.
fn with_overrides(usual: &str, extra: &str) -> String {
    let parameter = |line: &str| {
        let (name, _) = line.split_once('=')?;
        let name = name.trim();
        let is_name = !name.is_empty()
            && !line.starts_with(char::is_whitespace)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_name.then(|| name.to_owned())
    };
    let replaced: Vec<String> = extra.lines().filter_map(parameter).collect();
    let mut merged: String = usual
        .lines()
        .filter(|line| parameter(line).is_none_or(|name| !replaced.contains(&name)))
        .map(|line| format!("{line}\n"))
        .collect();
    merged.push_str(extra);
    merged
}

fn main_cf(base: &Path, mode: SenderMode<'_>) -> String {
    let b = base.display();
    let mode_cf = match mode {
        SenderMode::Hold => "soft_bounce = yes
smtp_tls_security_level = none
minimal_backoff_time = 1h
maximal_backoff_time = 2h
queue_run_delay = 1h
"
        .to_owned(),
        SenderMode::Deliver { ca_file } => format!(
            "soft_bounce = no
smtp_tls_security_level = may
smtp_tls_protocols = >=TLSv1.2
smtp_tls_mandatory_protocols = >=TLSv1.2
smtp_tls_CAfile = {ca_file}
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
"
        ),
    };
    format!(
        "{base_cf}{mode_cf}transport_maps = texthash:{b}/conf/transport
default_transport = error:no route in the mailflow sender test
relay_transport = error:no route in the mailflow sender test
local_transport = error:no local delivery in the mailflow sender test
virtual_transport = error:no local delivery in the mailflow sender test
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
smtp_tls_policy_maps = texthash:{b}/conf/tls_policy
smtp_tls_loglevel = 1
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
