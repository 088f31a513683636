//! The `/probe` exposition of a few hundred connectors of varied outcomes, pinned to the bytes
//! the one-string encoder of 2026-12-01 wrote (their SHA-256 and length, recorded before the
//! answer was streamed), and the streamed answer checked against the whole one at any chunk
//! size.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::parse;
use crate::exporter::FinishedProbe;
use crate::metrics::text::Format;
use crate::outcome::{
    CertificateFailure, Code, ConnectFailure, DnsFailure, Failure, Outcome, Phase, SmtpFault,
    SmtpStep, TlsFailure,
};
use crate::postfix::QueueSummary;
use crate::probe::dane::Tlsa;
use crate::probe::dane_rule::{HostDane, TlsaAnswer};
use crate::probe::dnssec::DnssecStatus;
use crate::probe::mta_sts::check::MtaStsReport;
use crate::probe::tls::{CertificateFacts, TlsFacts};
use crate::probe::{DaneCheck, Report, TargetDane, TargetReport};
use crate::state::ConnectorState;

use super::body::tests::drain;
use super::{ProbeBody, ProbeMetrics};

/// How many connectors the pinned answer has.
const CONNECTORS: usize = 300;

/// A fixed instant, so that the answer does not depend on the clock.
fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn certificate(i: usize, finding: Option<CertificateFailure>) -> CertificateFacts {
    CertificateFacts {
        subject: format!("CN=mx{i}.example.test"),
        issuer: "CN=Test \"CA\", O=Bench\\Org".into(),
        serial: format!("{:x}", 0x1000 + i),
        names: vec![format!("mx{i}.example.test")],
        not_after: 1_900_000_000 + i as i64,
        chain_not_after: 1_890_000_000 + i as i64,
        finding,
    }
}

fn target(host: &str, address: Option<&str>, outcome: Outcome) -> TargetReport {
    TargetReport {
        host: host.into(),
        address: address.map(|a| a.parse::<IpAddr>().expect("ip")),
        outcome,
        phases: vec![
            (Phase::Connect, Duration::from_micros(1_250)),
            (Phase::Greeting, Duration::from_micros(3_500)),
        ],
        tls: None,
        last_reply: None,
        tls_fallback: None,
        dane: None,
    }
}

/// Probe `i`, one of eight kinds of outcome in turn.
fn probe(i: usize, connector: Arc<crate::config::Connector>) -> Arc<FinishedProbe> {
    let address = format!("192.0.2.{}", i % 250 + 1);
    let host = format!("mx{i}.example.test");
    let tls = |finding| TlsFacts {
        version: "TLSv1_3",
        cipher: "TLS13_AES_256_GCM_SHA384",
        certificate: Some(certificate(i, finding)),
    };
    let (outcome, targets, mta_sts, mx_dnssec) = match i % 8 {
        0 => {
            let mut t = target(&host, Some(&address), Ok(()));
            t.tls = Some(tls(None));
            (Ok(()), vec![t], None, None)
        }
        1 => {
            let failure = Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(421));
            (
                Err(failure),
                vec![target(&host, Some(&address), Err(failure))],
                None,
                None,
            )
        }
        2 => {
            let failure = Failure::Connect(ConnectFailure::Refused);
            let second = "2001:db8::25";
            let targets = vec![
                target(&host, Some(&address), Err(failure)),
                target(&host, Some(second), Err(failure)),
            ];
            (Err(failure), targets, None, None)
        }
        3 => {
            let failure = Failure::Tls(TlsFailure::Certificate(CertificateFailure::Expired));
            let mut t = target(&host, Some(&address), Err(failure));
            t.tls = Some(tls(Some(CertificateFailure::Expired)));
            (Err(failure), vec![t], None, None)
        }
        4 => {
            let mut t = target(&host, Some(&address), Ok(()));
            t.tls_fallback = Some(TlsFailure::Handshake);
            (Ok(()), vec![t], None, None)
        }
        5 => {
            let failure = Failure::Dns(DnsFailure::Nxdomain);
            (
                Err(failure),
                vec![target(&host, None, Err(failure))],
                None,
                None,
            )
        }
        6 => {
            let mut t = target(&host, Some(&address), Ok(()));
            t.tls = Some(tls(Some(CertificateFailure::Untrusted)));
            let sts = MtaStsReport::fixture(
                Some("version: STSv1\nmode: testing\nmax_age: 604800\nmx: *.example.test\n"),
                at(1_700_000_000),
                &[host.as_str(), "other.test"],
                &["v=TLSRPTv1; rua=mailto:tls@example.test"],
            );
            (Ok(()), vec![t], Some(sts), None)
        }
        _ => {
            let record = |usage| Tlsa {
                usage,
                selector: 1,
                matching: 1,
                data: vec![9; 32],
            };
            let dane = TargetDane {
                host: HostDane {
                    status: DnssecStatus::Secure,
                    tlsa: TlsaAnswer::Secure(vec![record(3), record(0)].into()),
                },
                check: Some(DaneCheck {
                    matched: (i % 16 == 7).then(|| record(3)),
                    needed: None,
                    rollover_ready: i % 16 == 7,
                    broken_chain: false,
                }),
            };
            let mut t = target(&host, Some(&address), Ok(()));
            t.tls = Some(tls(None));
            t.dane = Some(dane);
            (Ok(()), vec![t], None, Some(DnssecStatus::Secure))
        }
    };
    let mut failures = [0; Code::ALL.len()];
    failures[1 + i % (Code::ALL.len() - 1)] = i as u64;
    let state = ConnectorState {
        probes: 2 * i as u64 + 1,
        failures,
        streak_start: outcome.is_err().then(|| at(1_799_999_000)),
        last_success: (!i.is_multiple_of(3)).then(|| at(1_799_990_000 + i as u64)),
        ..ConnectorState::default()
    };
    let report = Report {
        connector,
        outcome,
        duration: Duration::from_micros(4_000 + 37 * i as u64),
        targets,
        mta_sts,
        mx_dnssec,
    };
    Arc::new(FinishedProbe {
        report,
        state,
        at: at(1_800_000_000),
    })
}

/// The probes of the pinned answer: smart-host connectors, and MX connectors for the DANE kind.
pub(super) fn probes() -> Vec<Arc<FinishedProbe>> {
    let mut yaml = String::from("connectors:\n");
    for i in 0..CONNECTORS {
        if i % 8 == 7 {
            yaml.push_str(&format!(
                "  - name: c{i}\n    use_mx_record: true\n    recipient_domains: [d{i}.example.test]\n"
            ));
        } else {
            yaml.push_str(&format!(
                "  - name: c{i}\n    smart_hosts: [mx{i}.example.test]\n"
            ));
        }
    }
    let config = parse(&yaml, Path::new("golden.yml")).expect("config");
    config
        .connectors
        .iter()
        .enumerate()
        .map(|(i, c)| probe(i, c.clone()))
        .collect()
}

fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The length and SHA-256 of the pinned answers, by format and with the Postfix queue or not.
const PINNED: [(Format, bool, usize, &str); 4] = [
    (
        Format::OpenMetrics,
        false,
        1_365_743,
        "058ad5d50a4aba9979255216bbb47c20ad2f1e4323a9e5f264fe9c1c58a74b7c",
    ),
    (
        Format::Text,
        false,
        1_365_761,
        "df5161dc4448e26b2d69e7e3a23a9331ae2d307fdeebec62dcb62ae42d1576a8",
    ),
    (
        Format::OpenMetrics,
        true,
        1_662_625,
        "3d08813103a39e396664d3cba3605dea6fa5a828cf99429377e0bc5dfc5b36a1",
    ),
    (
        Format::Text,
        true,
        1_662_643,
        "22f33fcc0f5ff22591037ca53998108bd9e803d36b9f19829e32ae21d8ab5a4f",
    ),
];

#[test]
fn the_answer_is_the_pinned_one_whole_and_in_chunks() {
    let probes = probes();
    let queue = Arc::new(QueueSummary::default());
    for (format, with_queue, length, sha256) in PINNED {
        let queue = with_queue.then(|| queue.clone());
        let whole = ProbeMetrics::new(&probes, queue.as_deref()).encode(format);
        // Every family of the answer has samples here, so the pin covers all of them.
        for family in whole.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = family.split(' ').next().unwrap_or_default();
            let sample = |l: &&str| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.trim_start_matches("_total").starts_with('{'))
            };
            assert!(whole.lines().any(|l| sample(&l)), "no sample of {name}");
        }
        assert_eq!((whole.len(), sha256_hex(&whole).as_str()), (length, sha256));
        // Chunks of one probe's samples at a time, of a few, and of the default size.
        for chunk in [1, 700, super::CHUNK] {
            let body = ProbeBody::with_chunk(probes.clone(), queue.clone(), format, chunk);
            let (chunks, streamed) = drain(body);
            assert!(
                streamed == whole,
                "{format:?}, chunks of {chunk}: not the same text"
            );
            assert!(chunks.iter().all(|c| !c.is_empty()));
            if chunk == super::CHUNK {
                assert!(chunks.len() > 10, "{} chunks", chunks.len());
                // A chunk ends where a probe's samples of a family end: a few KiB past the size.
                assert!(chunks.iter().all(|c| c.len() < chunk + 4096));
            }
        }
    }
}
