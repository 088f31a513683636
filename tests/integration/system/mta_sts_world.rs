//! A real MTA-STS world on loopback: nginx (from Debian) serving policy files over HTTPS on port
//! 443 of a loopback address, and dnsmasq answering the `_mta-sts`, `_smtp._tls`, policy-host
//! and MX names, both started once per test binary.
//!
//! Every site below is a domain `NAME.sts.test`: its policy host `mta-sts.NAME.sts.test` resolves
//! to nginx (or, for [`SILENT`], to an in-process listener that never answers) and presents a
//! certificate from the world's CA ([`MtaStsWorld::ca_file`]) unless the site is about a bad
//! certificate. Its MX hosts resolve to 127.0.0.1, the first one also as its MX record.
//!
//! The world takes a block of loopback addresses of its own (`127.X.Y.1` DNS on port 53,
//! `.2` nginx on 443, `.3` the silent host on 443, `.10` and up for extra zones), chosen from the
//! process id and moved on when taken, so that test binaries running at once don't collide.
//!
//! What changes during a test: the policy files of [`KEEP`] and [`ID_CHANGE`] (through
//! [`MtaStsWorld::set_policy`]), and the TXT records, by asking another dnsmasq with some
//! records replaced ([`MtaStsWorld::zone`]). Everything else is fixed, so tests can share it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::certs::{self, Ca, LeafSpec};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::dns_wire::{TYPE_A, query};

/// `enforce`, listing `mx.enforce.sts.test`; TLS-RPT with a `mailto:` address.
pub const ENFORCE: &str = "enforce.sts.test";
/// `testing`, listing `mx.testing.sts.test`; TLS-RPT with an `https:` address.
pub const TESTING: &str = "testing.sts.test";
/// `none`, no `mx`; two TLS-RPT records (so none counts).
pub const NONE: &str = "none.sts.test";
/// `enforce`, listing `*.wildcard.sts.test`; hosts `mx.wildcard.sts.test` (one label: matches)
/// and `deep.mx.wildcard.sts.test` (two labels: must not match); a TLS-RPT record without `rua`.
pub const WILDCARD: &str = "wildcard.sts.test";
/// The policy host answers 404.
pub const NOT_FOUND: &str = "notfound.sts.test";
/// The policy host redirects (301) to the policy of [`ENFORCE`].
pub const REDIRECT: &str = "redirect.sts.test";
/// The policy is 70 KiB (valid, padded with an unknown field).
pub const OVERSIZED: &str = "oversized.sts.test";
/// The policy is served as `text/html`.
pub const WRONG_TYPE: &str = "wrongtype.sts.test";
/// The policy host's certificate names `mta-sts.elsewhere.test` only.
pub const WRONG_NAME: &str = "wrongname.sts.test";
/// The policy host's certificate expired in 2021.
pub const EXPIRED_CERT: &str = "expiredcert.sts.test";
/// The policy host's certificate comes from a CA nobody trusts.
pub const UNTRUSTED_CERT: &str = "untrusted.sts.test";
/// The response (head and policy, some 250 bytes) trickles out at 64 bytes a second (nginx
/// `limit_rate`): about 4 seconds in all.
pub const SLOW: &str = "slow.sts.test";
/// The policy host accepts connections and never says a word.
pub const SILENT: &str = "silent.sts.test";
/// Two `v=STSv1` records (with a good policy behind them).
pub const TWO_RECORDS: &str = "tworecords.sts.test";
/// A good policy but no `_mta-sts` record.
pub const NO_RECORD: &str = "norecord.sts.test";
/// A policy whose mode is `strict` (not a mode).
pub const MALFORMED: &str = "malformed.sts.test";
/// `enforce`, for a test that asks many times at once (its request count is its own).
pub const SHARED: &str = "shared.sts.test";
/// `enforce`, for a test that breaks and mends the policy host ([`MtaStsWorld::set_policy`]).
pub const KEEP: &str = "keep.sts.test";
/// `enforce`, for a test that changes the `_mta-sts` id ([`MtaStsWorld::zone`]).
pub const ID_CHANGE: &str = "idchange.sts.test";

/// How a site's policy host answers `GET /.well-known/mta-sts.txt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serve {
    /// 200, `text/plain`, this policy.
    Policy(&'static str),
    /// 200, `text/plain`, an `enforce` policy listing the site's first MX host.
    Enforce,
    /// 404.
    NotFound,
    /// 301 to the policy of [`ENFORCE`].
    Redirect,
    /// 200, `text/plain`, 70 KiB.
    Oversized,
    /// 200, `text/html`, the `enforce` policy.
    WrongType,
    /// The `enforce` policy behind a certificate for another name.
    WrongName,
    /// The `enforce` policy behind an expired certificate.
    ExpiredCertificate,
    /// The `enforce` policy behind a certificate from an unknown CA.
    UntrustedCertificate,
    /// The `enforce` policy at 64 bytes a second.
    Slow,
    /// Nothing: the connection is accepted and left silent.
    Silent,
}

/// One domain of the world.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// The policy domain.
    pub domain: &'static str,
    /// Its `_mta-sts` TXT records.
    pub sts: &'static [&'static str],
    /// Its `_smtp._tls` TXT records.
    pub tlsrpt: &'static [&'static str],
    /// Its MX hosts (first labels; each `LABEL.DOMAIN` resolves to 127.0.0.1).
    pub hosts: &'static [&'static str],
    /// How its policy host answers.
    pub serve: Serve,
}

/// The `enforce` policy of [`ENFORCE`].
pub const ENFORCE_POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.enforce.sts.test\r\nmax_age: 86400\r\n";

const fn site(domain: &'static str, id: &'static [&'static str], serve: Serve) -> Site {
    Site {
        domain,
        sts: id,
        tlsrpt: &[],
        hosts: &["mx"],
        serve,
    }
}

/// Every site of the world.
pub const SITES: &[Site] = &[
    Site {
        tlsrpt: &["v=TLSRPTv1; rua=mailto:tlsrpt@enforce.sts.test"],
        ..site(
            ENFORCE,
            &["v=STSv1; id=enforce1"],
            Serve::Policy(ENFORCE_POLICY),
        )
    },
    Site {
        tlsrpt: &["v=TLSRPTv1;rua=https://reports.testing.sts.test/v1"],
        ..site(
            TESTING,
            &["v=STSv1; id=testing1", "v=spf1 -all"],
            Serve::Policy(
                "version: STSv1\nmode: testing\nmx: mx.testing.sts.test\nmax_age: 3600\n",
            ),
        )
    },
    Site {
        tlsrpt: &[
            "v=TLSRPTv1; rua=mailto:a@none.sts.test",
            "v=TLSRPTv1; rua=mailto:b@none.sts.test",
        ],
        ..site(
            NONE,
            &["v=STSv1; id=none1"],
            Serve::Policy("version: STSv1\nmode: none\nmax_age: 600\n"),
        )
    },
    Site {
        tlsrpt: &["v=TLSRPTv1; ruf=mailto:a@wildcard.sts.test"],
        hosts: &["mx", "deep.mx"],
        ..site(
            WILDCARD,
            &["v=STSv1; id=wild1"],
            Serve::Policy(
                "version: STSv1\nmode: enforce\nmx: *.wildcard.sts.test\nmax_age: 86400\n",
            ),
        )
    },
    site(NOT_FOUND, &["v=STSv1; id=nf1"], Serve::NotFound),
    site(REDIRECT, &["v=STSv1; id=redirect1"], Serve::Redirect),
    site(OVERSIZED, &["v=STSv1; id=big1"], Serve::Oversized),
    site(WRONG_TYPE, &["v=STSv1; id=type1"], Serve::WrongType),
    site(WRONG_NAME, &["v=STSv1; id=name1"], Serve::WrongName),
    site(
        EXPIRED_CERT,
        &["v=STSv1; id=expired1"],
        Serve::ExpiredCertificate,
    ),
    site(
        UNTRUSTED_CERT,
        &["v=STSv1; id=untrusted1"],
        Serve::UntrustedCertificate,
    ),
    site(SLOW, &["v=STSv1; id=slow1"], Serve::Slow),
    site(SILENT, &["v=STSv1; id=silent1"], Serve::Silent),
    site(
        TWO_RECORDS,
        &["v=STSv1; id=first", "v=STSv1; id=second"],
        Serve::Enforce,
    ),
    site(NO_RECORD, &[], Serve::Enforce),
    site(
        MALFORMED,
        &["v=STSv1; id=bad1"],
        Serve::Policy("version: STSv1\nmode: strict\nmx: mx.malformed.sts.test\nmax_age: 86400\n"),
    ),
    site(SHARED, &["v=STSv1; id=shared1"], Serve::Enforce),
    site(KEEP, &["v=STSv1; id=keep1"], Serve::Enforce),
    site(ID_CHANGE, &["v=STSv1; id=first"], Serve::Enforce),
];

/// The `enforce` policy of `domain`, listing `mx.DOMAIN`, kept for a day.
pub fn enforce_policy(domain: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: mx.{domain}\nmax_age: 86400\n")
}

/// The running world.
pub struct MtaStsWorld {
    /// Its files: configurations, logs, certificates, the served policies.
    pub dir: PathBuf,
    /// The DNS server of the world (port 53 of a loopback address).
    pub dns: SocketAddr,
    /// Where nginx listens (port 443).
    pub nginx: Ipv4Addr,
    /// The silent policy host (port 443).
    pub silent: Ipv4Addr,
    /// The world's CA (PEM): every policy host's certificate comes from it, except
    /// [`UNTRUSTED_CERT`]'s.
    pub ca_file: PathBuf,
    /// The world's CA and the tests' own CA (`certs::certs().ca_file`) in one PEM file, for a
    /// connector's `ca_file` that must trust both its SMTP server and its policy host.
    pub trust_bundle: PathBuf,
    /// The DER of the world's CA.
    pub ca_der: Vec<u8>,
    /// The block of loopback addresses (`127.A.B.0/28`) the world holds.
    block: [u8; 3],
    /// The zone's children: the main dnsmasq and nginx.
    children: Mutex<Vec<Child>>,
}

/// The world, started on first use.
pub fn world() -> &'static MtaStsWorld {
    static WORLD: OnceLock<MtaStsWorld> = OnceLock::new();
    WORLD.get_or_init(start)
}

/// An extra DNS server: the world's records with some TXT records replaced; stopped on drop.
pub struct Zone {
    /// Where it answers (port 53).
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Zone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MtaStsWorld {
    /// The site of `domain`.
    pub fn site(&self, domain: &str) -> &'static Site {
        SITES
            .iter()
            .find(|site| site.domain == domain)
            .unwrap_or_else(|| panic!("{domain} is not a site of the world"))
    }

    /// Serves `policy` for `domain` from now on (`None`: 404, the file is gone).
    pub fn set_policy(&self, domain: &str, policy: Option<&str>) {
        assert!(
            [KEEP, ID_CHANGE].contains(&domain),
            "only KEEP and ID_CHANGE change during a test"
        );
        let file = self.policy_file(domain);
        match policy {
            Some(text) => {
                let staged = file.with_extension("new");
                std::fs::write(&staged, text).expect("write the policy");
                std::fs::rename(&staged, &file).expect("replace the policy");
            }
            None => {
                let _ = std::fs::remove_file(&file);
            }
        }
    }

    /// How many requests nginx has logged for `mta-sts.DOMAIN`, once the count has held still
    /// for 200 ms (nginx logs a request after its response has gone out).
    pub fn requests(&self, domain: &str) -> usize {
        let host = format!("mta-sts.{domain} ");
        let count = || {
            let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
            log.lines().filter(|line| line.starts_with(&host)).count()
        };
        let mut last = count();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(200));
            let now = count();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    /// nginx's error log.
    pub fn nginx_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Starts another DNS server with the world's records, except that each `(owner, records)`
    /// of `replaced` gives the TXT records of `owner` (e.g. `_mta-sts.idchange.sts.test`).
    pub fn zone(&self, replaced: &[(&str, &[&str])]) -> Zone {
        static NEXT: AtomicU8 = AtomicU8::new(10);
        let host = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(host < 16, "at most six extra zones per test binary");
        let ip = self.address(host);
        let (child, addr) = start_dnsmasq(&self.dir, ip, &self.zone_config(ip, replaced))
            .unwrap_or_else(|e| panic!("extra zone on {ip}: {e}"));
        Zone { addr, child }
    }

    /// Whether nginx and dnsmasq are still running.
    pub fn running(&self) -> bool {
        self.children
            .lock()
            .map(|mut children| {
                children
                    .iter_mut()
                    .all(|child| matches!(child.try_wait(), Ok(None)))
            })
            .unwrap_or(false)
    }

    fn address(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.block;
        Ipv4Addr::new(127, a, b, c + host)
    }

    fn policy_file(&self, domain: &str) -> PathBuf {
        self.dir
            .join("sites")
            .join(domain)
            .join(".well-known/mta-sts.txt")
    }

    /// dnsmasq's configuration for a zone on `ip`.
    fn zone_config(&self, ip: Ipv4Addr, replaced: &[(&str, &[&str])]) -> String {
        let mut txt: Vec<(String, Vec<String>)> = Vec::new();
        let mut lines = vec![
            "port=53".to_owned(),
            format!("listen-address={ip}"),
            "bind-interfaces".into(),
            "no-resolv".into(),
            "no-hosts".into(),
            "no-poll".into(),
            "pid-file=".into(),
            "log-queries".into(),
            "local=/sts.test/".into(),
        ];
        for site in SITES {
            let policy_host = if site.serve == Serve::Silent {
                self.silent
            } else {
                self.nginx
            };
            lines.push(format!("host-record=mta-sts.{},{policy_host}", site.domain));
            for host in site.hosts {
                lines.push(format!("host-record={host}.{},127.0.0.1", site.domain));
            }
            if let Some(first) = site.hosts.first() {
                lines.push(format!("mx-host={0},{first}.{0},10", site.domain));
            }
            let owned = |records: &[&str]| records.iter().map(|r| r.to_string()).collect();
            txt.push((format!("_mta-sts.{}", site.domain), owned(site.sts)));
            txt.push((format!("_smtp._tls.{}", site.domain), owned(site.tlsrpt)));
        }
        for (owner, records) in replaced {
            txt.retain(|(name, _)| name != owner);
            txt.push((
                owner.to_string(),
                records.iter().map(|r| r.to_string()).collect(),
            ));
        }
        for (owner, records) in txt {
            for record in records {
                assert!(!record.contains('"'), "no quotes in a fixture TXT record");
                lines.push(format!("txt-record={owner},\"{record}\""));
            }
        }
        lines.join("\n") + "\n"
    }

    /// nginx's configuration.
    fn nginx_config(&self) -> String {
        let dir = self.dir.display();
        let mut servers = String::new();
        for site in SITES.iter().filter(|site| site.serve != Serve::Silent) {
            let location = match site.serve {
                Serve::NotFound => "return 404;".to_owned(),
                Serve::Redirect => {
                    format!("return 301 https://mta-sts.{ENFORCE}/.well-known/mta-sts.txt;")
                }
                Serve::WrongType => "types { } default_type text/html;".to_owned(),
                Serve::Slow => "limit_rate 64; limit_rate_after 0;".to_owned(),
                _ => String::new(),
            };
            servers.push_str(&format!(
                "  server {{
    listen {nginx}:443 ssl;
    server_name mta-sts.{domain};
    ssl_certificate {dir}/tls/{domain}.pem;
    ssl_certificate_key {dir}/tls/{domain}.key;
    root {dir}/sites/{domain};
    location = /.well-known/mta-sts.txt {{ {location} }}
  }}
",
                nginx = self.nginx,
                domain = site.domain,
            ));
        }
        format!(
            "user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
  log_format world '$host $status $body_bytes_sent';
  access_log {dir}/access.log world;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  sendfile off;
  types {{ text/plain txt; }}
  default_type application/octet-stream;
{servers}}}
"
        )
    }
}

/// The certificates and served files of every site, under `dir`.
fn write_sites(dir: &Path, ca: &Ca, other_ca: &Ca) {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
    for (serial, site) in (0x5700u64..).zip(SITES) {
        let policy_host = format!("mta-sts.{}", site.domain);
        let (names, validity, issuer) = match site.serve {
            Serve::WrongName => (
                vec!["mta-sts.elsewhere.test"],
                ((2020, 1, 1), certs::LEAF_NOT_AFTER),
                ca,
            ),
            Serve::ExpiredCertificate => {
                (vec![policy_host.as_str()], ((2020, 1, 1), (2021, 1, 1)), ca)
            }
            Serve::UntrustedCertificate => (
                vec![policy_host.as_str()],
                ((2020, 1, 1), certs::LEAF_NOT_AFTER),
                other_ca,
            ),
            _ => (
                vec![policy_host.as_str()],
                ((2020, 1, 1), certs::LEAF_NOT_AFTER),
                ca,
            ),
        };
        certs::leaf(
            &tls,
            &LeafSpec {
                file: site.domain,
                common_name: &policy_host,
                names: &names,
                not_before: validity.0,
                not_after: validity.1,
                serial,
            },
            Some(issuer),
        );
        let body = match site.serve {
            Serve::Policy(text) => text.to_owned(),
            Serve::Oversized => {
                let mut body = enforce_policy(site.domain);
                while body.len() < 70 * 1024 {
                    body.push_str(&format!("padding: {}\n", "p".repeat(100)));
                }
                body
            }
            _ => enforce_policy(site.domain),
        };
        let well_known = dir.join("sites").join(site.domain).join(".well-known");
        std::fs::create_dir_all(&well_known).expect("site dir");
        std::fs::write(well_known.join("mta-sts.txt"), body).expect("write policy");
    }
}

fn start() -> MtaStsWorld {
    let dir = super::kept_dir("mailflow-mta-sts-");
    let ca = certs::ca("mailflow MTA-STS world CA");
    let other_ca = certs::ca("mailflow MTA-STS stranger CA");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let trust_bundle = dir.join("trust-bundle.pem");
    let tests_ca = std::fs::read_to_string(&certs::certs().ca_file).expect("read the tests' CA");
    std::fs::write(&trust_bundle, format!("{tests_ca}{}", ca.pem())).expect("write bundle");
    let ca_der = CertificateDer::from_pem_slice(ca.pem().as_bytes())
        .expect("CA DER")
        .to_vec();
    write_sites(&dir, &ca, &other_ca);

    let pid = std::process::id();
    for attempt in 0..40u32 {
        let block_index = (pid.wrapping_add(attempt.wrapping_mul(7919))) % 1600;
        let block = [
            83 + (block_index / 16) as u8,
            (block_index % 16 * 16) as u8,
            0,
        ];
        let world = MtaStsWorld {
            dir: dir.clone(),
            dns: SocketAddr::from((Ipv4Addr::new(127, block[0], block[1], 1), 53)),
            nginx: Ipv4Addr::new(127, block[0], block[1], 2),
            silent: Ipv4Addr::new(127, block[0], block[1], 3),
            ca_file: ca_file.clone(),
            trust_bundle: trust_bundle.clone(),
            ca_der: ca_der.clone(),
            block,
            children: Mutex::new(Vec::new()),
        };
        match world.launch() {
            Ok(()) => return world,
            Err(e) => eprintln!(
                "MTA-STS world on block 127.{}.{}.0: {e}",
                block[0], block[1]
            ),
        }
    }
    panic!("the MTA-STS world did not start; see {}", dir.display());
}

impl MtaStsWorld {
    /// Starts the silent host, dnsmasq and nginx on this world's addresses.
    fn launch(&self) -> Result<(), String> {
        let silent =
            TcpListener::bind((self.silent, 443)).map_err(|e| format!("silent host: {e}"))?;
        let (dns, _) = start_dnsmasq(
            &self.dir,
            self.address(1),
            &self.zone_config(self.address(1), &[]),
        )?;
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, self.nginx_config()).map_err(|e| e.to_string())?;
        let mut nginx = Command::new("/usr/sbin/nginx")
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start /usr/sbin/nginx: {e}"))?;
        super::reaper::on_exit(&format!("kill {} 2>/dev/null", nginx.id()));
        let mut children = vec![dns];
        let ready = (0..100).any(|_| {
            if !matches!(nginx.try_wait(), Ok(None)) {
                return false;
            }
            let up =
                TcpStream::connect_timeout(&(self.nginx, 443).into(), Duration::from_millis(200))
                    .is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
            up
        });
        if !ready {
            let _ = nginx.kill();
            let _ = nginx.wait();
            for mut child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(format!("nginx did not start:\n{}", self.nginx_log()));
        }
        children.push(nginx);
        *self.children.lock().map_err(|e| e.to_string())? = children;
        hold_silently(silent);
        Ok(())
    }
}

/// Accepts connections on `listener` and keeps them open without a word (at most 256).
fn hold_silently(listener: TcpListener) {
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten().take(256) {
            held.push(stream);
        }
    });
}

/// Starts dnsmasq on `ip`:53 with `config`; returns it once it answers.
fn start_dnsmasq(dir: &Path, ip: Ipv4Addr, config: &str) -> Result<(Child, SocketAddr), String> {
    let conf = dir.join(format!("dnsmasq-{ip}.conf"));
    std::fs::write(&conf, config).map_err(|e| e.to_string())?;
    let mut child = Command::new("/usr/sbin/dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .arg(format!(
            "--log-facility={}",
            dir.join(format!("dnsmasq-{ip}.log")).display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start /usr/sbin/dnsmasq: {e}"))?;
    super::reaper::on_exit(&format!("kill {} 2>/dev/null", child.id()));
    let addr = SocketAddr::from((IpAddr::V4(ip), 53));
    for _ in 0..50 {
        if !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        let probe = format!("mta-sts.{ENFORCE}");
        if query(addr, &probe, TYPE_A, Duration::from_millis(200))
            .is_ok_and(|answer| answer.rcode == 0 && !answer.records.is_empty())
        {
            return Ok((child, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let mut error = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut error);
    }
    let _ = child.wait();
    Err(format!("dnsmasq on {ip} did not answer: {error}"))
}
