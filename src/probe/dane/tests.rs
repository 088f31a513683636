//! DANE against chains the tests issue: usability, DANE-EE and DANE-TA matching with their
//! checks, the record a renewed leaf needs, and rollover readiness.

use ring::digest;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::chain::der_contents;
use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};
use time::{Duration, OffsetDateTime};

/// A certificate with its key, able to issue more.
struct Issued {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl Issued {
    fn spki(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }
}

fn params(name: &str, ca: bool, days: (i64, i64)) -> CertificateParams {
    let names = if ca { vec![] } else { vec![name.to_owned()] };
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(days.0);
    params.not_after = now + Duration::days(days.1);
    params
}

fn root(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let params = params(name, true, (-10, 3650));
    let der = params.self_signed(&key).unwrap().der().clone();
    Issued { params, key, der }
}

fn issue(issuer: &Issued, name: &str, ca: bool, days: (i64, i64)) -> Issued {
    let key = KeyPair::generate().unwrap();
    let params = params(name, ca, days);
    let signer = Issuer::from_params(&issuer.params, &issuer.key);
    let der = params.signed_by(&key, &signer).unwrap().der().clone();
    Issued { params, key, der }
}

/// Root → intermediate → leaf for `mx.example.test`, all valid today.
struct Pki {
    root: Issued,
    intermediate: Issued,
    leaf: Issued,
}

fn pki() -> Pki {
    let root = root("Test Root");
    let intermediate = issue(&root, "Test Intermediate", true, (-5, 1000));
    let leaf = issue(&intermediate, "mx.example.test", false, (-1, 90));
    Pki {
        root,
        intermediate,
        leaf,
    }
}

fn chain(certificates: &[&Issued]) -> Vec<CertificateDer<'static>> {
    certificates.iter().map(|c| c.der.clone()).collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

fn sha512(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, bytes).as_ref().to_vec()
}

fn tlsa(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

fn names(list: &[&str]) -> Vec<ServerName<'static>> {
    list.iter()
        .map(|n| ServerName::try_from(n.to_string()).unwrap())
        .collect()
}

fn auth(records: &[Tlsa], chain: &[CertificateDer<'static>], host: &str) -> Authentication {
    authenticate(records, chain, &names(&[host]), UnixTime::now())
}

fn matched(record: usize, usage: Usage, depth: usize) -> Authentication {
    Authentication::Matched(Match {
        record,
        usage,
        depth,
    })
}

#[test]
fn parses_rdata() {
    assert_eq!(
        Tlsa::from_rdata(&[3, 1, 1, 0xab, 0xcd]),
        Ok(tlsa(3, 1, 1, vec![0xab, 0xcd]))
    );
    assert_eq!(Tlsa::from_rdata(&[2, 0, 0]), Ok(tlsa(2, 0, 0, vec![])));
    assert_eq!(Tlsa::from_rdata(&[3, 1]), Err(TruncatedTlsa(2)));
    assert_eq!(
        TruncatedTlsa(2).to_string(),
        "TLSA record data of 2 bytes is shorter than its 3-byte header"
    );
}

#[test]
fn presentation_form() {
    assert_eq!(tlsa(3, 1, 1, vec![0x0a, 0xff]).to_string(), "3 1 1 0aff");
    assert_eq!(tlsa(2, 0, 0, vec![]).to_string(), "2 0 0 -");
}

#[test]
fn tells_usable_records_from_unusable_ones() {
    let usable = |u, s, m, len| tlsa(u, s, m, vec![7; len]).usability();
    assert_eq!(
        usable(3, 1, 1, 32),
        Ok(Usable {
            usage: Usage::DaneEe,
            selector: Selector::PublicKey,
            matching: Matching::Sha256
        })
    );
    assert_eq!(
        usable(2, 0, 2, 64),
        Ok(Usable {
            usage: Usage::DaneTa,
            selector: Selector::Certificate,
            matching: Matching::Sha512
        })
    );
    assert!(usable(3, 0, 0, 300).is_ok());
    assert_eq!(usable(0, 1, 1, 32), Err(Unusable::PkixUsage(0)));
    assert_eq!(usable(1, 1, 1, 32), Err(Unusable::PkixUsage(1)));
    assert_eq!(usable(4, 1, 1, 32), Err(Unusable::UnknownUsage(4)));
    assert_eq!(usable(3, 2, 1, 32), Err(Unusable::UnknownSelector(2)));
    assert_eq!(usable(3, 1, 3, 32), Err(Unusable::UnknownMatching(3)));
    assert_eq!(
        usable(3, 1, 1, 31),
        Err(Unusable::DataLength {
            expected: 32,
            found: 31
        })
    );
    assert_eq!(
        usable(3, 1, 2, 32),
        Err(Unusable::DataLength {
            expected: 64,
            found: 32
        })
    );
    assert_eq!(
        usable(3, 1, 0, 0),
        Err(Unusable::DataLength {
            expected: 0,
            found: 0
        })
    );
    let records = [
        tlsa(3, 1, 1, vec![1; 32]),
        tlsa(1, 1, 1, vec![1; 32]),
        tlsa(2, 1, 1, vec![1; 31]),
    ];
    assert_eq!(
        TlsaCounts::of(&records),
        TlsaCounts {
            usable: 1,
            unusable: 2
        }
    );
}

#[test]
fn dane_ee_matches_the_leaf_in_every_selector_and_matching_type() {
    let p = pki();
    let served = chain(&[&p.leaf, &p.intermediate]);
    let leaf = p.leaf.der.to_vec();
    let spki = p.leaf.spki();
    for record in [
        tlsa(3, 1, 1, sha256(&spki)),
        tlsa(3, 1, 2, sha512(&spki)),
        tlsa(3, 1, 0, spki.clone()),
        tlsa(3, 0, 1, sha256(&leaf)),
        tlsa(3, 0, 2, sha512(&leaf)),
        tlsa(3, 0, 0, leaf.clone()),
    ] {
        let shown = record.to_string();
        assert_eq!(
            auth(&[record], &served, "mx.example.test"),
            matched(0, Usage::DaneEe, 0),
            "{shown}"
        );
    }
}

#[test]
fn dane_ee_ignores_names_and_dates() {
    let p = pki();
    let expired = issue(&p.intermediate, "old.example.test", false, (-100, -10));
    let record = tlsa(3, 1, 1, sha256(&expired.spki()));
    assert_eq!(
        auth(&[record], &chain(&[&expired]), "mx.other.test"),
        matched(0, Usage::DaneEe, 0)
    );
}

#[test]
fn a_stale_record_after_a_renewal_is_a_mismatch_naming_the_record_needed() {
    let p = pki();
    let renewed = issue(&p.intermediate, "mx.example.test", false, (0, 90));
    let stale = tlsa(3, 1, 1, sha256(&p.leaf.spki()));
    let needed = tlsa(3, 1, 1, sha256(&renewed.spki()));
    assert_eq!(
        auth(
            &[stale],
            &chain(&[&renewed, &p.intermediate]),
            "mx.example.test"
        ),
        Authentication::Mismatch {
            needed: Some(needed.clone())
        }
    );
    assert_eq!(Tlsa::for_leaf(&renewed.der), Some(needed));
    assert_eq!(
        auth(&[tlsa(3, 1, 1, vec![0; 32])], &[], "mx.example.test"),
        Authentication::Mismatch { needed: None }
    );
}

#[test]
fn dane_ta_matches_a_presented_ca_certificate_or_key() {
    let p = pki();
    let served = chain(&[&p.leaf, &p.intermediate, &p.root]);
    let host = "mx.example.test";
    assert_eq!(
        auth(&[tlsa(2, 0, 1, sha256(&p.root.der))], &served, host),
        matched(0, Usage::DaneTa, 2)
    );
    assert_eq!(
        auth(
            &[tlsa(2, 1, 1, sha256(&p.intermediate.spki()))],
            &served,
            host
        ),
        matched(0, Usage::DaneTa, 1)
    );
    // An unusable record first does not shift the index reported.
    assert_eq!(
        auth(
            &[
                tlsa(1, 1, 1, sha256(&p.leaf.spki())),
                tlsa(2, 1, 2, sha512(&p.root.spki()))
            ],
            &served,
            host
        ),
        matched(1, Usage::DaneTa, 2)
    );
}

#[test]
fn dane_ta_never_matches_the_leaf_itself() {
    let p = pki();
    let record = tlsa(2, 1, 1, sha256(&p.leaf.spki()));
    assert!(matches!(
        auth(
            &[record],
            &chain(&[&p.leaf, &p.intermediate]),
            "mx.example.test"
        ),
        Authentication::Mismatch { .. }
    ));
}

#[test]
fn dane_ta_checks_the_name_against_every_reference_identifier() {
    let p = pki();
    let served = chain(&[&p.leaf, &p.intermediate]);
    let record = [tlsa(2, 0, 1, sha256(&p.intermediate.der))];
    let mismatch = Authentication::TaRejected {
        matched: Match {
            record: 0,
            usage: Usage::DaneTa,
            depth: 1,
        },
        failure: TaFailure::NameMismatch,
    };
    assert_eq!(auth(&record, &served, "mail.example.test"), mismatch);
    assert_eq!(
        authenticate(&record, &served, &[], UnixTime::now()),
        mismatch
    );
    assert_eq!(
        authenticate(
            &record,
            &served,
            &names(&["example.test", "mx.example.test"]),
            UnixTime::now()
        ),
        matched(0, Usage::DaneTa, 1)
    );
}

#[test]
fn dane_ta_checks_the_dates_of_the_chain_and_the_anchor() {
    let p = pki();
    let record = [tlsa(2, 1, 1, sha256(&p.intermediate.spki()))];
    let rejected = |failure| Authentication::TaRejected {
        matched: Match {
            record: 0,
            usage: Usage::DaneTa,
            depth: 1,
        },
        failure,
    };
    let expired = issue(&p.intermediate, "mx.example.test", false, (-100, -1));
    assert_eq!(
        auth(
            &record,
            &chain(&[&expired, &p.intermediate]),
            "mx.example.test"
        ),
        rejected(TaFailure::Expired)
    );
    let early = issue(&p.intermediate, "mx.example.test", false, (2, 90));
    assert_eq!(
        auth(
            &record,
            &chain(&[&early, &p.intermediate]),
            "mx.example.test"
        ),
        rejected(TaFailure::NotYetValid)
    );
    let old_ca = issue(&p.root, "Old Intermediate", true, (-100, -1));
    let leaf = issue(&old_ca, "mx.example.test", false, (-1, 90));
    assert_eq!(
        auth(
            &[tlsa(2, 1, 1, sha256(&old_ca.spki()))],
            &chain(&[&leaf, &old_ca]),
            "mx.example.test"
        ),
        rejected(TaFailure::Expired)
    );
}

#[test]
fn dane_ta_needs_the_chain_to_reach_the_anchor() {
    let p = pki();
    let stranger = root("Stranger CA");
    let record = [tlsa(2, 0, 1, sha256(&stranger.der))];
    assert_eq!(
        auth(&record, &chain(&[&p.leaf, &stranger]), "mx.example.test"),
        Authentication::TaRejected {
            matched: Match {
                record: 0,
                usage: Usage::DaneTa,
                depth: 1
            },
            failure: TaFailure::Invalid
        }
    );
}

#[test]
fn a_published_2_1_0_key_may_sign_the_chain_without_being_presented() {
    let p = pki();
    let record = [tlsa(2, 1, 0, p.intermediate.spki())];
    assert_eq!(
        auth(&record, &chain(&[&p.leaf]), "mx.example.test"),
        matched(0, Usage::DaneTa, 1)
    );
    // A digest can't stand in for a key that was not presented.
    let digest = [tlsa(2, 1, 1, sha256(&p.intermediate.spki()))];
    assert!(matches!(
        auth(&digest, &chain(&[&p.leaf]), "mx.example.test"),
        Authentication::Mismatch { .. }
    ));
    // Nor can a key that signed nothing presented.
    let other = [tlsa(2, 1, 0, p.root.spki())];
    assert!(matches!(
        auth(&other, &chain(&[&p.leaf]), "mx.example.test"),
        Authentication::Mismatch { .. }
    ));
}

#[test]
fn dane_ee_wins_over_a_failing_dane_ta() {
    let p = pki();
    let records = [
        tlsa(2, 1, 1, sha256(&p.intermediate.spki())),
        tlsa(3, 1, 1, sha256(&p.leaf.spki())),
    ];
    assert_eq!(
        auth(
            &records,
            &chain(&[&p.leaf, &p.intermediate]),
            "wrong.example.test"
        ),
        matched(1, Usage::DaneEe, 0)
    );
}

#[test]
fn only_pkix_usages_authenticate_nothing() {
    let p = pki();
    let records = [
        tlsa(0, 0, 1, sha256(&p.root.der)),
        tlsa(1, 1, 1, sha256(&p.leaf.spki())),
    ];
    assert_eq!(
        auth(
            &records,
            &chain(&[&p.leaf, &p.intermediate]),
            "mx.example.test"
        ),
        Authentication::NoUsableRecords
    );
    assert_eq!(
        auth(&[], &[], "mx.example.test"),
        Authentication::NoUsableRecords
    );
}

#[test]
fn rollover_is_ready_with_a_next_key_or_a_trust_anchor() {
    let p = pki();
    let served = chain(&[&p.leaf, &p.intermediate]);
    let current = tlsa(3, 1, 1, sha256(&p.leaf.spki()));
    let next_key = KeyPair::generate().unwrap();
    let next = tlsa(3, 1, 1, sha256(&next_key.subject_public_key_info()));
    let ta = tlsa(2, 1, 1, sha256(&p.intermediate.spki()));
    assert!(!rollover_ready(std::slice::from_ref(&current), &served));
    assert!(rollover_ready(&[current.clone(), next.clone()], &served));
    assert!(rollover_ready(std::slice::from_ref(&ta), &served));
    assert!(rollover_ready(&[current.clone(), ta], &served));
    // Nothing matches today: a renewal can't break what is already broken, but it isn't ready.
    assert!(!rollover_ready(std::slice::from_ref(&next), &served));
    // The "next" record must not match a certificate presented today: an EE record for the
    // intermediate's key matches a presented certificate, so it is no pre-published key.
    let intermediate_ee = tlsa(3, 1, 1, sha256(&p.intermediate.spki()));
    assert!(!rollover_ready(
        &[current.clone(), intermediate_ee],
        &served
    ));
    // An unusable record is no next key.
    let unusable = tlsa(1, 1, 1, sha256(&next_key.subject_public_key_info()));
    assert!(!rollover_ready(&[current, unusable], &served));
}

#[test]
fn der_contents_reads_short_and_long_lengths() {
    assert_eq!(der_contents(&[0x30, 0x02, 1, 2]), Some(&[1u8, 2][..]));
    let mut long = vec![0x30, 0x81, 200];
    long.extend(std::iter::repeat_n(9, 200));
    assert_eq!(der_contents(&long).map(<[u8]>::len), Some(200));
    assert_eq!(der_contents(&[0x30, 0x03, 1, 2]), None);
    assert_eq!(der_contents(&[0x31, 0x00]), None);
    assert_eq!(der_contents(&[0x30, 0x80]), None);
}
