//! Hostile MTA-STS policy hosts: nothing a policy host sends (an endless or huge body, a huge
//! chunk, endless headers or status line, a byte at a time, garbage, silence)
//! holds a scrape past its deadline, fails a probe, or grows the exporter's memory, over many
//! rounds in which every policy is fetched again.
//!
//! (The hermetic hostile-server test, `tests/hermetic/hostile.rs`, covers SMTP servers; a policy
//! host needs port 443 of a loopback address and a DNS server, so it lives in this tier.)

use std::time::{Duration, Instant};

use crate::common::exporter::{Exporter, HELO};
use crate::common::http;
use crate::common::metrics::Metrics;
use crate::system::hostile_policy_host::Hostility;
use crate::system::mta_sts_world::{self as sts, world};
use crate::system::postfix::postfix;

/// Resident set size of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn hostile_policy_hosts_neither_hold_a_scrape_nor_grow_memory() {
    let world = world();
    let domains: Vec<&str> = sts::HOSTILE
        .iter()
        .map(|(domain, _)| *domain)
        .chain([sts::SILENT])
        .collect();
    // `notls` delivers in plain text: an enforce policy, if one got through, would fail it.
    let port = postfix().port("notls");
    let mut yaml = format!(
        "defaults:\n  timeout: 10s\n  helo_name: {HELO}\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\nconnectors:\n",
        world.dns
    );
    for domain in &domains {
        yaml.push_str(&format!(
            "  - name: {domain}\n    use_mx_record: true\n    recipient_domains: [{domain}]\n    port: {port}\n    ca_file: {}\n",
            world.trust_bundle.display()
        ));
    }
    // Every scrape may fetch every policy again.
    let exporter = Exporter::start_with_args(&yaml, &["--mta-sts.min-fetch-interval", "1ms"]);
    let scrape = || {
        let started = Instant::now();
        let response = http::get(
            exporter.addr,
            "/probe",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "4")],
        )
        .expect("scrape /probe");
        let took = started.elapsed();
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(took < Duration::from_secs(4), "a scrape took {took:?}");
        (Metrics::parse(&response.body), took)
    };

    let (first, took) = scrape();
    println!("first scrape: {took:?}");
    for domain in &domains {
        exporter.assert_outcome(&first, domain, "ok", "", "");
        assert_eq!(
            first.value(
                "mailflow_mta_sts_policy_mode",
                &[("connector", domain), ("mode", "absent")]
            ),
            Some(1.0),
            "{domain}: no policy"
        );
        assert_eq!(
            first.value(
                "mailflow_mta_sts_policy_fetch_success",
                &[("connector", domain)]
            ),
            Some(0.0),
            "{domain}: the fetch failed (or has not ended)"
        );
    }

    // Memory: settle for a few rounds, then many more must not grow it.
    for _ in 0..3 {
        scrape();
    }
    let settled = rss_kib(exporter.pid());
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (metrics, took) = scrape();
        slowest = slowest.max(took);
        for domain in &domains {
            assert_eq!(metrics.code(domain), "ok", "{}", metrics.summary(domain));
        }
    }
    let after = rss_kib(exporter.pid());
    println!(
        "hostile policy hosts: RSS {settled} KiB after 4 rounds, {after} KiB after 14; slowest scrape {slowest:?}"
    );
    assert!(
        after < settled + 8 * 1024,
        "RSS grew from {settled} KiB to {after} KiB over 10 rounds of hostile policy hosts"
    );
    let log = exporter.logs();
    assert!(!log.contains("panicked"), "{log}");
    // Each fetch failed for the reason its host gives, and the quick ones ran every round.
    let failures = |domain: &str, failure: &str| {
        let (domain, failure) = (format!("domain={domain} "), format!("failure={failure} "));
        log.lines()
            .filter(|l| l.contains("MTA-STS policy fetch failed"))
            .filter(|l| l.contains(&domain) && l.contains(&failure))
            .count()
    };
    for (domain, hostility) in sts::HOSTILE {
        let (expected, at_least) = match hostility {
            Hostility::EndlessBody | Hostility::HugeLength | Hostility::HugeChunk => {
                ("too_large", 10)
            }
            Hostility::EndlessHeaders | Hostility::EndlessStatusLine | Hostility::Garbage => {
                ("http", 10)
            }
            // The fetch's own limit, 10 s, well past every scrape's deadline.
            Hostility::Dribble => ("timeout", 1),
        };
        let seen = failures(domain, expected);
        println!("{domain}: {seen} fetches failed with {expected}");
        assert!(
            seen >= at_least,
            "{domain}: {seen} failures {expected}\n{log}"
        );
    }
    assert!(failures(sts::SILENT, "timeout") >= 1, "{log}");
}
