//! The benchmark harness of issue 7: mailflow_exporter against Debian's
//! prometheus-blackbox-exporter (a hand-written `tcp` STARTTLS module), on the same loopback
//! targets, in the same run, alternating.
//!
//! Targets: a real Postfix 3.7 with STARTTLS (stock TLS settings, i.e. TLS 1.3 session tickets,
//! and a listener without tickets) and a fast in-process STARTTLS server (tokio-rustls).
//! Measures probes per second at several concurrencies, exporter CPU seconds per 1000 probes
//! (/proc/PID/stat), peak RSS (VmHWM), p50/p99 latency (scraper's and the exporter's own),
//! sequential latency against Postfix with and without tickets, and this exporter's `/probe` of
//! 10 to 10,000 connectors. Prints Markdown tables with the ratios.
//!
//! The DANE path (issue 13) runs in the same rounds: three more processes of this exporter probe
//! the same targets by the name `mx.bench.test`, whose A and TLSA records are DNSSEC-signed and
//! served on loopback (NSD, with Unbound validating in front): DANE off (`smtp_dane_mode:
//! none`), and DANE with `dnssec_validation: exporter` and `resolver`. blackbox_exporter has no
//! DANE; its plain STARTTLS probe of the same target is the reference.
//!
//! Run it with `scripts/bench` (which installs the Debian packages); `--smoke` or
//! `MAILFLOW_BENCH_SMOKE=1` for tiny numbers (under 30 s); `--out FILE` also writes the report.
//! Only 127.0.0.0/8 is ever contacted; every loop is bounded; every process started is stopped.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use support::client::{Clients, Mode};
use support::dane::Dane;
use support::http::Client;
use support::postfix::Postfix;
use support::procs::{Exporter, free_port};
use support::smtpd::InProcess;
use support::{metric, percentile, samples, share_above};

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";
/// The scrape timeout the scrapers announce for single-connector probes.
const PROBE_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// A single scrape may not take longer than this.
const PROBE_LIMIT: Duration = Duration::from_secs(15);

/// How much to measure.
struct Plan {
    smoke: bool,
    concurrencies: Vec<usize>,
    run_time: Duration,
    /// Per scraper and run, whatever the time.
    max_scrapes: usize,
    rounds: usize,
    sequential: usize,
    diagnostic: usize,
    /// Connector counts, and what their probes do.
    scale: Vec<(usize, Kind)>,
    scale_scrapes: usize,
    scale_listeners: u8,
}

/// What the connectors of a scale run do; the last two tell the TLS sessions' and the probes'
/// share of time and memory from the rest (tasks, state, metric encoding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `encryption_only`: greeting, EHLO, STARTTLS, TLS, EHLO, QUIT.
    StartTls,
    /// `tls_settings: none`: greeting, EHLO, QUIT.
    Plain,
    /// A closed port: connection refused at once.
    Refused,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::StartTls => "STARTTLS",
            Kind::Plain => "plain SMTP (no TLS)",
            Kind::Refused => "refused (closed port)",
        }
    }
}

/// The exporters under load, in the order of their processes and runs. The first two are the
/// comparison of issue 7; the others put the DANE path of issue 13 beside them, all against the
/// same targets in the same rounds. blackbox_exporter has no DANE: its plain STARTTLS probe of
/// the same target is what the DANE probes are compared with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// This exporter, connectors at `127.0.0.1` (no DNS, so DANE never applies).
    Literal,
    /// blackbox_exporter's STARTTLS module at `127.0.0.1`.
    Blackbox,
    /// This exporter, connectors at `mx.bench.test` with `smtp_dane_mode: none`: the name
    /// resolved by the plain resolver, no DNSSEC, no TLSA: DANE off.
    NameNoDane,
    /// `mx.bench.test` with `smtp_dane_mode: opportunistic` and `dnssec_validation: exporter`
    /// (the default): DNSSEC validated in-process from the test root's DS.
    DaneExporter,
    /// The same with `dnssec_validation: resolver`: Unbound validates, the AD bit is trusted.
    DaneResolver,
}

impl Variant {
    /// Every variant, in process order (`variant as usize` is its index).
    const ALL: [Variant; 5] = [
        Variant::Literal,
        Variant::Blackbox,
        Variant::NameNoDane,
        Variant::DaneExporter,
        Variant::DaneResolver,
    ];

    /// The process's short name (logs, errors).
    fn name(self) -> &'static str {
        match self {
            Variant::Literal => "mailflow",
            Variant::Blackbox => "blackbox",
            Variant::NameNoDane => "mailflow-name",
            Variant::DaneExporter => "mailflow-dane-exporter",
            Variant::DaneResolver => "mailflow-dane-resolver",
        }
    }

    /// The row label.
    fn label(self) -> &'static str {
        match self {
            Variant::Literal => "mailflow, 127.0.0.1 (no DNS)",
            Variant::Blackbox => "blackbox, 127.0.0.1, plain STARTTLS (it has no DANE)",
            Variant::NameNoDane => "mailflow, mx.bench.test, `smtp_dane_mode: none` (DANE off)",
            Variant::DaneExporter => "mailflow, mx.bench.test, DANE, `dnssec_validation: exporter`",
            Variant::DaneResolver => {
                "mailflow, mx.bench.test, DANE, `dnssec_validation: resolver` (Unbound)"
            }
        }
    }

    fn is_mailflow(self) -> bool {
        self != Variant::Blackbox
    }

    /// Whether it checks DANE.
    fn is_dane(self) -> bool {
        matches!(self, Variant::DaneExporter | Variant::DaneResolver)
    }
}

impl Plan {
    fn new(smoke: bool) -> Self {
        if smoke {
            Plan {
                smoke,
                concurrencies: vec![1, 4],
                run_time: Duration::from_millis(500),
                max_scrapes: 2_000,
                rounds: 1,
                sequential: 10,
                diagnostic: 5,
                scale: vec![
                    (10, Kind::StartTls),
                    (100, Kind::StartTls),
                    (100, Kind::Plain),
                    (100, Kind::Refused),
                ],
                scale_scrapes: 1,
                scale_listeners: 2,
            }
        } else {
            Plan {
                smoke,
                concurrencies: vec![1, 8, 32],
                run_time: Duration::from_secs(5),
                max_scrapes: 100_000,
                rounds: 2,
                sequential: 300,
                diagnostic: 100,
                scale: vec![
                    (10, Kind::StartTls),
                    (100, Kind::StartTls),
                    (1_000, Kind::StartTls),
                    (10_000, Kind::StartTls),
                    (10_000, Kind::Plain),
                    (10_000, Kind::Refused),
                ],
                scale_scrapes: 2,
                scale_listeners: 16,
            }
        }
    }
}

fn main() -> ExitCode {
    let mut smoke = std::env::var("MAILFLOW_BENCH_SMOKE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--out" => out = args.next().map(PathBuf::from),
            // `cargo bench` passes --bench; filters and the like mean nothing here.
            _ => {}
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let plan = Plan::new(smoke);
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(&plan) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Everything started is stopped by now (drop guards), also when interrupted.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(report) => {
            println!("{report}");
            if let Some(path) = out
                && let Err(error) = std::fs::write(&path, &report)
            {
                eprintln!("bench: write {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a probe is aimed at.
#[derive(Clone, Copy)]
struct Target {
    /// Connector name prefix in the exporter's configuration, and the table label.
    key: &'static str,
    label: &'static str,
    port: u16,
}

/// The load runs of every exporter against one target at one concurrency.
struct Group {
    target: Target,
    /// Concurrent scrapers.
    c: usize,
    /// One per exporter, in [`Variant::ALL`] order.
    runs: Vec<Run>,
    /// The load average when the group started (other work on the machine skews the figures).
    loadavg: String,
}

/// One load run of one exporter.
#[derive(Default, Clone)]
struct Run {
    scrapes: u64,
    probes: u64,
    failures: u64,
    wall: f64,
    cpu: f64,
    target_cpu: f64,
    /// DNS queries that reached the counter in front of Unbound during the run.
    dns_queries: u64,
    client: Vec<f64>,
    own: Vec<f64>,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.scrapes += other.scrapes;
        self.probes += other.probes;
        self.failures += other.failures;
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.target_cpu += other.target_cpu;
        self.dns_queries += other.dns_queries;
        self.client.extend(other.client);
        self.own.extend(other.own);
    }
    fn rate(&self) -> f64 {
        self.probes as f64 / self.wall
    }
    fn cpu_per_1000(&self) -> f64 {
        1000.0 * self.cpu / self.probes as f64
    }
    fn target_cpu_per_1000(&self) -> f64 {
        1000.0 * self.target_cpu / self.probes as f64
    }
    fn dns_queries_per_probe(&self) -> f64 {
        self.dns_queries as f64 / self.probes as f64
    }
}

struct Scale {
    connectors: usize,
    kind: Kind,
    /// VmRSS once the scrapes are answered.
    rss_after: f64,
    scrape_times: Vec<f64>,
    cpu_per_scrape: f64,
    idle_rss: f64,
    peak_rss: f64,
    body_mib: f64,
    ok: usize,
    own_p50: f64,
    own_p99: f64,
    own_max: f64,
}

struct Diagnostic {
    label: &'static str,
    tickets: usize,
    /// As the exporter does; `TCP_QUICKACK` once after the handshake; re-armed after every read.
    times: [Vec<f64>; 3],
}

async fn run(plan: &Plan) -> Result<String> {
    let started = Instant::now();
    let exporter_bin = PathBuf::from(env!("CARGO_BIN_EXE_mailflow_exporter"));
    if !Path::new(BLACKBOX).exists() {
        bail!("{BLACKBOX} not found: install prometheus-blackbox-exporter (scripts/bench does)");
    }
    let machine = machine()?;
    eprintln!(
        "bench: {} mode\n{machine}",
        if plan.smoke { "SMOKE" } else { "full" }
    );

    let tmp = tempfile::Builder::new()
        .prefix("mailflow-bench-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    // Postfix's unprivileged daemons must traverse it.
    Command::new("chmod").arg("755").arg(&dir).status()?;

    // One certificate for every target (ECDSA P-256, self-signed: nobody validates it).
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "mx.bench.test".into()])?;
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, certified.cert.pem())?;
    std::fs::write(&key_file, certified.signing_key.serialize_pem())?;

    let inproc = support::smtpd::start(
        certified.cert.der().to_vec(),
        certified.signing_key.serialize_der(),
        plan.scale_listeners,
    )?;
    let postfix = Postfix::start(&dir.join("postfix"), &cert_file, &key_file)?;
    let targets = [
        Target {
            key: "inproc",
            label: "in-process target",
            port: inproc.addrs[0].port(),
        },
        Target {
            key: "stock",
            label: "Postfix, stock TLS (tickets on)",
            port: postfix.stock,
        },
        Target {
            key: "noticket",
            label: "Postfix, tickets off",
            port: postfix.noticket,
        },
    ];
    eprintln!(
        "bench: targets up: in-process {} (+{} scale listeners), Postfix stock :{} noticket :{}",
        inproc.addrs[0],
        inproc.addrs.len() - 1,
        postfix.stock,
        postfix.noticket
    );

    // Diagnostics: which targets send tickets, and what a bare rustls client pays for them.
    let clients = Clients::new()?;
    let mut diagnostics = Vec::new();
    for target in &targets {
        let tickets = clients.count_tickets(target.port).await?;
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..plan.diagnostic {
            for (mode, samples) in [
                Mode::NoResumption,
                Mode::QuickAckOnce,
                Mode::QuickAckEveryRead,
            ]
            .into_iter()
            .zip(times.iter_mut())
            {
                samples.push(ms(clients.probe(target.port, mode).await?));
            }
        }
        diagnostics.push(Diagnostic {
            label: target.label,
            tickets,
            times,
        });
    }
    eprintln!("bench: diagnostics done ({:.0?})", started.elapsed());

    // The name mx.bench.test, with DNSSEC-signed A and TLSA records for every target's port.
    let dane = Dane::start(
        certified.cert.der(),
        &targets.iter().map(|t| t.port).collect::<Vec<_>>(),
        targets[0].port,
    )
    .await?;
    eprintln!(
        "bench: DNSSEC world up: {} (A, TLSA 3 1 1 {}…) via the counter at {}",
        support::dane::HOST,
        &dane.tlsa_data[..16],
        dane.nameserver
    );

    // The exporters, with equivalent configurations.
    let max_c = plan.concurrencies.iter().copied().max().unwrap_or(1);
    let blackbox_config = dir.join("blackbox.yml");
    std::fs::write(&blackbox_config, BLACKBOX_YAML)?;
    let mut exporters = Vec::new();
    for variant in Variant::ALL {
        let exporter = if variant == Variant::Blackbox {
            let blackbox_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            Exporter::start(
                variant.name(),
                Path::new(BLACKBOX),
                &[
                    format!("--config.file={}", blackbox_config.display()),
                    format!("--web.listen-address={blackbox_addr}"),
                ],
                blackbox_addr,
                dir.join("blackbox.log"),
            )
            .await?
        } else {
            let config = dir.join(format!("{}.yml", variant.name()));
            std::fs::write(&config, mailflow_yaml(variant, &targets, max_c, &dane))?;
            let log = dir.join(format!("{}.log", variant.name()));
            start_mailflow(variant.name(), &exporter_bin, &config, &log).await?
        };
        exporters.push(exporter);
    }
    let idle_rss = exporters
        .iter()
        .map(Exporter::rss_mib)
        .collect::<Result<Vec<_>>>()?;
    let idle_parts = [exporters[0].rss_parts_mib()?, exporters[1].rss_parts_mib()?];

    // The first probe of each of this exporter's processes, caches cold: what DNS and DNSSEC
    // cost before anything is cached.
    let mut cold = Vec::new();
    for (variant, exporter) in Variant::ALL.into_iter().zip(&exporters) {
        if variant.is_mailflow() {
            cold.push((variant, cold_probe(exporter, &dane).await?));
        }
    }

    // Warm-up, and a check that every exporter succeeds against every target.
    for target in &targets {
        for (variant, exporter) in Variant::ALL.into_iter().zip(&exporters) {
            let run = load(
                exporter,
                variant,
                *target,
                1,
                Duration::from_secs(30),
                3,
                None,
            )
            .await?;
            if run.failures > 0 {
                bail!(
                    "{} fails against {} in warm-up; its log:\n{}",
                    exporter.name,
                    target.label,
                    exporter.log_text()
                );
            }
        }
    }
    // The DANE probes really authenticate by DANE (and DANE off really looks nothing up).
    let mut dane_checks = Vec::new();
    for (variant, exporter) in Variant::ALL.into_iter().zip(&exporters) {
        if variant.is_mailflow() && variant != Variant::Literal {
            dane_checks.push(check_dane(exporter, variant).await?);
        }
    }

    // Sequential latency against Postfix, tickets on and off, alternating (issue 7's pair only).
    let mut sequential = Vec::new();
    for target in &targets[1..] {
        let mut runs = [Run::default(), Run::default()];
        for round in 0..plan.rounds {
            for i in order(round, 2) {
                let count = plan.sequential / plan.rounds;
                let r = load(
                    &exporters[i],
                    Variant::ALL[i],
                    *target,
                    1,
                    Duration::from_secs(120),
                    count,
                    Some(&postfix),
                )
                .await?;
                runs[i].add(r);
            }
        }
        sequential.push((*target, runs));
    }
    eprintln!("bench: sequential done ({:.0?})", started.elapsed());

    // Throughput at several concurrencies, in-process target and stock Postfix, every exporter
    // in turn, the order reversed every other round.
    let mut throughput = Vec::new();
    for target in &targets[..2] {
        for &c in &plan.concurrencies {
            let mut runs = vec![Run::default(); exporters.len()];
            let load_before = loadavg();
            for round in 0..plan.rounds {
                for i in order(round, exporters.len()) {
                    exporters[i].check_alive()?;
                    let pf = (target.key != "inproc").then_some(&postfix);
                    let queries = dane.queries();
                    let mut r = load(
                        &exporters[i],
                        Variant::ALL[i],
                        *target,
                        c,
                        plan.run_time,
                        plan.max_scrapes,
                        pf,
                    )
                    .await?;
                    r.dns_queries = dane.queries() - queries;
                    runs[i].add(r);
                }
            }
            let summary: Vec<String> = Variant::ALL
                .iter()
                .zip(&runs)
                .map(|(v, r)| {
                    format!(
                        "{} {:.0}/s {:.2} CPU-s/1000",
                        v.name(),
                        r.rate(),
                        r.cpu_per_1000()
                    )
                })
                .collect();
            eprintln!("bench: {} c={c}: {}", target.key, summary.join(", "));
            throughput.push(Group {
                target: *target,
                c,
                runs,
                loadavg: load_before,
            });
        }
    }
    let peak_rss = exporters
        .iter()
        .map(Exporter::peak_rss_mib)
        .collect::<Result<Vec<_>>>()?;
    let versions = versions(&exporter_bin);
    drop(exporters);
    drop(dane);

    // This exporter alone: one /probe of N connectors.
    let mut scale = Vec::new();
    for &(n, kind) in &plan.scale {
        let s = scale_run(n, kind, plan, &inproc, &exporter_bin, &dir).await?;
        eprintln!(
            "bench: /probe of {n}: {:.3} s, {}/{n} ok, peak RSS {:.1} MiB",
            s.scrape_times.first().copied().unwrap_or(f64::NAN),
            s.ok,
            s.peak_rss
        );
        scale.push(s);
    }

    let inproc_sessions = (
        inproc.counters.accepted.load(Ordering::Relaxed),
        inproc.counters.completed.load(Ordering::Relaxed),
    );
    let report = Report {
        plan,
        inproc_sessions,
        machine,
        versions,
        diagnostics,
        sequential,
        throughput,
        idle_rss,
        idle_parts,
        peak_rss,
        dane_checks,
        cold,
        loadavg_after: loadavg(),
        scale,
        elapsed: started.elapsed(),
    };
    drop(postfix);
    drop(inproc);
    Ok(report.render())
}

/// The order of `n` exporters in a round: forward, then backward in the next round, so that
/// each takes every place equally often over an even number of rounds.
fn order(round: usize, n: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn start_mailflow(
    name: &'static str,
    bin: &Path,
    config: &Path,
    log: &Path,
) -> Result<Exporter> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    Exporter::start(
        name,
        bin,
        &[
            "--config.file".to_string(),
            config.display().to_string(),
            "--web.listen-address".to_string(),
            addr.to_string(),
        ],
        addr,
        log.to_path_buf(),
    )
    .await
}

/// The configuration of this exporter as `variant`: `per_target` connectors `KEY-i` for each
/// target; the named variants ask the counter in front of Unbound, and the DANE ones also have
/// the connector `stale` (a TLSA record that matches nothing, on the first target's port).
fn mailflow_yaml(variant: Variant, targets: &[Target], per_target: usize, dane: &Dane) -> String {
    let mut y = String::from(
        "defaults:\n  timeout: 10s\n  helo_name: prober\n  tls_settings: encryption_only\n",
    );
    let dns = |mode: &str| {
        format!(
            "  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\n    dnssec_validation: {mode}\n    \
             trust_anchor_file: \"{}\"\n",
            dane.nameserver,
            dane.root_ds.display()
        )
    };
    let host = match variant {
        // No DNS at all: DANE (default `opportunistic`) never applies to an IP literal.
        Variant::Literal | Variant::Blackbox => "127.0.0.1",
        Variant::NameNoDane => {
            y.push_str("  smtp_dane_mode: none\n");
            y.push_str(&dns("exporter"));
            support::dane::HOST
        }
        Variant::DaneExporter => {
            y.push_str("  smtp_dane_mode: opportunistic\n");
            y.push_str(&dns("exporter"));
            support::dane::HOST
        }
        Variant::DaneResolver => {
            y.push_str("  smtp_dane_mode: opportunistic\n");
            y.push_str(&dns("resolver"));
            support::dane::HOST
        }
    };
    y.push_str("connectors:\n");
    for target in targets {
        // One connector per scraper: concurrent scrapes of one connector would share a probe.
        for i in 0..per_target {
            let _ = write!(
                y,
                "  - name: {}-{i}\n    smart_hosts: [{host}]\n    port: {}\n",
                target.key, target.port
            );
        }
    }
    if variant.is_dane() {
        let _ = write!(
            y,
            "  - name: stale\n    smart_hosts: [{}]\n    port: {}\n",
            support::dane::STALE_HOST,
            targets[0].port
        );
    }
    y
}

/// The first probe of a process, its caches cold.
struct Cold {
    /// The probe's own duration, ms.
    own_ms: f64,
    /// The CPU its threads used meanwhile (scrape included), ms.
    cpu_ms: f64,
    /// DNS queries that reached the counter meanwhile.
    queries: u64,
}

/// The first probe of `exporter`'s connector `inproc-0`, measured.
async fn cold_probe(exporter: &Exporter, dane: &Dane) -> Result<Cold> {
    let (cpu0, queries0) = (exporter.thread_cpu_seconds()?, dane.queries());
    let text = probe_text(exporter, "inproc-0").await?;
    let (cpu1, queries1) = (exporter.thread_cpu_seconds()?, dane.queries());
    if metric(&text, "mailflow_probe_success") != Some(1.0) {
        bail!("{}: the first probe failed:\n{text}", exporter.name);
    }
    Ok(Cold {
        own_ms: metric(&text, "mailflow_probe_duration_seconds").unwrap_or(f64::NAN) * 1000.0,
        cpu_ms: (cpu1 - cpu0) * 1000.0,
        queries: queries1 - queries0,
    })
}

/// One `/probe` of `connector` on `exporter`: the exposition text.
async fn probe_text(exporter: &Exporter, connector: &str) -> Result<String> {
    let mut client = Client::new(exporter.addr)?;
    let response = client
        .get(
            &format!("/probe?connector={connector}"),
            PROBE_SCRAPE_TIMEOUT,
            PROBE_LIMIT,
        )
        .await?;
    if response.status != 200 {
        bail!(
            "{}: /probe?connector={connector}: HTTP {}",
            exporter.name,
            response.status
        );
    }
    Ok(response.text().into_owned())
}

/// The value of the sample of `name` whose labels include every `label="value"` of `labels`.
fn labelled(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
                && labels.iter().all(|label| line.contains(label))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Checks, on the probes of the in-process target, that `variant` does what it stands for:
/// DANE authentication on a secure name (status `secure`, one usable TLSA record, a match) and a
/// failure for the stale record; or, with DANE off, no DNSSEC or DANE series at all. Returns
/// the line for the report.
async fn check_dane(exporter: &Exporter, variant: Variant) -> Result<String> {
    let text = probe_text(exporter, "inproc-0").await?;
    let host = format!("host=\"{}\"", support::dane::HOST);
    let secure = labelled(
        &text,
        "mailflow_dnssec_status",
        &[&host, "status=\"secure\""],
    );
    let usable = labelled(
        &text,
        "mailflow_dane_tlsa_records",
        &[&host, "usable=\"true\""],
    );
    let matched = labelled(
        &text,
        "mailflow_dane_match",
        &[&host, "address=\"127.0.0.1\""],
    );
    let success = metric(&text, "mailflow_probe_success");
    if !variant.is_dane() {
        if secure.is_some() || usable.is_some() || matched.is_some() || success != Some(1.0) {
            bail!("{}: DANE off, but:\n{text}", exporter.name);
        }
        return Ok(format!(
            "{}: probe success 1, no `mailflow_dnssec_status` or `mailflow_dane_*` series",
            variant.label()
        ));
    }
    if secure != Some(1.0) || usable != Some(1.0) || matched != Some(1.0) || success != Some(1.0) {
        bail!("{}: DANE did not authenticate:\n{text}", exporter.name);
    }
    let stale = probe_text(exporter, "stale").await?;
    let stale_failure = stale
        .lines()
        .find(|l| l.starts_with("mailflow_probe_failure_info{"))
        .unwrap_or_default()
        .to_string();
    let stale_match = labelled(&stale, "mailflow_dane_match", &["address=\"127.0.0.1\""]);
    if metric(&stale, "mailflow_probe_success") != Some(0.0)
        || stale_match != Some(0.0)
        || !stale_failure.contains("code=\"4.7.323\"")
    {
        bail!(
            "{}: a stale TLSA record did not fail the probe:\n{stale}",
            exporter.name
        );
    }
    Ok(format!(
        "{}: `mailflow_dnssec_status{{status=\"secure\"}}` 1, `mailflow_dane_tlsa_records{{usable=\"true\"}}` 1, \
         `mailflow_dane_match` 1, probe success 1; a stale `3 1 1` record at {}: `{}`",
        variant.label(),
        support::dane::STALE_HOST,
        stale_failure
    ))
}

/// The hand-written STARTTLS module a blackbox_exporter user writes (multi-line 250 replies:
/// `expect` skips lines until one matches, so `^250 ` waits for the last line).
const BLACKBOX_YAML: &str = r#"modules:
  smtp_starttls:
    prober: tcp
    timeout: 10s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^220"
        - send: "EHLO prober\r"
        - expect: "^250 "
        - send: "STARTTLS\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\r"
        - expect: "^250 "
        - send: "QUIT\r"
        - expect: "^221"
      tls_config:
        insecure_skip_verify: true
"#;

/// `c` scrapers, each with its own keep-alive connection, for `duration` or `max_scrapes` each.
async fn load(
    exporter: &Exporter,
    variant: Variant,
    target: Target,
    c: usize,
    duration: Duration,
    max_scrapes: usize,
    postfix: Option<&Postfix>,
) -> Result<Run> {
    let cpu0 = exporter.cpu_seconds()?;
    let target_cpu0 = postfix.map(Postfix::cpu_seconds).transpose()?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for i in 0..c {
        let path = if variant.is_mailflow() {
            format!("/probe?connector={}-{i}", target.key)
        } else {
            format!(
                "/probe?module=smtp_starttls&target=127.0.0.1:{}",
                target.port
            )
        };
        let addr = exporter.addr;
        let mailflow = variant.is_mailflow();
        tasks.push(tokio::spawn(async move {
            scraper(addr, path, mailflow, deadline, max_scrapes).await
        }));
    }
    let mut run = Run::default();
    for task in tasks {
        run.add(task.await??);
    }
    run.wall = started.elapsed().as_secs_f64();
    run.cpu = exporter.cpu_seconds()? - cpu0;
    if let (Some(pf), Some(before)) = (postfix, target_cpu0) {
        run.target_cpu = pf.cpu_seconds()? - before;
    }
    Ok(run)
}

async fn scraper(
    addr: SocketAddr,
    path: String,
    mailflow: bool,
    deadline: Instant,
    max_scrapes: usize,
) -> Result<Run> {
    let mut client = Client::new(addr)?;
    let mut run = Run::default();
    let mut first_total = None;
    let mut last_total = 0.0;
    for _ in 0..max_scrapes {
        if Instant::now() >= deadline {
            break;
        }
        let t0 = Instant::now();
        let response = client.get(&path, PROBE_SCRAPE_TIMEOUT, PROBE_LIMIT).await?;
        let elapsed = ms(t0.elapsed());
        run.scrapes += 1;
        let text = response.text();
        let (success, duration) = if mailflow {
            if let Some(total) = metric(&text, "mailflow_probes_total") {
                first_total.get_or_insert(total);
                last_total = total;
            }
            (
                metric(&text, "mailflow_probe_success"),
                metric(&text, "mailflow_probe_duration_seconds"),
            )
        } else {
            (
                metric(&text, "probe_success"),
                metric(&text, "probe_duration_seconds"),
            )
        };
        if response.status != 200 || success != Some(1.0) {
            run.failures += 1;
            if run.failures == 1 {
                eprintln!(
                    "bench: a failed probe ({path}, HTTP {}):\n{}",
                    response.status,
                    text.lines()
                        .filter(|l| !l.starts_with('#'))
                        .take(20)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
        run.client.push(elapsed);
        if let Some(d) = duration {
            run.own.push(d * 1000.0);
        }
    }
    run.probes = match first_total {
        // Probes the exporter really ran (scrapes sharing a probe would count once).
        Some(first) if mailflow => (last_total - first + 1.0) as u64,
        _ => run.scrapes,
    };
    Ok(run)
}

async fn scale_run(
    n: usize,
    kind: Kind,
    plan: &Plan,
    inproc: &InProcess,
    bin: &Path,
    dir: &Path,
) -> Result<Scale> {
    let mut y = format!(
        "defaults:\n  timeout: 60s\n  helo_name: prober\n  tls_settings: {}\nconnectors:\n",
        if kind == Kind::StartTls {
            "encryption_only"
        } else {
            "none"
        }
    );
    // Nothing listens there.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    for i in 0..n {
        // Spread over the listeners (127.0.0.1 .. 127.0.0.K): one accept queue each.
        let addr = match kind {
            Kind::Refused => closed,
            _ => inproc.addrs[i % inproc.addrs.len()],
        };
        let _ = write!(
            y,
            "  - name: scale-{i}\n    smart_hosts: [{}]\n    port: {}\n",
            addr.ip(),
            addr.port()
        );
    }
    let tag = kind.label().split(' ').next().unwrap_or_default();
    let config = dir.join(format!("scale-{n}-{tag}.yml"));
    std::fs::write(&config, y)?;
    let log = dir.join(format!("scale-{n}-{tag}.log"));
    let mut exporter = start_mailflow("mailflow", bin, &config, &log).await?;
    let idle_rss = exporter.rss_mib()?;
    let cpu0 = exporter.cpu_seconds()?;
    let mut client = Client::new(exporter.addr)?;
    let mut scrape_times = Vec::new();
    let mut first = None;
    for _ in 0..plan.scale_scrapes {
        let t0 = Instant::now();
        let response = client
            .get("/probe", Duration::from_secs(90), Duration::from_secs(120))
            .await
            .with_context(|| format!("/probe of {n} connectors"))?;
        scrape_times.push(t0.elapsed().as_secs_f64());
        if response.status != 200 {
            bail!("/probe of {n}: HTTP {}", response.status);
        }
        if first.is_none() {
            first = Some(response);
        }
    }
    exporter.check_alive()?;
    let cpu = exporter.cpu_seconds()? - cpu0;
    let peak_rss = exporter.peak_rss_mib()?;
    let rss_after = exporter.rss_mib()?;
    let first = first.context("no scrape")?;
    let text = first.text();
    let ok = samples(&text, "mailflow_probe_success")
        .filter(|&v| v == 1.0)
        .count();
    let own: Vec<f64> = samples(&text, "mailflow_probe_duration_seconds")
        .map(|v| v * 1000.0)
        .collect();
    if ok < n && kind != Kind::Refused {
        eprintln!(
            "bench: /probe of {n}: only {ok} ok; failures:\n{}",
            text.lines()
                .filter(|l| l.starts_with("mailflow_probe_failure_info"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(Scale {
        connectors: n,
        kind,
        rss_after,
        cpu_per_scrape: cpu / scrape_times.len() as f64,
        scrape_times,
        idle_rss,
        peak_rss,
        body_mib: first.body.len() as f64 / (1024.0 * 1024.0),
        ok,
        own_p50: percentile(&own, 50.0),
        own_p99: percentile(&own, 99.0),
        own_max: percentile(&own, 100.0),
    })
}

fn machine() -> Result<String> {
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown", |(_, m)| m.trim())
        .to_string();
    let free = command_output("free", &["-h"]);
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_string();
    Ok(format!(
        "- date: {}\n- CPU: {model}, nproc = {nproc}\n- memory (free -h, total): {mem}\n- kernel: Linux {}, \
         open files limit {nofile}\n- load average before the run (other work on the machine skews the figures): {}",
        date.trim(),
        kernel.trim(),
        loadavg()
    ))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn versions(exporter_bin: &Path) -> String {
    let package = |name: &str| command_output("dpkg-query", &["-W", "-f", "${Version}", name]);
    let openssl = command_output("openssl", &["version"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    let revision = command_output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
    let dirty = command_output("git", &["-C", repo, "status", "--porcelain", "--", "src"]);
    let revision = format!(
        "commit {}{}",
        revision.trim(),
        if dirty.trim().is_empty() {
            ""
        } else {
            " with uncommitted changes in src/"
        }
    );
    format!(
        "- mailflow_exporter: {} (release build, {revision})\n- prometheus-blackbox-exporter {} (Debian)\n\
         - Postfix {} (Debian) with {}",
        exporter_bin.display(),
        package("prometheus-blackbox-exporter").trim(),
        package("postfix").trim(),
        openssl.lines().next().unwrap_or("?").trim()
    )
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default()
}

struct Report<'a> {
    plan: &'a Plan,
    /// Sessions the in-process target accepted, and completed through QUIT after TLS.
    inproc_sessions: (u64, u64),
    machine: String,
    versions: String,
    diagnostics: Vec<Diagnostic>,
    sequential: Vec<(Target, [Run; 2])>,
    throughput: Vec<Group>,
    /// VmRSS at start, per exporter (in [`Variant::ALL`] order).
    idle_rss: Vec<f64>,
    /// RssAnon and RssFile at start.
    idle_parts: [(f64, f64); 2],
    /// VmHWM after all load runs, per exporter.
    peak_rss: Vec<f64>,
    /// What the DANE checks before the load found, one line per named variant.
    dane_checks: Vec<String>,
    /// The first probe of each of this exporter's processes.
    cold: Vec<(Variant, Cold)>,
    /// The load average once the measuring was done.
    loadavg_after: String,
    scale: Vec<Scale>,
    elapsed: Duration,
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "–".to_string()
    } else {
        format!("{:.2}", a / b)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

impl Report<'_> {
    /// The DANE section: every exporter against the same targets, DANE on and off, with the
    /// ratios to blackbox_exporter's plain STARTTLS probe and to this exporter's probe of the IP
    /// literal, and each process's memory.
    fn render_dane(&self, o: &mut String) {
        let literal = Variant::Literal as usize;
        let blackbox = Variant::Blackbox as usize;
        let _ = writeln!(
            o,
            "\n### DANE (issue 13): the same targets by name, with DNSSEC-signed A and TLSA records\n\n\
             `{host}` has A 127.0.0.1 and, at `_PORT._tcp.{host}` for each target's port, a TLSA `3 1 1` record of the \
             targets' key, in the zone `bench.test` signed with ldns-signzone under a test root (ECDSA P-256, TTL 300 s), \
             served by NSD, with Unbound validating in front (the system tier's DNSSEC world). The named exporters ask \
             a counting forwarder in front of Unbound; \"DNS queries / probe\" is what reached it per probe. \
             All five processes ran in the same rounds (order reversed every other round). **blackbox_exporter has no \
             DANE**: its row is its plain STARTTLS probe of the same target (`127.0.0.1:PORT`, the module above), the \
             reference every \"÷ blackbox\" ratio divides by.\n\nChecked before the load (one probe of the in-process \
             target each):\n",
            host = support::dane::HOST
        );
        for line in &self.dane_checks {
            let _ = writeln!(o, "- {line}");
        }
        let _ = writeln!(
            o,
            "\n| target | c | exporter | probes | failed | probes/s | CPU s/1000 | CPU ÷ blackbox | CPU ÷ mailflow 127.0.0.1 | \
             own p50 / p99 ms | scrape p50 / p99 ms | DNS queries / probe |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for group in &self.throughput {
            let (b, l) = (&group.runs[blackbox], &group.runs[literal]);
            for (variant, r) in Variant::ALL.iter().zip(&group.runs) {
                let dns = if variant.is_mailflow() && *variant != Variant::Literal {
                    format!("{:.3}", r.dns_queries_per_probe())
                } else {
                    "–".to_string()
                };
                let _ = writeln!(
                    o,
                    "| {} (load {}) | {} | {} | {} | {} | {:.0} | {:.3} | {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {dns} |",
                    group.target.label,
                    group.loadavg,
                    group.c,
                    variant.label(),
                    r.probes,
                    r.failures,
                    r.rate(),
                    r.cpu_per_1000(),
                    ratio(r.cpu_per_1000(), b.cpu_per_1000()),
                    ratio(r.cpu_per_1000(), l.cpu_per_1000()),
                    percentile(&r.own, 50.0),
                    percentile(&r.own, 99.0),
                    percentile(&r.client, 50.0),
                    percentile(&r.client, 99.0),
                );
            }
        }
        let _ = writeln!(
            o,
            "\nThe first probe of each process, caches cold (the in-process target; CPU from the threads' \
             `schedstat`, the scrape included):\n\n\
             | exporter process | probe ms | CPU ms | DNS queries |\n|---|---:|---:|---:|"
        );
        for (variant, c) in &self.cold {
            let _ = writeln!(
                o,
                "| {} | {:.2} | {:.2} | {} |",
                variant.label(),
                c.own_ms,
                c.cpu_ms,
                c.queries
            );
        }
        let _ = writeln!(
            o,
            "\n| exporter process | idle RSS MiB | peak RSS (VmHWM) after all load runs, MiB | peak ÷ blackbox |\n\
             |---|---:|---:|---:|"
        );
        for (i, variant) in Variant::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "| {} | {:.1} | {:.1} | {} |",
                variant.label(),
                self.idle_rss[i],
                self.peak_rss[i],
                ratio(self.peak_rss[i], self.peak_rss[blackbox])
            );
        }
    }

    fn render(&self) -> String {
        let mut o = String::new();
        let p = self.plan;
        let _ = writeln!(
            o,
            "## Benchmark run{}\n\n{}\n{}\n- plan: concurrencies {:?}, {:?} per run × {} alternating rounds per exporter; \
             {} sequential probes per exporter and target; /probe of {} connectors ({} scrape(s) each); took {:.0?}\n\
             - load average after the run: {}\n\
             - the in-process target accepted {} sessions, {} of them completed through QUIT after TLS\n",
            if p.smoke {
                " (SMOKE: tiny numbers, not a measurement)"
            } else {
                ""
            },
            self.machine,
            self.versions,
            p.concurrencies,
            p.run_time,
            p.rounds,
            p.sequential,
            p.scale
                .iter()
                .map(|(n, kind)| format!("{n} ({})", kind.label()))
                .collect::<Vec<_>>()
                .join(", "),
            p.scale_scrapes,
            self.elapsed,
            self.loadavg_after,
            self.inproc_sessions.0,
            self.inproc_sessions.1
        );

        // The ratio table.
        let _ = writeln!(
            o,
            "### Side by side (ratio = mailflow_exporter / blackbox_exporter)\n\n\
             | measure | mailflow_exporter | blackbox_exporter | ratio | goal |\n|---|---:|---:|---:|---|"
        );
        for Group {
            target, c, runs, ..
        } in &self.throughput
        {
            let (m, b) = (&runs[0], &runs[1]);
            let goal = if target.key == "stock" || target.key == "inproc" {
                let ok = m.cpu_per_1000() <= 0.5 * b.cpu_per_1000();
                format!("≤ 0.50: {}", verdict(ok))
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "| CPU s / 1000 probes, {}, c={c} | {:.3} | {:.3} | {} | {goal} |",
                target.label,
                m.cpu_per_1000(),
                b.cpu_per_1000(),
                ratio(m.cpu_per_1000(), b.cpu_per_1000())
            );
        }
        for Group {
            target, c, runs, ..
        } in &self.throughput
        {
            let (m, b) = (&runs[0], &runs[1]);
            let _ = writeln!(
                o,
                "| probes/s, {}, c={c} | {:.0} | {:.0} | {} | |",
                target.label,
                m.rate(),
                b.rate(),
                ratio(m.rate(), b.rate())
            );
        }
        let _ = writeln!(
            o,
            "| peak RSS (VmHWM) after all load runs, MiB | {:.1} | {:.1} | {} | ≤ 0.50: {} |",
            self.peak_rss[0],
            self.peak_rss[1],
            ratio(self.peak_rss[0], self.peak_rss[1]),
            verdict(self.peak_rss[0] <= 0.5 * self.peak_rss[1])
        );
        let _ = writeln!(
            o,
            "| idle RSS at start, MiB | {:.1} | {:.1} | {} | |",
            self.idle_rss[0],
            self.idle_rss[1],
            ratio(self.idle_rss[0], self.idle_rss[1])
        );
        let _ = writeln!(
            o,
            "| idle RSS at start: anonymous / file-backed, MiB | {:.1} / {:.1} | {:.1} / {:.1} | | |",
            self.idle_parts[0].0, self.idle_parts[0].1, self.idle_parts[1].0, self.idle_parts[1].1
        );
        for (target, runs) in &self.sequential {
            let [m, b] = runs;
            let stock = target.key == "stock";
            for (what, q) in [("p50", 50.0), ("p99", 99.0)] {
                let (mv, bv) = (percentile(&m.own, q), percentile(&b.own, q));
                let goal = if stock && q == 50.0 {
                    format!("< 5 ms: {}", verdict(mv < 5.0))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "| sequential {what} probe time (exporter's own), {}, ms | {mv:.2} | {bv:.2} | {} | {goal} |",
                    target.label,
                    ratio(mv, bv)
                );
            }
            let (mv, bv) = (percentile(&m.client, 50.0), percentile(&b.client, 50.0));
            let _ = writeln!(
                o,
                "| sequential p50 scrape time (scraper's view), {}, ms | {mv:.2} | {bv:.2} | {} | |",
                target.label,
                ratio(mv, bv)
            );
            let (mv, bv) = (share_above(&m.own, 30.0), share_above(&b.own, 30.0));
            let _ = writeln!(
                o,
                "| sequential probes over 30 ms, {}, % | {mv:.0} | {bv:.0} | | |",
                target.label
            );
        }
        for s in self.scale.iter().filter(|s| s.kind == Kind::StartTls) {
            let goal = match s.connectors {
                1_000 => format!(
                    "< 2 s: {}",
                    verdict(s.scrape_times.first().is_some_and(|&t| t < 2.0))
                ),
                10_000 => format!(
                    "< 15 s and < 100 MiB: {}",
                    verdict(
                        s.scrape_times.first().is_some_and(|&t| t < 15.0) && s.peak_rss < 100.0
                    )
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "| `/probe` of {} connectors: scrape s / CPU s / peak RSS MiB | {:.3} / {:.2} / {:.1} | (no equivalent) | | {goal} |",
                s.connectors,
                s.scrape_times.first().copied().unwrap_or(f64::NAN),
                s.cpu_per_scrape,
                s.peak_rss
            );
        }

        // Details of the load runs.
        let _ = writeln!(
            o,
            "\n### Load runs in detail\n\n\
             | target | c | exporter | probes | failed | probes/s | CPU s/1000 | scrape p50 / p99 ms | own p50 / p99 ms | target CPU s/1000 |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for Group {
            target, c, runs, ..
        } in &self.throughput
        {
            for (name, r) in ["mailflow", "blackbox"].iter().zip(runs) {
                let _ = writeln!(
                    o,
                    "| {} | {c} | {name} | {} | {} | {:.0} | {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
                    target.label,
                    r.probes,
                    r.failures,
                    r.rate(),
                    r.cpu_per_1000(),
                    percentile(&r.client, 50.0),
                    percentile(&r.client, 99.0),
                    percentile(&r.own, 50.0),
                    percentile(&r.own, 99.0),
                    if target.key == "inproc" {
                        "(in harness)".to_string()
                    } else {
                        format!("{:.3}", r.target_cpu_per_1000())
                    }
                );
            }
        }
        for (target, runs) in &self.sequential {
            for (name, r) in ["mailflow", "blackbox"].iter().zip(runs) {
                let _ = writeln!(
                    o,
                    "| {} (sequential) | 1 | {name} | {} | {} | {:.0} | {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3} |",
                    target.label,
                    r.probes,
                    r.failures,
                    r.rate(),
                    r.cpu_per_1000(),
                    percentile(&r.client, 50.0),
                    percentile(&r.client, 99.0),
                    percentile(&r.own, 50.0),
                    percentile(&r.own, 99.0),
                    r.target_cpu_per_1000()
                );
            }
        }

        self.render_dane(&mut o);

        let _ = writeln!(
            o,
            "\n### `/probe` of many connectors (mailflow_exporter, in-process target on {} loopback addresses)\n\n\
             | connectors | probe | scrape s (each scrape) | CPU s per scrape | idle RSS MiB | peak RSS MiB | RSS after MiB | body MiB | ok | probe p50 / p99 / max ms |\n\
             |---:|---|---|---:|---:|---:|---:|---:|---:|---|",
            p.scale_listeners
        );
        for s in &self.scale {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} / {:.1} / {:.1} |",
                s.connectors,
                s.kind.label(),
                s.scrape_times
                    .iter()
                    .map(|t| format!("{t:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.cpu_per_scrape,
                s.idle_rss,
                s.peak_rss,
                s.rss_after,
                s.body_mib,
                s.ok,
                s.own_p50,
                s.own_p99,
                s.own_max
            );
        }

        let _ = writeln!(
            o,
            "\n### The session-ticket stall, seen by a bare rustls client in the harness\n\n\
             Sequential probes (greeting, EHLO, STARTTLS, TLS, EHLO, QUIT) by the harness's own rustls client with the \
             exporter's TLS choice (resumption disabled; rustls still offers `psk_dhe_ke`, so OpenSSL still sends \
             tickets): as it is, with `TCP_QUICKACK` set once right after the handshake, and with `TCP_QUICKACK` \
             re-armed after every read from the socket. Cells: p50 / p99 ms (share of probes over 30 ms).\n\n\
             | target | NewSessionTickets sent | as the exporter | QUICKACK once | QUICKACK after every read |\n\
             |---|---:|---|---|---|"
        );
        for d in &self.diagnostics {
            let cell = |v: &[f64]| {
                format!(
                    "{:.2} / {:.2} ({:.0} %)",
                    percentile(v, 50.0),
                    percentile(v, 99.0),
                    share_above(v, 30.0)
                )
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                d.label,
                d.tickets,
                cell(&d.times[0]),
                cell(&d.times[1]),
                cell(&d.times[2])
            );
        }
        o
    }
}
