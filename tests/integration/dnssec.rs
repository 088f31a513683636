//! DNSSEC-aware lookups (`probe::dnssec`) against a real DNSSEC world: NSD serving zones signed
//! by the test, Unbound validating in front (see `common::dnssec_world`), in both validation
//! modes. The rule under test above all: a resolver hiccup never becomes `bogus`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_resolver::proto::rr::{Name, RecordType};
use mailflow_exporter::config::{DnsSettings, DnssecTrustAnchors, DnssecValidation, DomainName};
use mailflow_exporter::outcome::DnsFailure;
use mailflow_exporter::probe::dane::Tlsa;
use mailflow_exporter::probe::dnssec::{DnssecResolver, DnssecStatus, Lookup};
use tokio::time::Instant;

use crate::system::dnssec_world::{
    BOGUS_A_HOST, BOGUS_TLSA_HOST, EXPIRED_HOST, INSECURE_HOST, Meddle, Meddler, NSEC3_HOST,
    NSEC3_INSECURE_HOST, NSEC3_NO_TLSA_HOST, SECURE_DOMAIN, SECURE_HOST, SECURE_NO_TLSA_HOST,
    SERVFAIL_TLSA_HOST, TLSA_DATA, standard,
};

use DnssecStatus::{Bogus, Indeterminate, Insecure, Secure};

/// Time allowed to each DNS query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Both modes, each with a fresh resolver (no shared cache between tests).
fn both_modes(server: SocketAddr) -> [(&'static str, DnssecResolver); 2] {
    [
        ("exporter", exporter(server, &standard().root_ds)),
        ("resolver", resolver(server)),
    ]
}

/// The DNS settings of a connector asking `server`.
fn settings(
    server: SocketAddr,
    validation: DnssecValidation,
    anchors: DnssecTrustAnchors,
) -> DnsSettings {
    DnsSettings {
        nameservers: vec![server],
        timeout: QUERY_TIMEOUT,
        dnssec_validation: validation,
        trust_anchors: anchors,
    }
}

/// `exporter` mode through `server`, from the trust anchor file `anchor_file`.
fn exporter(server: SocketAddr, anchor_file: &Path) -> DnssecResolver {
    let anchors = anchors_from(anchor_file);
    DnssecResolver::new(&settings(server, DnssecValidation::Exporter, anchors)).unwrap()
}

/// `resolver` mode through `server`.
fn resolver(server: SocketAddr) -> DnssecResolver {
    let anchors = DnssecTrustAnchors::root();
    DnssecResolver::new(&settings(server, DnssecValidation::Resolver, anchors)).unwrap()
}

/// The anchors of `file`, read as the configuration reads `dns.trust_anchor_file`.
fn anchors_from(file: &Path) -> DnssecTrustAnchors {
    let yaml = format!(
        "defaults:\n  dns:\n    trust_anchor_file: \"{}\"\nconnectors:\n  - name: a\n    smart_hosts: [192.0.2.1]\n",
        file.display()
    );
    let config = mailflow_exporter::config::parse(&yaml, Path::new("dnssec-test.yml")).unwrap();
    config.connector("a").unwrap().dns.trust_anchors.clone()
}

fn domain(name: &str) -> DomainName {
    name.parse().unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn tlsa_311() -> Tlsa {
    Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: (0..TLSA_DATA.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&TLSA_DATA[i..i + 2], 16).unwrap())
            .collect(),
    }
}

#[tokio::test]
async fn a_signed_zone_is_secure_in_both_modes() {
    let world = standard();
    for (mode, dns) in both_modes(world.resolver) {
        let addresses = dns.addresses(SECURE_HOST, deadline()).await;
        assert_eq!(addresses.status, Secure, "{mode}: {addresses:?}");
        let mut found = addresses.records.unwrap();
        found.sort();
        assert_eq!(
            found,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ],
            "{mode}"
        );

        let mx = dns.mx(&domain(SECURE_DOMAIN), deadline()).await;
        assert_eq!(mx.status, Secure, "{mode}: {mx:?}");
        let exchangers = mx.records.unwrap();
        assert_eq!(exchangers.len(), 1, "{mode}");
        assert_eq!(exchangers[0].host, domain(SECURE_HOST), "{mode}");
        assert_eq!(exchangers[0].preference, 10, "{mode}");

        let tlsa = dns.tlsa(&domain(SECURE_HOST), 25, deadline()).await;
        assert_eq!(
            tlsa,
            Lookup {
                status: Secure,
                records: Ok(vec![tlsa_311()])
            },
            "{mode}"
        );
    }
    assert!(world.running());
}

#[tokio::test]
async fn a_missing_tlsa_record_in_a_signed_zone_is_a_secure_denial() {
    for (mode, dns) in both_modes(standard().resolver) {
        let tlsa = dns.tlsa(&domain(SECURE_NO_TLSA_HOST), 25, deadline()).await;
        assert_eq!(
            tlsa,
            Lookup {
                status: Secure,
                records: Err(DnsFailure::Nxdomain)
            },
            "{mode}"
        );
        // NODATA: the name exists (A), the type does not.
        let none = dns.mx(&domain(SECURE_HOST), deadline()).await;
        assert_eq!(
            none,
            Lookup {
                status: Secure,
                records: Err(DnsFailure::NoRecords)
            },
            "{mode}"
        );
    }
}

#[tokio::test]
async fn nsec3_denials_prove_out_too() {
    for (mode, dns) in both_modes(standard().resolver) {
        let tlsa = dns.tlsa(&domain(NSEC3_HOST), 25, deadline()).await;
        assert_eq!(
            tlsa,
            Lookup {
                status: Secure,
                records: Ok(vec![tlsa_311()])
            },
            "{mode}"
        );
        let none = dns.tlsa(&domain(NSEC3_NO_TLSA_HOST), 25, deadline()).await;
        assert_eq!(
            none,
            Lookup {
                status: Secure,
                records: Err(DnsFailure::Nxdomain)
            },
            "{mode}"
        );
        let below = dns.addresses(NSEC3_INSECURE_HOST, deadline()).await;
        assert_eq!(below.status, Insecure, "{mode}: {below:?}");
    }
}

#[tokio::test]
async fn an_unsigned_zone_is_insecure_in_both_modes() {
    for (mode, dns) in both_modes(standard().resolver) {
        let addresses = dns.addresses(INSECURE_HOST, deadline()).await;
        assert_eq!(addresses.status, Insecure, "{mode}: {addresses:?}");
        assert_eq!(
            addresses.records,
            Ok(vec!["127.0.0.1".parse::<IpAddr>().unwrap()]),
            "{mode}"
        );
        let tlsa = dns.tlsa(&domain(INSECURE_HOST), 25, deadline()).await;
        assert_eq!(
            tlsa,
            Lookup {
                status: Insecure,
                records: Ok(vec![tlsa_311()])
            },
            "{mode}"
        );
        let missing = dns
            .tlsa(&domain("nothing.insecure.test"), 25, deadline())
            .await;
        assert_eq!(
            missing,
            Lookup {
                status: Insecure,
                records: Err(DnsFailure::Nxdomain)
            },
            "{mode}"
        );
    }
}

#[tokio::test]
async fn a_broken_tlsa_signature_is_bogus_and_the_address_stays_secure() {
    let world = standard();
    let [(_, exporter_mode), (_, resolver_mode)] = both_modes(world.resolver);

    let tlsa = exporter_mode
        .tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline())
        .await;
    assert_eq!(tlsa.status, Bogus, "{tlsa:?}");
    // The exporter still sees the records it refused.
    assert_eq!(tlsa.records, Ok(vec![tlsa_311()]));
    let addresses = exporter_mode.addresses(BOGUS_TLSA_HOST, deadline()).await;
    assert_eq!(addresses.status, Secure, "{addresses:?}");

    // The resolver refuses the data: SERVFAIL with an extended DNS error (6–12).
    let tlsa = resolver_mode
        .tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline())
        .await;
    assert_eq!(
        tlsa,
        Lookup {
            status: Bogus,
            records: Err(DnsFailure::Servfail)
        }
    );
    let addresses = resolver_mode.addresses(BOGUS_TLSA_HOST, deadline()).await;
    assert_eq!(addresses.status, Secure, "{addresses:?}");
    assert!(
        world.resolver_log().contains("_25._tcp.mx.badtlsa.test"),
        "Unbound logged the validation failure"
    );
}

#[tokio::test]
async fn a_broken_address_signature_is_bogus() {
    for (mode, dns) in both_modes(standard().resolver) {
        let addresses = dns.addresses(BOGUS_A_HOST, deadline()).await;
        assert_eq!(addresses.status, Bogus, "{mode}: {addresses:?}");
        let tlsa = dns.tlsa(&domain(BOGUS_A_HOST), 25, deadline()).await;
        assert_eq!(tlsa.status, Secure, "{mode}: {tlsa:?}");
    }
}

#[tokio::test]
async fn expired_signatures_are_bogus() {
    for (mode, dns) in both_modes(standard().resolver) {
        let addresses = dns.addresses(EXPIRED_HOST, deadline()).await;
        assert_eq!(addresses.status, Bogus, "{mode}: {addresses:?}");
        let tlsa = dns.tlsa(&domain(EXPIRED_HOST), 25, deadline()).await;
        assert_eq!(tlsa.status, Bogus, "{mode}: {tlsa:?}");
    }
}

#[tokio::test]
async fn a_tlsa_servfail_is_a_failed_lookup_never_bogus() {
    for (mode, dns) in both_modes(standard().resolver) {
        let addresses = dns.addresses(SERVFAIL_TLSA_HOST, deadline()).await;
        assert_eq!(addresses.status, Secure, "{mode}: {addresses:?}");
        let tlsa = dns.tlsa(&domain(SERVFAIL_TLSA_HOST), 25, deadline()).await;
        assert_eq!(
            tlsa,
            Lookup {
                status: Indeterminate,
                records: Err(DnsFailure::Servfail)
            },
            "{mode}"
        );
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

#[tokio::test]
async fn a_failed_dnskey_or_ds_fetch_is_indeterminate_not_bogus() {
    let world = standard();
    // SERVFAIL for the zone's keys, silence for its DS: the chain can't be followed.
    for rule in [
        Meddle::Servfail(name("example.test."), RecordType::DNSKEY),
        Meddle::Silence(name("example.test."), RecordType::DS),
        Meddle::Servfail(name("test."), RecordType::DNSKEY),
    ] {
        let meddler = Meddler::start(world.resolver, vec![rule.clone()]);
        let dns = exporter(meddler.addr, &world.root_ds);
        let addresses = dns.addresses(SECURE_HOST, deadline()).await;
        assert_eq!(addresses.status, Indeterminate, "{rule:?}: {addresses:?}");
        // The records themselves came.
        assert!(addresses.records.is_ok(), "{rule:?}: {addresses:?}");
        let tlsa = dns.tlsa(&domain(SECURE_HOST), 25, deadline()).await;
        assert_eq!(tlsa.status, Indeterminate, "{rule:?}: {tlsa:?}");
    }
    // A hiccup hides even a real bogus signature: without a clean chain, no proof.
    let meddler = Meddler::start(
        world.resolver,
        vec![Meddle::Servfail(name("badtlsa.test."), RecordType::DNSKEY)],
    );
    let dns = exporter(meddler.addr, &world.root_ds);
    let tlsa = dns.tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline()).await;
    assert_eq!(tlsa.status, Indeterminate, "{tlsa:?}");
}

#[tokio::test]
async fn a_hiccup_that_passes_leaves_a_secure_answer() {
    let world = standard();
    let dns = exporter(world.resolver, &world.root_ds);
    let first = dns.addresses(SECURE_HOST, deadline()).await;
    assert_eq!(first.status, Secure);
    // The same resolver, asked again: the cached answers and keys still prove it.
    let again = dns.tlsa(&domain(SECURE_HOST), 25, deadline()).await;
    assert_eq!(again.status, Secure);
    let bogus = dns.tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline()).await;
    assert_eq!(bogus.status, Bogus);
    let bogus_again = dns.tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline()).await;
    assert_eq!(bogus_again.status, Bogus);
}

#[tokio::test]
async fn a_validated_lookup_of_a_cached_zone_costs_few_packets() {
    let world = standard();
    let counter = Meddler::start(world.resolver, vec![]);
    let dns = exporter(counter.addr, &world.root_ds);
    let cold = dns.tlsa(&domain(SECURE_HOST), 25, deadline()).await;
    assert_eq!(cold.status, Secure);
    let chain = counter.queries();
    // The TLSA answer, then the keys and delegations from the root down.
    assert!(
        chain >= 4,
        "a cold lookup fetches the chain: {chain} queries"
    );
    let warm = dns.tlsa(&domain(SECURE_HOST), 25, deadline()).await;
    assert_eq!(warm.status, Secure);
    assert_eq!(
        counter.queries(),
        chain,
        "a repeated lookup is answered from the cache"
    );
    let addresses = dns.addresses(SECURE_HOST, deadline()).await;
    assert_eq!(addresses.status, Secure);
    assert_eq!(
        counter.queries(),
        chain + 2,
        "a new name in a validated zone costs its own A and AAAA queries only"
    );
}

#[tokio::test]
async fn a_resolver_that_strips_signatures_leaves_everything_indeterminate() {
    let world = standard();
    // Everywhere: not even the anchors' keys can be checked.
    let meddler = Meddler::start(world.resolver, vec![Meddle::StripSignatures(Name::root())]);
    let dns = exporter(meddler.addr, &world.root_ds);
    for host in [SECURE_HOST, BOGUS_A_HOST, INSECURE_HOST] {
        let addresses = dns.addresses(host, deadline()).await;
        assert_eq!(addresses.status, Indeterminate, "{host}: {addresses:?}");
        assert!(addresses.records.is_ok(), "{host}: {addresses:?}");
    }
    // Below the root only: the chain starts, then its keys and denials come unsigned.
    let meddler = Meddler::start(world.resolver, vec![Meddle::StripSignatures(name("test."))]);
    let dns = exporter(meddler.addr, &world.root_ds);
    for host in [SECURE_HOST, BOGUS_A_HOST] {
        let addresses = dns.addresses(host, deadline()).await;
        assert_eq!(addresses.status, Indeterminate, "{host}: {addresses:?}");
    }
}

#[tokio::test]
async fn anchors_as_ds_or_dnskey_at_the_root_or_below() {
    let world = standard();
    for anchor in [&world.root_ds, &world.root_dnskey, &world.dnskeys["test"]] {
        let dns = exporter(world.resolver, anchor);
        let addresses = dns.addresses(SECURE_HOST, deadline()).await;
        assert_eq!(addresses.status, Secure, "{anchor:?}: {addresses:?}");
        let tlsa = dns.tlsa(&domain(BOGUS_TLSA_HOST), 25, deadline()).await;
        assert_eq!(tlsa.status, Bogus, "{anchor:?}: {tlsa:?}");
    }
    // An anchor for example.test covers nothing else: other names are indeterminate.
    let dns = exporter(world.resolver, &world.dnskeys["example.test"]);
    assert_eq!(dns.addresses(SECURE_HOST, deadline()).await.status, Secure);
    let elsewhere = dns.addresses(INSECURE_HOST, deadline()).await;
    assert_eq!(elsewhere.status, Indeterminate, "{elsewhere:?}");
    assert!(elsewhere.records.is_ok());
}

#[tokio::test]
async fn keys_that_no_anchor_validates_are_bogus() {
    let world = standard();
    // The root DS with one digest nibble changed: no root key matches it.
    let text = std::fs::read_to_string(&world.root_ds).unwrap();
    let ds = text.trim_end();
    let last = ds.chars().last().unwrap();
    let wrong = format!(
        "{}{}\n",
        &ds[..ds.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.ds");
    std::fs::write(&file, wrong).unwrap();
    let dns = exporter(world.resolver, &file);
    for host in [SECURE_HOST, INSECURE_HOST] {
        let addresses = dns.addresses(host, deadline()).await;
        assert_eq!(addresses.status, Bogus, "{host}: {addresses:?}");
    }
}

#[tokio::test]
async fn a_silent_name_server_ends_by_the_deadline() {
    let silent = crate::system::dnsmasq::silent();
    for (mode, dns) in both_modes(silent) {
        let started = Instant::now();
        let lookup = dns
            .tlsa(
                &domain(SECURE_HOST),
                25,
                Instant::now() + Duration::from_millis(500),
            )
            .await;
        assert_eq!(
            lookup,
            Lookup {
                status: Indeterminate,
                records: Err(DnsFailure::Timeout)
            },
            "{mode}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{mode}: took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_world_of_its_own_with_the_resolver_where_asked() {
    use crate::system::dnssec_world::{World, ZoneSpec};
    let port = crate::common::net::free_ports(1)[0];
    let at: SocketAddr = ([127, 0, 0, 1], port).into();
    let world = World::start_with_resolver(
        &[ZoneSpec::signed("own.test")
            .record("mx IN A 127.0.0.9")
            .record("_2525._tcp.mx IN TLSA 2 0 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")],
        Some(at),
    );
    assert_eq!(world.resolver, at);
    let dns = exporter(world.resolver, &world.root_ds);
    let addresses = dns.addresses("mx.own.test", deadline()).await;
    assert_eq!(addresses.status, Secure, "{addresses:?}");
    assert_eq!(
        addresses.records,
        Ok(vec!["127.0.0.9".parse::<IpAddr>().unwrap()])
    );
    let tlsa = dns.tlsa(&domain("mx.own.test"), 2525, deadline()).await;
    assert_eq!(tlsa.status, Secure, "{tlsa:?}");
    assert_eq!(tlsa.records.unwrap()[0].usage, 2);
    drop(world);
    // Stopped with the world: nothing answers there any more.
    let gone = crate::system::dns_wire::query(at, "mx.own.test", 1, Duration::from_millis(300));
    assert!(gone.is_err(), "{gone:?}");
}

#[test]
fn the_world_serves_what_it_was_told() {
    // The fixture's own checks, by plain queries: the authority answers, the resolver
    // validates (the lame zone SERVFAILs, the tampered one too).
    let world = standard();
    let short = Duration::from_secs(2);
    let answer = crate::system::dns_wire::query(world.authority, SECURE_HOST, 1, short).unwrap();
    assert_eq!(answer.rcode, 0);
    let bogus = crate::system::dns_wire::query(world.resolver, BOGUS_A_HOST, 1, short).unwrap();
    assert_eq!(bogus.rcode, 2, "Unbound refuses the bogus A");
    let tlsa = format!("_25._tcp.{SERVFAIL_TLSA_HOST}");
    let lame = crate::system::dns_wire::query(world.resolver, &tlsa, 52, short).unwrap();
    assert_eq!(lame.rcode, 2, "the lame delegation SERVFAILs");
}
