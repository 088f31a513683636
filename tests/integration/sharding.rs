//! Sharding across Prometheus servers (issue 6): two real Prometheus servers scrape one
//! exporter, each with the shipped `mailflow_probe` job (config/prometheus.yml: discovery through
//! the exporter's `GET /sd`, relabelled to `/probe?connector=NAME`) and the shipped, commented
//! `hashmod` example switched on (modulus 2; server 0 keeps "0", server 1 keeps "1"). Each server
//! must discover every connector, keep a non-empty share, and the two shares must split the
//! connectors exactly: disjoint, together all of them, every target up.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::exporter::{Exporter, config, local, tail};
use crate::common::poll;
use crate::common::smtp::{Dialogue, Server};
use crate::system::prometheus::Prometheus;

/// How many connectors the exporter has.
const CONNECTORS: usize = 12;
/// How long both servers may take, from their start, to scrape every target of their share.
const DEADLINE: Duration = Duration::from_secs(40);

/// The sharding example exactly as config/prometheus.yml ships it, commented out. The test
/// fails if the example changes shape, rather than quietly testing something else.
const SHIPPED_EXAMPLE: &str = "      # - source_labels: [connector]
      #   modulus: 2
      #   target_label: __tmp_hash
      #   action: hashmod
      # - source_labels: [__tmp_hash]
      #   regex: \"0\"
      #   action: keep
";

/// The shipped configuration with the sharding example switched on for server `shard` (of 2):
/// the example's lines uncommented, in place, with the `keep` regex set to the server's number.
fn enable_sharding(shipped: &str, shard: usize) -> String {
    assert_eq!(
        shipped.matches(SHIPPED_EXAMPLE).count(),
        1,
        "config/prometheus.yml should carry the commented hashmod example exactly once, as:\n\
         {SHIPPED_EXAMPLE}"
    );
    let enabled: String = SHIPPED_EXAMPLE
        .lines()
        .map(|line| line.replacen("# ", "", 1) + "\n")
        .collect();
    let enabled = enabled.replace("regex: \"0\"", &format!("regex: \"{shard}\""));
    shipped.replace(SHIPPED_EXAMPLE, &enabled)
}

/// The shipped configuration made fast and pointed at the exporter, with sharding on for
/// `shard`. Read as YAML after the textual edit, kept as it is (jobs, paths, `honor_labels`,
/// discovery, relabelling) except: the exporter's address, every interval 1 s but the probes'
/// 2 s (timeouts equal to them), the HTTP SD refresh 1 s, and no rule files (the rules are the
/// end-to-end test's business).
fn sharded_config(shipped: &str, exporter: SocketAddr, shard: usize) -> String {
    assert!(
        shipped.contains("127.0.0.1:9925"),
        "config/prometheus.yml no longer assumes the exporter at 127.0.0.1:9925"
    );
    let text = enable_sharding(shipped, shard).replace("127.0.0.1:9925", &exporter.to_string());
    let mut c: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("the sharded config/prometheus.yml is not YAML: {e}\n{text}"));
    c["global"]["scrape_interval"] = "1s".into();
    c["global"]["evaluation_interval"] = "1s".into();
    if let Some(global) = c.as_object_mut() {
        global.remove("rule_files");
    }
    let mut probe_jobs = 0;
    for job in c["scrape_configs"]
        .as_array_mut()
        .expect("scrape_configs in config/prometheus.yml")
    {
        let every = if job["job_name"] == "mailflow_probe" {
            probe_jobs += 1;
            // The relabelling is the shipped one plus the example, in that order.
            let relabel = job["relabel_configs"].as_array().expect("relabel_configs");
            let actions: Vec<&str> = relabel
                .iter()
                .map(|r| r["action"].as_str().unwrap_or("replace"))
                .collect();
            assert_eq!(
                actions,
                ["replace", "hashmod", "keep"],
                "the mailflow_probe relabelling with sharding on: {relabel:?}"
            );
            "2s"
        } else {
            "1s"
        };
        job["scrape_interval"] = every.into();
        job["scrape_timeout"] = every.into();
        for sd in job["http_sd_configs"].as_array_mut().into_iter().flatten() {
            sd["refresh_interval"] = "1s".into();
        }
    }
    assert_eq!(
        probe_jobs, 1,
        "one mailflow_probe job in config/prometheus.yml"
    );
    // YAML is a superset of JSON.
    c.to_string()
}

/// The `connector` target label of an API target object.
fn connector_of(target: &Value, labels: &str) -> String {
    target[labels]["connector"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What one server shows once its share is scraped: (kept connectors, discovered connectors).
struct Share {
    kept: BTreeSet<String>,
    discovered: BTreeSet<String>,
}

/// Checks one server's targets now: every discovered connector is either kept (an active
/// `mailflow_probe` target scraping `/probe?connector=NAME`, up) or dropped; Err says what is
/// not so yet.
fn share_of(p: &Prometheus, exporter: SocketAddr, all: &BTreeSet<String>) -> Result<Share, String> {
    let data = p.api("/api/v1/targets")?;
    let mut kept = BTreeSet::new();
    let mut waiting = Vec::new();
    for t in data["activeTargets"].as_array().into_iter().flatten() {
        if t["labels"]["job"] != "mailflow_probe" {
            continue;
        }
        let name = connector_of(t, "labels");
        let url = t["scrapeUrl"].as_str().unwrap_or_default();
        let expected = format!("http://{exporter}/probe?connector={name}");
        if url != expected {
            return Err(format!(
                "target {name}: scrape URL {url}, expected {expected}"
            ));
        }
        if t["health"] != "up" {
            waiting.push(format!("{name}: {} {}", t["health"], t["lastError"]));
        }
        kept.insert(name);
    }
    let mut discovered = kept.clone();
    for t in data["droppedTargets"].as_array().into_iter().flatten() {
        if t["discoveredLabels"]["job"] == "mailflow_probe" {
            discovered.insert(connector_of(t, "discoveredLabels"));
        }
    }
    if &discovered != all {
        return Err(format!(
            "discovered through /sd: {discovered:?}, expected {all:?}"
        ));
    }
    if !waiting.is_empty() {
        return Err(format!("targets not up yet: {waiting:?}"));
    }
    Ok(Share { kept, discovered })
}

/// The connectors of which `p` holds `mailflow_probe_success` series.
fn probed_by(p: &Prometheus) -> BTreeSet<String> {
    p.query("mailflow_probe_success")
        .unwrap_or_else(|err| panic!("{err}"))
        .iter()
        .map(|s| {
            s["metric"]["connector"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn two_prometheus_servers_split_the_connectors_with_the_shipped_hashmod_example() {
    let healthy = Server::dialogue(Dialogue::default());
    let names: Vec<String> = (0..CONNECTORS).map(|i| format!("shard-{i:02}")).collect();
    let entries: Vec<String> = names
        .iter()
        .map(|n| local(n, healthy.port(), &[("tls_settings", "none")]))
        .collect();
    let e = Exporter::start(&config(None, &entries));
    let all: BTreeSet<String> = names.iter().cloned().collect();

    let shipped_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus.yml");
    let shipped = std::fs::read_to_string(&shipped_path)
        .unwrap_or_else(|err| panic!("read {}: {err}", shipped_path.display()));
    let configs: Vec<String> = (0..2)
        .map(|shard| sharded_config(&shipped, e.addr, shard))
        .collect();

    let started = Instant::now();
    // Both servers start at once: each takes seconds to become ready.
    let servers: Vec<Prometheus> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|c| scope.spawn(move || Prometheus::start(&[("prometheus.yml", c)])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("start Prometheus"))
            .collect()
    });
    let deadline = started + DEADLINE;
    let context = || {
        let mut out = String::new();
        for (shard, p) in servers.iter().enumerate() {
            out.push_str(&format!(
                "Prometheus {shard} log (tail):\n{}\nconfig:\n{}\n",
                tail(&p.log(), 10),
                configs[shard]
            ));
        }
        out + &format!("exporter log (tail):\n{}", tail(&e.logs(), 15))
    };

    let mut shares = Vec::new();
    for (shard, p) in servers.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = poll(left, || share_of(p, e.addr, &all)).unwrap_or_else(|err| {
            panic!(
                "Prometheus {shard}: not every target of its share scraped after \
                 {DEADLINE:?}: {err}\n{}",
                context()
            )
        });
        assert_eq!(share.discovered, all, "Prometheus {shard} discovers all");
        assert!(
            !share.kept.is_empty(),
            "Prometheus {shard} keeps no connector at all\n{}",
            context()
        );
        shares.push(share);
    }
    let (zero, one) = (&shares[0].kept, &shares[1].kept);
    assert!(
        zero.is_disjoint(one),
        "a connector probed by both servers: {:?}\n{}",
        zero.intersection(one).collect::<Vec<_>>(),
        context()
    );
    let union: BTreeSet<String> = zero.union(one).cloned().collect();
    assert_eq!(union, all, "every connector is probed by one server");

    // What each server stored is its share's series, no more: the probes' own `connector`
    // labels (honor_labels) agree with the targets.
    for (shard, p) in servers.iter().enumerate() {
        let probed = probed_by(p);
        assert_eq!(
            probed,
            shares[shard].kept,
            "Prometheus {shard}: mailflow_probe_success series vs its targets\n{}",
            context()
        );
    }
    eprintln!("sharding: {zero:?} | {one:?} after {:?}", started.elapsed());
}
