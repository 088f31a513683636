//! A real DNSSEC world on loopback, from Debian packages: NSD serving zones that the test signs
//! (ldns-keygen, ldns-signzone from ldnsutils), and Unbound validating in front of it with the
//! test's own root trust anchor.
//!
//! - A signed root zone `.` and a signed `test.` are always there; every zone given hangs below
//!   its closest enclosing zone, delegated with a DS when it is signed and without one when it
//!   is not. All keys are ECDSA P-256 (algorithm 13), one combined signing key per zone, so that
//!   every answer fits in a UDP datagram.
//! - [`ZoneKind::Expired`] signs with an inception and expiration in the past;
//!   [`ZoneSpec::tamper`] breaks the signature over one RRset after signing;
//!   [`ZoneKind::Lame`] is delegated (without DS) to a second NSD that serves nothing and
//!   answers REFUSED, so every query under it gets a fast SERVFAIL from Unbound.
//! - Unbound reaches every zone through a `stub-zone` (NSD listens on a free high port, not 53),
//!   serves extended DNS errors (`ede: yes`) and has `test.` out of its built-in local zones.
//! - [`Meddler`] sits between a client and Unbound and spoils chosen answers: a SERVFAIL or no
//!   answer for one question, or every signature stripped.
//!
//! Everything lives in a temporary directory; the daemons stop when the [`World`] is dropped, or
//! (for [`standard`]) when the test binary exits.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};

use super::dns_wire::query;

/// The TTL of every record.
const TTL: u32 = 300;
/// DNS type SOA, for the readiness checks.
const TYPE_SOA: u16 = 6;

/// How a zone is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// Signed, delegated with a DS.
    Signed,
    /// Not signed, delegated without DS: an insecure zone.
    Unsigned,
    /// Signed, delegated with a DS, but every signature expired yesterday.
    Expired,
    /// Delegated without DS to a server that refuses it: every lookup under it SERVFAILs.
    Lame,
}

/// One zone of the world: its name, kind, records and the signatures to break.
#[derive(Clone, Debug)]
pub struct ZoneSpec {
    /// The zone's name, without the trailing dot (e.g. `example.test`).
    pub name: String,
    /// How it is served.
    pub kind: ZoneKind,
    /// Zone-file lines; owner names are relative to the zone unless they end with a dot.
    records: Vec<String>,
    /// (owner, type) of the RRsets whose signature is broken after signing.
    tampered: Vec<(String, String)>,
    /// Authenticated denial with NSEC3 (no salt, no extra iterations, RFC 9276) instead of NSEC.
    nsec3: bool,
}

impl ZoneSpec {
    fn new(name: &str, kind: ZoneKind) -> Self {
        ZoneSpec {
            name: name.trim_end_matches('.').to_owned(),
            kind,
            records: Vec::new(),
            tampered: Vec::new(),
            nsec3: false,
        }
    }

    /// A signed zone, delegated with a DS.
    pub fn signed(name: &str) -> Self {
        Self::new(name, ZoneKind::Signed)
    }

    /// An unsigned zone, delegated without DS.
    pub fn unsigned(name: &str) -> Self {
        Self::new(name, ZoneKind::Unsigned)
    }

    /// A signed zone whose signatures have all expired.
    pub fn expired(name: &str) -> Self {
        Self::new(name, ZoneKind::Expired)
    }

    /// A lame delegation: lookups under it SERVFAIL.
    pub fn lame(name: &str) -> Self {
        Self::new(name, ZoneKind::Lame)
    }

    /// Adds a zone-file line, e.g. `"mx IN A 127.0.0.1"` or `"_25._tcp.mx IN TLSA 3 1 1 …"`.
    pub fn record(mut self, line: &str) -> Self {
        self.records.push(line.to_owned());
        self
    }

    /// Signs with NSEC3 instead of NSEC.
    pub fn nsec3(mut self) -> Self {
        self.nsec3 = true;
        self
    }

    /// Breaks the signature over the `rtype` RRset at `owner` (relative to the zone unless it
    /// ends with a dot) once the zone is signed.
    pub fn tamper(mut self, owner: &str, rtype: &str) -> Self {
        self.tampered
            .push((absolute(owner, &self.name), rtype.to_ascii_uppercase()));
        self
    }
}

/// `owner` as an absolute name, lower case, relative to `zone` unless it ends with a dot.
fn absolute(owner: &str, zone: &str) -> String {
    let name = if owner.ends_with('.') {
        owner.to_owned()
    } else if owner == "@" {
        format!("{zone}.")
    } else if zone.is_empty() {
        format!("{owner}.")
    } else {
        format!("{owner}.{zone}.")
    };
    name.to_ascii_lowercase()
}

/// The running world.
pub struct World {
    /// Unbound: a validating recursive resolver (UDP and TCP).
    pub resolver: SocketAddr,
    /// NSD with every zone (UDP and TCP); authoritative only.
    pub authority: SocketAddr,
    /// Where keys, zones, configurations and logs are.
    pub dir: PathBuf,
    /// A trust anchor file with the root's DS record.
    pub root_ds: PathBuf,
    /// A trust anchor file with the root's DNSKEY record.
    pub root_dnskey: PathBuf,
    /// For each signed zone (`test`, `example.test`, …), a trust anchor file with its DNSKEY.
    pub dnskeys: HashMap<String, PathBuf>,
    /// The daemons, stopped on drop.
    daemons: Mutex<Vec<Child>>,
}

impl World {
    /// Generates keys, signs `zones` (below a signed `.` and `test.`), and starts NSD, the
    /// refusing NSD for lame zones, and Unbound. Panics with the logs if anything fails.
    pub fn start(zones: &[ZoneSpec]) -> World {
        Self::start_with_resolver(zones, None)
    }

    /// Like [`World::start`], with Unbound listening on `resolver` when given (for a client
    /// that can only ask port 53, e.g. a Postfix reading a `resolv.conf`), else on a free port.
    pub fn start_with_resolver(zones: &[ZoneSpec], resolver: Option<SocketAddr>) -> World {
        let dir = super::kept_dir("mailflow-dnssec-");
        let built = build_zones(&dir, zones);
        let mut last_error = String::new();
        for _ in 0..5 {
            let listen = resolver.unwrap_or_else(|| ([127, 0, 0, 1], free_port()).into());
            match start_daemons(&dir, &built, listen) {
                Ok(world) => return world,
                Err(error) => last_error = error,
            }
        }
        panic!("the DNSSEC world did not start: {last_error}");
    }

    /// Unbound's log (validation failures are logged at `val-log-level: 2`).
    pub fn resolver_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("unbound.log")).unwrap_or_default()
    }

    /// Whether every daemon still runs.
    pub fn running(&self) -> bool {
        self.daemons
            .lock()
            .map(|mut daemons| daemons.iter_mut().all(|d| matches!(d.try_wait(), Ok(None))))
            .unwrap_or(false)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Ok(mut daemons) = self.daemons.lock() {
            for daemon in daemons.iter_mut() {
                stop(daemon);
            }
        }
    }
}

/// Stops a daemon with SIGTERM (NSD then stops its server processes too), waiting up to 5 s.
fn stop(daemon: &mut Child) {
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = daemon.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// The signed zones and anchors, ready to serve.
struct Built {
    /// (zone, zone file name in the directory) for NSD.
    served: Vec<(String, String)>,
    /// Zones delegated to the refusing server.
    lame: Vec<String>,
    root_ds: PathBuf,
    root_dnskey: PathBuf,
    dnskeys: HashMap<String, PathBuf>,
}

/// Writes and signs every zone in `dir`, children before parents (a parent carries its
/// children's DS records), the root last.
fn build_zones(dir: &Path, zones: &[ZoneSpec]) -> Built {
    let root = ZoneSpec::signed("").record("ns.test. IN A 127.0.0.1");
    let tld = ZoneSpec::signed("test").record("ns IN A 127.0.0.1");
    let mut all = vec![root, tld];
    all.extend(zones.iter().cloned());
    let names: Vec<String> = all.iter().map(|z| z.name.clone()).collect();
    all.sort_by_key(|zone| std::cmp::Reverse(labels(&zone.name)));
    // Delegation lines (NS, and DS for a signed child) waiting for each parent zone.
    let mut delegations: HashMap<String, Vec<String>> = HashMap::new();
    let mut built = Built {
        served: Vec::new(),
        lame: Vec::new(),
        root_ds: PathBuf::new(),
        root_dnskey: PathBuf::new(),
        dnskeys: HashMap::new(),
    };
    for zone in &all {
        let fqdn = absolute("@", &zone.name);
        let children = delegations.remove(&zone.name).unwrap_or_default();
        let mut parent_lines = vec![format!("{fqdn} IN NS ns.test.")];
        match zone.kind {
            ZoneKind::Lame => built.lame.push(fqdn.clone()),
            ZoneKind::Unsigned => built
                .served
                .push((fqdn.clone(), write_zone(dir, zone, &children))),
            ZoneKind::Signed | ZoneKind::Expired => {
                let (file, key) = sign_zone(dir, zone, &children);
                built.served.push((fqdn.clone(), file));
                let ds = dir.join(format!("{key}.ds"));
                let dnskey = dir.join(format!("{key}.key"));
                parent_lines.push(read(&ds).trim().to_owned());
                if zone.name.is_empty() {
                    built.root_ds = ds;
                    built.root_dnskey = dnskey;
                } else {
                    built.dnskeys.insert(zone.name.clone(), dnskey);
                }
            }
        }
        if !zone.name.is_empty() {
            delegations
                .entry(parent_of(&zone.name, &names))
                .or_default()
                .extend(parent_lines);
        }
    }
    built
}

fn labels(name: &str) -> usize {
    if name.is_empty() {
        0
    } else {
        name.split('.').count()
    }
}

/// The closest zone of `names` strictly above `name` (the root at worst).
fn parent_of(name: &str, names: &[String]) -> String {
    let mut candidate = name;
    while let Some((_, rest)) = candidate.split_once('.') {
        if names.iter().any(|n| n == rest) {
            return rest.to_owned();
        }
        candidate = rest;
    }
    String::new()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Writes `zone`'s unsigned zone file (apex SOA and NS, its records, `delegations`); returns
/// the file name.
fn write_zone(dir: &Path, zone: &ZoneSpec, delegations: &[String]) -> String {
    let origin = absolute("@", &zone.name);
    let mut text = format!(
        "$ORIGIN {origin}\n$TTL {TTL}\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 {TTL}\n@ IN NS ns.test.\n"
    );
    for line in zone.records.iter().chain(delegations) {
        text.push_str(line);
        text.push('\n');
    }
    let file = format!(
        "{}zone",
        if zone.name.is_empty() {
            "root.".to_owned()
        } else {
            origin
        }
    );
    std::fs::write(dir.join(&file), text).expect("write a zone file");
    file
}

/// Writes, keys and signs `zone`; returns the signed file's name and the key's base name.
fn sign_zone(dir: &Path, zone: &ZoneSpec, delegations: &[String]) -> (String, String) {
    let file = write_zone(dir, zone, delegations);
    let origin = absolute("@", &zone.name);
    let key = run(
        dir,
        "ldns-keygen",
        &["-r", "/dev/urandom", "-a", "ECDSAP256SHA256", "-k", &origin],
    )
    .trim()
    .to_owned();
    let signed = format!("{file}.signed");
    let mut args = vec!["-f".to_owned(), signed.clone(), "-o".to_owned(), origin];
    if zone.nsec3 {
        args.extend(["-n".to_owned(), "-t".to_owned(), "0".to_owned()]);
    }
    if zone.kind == ZoneKind::Expired {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        args.extend([
            "-i".to_owned(),
            (now - 30 * 86400).to_string(),
            "-e".to_owned(),
            (now - 86400).to_string(),
        ]);
    }
    args.extend([file, key.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(dir, "ldns-signzone", &args);
    for (owner, rtype) in &zone.tampered {
        tamper(&dir.join(&signed), owner, rtype);
    }
    (signed, key)
}

/// Changes one character in the middle of the signature of the RRSIG over `owner` `rtype`.
fn tamper(path: &Path, owner: &str, rtype: &str) {
    let text = read(path);
    let mut changed = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let covers = fields.len() >= 5
                && fields[0].eq_ignore_ascii_case(owner)
                && fields[3] == "RRSIG"
                && fields[4].starts_with(&format!("{rtype} "));
            if !covers {
                return line.to_owned();
            }
            let (head, signature) = fields[4].rsplit_once(' ').expect("RRSIG rdata");
            let middle = signature.len() / 2;
            let replacement = if &signature[middle..=middle] == "A" {
                "B"
            } else {
                "A"
            };
            let spoiled = format!(
                "{head} {}{replacement}{}",
                &signature[..middle],
                &signature[middle + 1..]
            );
            changed += 1;
            let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            fields[4] = spoiled;
            fields.join("\t")
        })
        .collect();
    assert!(
        changed > 0,
        "no RRSIG over {owner} {rtype} in {}",
        path.display()
    );
    std::fs::write(path, lines.join("\n") + "\n").expect("write the tampered zone");
}

/// Runs `program` in `dir`; panics with its output unless it succeeds; returns its stdout.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} (is ldnsutils installed?): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A port of 127.0.0.1 free for both UDP and TCP a moment ago.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn nsd_config(dir: &Path, name: &str, port: u16, zones: &[(String, String)]) -> PathBuf {
    let d = dir.display();
    let mut text = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  chroot: \"\"\n  \
         zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/{name}.pid\"\n  \
         xfrdfile: \"{d}/{name}.xfrd\"\n  zonelistfile: \"{d}/{name}.zonelist\"\n  \
         logfile: \"{d}/{name}.log\"\n  server-count: 1\n  verbosity: 1\n\
         remote-control:\n  control-enable: no\n"
    );
    for (zone, file) in zones {
        text.push_str(&format!(
            "zone:\n  name: \"{zone}\"\n  zonefile: \"{file}\"\n"
        ));
    }
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, text).expect("write nsd.conf");
    path
}

fn unbound_config(
    dir: &Path,
    listen: SocketAddr,
    nsd: u16,
    refuser: u16,
    built: &Built,
) -> PathBuf {
    let d = dir.display();
    let anchor = built.root_ds.display();
    let (ip, port) = (listen.ip(), listen.port());
    let mut text = format!(
        "server:\n  interface: {ip}@{port}\n  port: {port}\n  do-ip6: no\n  \
         username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
         use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  val-log-level: 2\n  \
         log-servfail: yes\n  do-not-query-localhost: no\n  trust-anchor-file: \"{anchor}\"\n  \
         trust-anchor-signaling: no\n  root-key-sentinel: no\n  ede: yes\n  \
         module-config: \"validator iterator\"\n  access-control: 127.0.0.0/8 allow\n  \
         num-threads: 1\n  so-reuseport: no\n  qname-minimisation: no\n  \
         local-zone: \"test.\" nodefault\n\
         remote-control:\n  control-enable: no\n"
    );
    for (zone, _) in &built.served {
        text.push_str(&format!(
            "stub-zone:\n  name: \"{zone}\"\n  stub-addr: 127.0.0.1@{nsd}\n"
        ));
    }
    for zone in &built.lame {
        text.push_str(&format!(
            "stub-zone:\n  name: \"{zone}\"\n  stub-addr: 127.0.0.1@{refuser}\n"
        ));
    }
    let path = dir.join("unbound.conf");
    std::fs::write(&path, text).expect("write unbound.conf");
    path
}

/// Starts a daemon in the foreground; the reaper stops it at exit if nothing did before.
fn spawn(program: &str, args: &[&str], dir: &Path, log: &str) -> Result<Child, String> {
    let log_file = std::fs::File::create(dir.join(log)).map_err(|e| e.to_string())?;
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("start {program}: {e}"))?;
    super::reaper::on_exit(&format!("kill {} 2>/dev/null", child.id()));
    Ok(child)
}

/// Waits until `ready` holds, for at most 10 s, or until the daemon exits.
fn wait_until(daemon: &mut Child, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = daemon.try_wait() {
            return false;
        }
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn start_daemons(dir: &Path, built: &Built, resolver: SocketAddr) -> Result<World, String> {
    let (nsd_port, refuser_port) = (free_port(), free_port());
    let authority: SocketAddr = ([127, 0, 0, 1], nsd_port).into();
    let refuser: SocketAddr = ([127, 0, 0, 1], refuser_port).into();
    let mut daemons = Vec::new();
    let short = Duration::from_millis(300);
    let failure = |daemons: &mut Vec<Child>, what: &str| {
        for daemon in daemons.iter_mut() {
            stop(daemon);
        }
        let logs: String = [
            "nsd.log",
            "nsd.out",
            "refuser.log",
            "refuser.out",
            "unbound.log",
            "unbound.out",
        ]
        .iter()
        .map(|f| {
            format!(
                "--- {f}\n{}",
                std::fs::read_to_string(dir.join(f)).unwrap_or_default()
            )
        })
        .collect();
        Err(format!("{what} did not start\n{logs}"))
    };

    let conf = nsd_config(dir, "nsd", nsd_port, &built.served);
    let conf = conf.display().to_string();
    let mut nsd = spawn("/usr/sbin/nsd", &["-d", "-c", &conf], dir, "nsd.out")?;
    let ready = wait_until(&mut nsd, || {
        query(authority, "test.", TYPE_SOA, short).is_ok_and(|a| a.rcode == 0)
    });
    daemons.push(nsd);
    if !ready {
        return failure(&mut daemons, "NSD");
    }

    let conf = nsd_config(dir, "refuser", refuser_port, &[]);
    let conf = conf.display().to_string();
    let mut refusing = spawn("/usr/sbin/nsd", &["-d", "-c", &conf], dir, "refuser.out")?;
    let ready = wait_until(&mut refusing, || {
        query(refuser, "test.", TYPE_SOA, short).is_ok_and(|a| a.rcode == 5)
    });
    daemons.push(refusing);
    if !ready {
        return failure(&mut daemons, "the refusing NSD");
    }

    let conf = unbound_config(dir, resolver, nsd_port, refuser_port, built);
    let conf = conf.display().to_string();
    let mut unbound = spawn(
        "/usr/sbin/unbound",
        &["-d", "-c", &conf],
        dir,
        "unbound.out",
    )?;
    let ready = wait_until(&mut unbound, || {
        query(resolver, "ns.test.", super::dns_wire::TYPE_A, short)
            .is_ok_and(|a| a.rcode == 0 && !a.records.is_empty())
    });
    daemons.push(unbound);
    if !ready {
        return failure(&mut daemons, "Unbound");
    }
    Ok(World {
        resolver,
        authority,
        dir: dir.to_owned(),
        root_ds: built.root_ds.clone(),
        root_dnskey: built.root_dnskey.clone(),
        dnskeys: built.dnskeys.clone(),
        daemons: Mutex::new(daemons),
    })
}

/// The data of the standard world's TLSA records (`3 1 1`): 32 bytes of 0xab.
pub const TLSA_DATA: &str = "abababababababababababababababababababababababababababababababab";
/// A signed domain with `MX 10 mx.example.test`.
pub const SECURE_DOMAIN: &str = "example.test";
/// A host in a signed zone: A 127.0.0.1, AAAA ::1, and a TLSA `3 1 1` at `_25._tcp`.
pub const SECURE_HOST: &str = "mx.example.test";
/// A host in a signed zone without any TLSA record (a secure NXDOMAIN at `_25._tcp`).
pub const SECURE_NO_TLSA_HOST: &str = "plain.example.test";
/// A host in a signed zone whose `_tcp` subdomain is a lame delegation: its TLSA lookup SERVFAILs.
pub const SERVFAIL_TLSA_HOST: &str = "servfail.example.test";
/// A host in an unsigned zone, with A and a TLSA record.
pub const INSECURE_HOST: &str = "mx.insecure.test";
/// A host in a signed zone whose TLSA RRSIG is broken (its A is fine).
pub const BOGUS_TLSA_HOST: &str = "mx.badtlsa.test";
/// A host in a signed zone whose A RRSIG is broken (its TLSA is fine).
pub const BOGUS_A_HOST: &str = "mx.bada.test";
/// A host in a signed zone whose signatures have all expired.
pub const EXPIRED_HOST: &str = "mx.expired.test";
/// A host in a zone signed with NSEC3, with A and TLSA records; `plain.nsec3.test` has no TLSA.
pub const NSEC3_HOST: &str = "mx.nsec3.test";
/// A host in an NSEC3-signed zone without TLSA records.
pub const NSEC3_NO_TLSA_HOST: &str = "plain.nsec3.test";
/// A host in an unsigned zone delegated from the NSEC3-signed zone (the missing DS is proven by
/// NSEC3).
pub const NSEC3_INSECURE_HOST: &str = "mx.unsigned.nsec3.test";

/// The world the DNSSEC tests share, started on first use.
pub fn standard() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let host = |zone: ZoneSpec| {
            zone.record("mx IN A 127.0.0.1")
                .record(&format!("_25._tcp.mx IN TLSA 3 1 1 {TLSA_DATA}"))
        };
        World::start(&[
            host(ZoneSpec::signed("example.test"))
                .record("@ IN MX 10 mx.example.test.")
                .record("mx IN AAAA ::1")
                .record("plain IN A 127.0.0.1")
                .record("servfail IN A 127.0.0.1"),
            ZoneSpec::lame("_tcp.servfail.example.test"),
            host(ZoneSpec::unsigned("insecure.test")),
            host(ZoneSpec::signed("badtlsa.test")).tamper("_25._tcp.mx", "TLSA"),
            host(ZoneSpec::signed("bada.test")).tamper("mx", "A"),
            host(ZoneSpec::expired("expired.test")),
            host(ZoneSpec::signed("nsec3.test"))
                .nsec3()
                .record("plain IN A 127.0.0.1"),
            host(ZoneSpec::unsigned("unsigned.nsec3.test")),
        ])
    })
}

/// What a [`Meddler`] does to the questions it is told about.
#[derive(Clone, Debug)]
pub enum Meddle {
    /// Answers SERVFAIL to this question itself.
    Servfail(Name, RecordType),
    /// Never answers this question.
    Silence(Name, RecordType),
    /// Removes every RRSIG from the answers to questions at or below this name (a resolver that
    /// strips signatures; the root name strips them all).
    StripSignatures(Name),
}

/// A UDP forwarder in front of a resolver that spoils chosen answers (everything else passes
/// through unchanged) and counts the queries it gets. Stops when dropped.
pub struct Meddler {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
}

impl Meddler {
    /// Forwards to `upstream`, applying `rules`.
    pub fn start(upstream: SocketAddr, rules: Vec<Meddle>) -> Meddler {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the meddler");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("addr");
        let stopped = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (stop, count) = (stopped.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok((length, client)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = meddle(&buffer[..length], upstream, &rules) {
                    let _ = socket.send_to(&reply, client);
                }
            }
        });
        Meddler {
            addr,
            stopped,
            queries,
        }
    }

    /// How many queries it has received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Meddler {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// The reply to `request`: spoiled by `rules`, or `upstream`'s answer.
fn meddle(request: &[u8], upstream: SocketAddr, rules: &[Meddle]) -> Option<Vec<u8>> {
    let message = Message::from_vec(request).ok()?;
    let query = message.queries.first()?.clone();
    let asked =
        |name: &Name, rtype: &RecordType| query.name() == name && query.query_type() == *rtype;
    for rule in rules {
        match rule {
            Meddle::Servfail(name, rtype) if asked(name, rtype) => {
                let mut reply = Message::error_msg(
                    message.metadata.id,
                    message.metadata.op_code,
                    ResponseCode::ServFail,
                );
                reply.add_query(query.clone());
                return reply.to_vec().ok();
            }
            Meddle::Silence(name, rtype) if asked(name, rtype) => return None,
            _ => {}
        }
    }
    let forward = UdpSocket::bind("127.0.0.1:0").ok()?;
    forward
        .set_read_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    forward.send_to(request, upstream).ok()?;
    let mut buffer = [0u8; 4096];
    let (length, _) = forward.recv_from(&mut buffer).ok()?;
    let answer = &buffer[..length];
    let strip = rules.iter().any(|rule| match rule {
        Meddle::StripSignatures(below) => below.zone_of(query.name()),
        Meddle::Servfail(..) | Meddle::Silence(..) => false,
    });
    if !strip {
        return Some(answer.to_vec());
    }
    let mut reply = Message::from_vec(answer).ok()?;
    for section in [
        &mut reply.answers,
        &mut reply.authorities,
        &mut reply.additionals,
    ] {
        section.retain(|record| record.record_type() != RecordType::RRSIG);
    }
    reply.to_vec().ok()
}
