//! Where DANE and MTA-STS meet (codes.md: "where DANE applies to a host, MTA-STS is not applied to
//! it"; RFC 8461 §2): a destination whose MX host has DNSSEC-signed address and TLSA records *and*
//! an `enforce` MTA-STS policy that does not list that host.
//!
//! The destination is [`sts::MISSING`] of the MTA-STS world, whose nginx serves its policy
//! (`mode: enforce`, `mx: listed.missing.sts.test`) while its MX host is `mx.missing.sts.test`.
//! Here that domain is a signed zone of a DNSSEC world of its own (NSD and Unbound), carrying the
//! MX and address records, the `_mta-sts` record, the policy host's address (nginx), and TLSA
//! records per Postfix listener port:
//! - `valid`: a `3 1 1` record of the key the listener serves (DANE applies and matches);
//! - `wrongname`: the same record, while that listener serves another key (DANE applies and
//!   fails: a stale record);
//! - `sts`: none (a secure denial: DANE does not apply, so the policy does, and refuses the host).
//!
//! Each connector talks to one listener, so each port is a case.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::exporter::{BIN, Exporter, HELO, combined_output, run_with_timeout};
use crate::common::metrics::Metrics;
use crate::dane::spki_sha256;
use crate::system::certs::certs;
use crate::system::dnssec_world::{World, ZoneSpec};
use crate::system::mta_sts_world::{self as sts};
use crate::system::postfix::postfix;

/// The policy domain, and the MX host its policy does not list.
const DOMAIN: &str = sts::MISSING;
const MX_HOST: &str = "mx.missing.sts.test";

/// The world of these tests, with Unbound on port 53 of a loopback address of its own (the
/// sending Postfix and postfix-mta-sts-resolver read a resolv.conf, which can't name a port).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pid = std::process::id();
        let resolver = Ipv4Addr::new(127, 54, (pid >> 8) as u8, (pid % 250 + 2) as u8);
        World::start_with_resolver(&[zone()], Some((resolver, 53).into()))
    })
}

/// The signed zone of [`DOMAIN`]: MX, address, `_mta-sts` and policy-host records, and the TLSA
/// records of the listeners `valid` (matching) and `wrongname` (stale).
fn zone() -> ZoneSpec {
    let pf = postfix();
    let site = sts::world().site(DOMAIN);
    let valid = spki_sha256(&certs().valid.chain_file);
    let mut zone = ZoneSpec::signed(DOMAIN)
        .record("@ IN MX 10 mx")
        .record("mx IN A 127.0.0.1")
        .record(&format!("mta-sts IN A {}", sts::world().nginx));
    for record in site.sts {
        zone = zone.record(&format!("_mta-sts IN TXT \"{record}\""));
    }
    for listener in ["valid", "wrongname"] {
        zone = zone.record(&format!(
            "_{}._tcp.mx IN TLSA 3 1 1 {valid}",
            pf.port(listener)
        ));
    }
    zone
}

/// An MX connector for [`DOMAIN`] on the port of Postfix listener `listener`, trusting the
/// MTA-STS world's CA (the policy host) and the tests' CA (Postfix), with `extra` fields.
fn connector(name: &str, listener: &str, extra: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "  - name: {name}\n    use_mx_record: true\n    recipient_domains: [{DOMAIN}]\n    port: {}\n    ca_file: {}\n",
        postfix().port(listener),
        sts::world().trust_bundle.display()
    );
    for (key, value) in extra {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    yaml
}

/// A configuration resolving through the world's Unbound, validating as `mode` says.
fn config(mode: &str, connectors: &[String]) -> String {
    let w = world();
    let anchor = match mode {
        "exporter" => format!("    trust_anchor_file: \"{}\"\n", w.root_ds.display()),
        _ => String::new(),
    };
    format!(
        "defaults:\n  timeout: 10s\n  helo_name: {HELO}\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\n    dnssec_validation: {mode}\n{anchor}connectors:\n{}",
        w.resolver,
        connectors.concat()
    )
}

fn value(m: &Metrics, name: &str, connector: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("connector", connector)];
    all.extend_from_slice(labels);
    m.value(name, &all)
}

#[test]
fn dane_wins_over_an_enforce_policy_that_does_not_list_the_host() {
    let e = Exporter::start(&config(
        "exporter",
        &[
            connector("dane_ok", "valid", &[]),
            connector("dane_stale", "wrongname", &[]),
            connector("no_tlsa", "sts", &[]),
            connector("dane_off", "valid", &[("smtp_dane_mode", "none")]),
        ],
    ));
    let m = e.probe_path("/probe");
    println!(
        "{}{}",
        m.lines_of("mailflow_mta_sts"),
        m.lines_of("mailflow_dane")
    );

    // DANE applies: the policy, which would refuse the host (4.4.8), is not applied to it.
    e.assert_outcome(&m, "dane_ok", "ok", "", "");
    e.assert_outcome(&m, "dane_stale", "4.7.323", "tls", "tlsa_mismatch");
    // DANE does not apply (no TLSA at that port, proven absent; or DANE switched off): the
    // policy does, and refuses the host without a connection.
    e.assert_outcome(&m, "no_tlsa", "4.4.8", "mta_sts", "mx_not_in_policy");
    e.assert_outcome(&m, "dane_off", "4.4.8", "mta_sts", "mx_not_in_policy");

    // The policy is still reported as it is, host match included, whoever judged the host.
    for connector in ["dane_ok", "dane_stale", "no_tlsa", "dane_off"] {
        assert_eq!(
            value(
                &m,
                "mailflow_mta_sts_policy_mode",
                connector,
                &[("mode", "enforce")]
            ),
            Some(1.0),
            "{connector}"
        );
        assert_eq!(
            value(
                &m,
                "mailflow_mta_sts_mx_match",
                connector,
                &[("host", MX_HOST)]
            ),
            Some(0.0),
            "{connector}"
        );
    }
    let dane_match = |connector: &str| {
        value(
            &m,
            "mailflow_dane_match",
            connector,
            &[("address", "127.0.0.1")],
        )
    };
    assert_eq!(dane_match("dane_ok"), Some(1.0));
    assert_eq!(dane_match("dane_stale"), Some(0.0));
    assert_eq!(dane_match("no_tlsa"), None);
    // A secure "no TLSA": zeros, not absence.
    assert_eq!(
        value(
            &m,
            "mailflow_dane_tlsa_records",
            "no_tlsa",
            &[("usable", "true")]
        ),
        Some(0.0)
    );

    // `probe CONNECTOR` says why the policy did not decide.
    let out = run_with_timeout(
        Command::new(BIN)
            .args(["probe", "dane_ok", "--config.file"])
            .arg(e.config_file()),
        Duration::from_secs(30),
    );
    let text = combined_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = format!(
        "host {MX_HOST}: matches no mx pattern; DANE applies to it, so the policy does not"
    );
    assert!(text.contains(&line), "missing {line:?} in\n{text}");
}

/// A real sender agrees: a sending Postfix with DANE (`smtp_tls_security_level = dane`,
/// `smtp_dns_support_level = dnssec`) and MTA-STS (postfix-mta-sts-resolver in
/// `smtp_tls_policy_maps`), both asking the world's Unbound, delivers exactly where the exporter
/// (in `resolver` mode, through the same Unbound) says `ok`.
///
/// postfix-mta-sts-resolver answers `secure` for a policy domain whatever DANE says, and a
/// policy-table answer overrides Postfix's own DANE; its documentation has a sender that wants
/// RFC 8461's precedence list its DANE destinations before it, with `dane-only`. So does this
/// test, for the next hops whose host publishes TLSA records: that Postfix then delivers to the
/// matching one and holds the stale one, and the resolver's policy holds the host without
/// TLSA records back.
#[test]
fn postfix_with_dane_and_mta_sts_delivers_where_the_exporter_says_ok() {
    use crate::system::mta_sts_resolver::Resolver;
    use crate::system::postfix_sender::{Options, Route, Sender, SenderMode};

    // (case, listener, the exporter's code, the next hop listed as DANE-only, what Postfix logs
    // of the server's certificate: DANE's verdict, or the policy's `match=` name check)
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        (
            "dane-ok",
            "valid",
            "ok",
            true,
            "Verified TLS connection established",
        ),
        (
            "dane-stale",
            "wrongname",
            "4.7.323",
            true,
            "num=65:no matching DANE TLSA records",
        ),
        ("no-tlsa", "sts", "4.4.8", false, "num=62:hostname mismatch"),
    ];
    let w = world();
    let resolver_ip = match w.resolver {
        SocketAddr::V4(addr) => *addr.ip(),
        SocketAddr::V6(addr) => panic!("the world's resolver is IPv4, not {addr}"),
    };
    let resolver = Resolver::start(resolver_ip, &sts::world().ca_file);
    let receiver = postfix();
    let next_hop = |listener: &str| format!("{DOMAIN}:{}", receiver.port(listener));
    let routes: Vec<Route> = cases
        .iter()
        .map(|(case, listener, _, dane_only, _)| {
            let route = Route::new(&format!("{case}.agree-dane-sts.test"), &next_hop(listener));
            if *dane_only {
                route.tls("dane-only")
            } else {
                route
            }
        })
        .collect();
    let options = Options {
        nameserver: Some(resolver_ip),
        main_cf: format!(
            "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\nsmtp_tls_CAfile = {}\n\
             smtp_tls_policy_maps = texthash:$config_directory/tls_policy, {}\n\
             # The MX host is 127.0.0.1, which must not be this Postfix's own address (it would\n\
             # see a loop): it owns ::1 only, and still sends over IPv4.\n\
             inet_protocols = all\ninet_interfaces = [::1]\n",
            certs().ca_file.display(),
            resolver.policy_map()
        ),
    };
    let sender = Sender::start_with_options(&routes, SenderMode::Hold, &options);
    let recipients: Vec<String> = cases
        .iter()
        .map(|(case, ..)| format!("user@{case}.agree-dane-sts.test"))
        .collect();
    for recipient in &recipients {
        sender.send(recipient);
    }

    let connectors: Vec<String> = cases
        .iter()
        .map(|(case, listener, ..)| connector(case, listener, &[]))
        .collect();
    let exporter = Exporter::start(&config("resolver", &connectors));
    let metrics = exporter.probe_path("/probe");
    let deliveries = sender.wait_deliveries(&recipients, Duration::from_secs(90));

    let mut table = format!(
        "{:<11} {:<38} {:<9} {}\n",
        "case", "exporter", "postfix", "resolver's policy for Postfix"
    );
    let mut disagreements = Vec::new();
    let log = sender.log();
    for ((case, listener, expected, _, certificate), delivery) in cases.iter().zip(&deliveries) {
        let policy = resolver.query(&next_hop(listener));
        let code = metrics.code(case);
        let outcome = metrics.failure(case).map_or(code.clone(), |f| {
            format!("{} {} {}", f.code, f.phase, f.reason)
        });
        table.push_str(&format!(
            "{case:<11} {outcome:<38} {:<9} {policy}\n",
            delivery.status
        ));
        table.push_str(&format!("{:<11}   postfix: {}\n", "", delivery.line.trim()));
        assert_eq!(&code, expected, "{case}\n{table}");
        assert!(
            policy.starts_with("OK secure match=listed.missing.sts.test"),
            "{case}: the resolver holds the enforce policy that refuses the host: {policy}"
        );
        // The TLS line of this next hop's connection: which rule judged the certificate.
        let relay = format!("{MX_HOST}[127.0.0.1]:{}", receiver.port(listener));
        assert!(
            log.lines()
                .any(|line| line.contains(&relay) && line.contains(certificate)),
            "{case}: no {certificate:?} for {relay} in the Postfix log:\n{log}"
        );
        if (code == "ok") != (delivery.status == "sent") {
            disagreements.push(format!(
                "{case}: exporter {outcome}, postfix {}",
                delivery.status
            ));
        }
    }
    println!("{table}");
    assert!(
        disagreements.is_empty(),
        "{}\n{table}\nPostfix log:\n{}\nresolver log:\n{}",
        disagreements.join("\n"),
        log,
        resolver.log()
    );
}
