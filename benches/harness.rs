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

/// One load run of one exporter.
#[derive(Default, Clone)]
struct Run {
    scrapes: u64,
    probes: u64,
    failures: u64,
    wall: f64,
    cpu: f64,
    target_cpu: f64,
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

    // The exporters, with equivalent configurations.
    let max_c = plan.concurrencies.iter().copied().max().unwrap_or(1);
    let mailflow_config = dir.join("mailflow.yml");
    std::fs::write(&mailflow_config, mailflow_yaml(&targets, max_c))?;
    let blackbox_config = dir.join("blackbox.yml");
    std::fs::write(&blackbox_config, BLACKBOX_YAML)?;
    let mailflow =
        start_mailflow(&exporter_bin, &mailflow_config, &dir.join("mailflow.log")).await?;
    let blackbox_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let blackbox = Exporter::start(
        "blackbox",
        Path::new(BLACKBOX),
        &[
            format!("--config.file={}", blackbox_config.display()),
            format!("--web.listen-address={blackbox_addr}"),
        ],
        blackbox_addr,
        dir.join("blackbox.log"),
    )
    .await?;
    let mut exporters = [mailflow, blackbox];
    let idle_rss = [exporters[0].rss_mib()?, exporters[1].rss_mib()?];
    let idle_parts = [exporters[0].rss_parts_mib()?, exporters[1].rss_parts_mib()?];

    // Warm-up, and a check that both succeed against every target.
    for target in &targets {
        for exporter in &exporters {
            let run = load(exporter, *target, 1, Duration::from_secs(30), 3, None).await?;
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

    // Sequential latency against Postfix, tickets on and off, alternating.
    let mut sequential = Vec::new();
    for target in &targets[1..] {
        let mut runs = [Run::default(), Run::default()];
        for round in 0..plan.rounds {
            for i in order(round) {
                let count = plan.sequential / plan.rounds;
                let r = load(
                    &exporters[i],
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

    // Throughput at several concurrencies, in-process target and stock Postfix, alternating.
    let mut throughput = Vec::new();
    for target in &targets[..2] {
        for &c in &plan.concurrencies {
            let mut runs = [Run::default(), Run::default()];
            for round in 0..plan.rounds {
                for i in order(round) {
                    exporters[i].check_alive()?;
                    let pf = (target.key != "inproc").then_some(&postfix);
                    let r = load(
                        &exporters[i],
                        *target,
                        c,
                        plan.run_time,
                        plan.max_scrapes,
                        pf,
                    )
                    .await?;
                    runs[i].add(r);
                }
            }
            eprintln!(
                "bench: {} c={c}: mailflow {:.0}/s {:.2} CPU-s/1000, blackbox {:.0}/s {:.2} CPU-s/1000",
                target.key,
                runs[0].rate(),
                runs[0].cpu_per_1000(),
                runs[1].rate(),
                runs[1].cpu_per_1000()
            );
            throughput.push((*target, c, runs));
        }
    }
    let peak_rss = [exporters[0].peak_rss_mib()?, exporters[1].peak_rss_mib()?];
    let versions = versions(&exporter_bin);
    drop(exporters);

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
        scale,
        elapsed: started.elapsed(),
    };
    drop(postfix);
    drop(inproc);
    Ok(report.render())
}

/// Exporter order in a round: alternate which goes first.
fn order(round: usize) -> [usize; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn start_mailflow(bin: &Path, config: &Path, log: &Path) -> Result<Exporter> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    Exporter::start(
        "mailflow",
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

fn mailflow_yaml(targets: &[Target], per_target: usize) -> String {
    let mut y = String::from(
        "defaults:\n  timeout: 10s\n  helo_name: prober\n  tls_settings: encryption_only\nconnectors:\n",
    );
    for target in targets {
        // One connector per scraper: concurrent scrapes of one connector would share a probe.
        for i in 0..per_target {
            let _ = write!(
                y,
                "  - name: {}-{i}\n    smart_hosts: [127.0.0.1]\n    port: {}\n",
                target.key, target.port
            );
        }
    }
    y
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
        let path = if exporter.name == "mailflow" {
            format!("/probe?connector={}-{i}", target.key)
        } else {
            format!(
                "/probe?module=smtp_starttls&target=127.0.0.1:{}",
                target.port
            )
        };
        let addr = exporter.addr;
        let mailflow = exporter.name == "mailflow";
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
    let mut exporter = start_mailflow(bin, &config, &log).await?;
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
    throughput: Vec<(Target, usize, [Run; 2])>,
    idle_rss: [f64; 2],
    /// RssAnon and RssFile at start.
    idle_parts: [(f64, f64); 2],
    peak_rss: [f64; 2],
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
    fn render(&self) -> String {
        let mut o = String::new();
        let p = self.plan;
        let _ = writeln!(
            o,
            "## Benchmark run{}\n\n{}\n{}\n- plan: concurrencies {:?}, {:?} per run × {} alternating rounds per exporter; \
             {} sequential probes per exporter and target; /probe of {} connectors ({} scrape(s) each); took {:.0?}\n\
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
            self.inproc_sessions.0,
            self.inproc_sessions.1
        );

        // The ratio table.
        let _ = writeln!(
            o,
            "### Side by side (ratio = mailflow_exporter / blackbox_exporter)\n\n\
             | measure | mailflow_exporter | blackbox_exporter | ratio | goal |\n|---|---:|---:|---:|---|"
        );
        for (target, c, runs) in &self.throughput {
            let [m, b] = runs;
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
        for (target, c, runs) in &self.throughput {
            let [m, b] = runs;
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
        for (target, c, runs) in &self.throughput {
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
