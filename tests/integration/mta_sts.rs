//! MTA-STS discovery, fetch and cache, and TLS-RPT, against the real world of
//! `common::mta_sts_world`: dnsmasq for the records, nginx on port 443 for the policies.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mailflow_exporter::outcome::CertificateFailure;
use mailflow_exporter::probe::mta_sts::cache::PolicyCache;
use mailflow_exporter::probe::mta_sts::fetch::{FetchFailure, PolicyClient};
use mailflow_exporter::probe::mta_sts::policy::{HostVerdict, Mode, Policy};
use mailflow_exporter::probe::mta_sts::record::{RecordError, StsPublication, StsRecord};
use mailflow_exporter::probe::mta_sts::tlsrpt::TlsRpt;
use mailflow_exporter::probe::mta_sts::{Discovery, PolicyDomain, StsLookup, discover};
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

use crate::common::exporter::{combined_output, run_with_timeout};
use crate::system::mta_sts_world::{self as sts, MtaStsWorld, world};

/// A resolver asking only `nameserver`, as a connector with `dns.nameservers` would.
fn resolver(nameserver: SocketAddr) -> TokioResolver {
    let connection = |protocol| {
        let mut connection = ConnectionConfig::new(protocol);
        connection.port = nameserver.port();
        connection
    };
    let server = NameServerConfig::new(
        nameserver.ip(),
        true,
        vec![
            connection(ProtocolConfig::Udp),
            connection(ProtocolConfig::Tcp),
        ],
    );
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    );
    let options = builder.options_mut();
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    options.ndots = 0;
    builder.build().expect("resolver")
}

/// A policy client trusting the world's CA only.
fn client(world: &MtaStsWorld) -> PolicyClient {
    PolicyClient::new([CertificateDer::from(world.ca_der.clone())]).expect("policy client")
}

fn domain(name: &str) -> PolicyDomain {
    PolicyDomain::new(name).expect("a policy domain")
}

/// Discovery of `name` through the world's DNS with `cache`, waiting at most `wait`.
async fn discover_in(
    cache: &PolicyCache,
    nameserver: SocketAddr,
    name: &str,
    now: SystemTime,
    wait: Duration,
) -> Discovery {
    let world = world();
    discover(
        &domain(name),
        &resolver(nameserver),
        &client(world),
        cache,
        now,
        Instant::now() + wait,
    )
    .await
}

/// Discovery of `name` with a cache of its own.
async fn discover_fresh(name: &str) -> Discovery {
    let cache = PolicyCache::default();
    discover_in(
        &cache,
        world().dns,
        name,
        SystemTime::now(),
        Duration::from_secs(15),
    )
    .await
}

fn fetch_failure(discovery: &Discovery) -> Option<FetchFailure> {
    discovery
        .status
        .last_fetch
        .as_ref()
        .and_then(|attempt| attempt.result.err())
}

/// curl with the world's CA and name, so that the fixture is checked by another client: the
/// body, then what curl printed (`CODE CONTENT-TYPE`, headers with `-D -`, its errors).
fn curl(world: &MtaStsWorld, domain: &str, extra: &[&str]) -> (String, String) {
    let host = format!("mta-sts.{domain}");
    let ip = if domain == sts::SILENT {
        world.silent
    } else {
        world.nginx
    };
    let body_file = tempfile::NamedTempFile::new().expect("temporary file");
    let mut command = Command::new("curl");
    command
        .args([
            "-sS",
            "--max-time",
            "8",
            "-w",
            "%{http_code} %{content_type}",
            "-o",
        ])
        .arg(body_file.path())
        .arg("--cacert")
        .arg(&world.ca_file)
        .arg("--resolve")
        .arg(format!("{host}:443:{ip}"))
        .args(extra)
        .arg(format!("https://{host}/.well-known/mta-sts.txt"));
    let printed = combined_output(&run_with_timeout(&mut command, Duration::from_secs(15)));
    let body = std::fs::read_to_string(body_file.path()).unwrap_or_default();
    (body, printed)
}

#[test]
fn the_world_serves_what_it_says() {
    let world = world();
    assert!(world.running());
    let (body, printed) = curl(world, sts::ENFORCE, &[]);
    assert_eq!(
        (body.as_str(), printed.as_str()),
        (sts::ENFORCE_POLICY, "200 text/plain")
    );
    assert_eq!(curl(world, sts::NOT_FOUND, &[]).1, "404 text/html");
    let (_, moved) = curl(world, sts::REDIRECT, &["-D", "-"]);
    assert!(moved.starts_with("HTTP/1.1 301"), "{moved}");
    let location = format!(
        "Location: https://mta-sts.{}/.well-known/mta-sts.txt",
        sts::ENFORCE
    );
    assert!(moved.contains(&location), "{moved}");
    assert_eq!(curl(world, sts::WRONG_TYPE, &[]).1, "200 text/html");
    let (big, printed) = curl(world, sts::OVERSIZED, &[]);
    assert!(big.len() >= 70 * 1024 && big.starts_with("version: STSv1\n"));
    assert_eq!(printed, "200 text/plain");
    let (_, wrong_name) = curl(world, sts::WRONG_NAME, &[]);
    assert!(
        wrong_name.contains("no alternative certificate subject name matches"),
        "{wrong_name}"
    );
    let (_, expired) = curl(world, sts::EXPIRED_CERT, &[]);
    assert!(expired.contains("certificate has expired"), "{expired}");
    let (_, untrusted) = curl(world, sts::UNTRUSTED_CERT, &[]);
    // The server sends the stranger CA along with its leaf.
    assert!(
        untrusted.contains("self-signed certificate in certificate chain"),
        "{untrusted}"
    );
    let (_, silent) = curl(world, sts::SILENT, &["--max-time", "1"]);
    assert!(silent.contains("timed out"), "{silent}");
    let started = std::time::Instant::now();
    let (slow, printed) = curl(world, sts::SLOW, &[]);
    assert_eq!(
        (slow.as_str(), printed.as_str()),
        (sts::enforce_policy(sts::SLOW).as_str(), "200 text/plain")
    );
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "slow took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_world_publishes_its_records() {
    let dns = resolver(world().dns);
    let txt = |name: String| {
        let dns = dns.clone();
        async move {
            let lookup = dns.txt_lookup(format!("{name}.")).await;
            let mut records: Vec<String> = lookup
                .map(|l| {
                    l.answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            hickory_resolver::proto::rr::RData::TXT(t) => Some(
                                t.txt_data
                                    .iter()
                                    .map(|s| String::from_utf8_lossy(s).into_owned())
                                    .collect(),
                            ),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.sort();
            records
        }
    };
    assert_eq!(
        txt(format!("_mta-sts.{}", sts::ENFORCE)).await,
        ["v=STSv1; id=enforce1"]
    );
    assert_eq!(
        txt(format!("_mta-sts.{}", sts::TWO_RECORDS)).await,
        ["v=STSv1; id=first", "v=STSv1; id=second"]
    );
    assert!(txt(format!("_mta-sts.{}", sts::NO_RECORD)).await.is_empty());
    let zone = world().zone(&[(
        &format!("_mta-sts.{}", sts::NO_RECORD),
        &["v=STSv1; id=late"],
    )]);
    let other = resolver(zone.addr);
    let lookup = other
        .txt_lookup(format!("_mta-sts.{}.", sts::NO_RECORD))
        .await
        .expect("the zone has the replaced record");
    assert_eq!(lookup.answers().len(), 1);
}

#[tokio::test]
async fn good_policies_are_found_and_decide_which_hosts_match() {
    let enforce = discover_fresh(sts::ENFORCE).await;
    assert_eq!(
        enforce.record,
        StsLookup::Answer(StsPublication::Published(StsRecord {
            id: "enforce1".into()
        }))
    );
    assert_eq!(enforce.fetch_success(), Some(true));
    assert_eq!(enforce.mode_label(), "enforce");
    let cached = enforce.policy().expect("policy");
    assert_eq!(
        cached.policy,
        Policy::parse(sts::ENFORCE_POLICY.as_bytes()).unwrap()
    );
    assert_eq!(cached.id, "enforce1");
    assert_eq!(
        cached.expires_at.duration_since(cached.fetched_at).unwrap(),
        Duration::from_secs(86400)
    );
    assert!(cached.policy.verdict("mx.enforce.sts.test").listed());
    assert!(cached.policy.verdict("MX.Enforce.STS.test.").listed());
    assert_eq!(
        cached.policy.verdict("mx.testing.sts.test"),
        HostVerdict::Refused
    );

    let wildcard = discover_fresh(sts::WILDCARD).await;
    let policy = &wildcard.policy().expect("policy").policy;
    assert!(
        policy.verdict("mx.wildcard.sts.test").listed(),
        "one label under the wildcard"
    );
    assert_eq!(
        policy.verdict("deep.mx.wildcard.sts.test"),
        HostVerdict::Refused,
        "two labels under the wildcard"
    );
    assert_eq!(policy.verdict("wildcard.sts.test"), HostVerdict::Refused);

    let testing = discover_fresh(sts::TESTING).await;
    assert_eq!(testing.mode(), Some(Mode::Testing));
    assert_eq!(
        testing
            .policy()
            .unwrap()
            .policy
            .verdict("mx.enforce.sts.test"),
        HostVerdict::Unlisted
    );

    let none = discover_fresh(sts::NONE).await;
    assert_eq!(none.mode(), Some(Mode::None));
    assert!(none.policy().unwrap().policy.mx.is_empty());
}

#[tokio::test]
async fn every_broken_policy_host_is_a_failed_fetch_and_no_policy() {
    let cases = [
        (sts::NOT_FOUND, FetchFailure::Status(404)),
        (sts::REDIRECT, FetchFailure::Redirect(301)),
        (sts::OVERSIZED, FetchFailure::TooLarge),
        (sts::WRONG_TYPE, FetchFailure::MediaType),
        (
            sts::WRONG_NAME,
            FetchFailure::Certificate(CertificateFailure::NameMismatch),
        ),
        (
            sts::EXPIRED_CERT,
            FetchFailure::Certificate(CertificateFailure::Expired),
        ),
        (
            sts::UNTRUSTED_CERT,
            FetchFailure::Certificate(CertificateFailure::Untrusted),
        ),
    ];
    for (name, expected) in cases {
        let started = std::time::Instant::now();
        let discovery = discover_fresh(name).await;
        assert_eq!(fetch_failure(&discovery), Some(expected), "{name}");
        assert_eq!(discovery.mode_label(), "absent", "{name}");
        assert_eq!(discovery.fetch_success(), Some(false), "{name}");
        assert!(!discovery.status.fetching, "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    let malformed = discover_fresh(sts::MALFORMED).await;
    let failure = fetch_failure(&malformed).expect("a failure");
    assert_eq!(failure.as_str(), "parse");
    assert_eq!(
        failure.to_string(),
        "the policy is malformed: line 2: mode is not enforce, testing or none"
    );
    assert_eq!(malformed.mode_label(), "absent");
}

#[tokio::test]
async fn slow_and_silent_policy_hosts_hit_the_fetch_deadline() {
    let world = world();
    let dns = resolver(world.dns);
    for name in [sts::SLOW, sts::SILENT] {
        let started = std::time::Instant::now();
        let result = client(world)
            .fetch(
                &domain(name),
                &dns,
                Instant::now() + Duration::from_millis(1500),
            )
            .await;
        assert_eq!(result, Err(FetchFailure::Timeout), "{name}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(3),
            "{name}: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_probe_waits_no_longer_than_its_deadline_while_the_fetch_completes_behind_it() {
    let cache = PolicyCache::default();
    let now = SystemTime::now();
    // The world starts (once, for all tests) before the clock runs.
    let dns = world().dns;
    let started = std::time::Instant::now();
    let first = discover_in(&cache, dns, sts::SLOW, now, Duration::from_millis(800)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.mode_label(), "absent");
    assert!(first.status.fetching);
    assert_eq!(
        first.fetch_success(),
        Some(false),
        "no fetch has succeeded yet"
    );
    let mut filled = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        filled = cache.cached(&domain(sts::SLOW), now).policy;
        if filled.is_some() {
            break;
        }
    }
    let filled = filled.unwrap_or_else(|| {
        panic!(
            "the fetch went on and filled the cache: {:?}",
            cache.cached(&domain(sts::SLOW), now)
        )
    });
    assert_eq!(filled.policy.mode, Mode::Enforce);
    let second = discover_in(
        &cache,
        world().dns,
        sts::SLOW,
        now,
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(second.mode_label(), "enforce");
    assert_eq!(second.fetch_success(), Some(true));
}

#[tokio::test]
async fn records_that_do_not_publish_exactly_one_policy_are_never_fetched() {
    let world = world();
    let two = discover_fresh(sts::TWO_RECORDS).await;
    assert_eq!(two.record, StsLookup::Answer(StsPublication::Several));
    assert_eq!(
        (two.mode_label(), two.fetch_success()),
        ("absent", Some(false))
    );
    let none = discover_fresh(sts::NO_RECORD).await;
    assert_eq!(none.record, StsLookup::Answer(StsPublication::NotPublished));
    assert_eq!((none.mode_label(), none.fetch_success()), ("absent", None));
    let unknown = discover_fresh("nowhere.sts.test").await;
    assert_eq!(
        unknown.record,
        StsLookup::Answer(StsPublication::NotPublished)
    );
    assert_eq!(world.requests(sts::TWO_RECORDS), 0);
    assert_eq!(world.requests(sts::NO_RECORD), 0);
    let zone = world.zone(&[(
        &format!("_mta-sts.{}", sts::NO_RECORD),
        &["v=STSv1; id=a-b"],
    )]);
    let cache = PolicyCache::default();
    let bad_id = discover_in(
        &cache,
        zone.addr,
        sts::NO_RECORD,
        SystemTime::now(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        bad_id.record,
        StsLookup::Answer(StsPublication::Invalid(RecordError::BadId))
    );
    assert_eq!(world.requests(sts::NO_RECORD), 0);
}

#[tokio::test]
async fn a_failed_lookup_of_the_record_keeps_the_cached_policy() {
    let cache = PolicyCache::default();
    let now = SystemTime::now();
    let first = discover_in(
        &cache,
        world().dns,
        sts::ENFORCE,
        now,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(first.mode_label(), "enforce");
    // A name server that answers nothing: 127.0.0.1:9 (discard; nothing listens on UDP 9).
    let dead = SocketAddr::from(([127, 0, 0, 1], 9));
    let later = now + Duration::from_secs(3600);
    let blind = discover_in(&cache, dead, sts::ENFORCE, later, Duration::from_secs(5)).await;
    assert_eq!(blind.record, StsLookup::Failed);
    assert_eq!(
        blind.mode_label(),
        "enforce",
        "the cached copy stays in force"
    );
    assert_eq!(blind.fetch_success(), Some(true));
}

#[tokio::test]
async fn concurrent_probes_of_one_domain_share_one_fetch_and_later_ones_none() {
    let world = world();
    let cache = Arc::new(PolicyCache::default());
    let now = SystemTime::now();
    let probes: Vec<_> = (0..25)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                discover_in(&cache, world.dns, sts::SHARED, now, Duration::from_secs(10)).await
            })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap().mode_label(), "enforce");
    }
    assert_eq!(world.requests(sts::SHARED), 1, "one fetch for 25 probes");
    for seconds in [1, 60, 3600, 86399] {
        let later = now + Duration::from_secs(seconds);
        let hit = discover_in(
            &cache,
            world.dns,
            sts::SHARED,
            later,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(hit.mode_label(), "enforce");
    }
    assert_eq!(world.requests(sts::SHARED), 1, "cache hits make no request");
    let expired = now + Duration::from_secs(86400);
    discover_in(
        &cache,
        world.dns,
        sts::SHARED,
        expired,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(world.requests(sts::SHARED), 2, "refetched on expiry");
}

#[tokio::test]
async fn the_policy_is_kept_across_a_failed_refetch_until_it_expires() {
    let world = world();
    let keep = sts::KEEP;
    let cache = PolicyCache::default();
    let t0 = SystemTime::now();
    let at = |seconds| t0 + Duration::from_secs(seconds);
    let first = discover_in(&cache, world.dns, keep, at(0), Duration::from_secs(10)).await;
    assert_eq!(
        (first.mode_label(), first.policy().unwrap().id.as_str()),
        ("enforce", "keep1")
    );
    assert_eq!(world.requests(keep), 1);

    world.set_policy(keep, None);
    let zone = world.zone(&[(&format!("_mta-sts.{keep}"), &["v=STSv1; id=keep2"])]);
    let failed = discover_in(&cache, zone.addr, keep, at(120), Duration::from_secs(10)).await;
    assert_eq!(world.requests(keep), 2, "the new id was fetched");
    assert_eq!(fetch_failure(&failed), Some(FetchFailure::Status(404)));
    assert_eq!(failed.fetch_success(), Some(false));
    assert_eq!(
        failed.mode_label(),
        "enforce",
        "the valid copy stays in force"
    );
    assert_eq!(failed.policy().unwrap().id, "keep1");

    let paced = discover_in(&cache, zone.addr, keep, at(150), Duration::from_secs(10)).await;
    assert_eq!(
        world.requests(keep),
        2,
        "a failing host is not asked again at once"
    );
    assert_eq!(paced.mode_label(), "enforce");

    let lapsed = discover_in(&cache, zone.addr, keep, at(86_400), Duration::from_secs(10)).await;
    assert_eq!(world.requests(keep), 3);
    assert_eq!(lapsed.mode_label(), "absent", "an expired copy is not kept");
    assert_eq!(lapsed.fetch_success(), Some(false));

    world.set_policy(keep, Some(&sts::enforce_policy(keep)));
    let mended = discover_in(&cache, zone.addr, keep, at(86_500), Duration::from_secs(10)).await;
    assert_eq!(world.requests(keep), 4);
    assert_eq!(
        (mended.mode_label(), mended.fetch_success()),
        ("enforce", Some(true))
    );
    assert_eq!(mended.policy().unwrap().id, "keep2");
}

#[tokio::test]
async fn a_new_id_triggers_a_refetch() {
    let world = world();
    let name = sts::ID_CHANGE;
    let cache = PolicyCache::default();
    let t0 = SystemTime::now();
    let at = |seconds| t0 + Duration::from_secs(seconds);
    let first = discover_in(&cache, world.dns, name, at(0), Duration::from_secs(10)).await;
    assert_eq!(first.policy().unwrap().id, "first");
    discover_in(&cache, world.dns, name, at(100), Duration::from_secs(10)).await;
    assert_eq!(world.requests(name), 1, "same id: served from the cache");

    let owner = format!("_mta-sts.{name}");
    let second_zone = world.zone(&[(&owner, &["v=STSv1; id=second"])]);
    let second = discover_in(
        &cache,
        second_zone.addr,
        name,
        at(200),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        world.requests(name),
        2,
        "a new id is fetched before the copy expires"
    );
    let cached = second.policy().unwrap();
    assert_eq!(cached.id, "second");
    assert_eq!(
        cached.same_policy_as.as_deref(),
        Some("first"),
        "the policy itself did not change"
    );

    world.set_policy(
        name,
        Some(&format!(
            "version: STSv1\nmode: testing\nmx: mx.{name}\nmax_age: 600\n"
        )),
    );
    let third_zone = world.zone(&[(&owner, &["v=STSv1; id=third"])]);
    let third = discover_in(
        &cache,
        third_zone.addr,
        name,
        at(300),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(world.requests(name), 3);
    let cached = third.policy().unwrap();
    assert_eq!(
        (cached.id.as_str(), cached.policy.mode),
        ("third", Mode::Testing)
    );
    assert_eq!(cached.same_policy_as, None);
}

#[tokio::test]
async fn tls_rpt_records() {
    let dns = resolver(world().dns);
    let lookup = |name: &'static str| {
        let dns = dns.clone();
        async move { TlsRpt::lookup(&domain(name), &dns, Instant::now() + Duration::from_secs(5)).await }
    };
    let mailto = lookup(sts::ENFORCE).await;
    assert!(mailto.present());
    assert!(matches!(&mailto, TlsRpt::Published(r) if r.rua == ["mailto:tlsrpt@enforce.sts.test"]));
    assert!(lookup(sts::TESTING).await.present(), "https rua");
    assert_eq!(lookup(sts::NONE).await, TlsRpt::Several);
    assert_eq!(
        lookup(sts::WILDCARD).await,
        TlsRpt::Invalid(RecordError::MissingRua)
    );
    assert_eq!(lookup(sts::NOT_FOUND).await, TlsRpt::NotPublished);
    assert!(!lookup(sts::NOT_FOUND).await.present());
}
