//! Load (issue 5): one exporter with hundreds of connectors against a few fast in-process SMTP
//! servers, and many concurrent scrapers (`/probe?connector=…` of random connectors, and now and
//! then `/probe` of all) for a bounded time, each announcing a 5 s scrape timeout. Every scrape
//! must be answered 200 within that timeout; afterwards the exporter's open file descriptors come
//! back to where they were, its memory stays bounded, and it still answers. The figures are
//! printed (`cargo test --test hermetic load -- --nocapture`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::exporter::{Exporter, config, local, tail};
use crate::common::http;
use crate::common::smtp::{Dialogue, Server};

/// Connectors in the configuration.
const CONNECTORS: usize = 300;
/// SMTP servers they spread over (each its own address and port, so its own per-address cap).
const SERVERS: usize = 6;
/// Concurrent scrapers.
const SCRAPERS: usize = 32;
/// How long they scrape.
const LOAD_TIME: Duration = Duration::from_secs(8);
/// The scrape timeout every request announces, and must be answered within.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// One request in this many is a `GET /probe` of every connector.
const ALL_EVERY: u64 = 16;
/// File descriptors the exporter may hold, after settling, beyond what it held before.
const FD_SLACK: usize = 8;
/// The highest resident set size allowed, in KiB.
const MAX_RSS_KIB: u64 = 150 * 1024;

/// One scrape's result.
struct Scrape {
    all: bool,
    status: u16,
    took: Duration,
    /// The probed connectors whose `mailflow_probe_success` was not 1.
    not_ok: usize,
    /// Failure to talk HTTP at all, if it came to that.
    error: Option<String>,
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A small xorshift generator: random enough to pick connectors, no dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The sample of a probe's success in the classic text format.
fn success_line(name: &str) -> String {
    format!("mailflow_probe_success{{connector=\"{name}\"}} 1")
}

/// How many connectors a `/probe` answer shows delivering (`mailflow_probe_success` 1), in one
/// cheap pass: the scrapers must not eat the CPU the exporter needs.
fn delivering(body: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with("mailflow_probe_success{"))
        .filter(|l| matches!(l.rsplit(' ').next(), Some("1" | "1.0")))
        .count()
}

/// The `q`-quantile of sorted durations (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn many_concurrent_scrapes_over_hundreds_of_connectors() {
    let servers: Vec<Server> = (0..SERVERS)
        .map(|_| Server::dialogue(Dialogue::default()))
        .collect();
    let names: Vec<String> = (0..CONNECTORS).map(|i| format!("load-{i:03}")).collect();
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| local(n, servers[i % SERVERS].port(), &[("tls_settings", "none")]))
        .collect();
    let e = Exporter::start(&config(None, &entries));
    let pid = e.pid();
    let timeout_header = SCRAPE_TIMEOUT.as_secs().to_string();
    let headers = [(
        "X-Prometheus-Scrape-Timeout-Seconds",
        timeout_header.as_str(),
    )];

    // Warm up (one probe of everything), then take the baseline.
    let warm = e.get_with("/probe", &headers);
    assert_eq!(warm.status, 200, "{}", warm.body);
    for n in &names {
        assert!(
            warm.body.contains(&success_line(n)),
            "{n} is not ok before the load:\n{}",
            tail(&warm.body, 5)
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds_before = open_fds(pid);
    let (rss_before, _) = memory_kib(pid);

    let results: Mutex<Vec<Scrape>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for scraper in 0..SCRAPERS {
            let (names, results, headers, addr) = (&names, &results, &headers, e.addr);
            scope.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ ((scraper as u64 + 1) << 32);
                let mut mine = Vec::new();
                while started.elapsed() < LOAD_TIME {
                    let pick = next_random(&mut seed);
                    let all = pick.is_multiple_of(ALL_EVERY);
                    // The one connector asked for, or None for all.
                    let (path, one) = if all {
                        ("/probe".to_string(), None)
                    } else {
                        let name = &names[(pick >> 8) as usize % names.len()];
                        (format!("/probe?connector={name}"), Some(name))
                    };
                    let expect = if all { names.len() } else { 1 };
                    let begun = Instant::now();
                    let answer = http::get(addr, &path, headers);
                    let took = begun.elapsed();
                    mine.push(match answer {
                        Ok(r) => Scrape {
                            all,
                            status: r.status,
                            took,
                            not_ok: match one {
                                Some(name) => usize::from(!r.body.contains(&success_line(name))),
                                None => expect.saturating_sub(delivering(&r.body)),
                            },
                            error: None,
                        },
                        Err(err) => Scrape {
                            all,
                            status: 0,
                            took,
                            not_ok: expect,
                            error: Some(format!("GET {path}: {err}")),
                        },
                    });
                }
                results.lock().expect("results").extend(mine);
            });
        }
    });
    let wall = started.elapsed();
    let fds_right_after = open_fds(pid);
    std::thread::sleep(Duration::from_secs(2));
    let fds_settled = open_fds(pid);
    let (rss_after, hwm) = memory_kib(pid);

    let results = results.into_inner().expect("results");
    let mut single: Vec<Duration> = results.iter().filter(|s| !s.all).map(|s| s.took).collect();
    let mut all: Vec<Duration> = results.iter().filter(|s| s.all).map(|s| s.took).collect();
    let mut every: Vec<Duration> = results.iter().map(|s| s.took).collect();
    single.sort();
    all.sort();
    every.sort();
    let not_ok: usize = results.iter().map(|s| s.not_ok).sum();
    let probed: usize = results
        .iter()
        .map(|s| if s.all { CONNECTORS } else { 1 })
        .sum();
    println!(
        "load: {} scrapes in {:.1} s by {SCRAPERS} scrapers ({:.0} scrapes/s): {} of one \
         connector, {} of all {CONNECTORS}; {probed} connector results, {not_ok} not ok",
        results.len(),
        wall.as_secs_f64(),
        results.len() as f64 / wall.as_secs_f64(),
        single.len(),
        all.len()
    );
    println!(
        "load: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (one connector: p50 {:.1} ms, \
         p99 {:.1} ms; all: p50 {:.1} ms, p99 {:.1} ms)",
        millis(quantile(&every, 0.5)),
        millis(quantile(&every, 0.99)),
        millis(every.last().copied().unwrap_or_default()),
        millis(quantile(&single, 0.5)),
        millis(quantile(&single, 0.99)),
        millis(quantile(&all, 0.5)),
        millis(quantile(&all, 0.99)),
    );
    println!(
        "load: open fds before {fds_before}, right after {fds_right_after}, 2 s after \
         {fds_settled}; VmRSS before {:.1} MiB, after {:.1} MiB, VmHWM {:.1} MiB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    let context = || format!("exporter log (tail):\n{}", tail(&e.logs(), 20));
    let errors: Vec<&String> = results.iter().filter_map(|s| s.error.as_ref()).collect();
    assert!(
        errors.is_empty(),
        "{} scrapes failed: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(5)],
        context()
    );
    let bad: Vec<u16> = results
        .iter()
        .filter(|s| s.status != 200)
        .map(|s| s.status)
        .collect();
    assert!(bad.is_empty(), "non-200 answers: {bad:?}\n{}", context());
    let late = results.iter().filter(|s| s.took >= SCRAPE_TIMEOUT).count();
    assert_eq!(
        late,
        0,
        "{late} scrapes answered after their {SCRAPE_TIMEOUT:?} timeout (max {:?})\n{}",
        every.last(),
        context()
    );
    assert!(
        results.len() >= SCRAPERS * 2,
        "only {} scrapes in {LOAD_TIME:?}",
        results.len()
    );
    assert!(
        all.len() + single.len() == results.len() && !single.is_empty(),
        "the mix of scrapes"
    );
    assert_eq!(
        not_ok,
        0,
        "connectors on healthy servers that were not ok under load\n{}",
        context()
    );
    assert!(
        fds_settled <= fds_before + FD_SLACK,
        "file descriptors leak: {fds_before} before, {fds_settled} 2 s after the load\n{}",
        context()
    );
    assert!(
        hwm <= MAX_RSS_KIB,
        "the exporter's peak resident memory {hwm} KiB exceeds {MAX_RSS_KIB} KiB"
    );

    // Still healthy, and still probing.
    let healthy = e.get("/-/healthy");
    assert_eq!(healthy.status, 200, "{}", healthy.body);
    e.expect(&names[0], "ok", "", "");
}
