//! DANE end to end (codes.md, "DANE and MTA-STS"): the exporter's probes of a real Postfix whose
//! hosts live in a real DNSSEC world (NSD serving zones the test signs, Unbound in front), in
//! both validation modes, each row of the DANE table asserted as code, phase and reason from the
//! scraped metrics, with the DANE series beside.
//!
//! Every host resolves to 127.0.0.1; the TLSA records sit at `_PORT._tcp.HOST` for the port of
//! the Postfix listener the connector talks to, so the world is built once Postfix runs.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::exporter::{BIN, Exporter, combined_output, run_with_timeout};
use crate::common::metrics::Metrics;
use crate::system::certs::certs;
use crate::system::dnssec_world::{World, ZoneSpec};
use crate::system::postfix::postfix;

/// The signed zone of the DANE hosts.
const ZONE: &str = "dane.test";

/// The `3 1 1` association data (SHA-256 of the SubjectPublicKeyInfo) of the first certificate
/// in the PEM file `pem`, by openssl.
pub fn spki_sha256(pem: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
        pem.display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let digest = text.split_whitespace().next().unwrap().to_owned();
    assert_eq!(digest.len(), 64, "{text}");
    digest
}

/// The world of the DANE tests, started on first use.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start(&zones()))
}

/// The zones of the DANE tests: each host of `dane.test` with the TLSA records of its row, and
/// the zones of expired signatures, of a lame `_tcp` delegation and of an unsigned domain.
fn zones() -> Vec<ZoneSpec> {
    let pf = postfix();
    let c = certs();
    let valid = spki_sha256(&c.valid.chain_file);
    // The key a renewal put in place of the published one, or the next key pre-published.
    let other = spki_sha256(&c.untrusted.chain_file);
    let ca = spki_sha256(&c.ca_file);
    let port = |listener: &str| pf.port(listener);
    let tlsa = |host: &str, listener: &str, record: &str| {
        format!("_{}._tcp.{host} IN TLSA {record}", port(listener))
    };
    let mut zone = ZoneSpec::signed(ZONE);
    let rows: Vec<(&str, &str, String)> = vec![
        ("ok", "valid", format!("3 1 1 {valid}")),
        ("stale", "valid", format!("3 1 1 {other}")),
        ("ta", "valid", format!("2 1 1 {ca}")),
        ("taexp", "expired", format!("2 1 1 {ca}")),
        ("pkix", "valid", format!("1 1 1 {valid}")),
        ("pkixnotls", "notls", format!("1 1 1 {valid}")),
        ("roll", "valid", format!("3 1 1 {valid}")),
        ("roll", "valid", format!("3 1 1 {other}")),
        ("badtlsa", "valid", format!("3 1 1 {valid}")),
        ("bada", "valid", format!("3 1 1 {valid}")),
        ("servfail", "valid", format!("3 1 1 {valid}")),
    ];
    for host in [
        "ok",
        "stale",
        "ta",
        "taexp",
        "pkix",
        "pkixnotls",
        "roll",
        "badtlsa",
        "bada",
        "servfail",
        "notlsa",
    ] {
        zone = zone.record(&format!("{host} IN A 127.0.0.1"));
    }
    for (host, listener, record) in &rows {
        zone = zone.record(&tlsa(host, listener, record));
    }
    zone = zone
        .tamper(&format!("_{}._tcp.badtlsa", port("valid")), "TLSA")
        .tamper("bada", "A");
    let stale_record = tlsa("mx", "valid", &format!("3 1 1 {other}"));
    vec![
        zone,
        ZoneSpec::lame("_tcp.servfail.dane.test"),
        ZoneSpec::expired("expired-dane.test")
            .record("mx IN A 127.0.0.1")
            .record(&tlsa("mx", "valid", &format!("3 1 1 {valid}"))),
        ZoneSpec::unsigned("unsigned-dane.test")
            .record("mx IN A 127.0.0.1")
            .record(&stale_record),
    ]
}

/// A connector to `host` on the port of Postfix listener `listener`, trusting the test CA.
fn entry(name: &str, host: &str, listener: &str, extra: &[(&str, &str)]) -> String {
    let mut y = format!(
        "  - name: {name}\n    smart_hosts: [{host}]\n    port: {}\n    ca_file: \"{}\"\n",
        postfix().port(listener),
        certs().ca_file.display()
    );
    for (key, value) in extra {
        y.push_str(&format!("    {key}: {value}\n"));
    }
    y
}

/// A connector to the host `label.dane.test` on Postfix listener `listener`, resolving through
/// the DANE world's Unbound in `resolver` mode (for tests whose other connectors use another DNS
/// server).
pub fn dane_connector(name: &str, label: &str, listener: &str) -> String {
    let dns = format!(
        "{{nameservers: [\"{}\"], timeout: 2s, dnssec_validation: resolver}}",
        world().resolver
    );
    entry(name, &format!("{label}.{ZONE}"), listener, &[("dns", &dns)])
}

/// Every connector of the DANE table, and its expected code, phase and reason.
fn table() -> Vec<(
    String,
    &'static str,
    (&'static str, &'static str, &'static str),
)> {
    let dv = ("tls_settings", "domain_validation");
    let host = |label: &str| format!("{label}.{ZONE}");
    vec![
        // DANE-EE replaces the certificate rules: the leaf does not name the host, yet ok.
        (
            entry("ee_ok", &host("ok"), "valid", &[dv]),
            "ee_ok",
            ("ok", "", ""),
        ),
        (
            entry("ee_stale", &host("stale"), "valid", &[dv]),
            "ee_stale",
            ("4.7.323", "tls", "tlsa_mismatch"),
        ),
        (
            entry(
                "ta_ok",
                &host("ta"),
                "valid",
                &[dv, ("tls_domain", "mx.mf.test")],
            ),
            "ta_ok",
            ("ok", "", ""),
        ),
        (
            entry("ta_name", &host("ta"), "valid", &[]),
            "ta_name",
            ("4.7.325", "tls", "cert_name_mismatch"),
        ),
        (
            entry(
                "ta_expired",
                &host("taexp"),
                "expired",
                &[("tls_domain", "mx.mf.test")],
            ),
            "ta_expired",
            ("4.7.322", "tls", "cert_expired"),
        ),
        (
            entry("unusable_tls", &host("pkix"), "valid", &[dv]),
            "unusable_tls",
            ("ok", "", ""),
        ),
        (
            entry("unusable_notls", &host("pkixnotls"), "notls", &[]),
            "unusable_notls",
            ("4.7.321", "starttls", "starttls_not_offered"),
        ),
        (
            entry("rollover", &host("roll"), "valid", &[]),
            "rollover",
            ("ok", "", ""),
        ),
        (
            entry("bogus_tlsa", &host("badtlsa"), "valid", &[]),
            "bogus_tlsa",
            ("4.7.324", "dns", "dnssec_bogus"),
        ),
        (
            entry("bogus_a", &host("bada"), "valid", &[]),
            "bogus_a",
            ("4.7.324", "dns", "dnssec_bogus"),
        ),
        (
            entry("expired_sigs", "mx.expired-dane.test", "valid", &[]),
            "expired_sigs",
            ("4.7.324", "dns", "dnssec_bogus"),
        ),
        (
            entry("servfail", &host("servfail"), "valid", &[]),
            "servfail",
            ("4.7.324", "dns", "tlsa_lookup_failed"),
        ),
        // An unsigned zone: the stale TLSA record is not DANE; tls_settings rules apply.
        (
            entry("insecure", "mx.unsigned-dane.test", "valid", &[]),
            "insecure",
            ("ok", "", ""),
        ),
        (
            entry("insecure_dv", "mx.unsigned-dane.test", "valid", &[dv]),
            "insecure_dv",
            ("4.7.320", "tls", "cert_name_mismatch"),
        ),
        (
            entry(
                "mandatory_unsigned",
                "mx.unsigned-dane.test",
                "valid",
                &[("smtp_dane_mode", "mandatory")],
            ),
            "mandatory_unsigned",
            ("4.7.323", "dns", "dane_required"),
        ),
        (
            entry(
                "mandatory_no_tlsa",
                &host("notlsa"),
                "valid",
                &[("smtp_dane_mode", "mandatory")],
            ),
            "mandatory_no_tlsa",
            ("4.7.323", "dns", "dane_required"),
        ),
        (
            entry(
                "none_stale",
                &host("stale"),
                "valid",
                &[("smtp_dane_mode", "none")],
            ),
            "none_stale",
            ("ok", "", ""),
        ),
    ]
}

/// The exporter on the whole table, validating as `mode` says, and one scrape of every probe.
fn probe_table(mode: &str) -> (Exporter, Metrics) {
    let w = world();
    let anchor = match mode {
        "exporter" => format!("    trust_anchor_file: \"{}\"\n", w.root_ds.display()),
        _ => String::new(),
    };
    let mut yaml = format!(
        "defaults:\n  timeout: 8s\n  helo_name: probe.mailflow.test\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\n    dnssec_validation: {mode}\n{anchor}connectors:\n",
        w.resolver
    );
    let cases = table();
    for (entry, _, _) in &cases {
        yaml.push_str(entry);
    }
    let e = Exporter::start(&yaml);
    let m = e.probe_path("/probe");
    for (_, name, (code, phase, reason)) in &cases {
        e.assert_outcome(&m, name, code, phase, reason);
    }
    (e, m)
}

/// The DANE series every row shows, the same in both modes.
fn assert_dane_series(mode: &str, m: &Metrics) {
    let one = |name: &str, labels: &[(&str, &str)]| m.value(name, labels);
    let matched = |connector: &str| {
        one(
            "mailflow_dane_match",
            &[("connector", connector), ("address", "127.0.0.1")],
        )
    };
    assert_eq!(matched("ee_ok"), Some(1.0), "{mode}");
    assert_eq!(matched("ee_stale"), Some(0.0), "{mode}");
    assert_eq!(matched("ta_ok"), Some(1.0), "{mode}");
    // A DANE-TA match that then fails on the name still matched.
    assert_eq!(matched("ta_name"), Some(1.0), "{mode}");
    // Only unusable records, an unsigned zone, `none`: DANE authentication does not apply.
    for absent in ["unusable_tls", "insecure", "none_stale", "bogus_tlsa"] {
        assert_eq!(matched(absent), None, "{mode}: {absent}");
    }
    let rollover = |connector: &str, host: &str| {
        one(
            "mailflow_dane_rollover_ready",
            &[("connector", connector), ("host", host)],
        )
    };
    assert_eq!(rollover("rollover", "roll.dane.test"), Some(1.0), "{mode}");
    assert_eq!(rollover("ee_ok", "ok.dane.test"), Some(0.0), "{mode}");
    assert_eq!(rollover("ta_ok", "ta.dane.test"), Some(1.0), "{mode}");
    let status = |connector: &str, status: &str| {
        one(
            "mailflow_dnssec_status",
            &[("connector", connector), ("status", status)],
        )
    };
    assert_eq!(status("ee_ok", "secure"), Some(1.0), "{mode}");
    assert_eq!(status("insecure", "insecure"), Some(1.0), "{mode}");
    assert_eq!(status("bogus_a", "bogus"), Some(1.0), "{mode}");
    assert_eq!(
        status("none_stale", "secure"),
        None,
        "{mode}: none looks nothing up"
    );
    let records = |connector: &str, usable: &str| {
        one(
            "mailflow_dane_tlsa_records",
            &[("connector", connector), ("usable", usable)],
        )
    };
    assert_eq!(records("rollover", "true"), Some(2.0), "{mode}");
    assert_eq!(records("unusable_tls", "true"), Some(0.0), "{mode}");
    assert_eq!(records("unusable_tls", "false"), Some(1.0), "{mode}");
    // A secure "no TLSA" is zeros, not absence.
    assert_eq!(records("mandatory_no_tlsa", "true"), Some(0.0), "{mode}");
    assert_eq!(records("mandatory_no_tlsa", "false"), Some(0.0), "{mode}");
    assert_eq!(records("insecure", "true"), None, "{mode}");
    assert_eq!(records("servfail", "true"), None, "{mode}");
    // PKIX validity is still measured where DANE applies.
    assert_eq!(
        one(
            "mailflow_certificate_valid",
            &[("connector", "ee_ok"), ("address", "127.0.0.1")]
        ),
        Some(0.0),
        "{mode}: the leaf does not name ok.dane.test"
    );
}

#[test]
fn dane_table_in_exporter_mode() {
    let (_e, m) = probe_table("exporter");
    assert_dane_series("exporter", &m);
}

#[test]
fn dane_table_in_resolver_mode() {
    let (e, m) = probe_table("resolver");
    assert_dane_series("resolver", &m);

    // `probe CONNECTOR` explains a stale record: the statuses, the records, and the `3 1 1`
    // record the served certificate needs.
    let out = run_with_timeout(
        Command::new(BIN)
            .args(["probe", "ee_stale", "--config.file"])
            .arg(e.config_file()),
        std::time::Duration::from_secs(30),
    );
    let text = combined_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let port = postfix().port("valid");
    let needed = format!(
        "_{port}._tcp.stale.dane.test. IN TLSA 3 1 1 {}",
        spki_sha256(&certs().valid.chain_file)
    );
    let published = format!(
        "3 1 1 {}  usable",
        spki_sha256(&certs().untrusted.chain_file)
    );
    for line in [
        "4.7.323",
        "tlsa_mismatch",
        "stale.dane.test A/AAAA: DNSSEC secure",
        "TLSA (DNSSEC secure):",
        &published,
        &needed,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// A real DANE client agrees: a sending Postfix with `smtp_tls_security_level = dane` and
/// `smtp_dns_support_level = dnssec`, asking the world's validating Unbound (on port 53 of a
/// loopback address of its own), delivers exactly where the exporter (in `resolver` mode, through
/// the same Unbound) says `ok`. Each case's mail goes to its own recipient domain, routed to the
/// case's host on the port of its listener (`[host]:port`: Postfix looks TLSA up at
/// `_PORT._tcp.HOST` once the host's addresses are secure).
#[test]
fn postfix_with_dane_delivers_where_the_exporter_says_ok() {
    use crate::common::exporter::HELO;
    use crate::system::postfix_sender::{Options, Route, Sender, SenderMode};

    // (case, host, listener); the connectors have no tls_domain, as Postfix has none.
    let cases: &[(&str, &str, &str)] = &[
        ("ee-ok", "ok.dane.test", "valid"),
        ("ee-stale", "stale.dane.test", "valid"),
        ("ta-name", "ta.dane.test", "valid"),
        ("ta-expired", "taexp.dane.test", "expired"),
        ("unusable-tls", "pkix.dane.test", "valid"),
        ("unusable-notls", "pkixnotls.dane.test", "notls"),
        ("rollover", "roll.dane.test", "valid"),
        ("bogus-tlsa", "badtlsa.dane.test", "valid"),
        ("bogus-a", "bada.dane.test", "valid"),
        ("expired-sigs", "mx.expired-dane.test", "valid"),
        ("tlsa-servfail", "servfail.dane.test", "valid"),
        ("insecure", "mx.unsigned-dane.test", "valid"),
    ];
    let resolver_ip = std::net::Ipv4Addr::new(127, 53, 25, 25);
    let world = World::start_with_resolver(&zones(), Some((resolver_ip, 53).into()));
    let receiver = postfix();
    let next_hop = |host: &str, listener: &str| format!("[{host}]:{}", receiver.port(listener));
    let routes: Vec<Route> = cases
        .iter()
        .map(|(case, host, listener)| {
            Route::new(
                &format!("{case}.agree-dane.test"),
                &next_hop(host, listener),
            )
        })
        .collect();
    let options = Options {
        nameserver: Some(resolver_ip),
        main_cf: format!(
            "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\nsmtp_tls_CAfile = {}\n\
             # The hosts are 127.0.0.1, which must not be this Postfix's own address (it would\n\
             # see a loop): it owns ::1 only, and still sends over IPv4.\n\
             inet_protocols = all\ninet_interfaces = [::1]\n",
            certs().ca_file.display()
        ),
    };
    let sender = Sender::start_with_options(&routes, SenderMode::Hold, &options);
    let recipients: Vec<String> = cases
        .iter()
        .map(|(case, _, _)| format!("user@{case}.agree-dane.test"))
        .collect();
    for recipient in &recipients {
        sender.send(recipient);
    }

    let connectors: Vec<String> = cases
        .iter()
        .map(|(case, host, listener)| entry(case, host, listener, &[]))
        .collect();
    let yaml = format!(
        "defaults:\n  timeout: 10s\n  helo_name: {HELO}\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 2s\n    dnssec_validation: resolver\nconnectors:\n{}",
        world.resolver,
        connectors.concat()
    );
    let exporter = Exporter::start(&yaml);
    let metrics = exporter.probe_path("/probe");
    let deliveries = sender.wait_deliveries(&recipients, std::time::Duration::from_secs(90));

    let mut table = format!("{:<15} {:<42} {}\n", "case", "exporter", "postfix");
    let mut disagreements = Vec::new();
    for ((case, _, _), delivery) in cases.iter().zip(&deliveries) {
        let code = metrics.code(case);
        let outcome = metrics.failure(case).map_or(code.clone(), |f| {
            format!("{} {} {}", f.code, f.phase, f.reason)
        });
        table.push_str(&format!("{case:<15} {outcome:<42} {}\n", delivery.status));
        table.push_str(&format!("{:<15}   postfix: {}\n", "", delivery.line.trim()));
        if (code == "ok") != (delivery.status == "sent") {
            disagreements.push(format!(
                "{case}: exporter {outcome}, postfix {}",
                delivery.status
            ));
        }
    }
    println!("{table}");
    // Both sides really saw the cases: some delivered, some held.
    assert!(
        table.contains(" sent\n") && table.contains(" deferred\n"),
        "{table}"
    );
    assert!(
        disagreements.is_empty(),
        "{}\n{table}\nPostfix log:\n{}",
        disagreements.join("\n"),
        sender.log()
    );
}
