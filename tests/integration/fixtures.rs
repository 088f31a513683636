//! Self-checks of the fixtures, independent of the exporter: if one of these fails, the probe
//! tests that use the fixture prove nothing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::exporter::{combined_output, run_with_timeout};
use crate::common::net::{FullBacklog, closed_port};
use crate::system::certs::certs;
use crate::system::dns_wire::{Record, TYPE_A, TYPE_AAAA, TYPE_MX, query, query_tcp_rcode};
use crate::system::dnsmasq::{self, dns};
use crate::system::netns::Netns;
use crate::system::postfix::postfix;

/// `openssl s_client` against a Postfix listener; returns its combined output.
fn s_client(port: u16, extra: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-brief",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ])
    .args(extra);
    combined_output(&run_with_timeout(&mut cmd, Duration::from_secs(10)))
}

#[test]
fn certificates_verify_as_intended() {
    let c = certs();
    let verify = |file: &std::path::Path, ca: &std::path::Path| {
        combined_output(
            &Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(ca)
                .arg(file)
                .output()
                .expect("openssl verify"),
        )
    };
    assert!(verify(&c.valid.chain_file, &c.ca_file).contains(": OK"));
    assert!(verify(&c.expired.chain_file, &c.ca_file).contains("certificate has expired"));
    assert!(verify(&c.notyet.chain_file, &c.ca_file).contains("certificate is not yet valid"));
    assert!(verify(&c.wrongname.chain_file, &c.ca_file).contains(": OK"));
    let untrusted = verify(&c.untrusted.chain_file, &c.ca_file);
    assert!(
        untrusted.contains("unable to get local issuer certificate"),
        "{untrusted}"
    );
    // The CA-flagged self-signed certificate carries CA:TRUE, as `openssl req -x509` sets it.
    let constraints = |leaf: &std::path::Path| {
        combined_output(
            &Command::new("openssl")
                .args(["x509", "-noout", "-ext", "basicConstraints", "-in"])
                .arg(leaf)
                .output()
                .expect("openssl x509"),
        )
    };
    let flagged = constraints(&c.selfsigned_ca.chain_file);
    assert!(flagged.contains("CA:TRUE"), "{flagged}");
    let plain = constraints(&c.selfsigned.chain_file);
    assert!(plain.contains("CA:FALSE"), "{plain}");
    let badsig = verify(&c.badsig.chain_file, &c.ca_file);
    assert!(badsig.contains("certificate signature failure"), "{badsig}");
    assert!(
        c.valid.chain_not_after < c.valid.not_after,
        "the CA expires before the leaf"
    );
}

#[test]
fn postfix_presents_each_certificate_over_starttls() {
    let p = postfix();
    let ca = certs().ca_file.display().to_string();
    for (listener, cn, verdict) in [
        ("valid", "valid.mailflow-fixture", "Verification: OK"),
        (
            "expired",
            "expired.mailflow-fixture",
            "certificate has expired",
        ),
        (
            "notyet",
            "notyet.mailflow-fixture",
            "certificate is not yet valid",
        ),
        (
            "wrongname",
            "wrongname.mailflow-fixture",
            "Verification: OK",
        ),
        (
            "untrusted",
            "untrusted.mailflow-fixture",
            "self-signed certificate in certificate chain",
        ),
        (
            "selfsigned",
            "selfsigned.mailflow-fixture",
            "self-signed certificate",
        ),
        (
            "selfsigned_ca",
            "selfsigned_ca.mailflow-fixture",
            "self-signed certificate",
        ),
        (
            "badsig",
            "valid.mailflow-fixture",
            "certificate signature failure",
        ),
        ("rcpt_reject", "valid.mailflow-fixture", "Verification: OK"),
    ] {
        let out = s_client(p.port(listener), &["-starttls", "smtp", "-CAfile", &ca]);
        assert!(
            out.contains(&format!("CN = {cn}")),
            "{listener}: {out}\n{}",
            p.log()
        );
        assert!(
            out.contains(verdict),
            "{listener}: expected {verdict:?} in {out}"
        );
        assert!(
            out.contains("Protocol version: TLSv1.3"),
            "{listener}: {out}"
        );
    }
    let out = s_client(p.port("implicit"), &["-CAfile", &ca]);
    assert!(
        out.contains("CN = valid.mailflow-fixture") && out.contains("Verification: OK"),
        "{out}"
    );
    // The wrong-name leaf fails a host name check that the valid one passes.
    let verify_host = |listener: &str, host: &str| {
        s_client(
            p.port(listener),
            &[
                "-starttls",
                "smtp",
                "-CAfile",
                &ca,
                "-verify_hostname",
                host,
            ],
        )
    };
    let out = verify_host("wrongname", "localhost");
    assert!(out.contains("hostname mismatch"), "{out}");
    let out = verify_host("valid", "mx.mf.test");
    assert!(out.contains("Verification: OK"), "{out}");
}

#[test]
fn postfix_tls10_listener_refuses_modern_tls() {
    let p = postfix();
    let out = s_client(p.port("tls10"), &["-starttls", "smtp", "-tls1_2"]);
    assert!(
        !out.contains("CONNECTION ESTABLISHED"),
        "TLS 1.2 must fail: {out}"
    );
    let out = s_client(
        p.port("tls10"),
        &[
            "-starttls",
            "smtp",
            "-tls1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ],
    );
    assert!(
        out.contains("Protocol version: TLSv1\n"),
        "TLS 1.0 must work: {out}\n{}",
        p.log()
    );
}

/// Send commands and read each reply (multi-line aware).
fn smtp_exchange(port: u16, commands: &[&str]) -> Vec<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let read_reply = |r: &mut BufReader<TcpStream>| {
        let mut all = String::new();
        for _ in 0..50 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        all
    };
    let mut replies = vec![read_reply(&mut r)];
    for c in commands {
        w.write_all(format!("{c}\r\n").as_bytes()).expect("write");
        replies.push(read_reply(&mut r));
    }
    replies
}

#[test]
fn postfix_plain_listeners_behave() {
    let p = postfix();
    let r = smtp_exchange(p.port("notls"), &["EHLO t.example", "QUIT"]);
    assert!(
        r[0].starts_with("220 mx.mf.test ESMTP fixture-notls"),
        "{r:?}"
    );
    assert!(
        r[1].starts_with("250-mx.mf.test") && !r[1].contains("STARTTLS"),
        "{r:?}"
    );
    let r = smtp_exchange(
        p.port("valid"),
        &[
            "EHLO t.example",
            "MAIL FROM:<a@mf.test>",
            "RCPT TO:<b@partner.example>",
            "RSET",
            "QUIT",
        ],
    );
    assert!(r[1].contains("STARTTLS"), "{r:?}");
    assert!(
        r[2].starts_with("250") && r[3].starts_with("250"),
        "relay from 127.0.0.1 is accepted: {r:?}"
    );
    let r = smtp_exchange(
        p.port("rcpt_reject"),
        &[
            "EHLO t.example",
            "MAIL FROM:<a@mf.test>",
            "RCPT TO:<b@partner.example>",
            "QUIT",
        ],
    );
    assert!(r[3].starts_with("554"), "{r:?}");
}

#[test]
fn dnsmasq_answers_each_situation() {
    let d = dns();
    let t = Duration::from_secs(2);
    let a = query(d.addr, dnsmasq::GOOD, TYPE_A, t).expect("query");
    assert_eq!(
        (a.rcode, a.records.clone()),
        (0, vec![Record::A([127, 0, 0, 1].into())])
    );
    let a = query(d.addr, dnsmasq::GOOD, TYPE_AAAA, t).expect("query");
    assert_eq!((a.rcode, a.records.len()), (0, 0), "no AAAA");
    let a = query(d.addr, dnsmasq::DUAL, TYPE_AAAA, t).expect("query");
    assert_eq!(
        (a.rcode, a.records.clone()),
        (0, vec![Record::Other(TYPE_AAAA)]),
        "AAAA ::1"
    );
    let a = query(d.addr, dnsmasq::NXDOMAIN, TYPE_A, t).expect("query");
    assert_eq!(a.rcode, 3, "NXDOMAIN");
    for qtype in [TYPE_A, TYPE_AAAA, TYPE_MX] {
        let a = query(d.addr, dnsmasq::NO_RECORDS, qtype, t).expect("query");
        assert_eq!(
            (a.rcode, a.records.len()),
            (0, 0),
            "NODATA for type {qtype}"
        );
    }
    let a = query(d.addr, dnsmasq::MX_DOMAIN, TYPE_MX, t).expect("query");
    assert_eq!(
        a.records,
        vec![Record::Mx(10, dnsmasq::MX_DOMAIN_HOST.into())]
    );
    let a = query(d.addr, dnsmasq::MX_PREF, TYPE_MX, t).expect("query");
    let mut mx: Vec<Record> = a
        .records
        .into_iter()
        .filter(|r| matches!(r, Record::Mx(..)))
        .collect();
    mx.sort_by_key(|r| match r {
        Record::Mx(p, _) => *p,
        _ => 0,
    });
    assert_eq!(
        mx,
        vec![
            Record::Mx(10, "mxa.mf.test".into()),
            Record::Mx(20, "mxb.mf.test".into())
        ]
    );
    let a = query(d.addr, dnsmasq::NULL_MX, TYPE_MX, t).expect("query");
    assert_eq!(
        (a.rcode, a.records.clone()),
        (0, vec![Record::Mx(0, ".".into())]),
        "null MX"
    );
    let a = query(d.addr, dnsmasq::SERVFAIL, TYPE_A, t).expect("query");
    assert_eq!(a.rcode, 2, "SERVFAIL\n{}", d.log());
    let a = query(d.addr, dnsmasq::REFUSED, TYPE_A, t).expect("query");
    assert_eq!(a.rcode, 5, "REFUSED");
    // The same over TCP, which a resolver may fall back to.
    assert_eq!(
        query_tcp_rcode(d.addr, dnsmasq::SERVFAIL, TYPE_A).expect("tcp"),
        2
    );
    assert_eq!(
        query_tcp_rcode(d.addr, dnsmasq::NXDOMAIN, TYPE_A).expect("tcp"),
        3
    );
    // The silent nameserver says nothing.
    let start = Instant::now();
    let err = query(
        dnsmasq::silent(),
        dnsmasq::GOOD,
        TYPE_A,
        Duration::from_millis(500),
    );
    assert!(
        err.is_err() && start.elapsed() >= Duration::from_millis(450),
        "silent: {err:?}"
    );
}

#[test]
fn connect_fixtures_fail_as_intended() {
    let port = closed_port("127.0.0.1");
    let e = TcpStream::connect(("127.0.0.1", port)).expect_err("closed port");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    let full = FullBacklog::new();
    let start = Instant::now();
    let e =
        TcpStream::connect_timeout(&full.addr, Duration::from_millis(700)).expect_err("full queue");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(650));

    let ns = Netns::new();
    ns.route("unreachable", "127.0.0.66");
    ns.route("throw", "127.0.0.77");
    for (addr, text) in [
        ("127.0.0.66", "No route to host"),
        ("127.0.0.77", "Network is unreachable"),
    ] {
        let out = run_with_timeout(
            ns.command("curl")
                .args(["-sS", "-m", "3", &format!("http://{addr}:25/")]),
            Duration::from_secs(10),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(text) || err.contains("Couldn't connect"),
            "{addr}: {err}"
        );
    }
}
