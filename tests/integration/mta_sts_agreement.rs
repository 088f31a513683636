//! A real MTA-STS client agrees with the exporter: a sending Postfix whose
//! `smtp_tls_policy_maps` is served by postfix-mta-sts-resolver (an independent implementation
//! of RFC 8461, `common::mta_sts_resolver`) delivers, through the same DNS server and policy
//! hosts (`common::mta_sts_world`) and to the same receiving Postfix, exactly where the exporter
//! says `ok`, for every `enforce` case.
//!
//! Where the two are known to differ, the case says so and the test checks that they still
//! differ in that way, so that a change on either side shows:
//! - `*.example.com` matches exactly one label in RFC 8461 (and in the exporter), but the
//!   resolver hands it to Postfix as `match=.example.com`, which Postfix reads as any depth of
//!   subdomain: a host two labels down is delivered to.
//! - Postfix matches the policy's names against the certificate, not against the MX host name,
//!   and so finds an unlisted host only when its certificate does not carry a listed name either
//!   (the receiving server here names its own host only, as real servers do).

use std::time::Duration;

use crate::common::exporter::{Exporter, HELO};
use crate::system::certs::certs;
use crate::system::mta_sts_resolver::Resolver;
use crate::system::mta_sts_world::{self as sts, world};
use crate::system::postfix::postfix;
use crate::system::postfix_sender::{Options, Route, Sender, SenderMode};

/// One `enforce` case: a recipient domain in the world, the receiving listener, the exporter's
/// outcome (code, phase, reason), and a known disagreement, if any.
struct Case {
    name: &'static str,
    domain: &'static str,
    listener: &'static str,
    exporter: (&'static str, &'static str, &'static str),
    disagreement: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "listed",
        domain: sts::ENFORCE,
        listener: "sts",
        exporter: ("ok", "", ""),
        disagreement: None,
    },
    Case {
        name: "missing",
        domain: sts::MISSING,
        listener: "sts",
        exporter: ("4.4.8", "mta_sts", "mx_not_in_policy"),
        disagreement: None,
    },
    Case {
        name: "wild-one",
        domain: sts::WILDCARD,
        listener: "sts",
        exporter: ("ok", "", ""),
        disagreement: None,
    },
    Case {
        name: "wild-two",
        domain: sts::DEEP_WILDCARD,
        listener: "sts",
        exporter: ("4.4.8", "mta_sts", "mx_not_in_policy"),
        disagreement: Some(
            "Postfix reads the resolver's match=.deepwild.sts.test as any depth: it delivers to \
             deep.mx.deepwild.sts.test, two labels below *.deepwild.sts.test",
        ),
    },
    Case {
        name: "no-starttls",
        domain: sts::ENFORCE,
        listener: "notls",
        exporter: ("4.7.321", "starttls", "starttls_not_offered"),
        disagreement: None,
    },
    Case {
        name: "old-tls",
        domain: sts::ENFORCE,
        listener: "tls10",
        exporter: ("4.7.321", "tls", "tls_version"),
        disagreement: None,
    },
    Case {
        name: "wrong-name",
        domain: sts::ENFORCE,
        listener: "wrongname",
        exporter: ("4.7.5", "tls", "cert_name_mismatch"),
        disagreement: None,
    },
];

#[test]
fn postfix_with_an_mta_sts_resolver_delivers_where_the_exporter_says_ok() {
    let world = world();
    let receiver = postfix();
    let dns = match world.dns.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(ip) => panic!("the world's DNS is IPv4, not {ip}"),
    };
    let resolver = Resolver::start(dns, &world.ca_file);

    // Each case's mail goes to its own recipient domain, routed to the case's policy domain
    // (MX lookup) on the port of its listener: Postfix asks the policy map for that next hop.
    let next_hop = |case: &Case| format!("{}:{}", case.domain, receiver.port(case.listener));
    let routes: Vec<Route> = CASES
        .iter()
        .map(|case| Route::new(&format!("{}.agree.test", case.name), &next_hop(case)))
        .collect();
    let options = Options {
        nameserver: Some(dns),
        main_cf: format!(
            "smtp_tls_policy_maps = {}\nsmtp_tls_CAfile = {}\n\
             # The MX hosts are 127.0.0.1, which must not be this Postfix's own address (it\n\
             # would see a loop): it owns ::1 only, and still sends over IPv4.\n\
             inet_protocols = all\ninet_interfaces = [::1]\n",
            resolver.policy_map(),
            certs().ca_file.display()
        ),
    };
    let sender = Sender::start_with_options(&routes, SenderMode::Hold, &options);
    let recipients: Vec<String> = CASES
        .iter()
        .map(|case| format!("user@{}.agree.test", case.name))
        .collect();
    for recipient in &recipients {
        sender.send(recipient);
    }

    let connectors: Vec<String> = CASES
        .iter()
        .map(|case| {
            format!(
                "  - name: {}\n    use_mx_record: true\n    recipient_domains: [{}]\n    port: {}\n    ca_file: {}\n",
                case.name,
                case.domain,
                receiver.port(case.listener),
                world.trust_bundle.display()
            )
        })
        .collect();
    let yaml = format!(
        "defaults:\n  timeout: 10s\n  helo_name: {HELO}\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\nconnectors:\n{}",
        world.dns,
        connectors.concat()
    );
    let exporter = Exporter::start(&yaml);
    let metrics = exporter.probe_path("/probe");
    let deliveries = sender.wait_deliveries(&recipients, Duration::from_secs(60));

    let mut table = format!(
        "{:<12} {:<46} {:<9} {}\n",
        "case", "exporter (code phase reason)", "postfix", "resolver's policy for Postfix"
    );
    let mut problems = Vec::new();
    for (case, delivery) in CASES.iter().zip(&deliveries) {
        let policy = resolver.query(&next_hop(case));
        let code = metrics.code(case.name);
        let outcome = metrics.failure(case.name).map_or(code.clone(), |f| {
            format!("{} {} {}", f.code, f.phase, f.reason)
        });
        table.push_str(&format!(
            "{:<12} {:<46} {:<9} {policy}\n",
            case.name, outcome, delivery.status
        ));
        table.push_str(&format!("{:<12}   postfix: {}\n", "", delivery.line.trim()));
        if let Some(note) = case.disagreement {
            table.push_str(&format!("{:<12}   KNOWN DISAGREEMENT: {note}\n", ""));
        }
        let exporter_ok = code == "ok";
        let postfix_sent = delivery.status == "sent";
        let agree = exporter_ok == postfix_sent;
        if agree == case.disagreement.is_some() {
            problems.push(format!(
                "{}: exporter {outcome}, postfix {} ({})",
                case.name,
                delivery.status,
                if agree {
                    "a known disagreement is gone"
                } else {
                    "they disagree"
                }
            ));
        }
        let (code, phase, reason) = case.exporter;
        exporter.assert_outcome(&metrics, case.name, code, phase, reason);
        assert!(
            policy.starts_with("OK secure match="),
            "{}: the resolver holds an enforce policy: {policy}",
            case.name
        );
    }
    println!("{table}");
    assert!(
        problems.is_empty(),
        "{}\n{table}\nPostfix log:\n{}\nresolver log:\n{}",
        problems.join("\n"),
        sender.log(),
        resolver.log()
    );
}
