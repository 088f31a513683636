//! Where every chain of trust starts: the anchor zones' key sets, checked against the
//! configured trust anchors (`dns.trust_anchor_file`, DS or DNSKEY records, parsed by the
//! configuration; without a file, the root's DS records).
//!
//! Before a lookup validates anything, each anchor zone's DNSKEY RRset is fetched and checked
//! here: it must be signed, within its dates, by a key an anchor designates. Its keys are then
//! what hickory's validator trusts. (hickory's own `TrustAnchors` takes keys only, not DS
//! records, and for a zone other than the root it would still ask the parent for a DS unless
//! every key of the zone is an anchor; handing it the zone's whole validated key set avoids
//! both.)

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_resolver::proto::dnssec::{PublicKey, TrustAnchors, Verifier};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use tokio::time::Instant;

use super::upstream::{Unanswered, Upstream};
use crate::config::{DnssecTrustAnchor, DnssecTrustAnchors};

/// The longest a validated key set is trusted before it is fetched and checked again.
const MAX_KEYS_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest, so that a zero TTL does not mean a fetch per lookup.
const MIN_KEYS_LIFETIME: Duration = Duration::from_secs(5);

/// Whether some anchor's zone is `name` or one of its ancestors.
pub(super) fn covers(anchors: &DnssecTrustAnchors, name: &Name) -> bool {
    anchors
        .anchors
        .iter()
        .any(|anchor| zone_of(anchor).zone_of(name))
}

/// The zone an anchor is for.
fn zone_of(anchor: &DnssecTrustAnchor) -> &Name {
    match anchor {
        DnssecTrustAnchor::Ds { zone, .. } | DnssecTrustAnchor::Dnskey { zone, .. } => zone,
    }
}

/// The anchors' zones, each once.
fn zones(anchors: &DnssecTrustAnchors) -> Vec<Name> {
    let mut zones: Vec<Name> = Vec::new();
    for anchor in anchors.anchors.iter() {
        if !zones.contains(zone_of(anchor)) {
            zones.push(zone_of(anchor).clone());
        }
    }
    zones
}

/// Whether an anchor designates `key` of `zone`: the same key, or a key its DS digest covers.
fn designates(anchors: &DnssecTrustAnchors, zone: &Name, key: &DNSKEY) -> bool {
    if !key.zone_key() || key.revoke() {
        return false;
    }
    anchors.anchors.iter().any(|anchor| match anchor {
        DnssecTrustAnchor::Dnskey {
            zone: anchor_zone,
            key: anchor_key,
        } => {
            anchor_zone == zone
                && anchor_key.algorithm() == key.algorithm()
                && anchor_key.public_key().public_bytes() == key.public_key().public_bytes()
        }
        DnssecTrustAnchor::Ds {
            zone: anchor_zone,
            ds,
        } => {
            anchor_zone == zone
                && ds.algorithm() == key.algorithm()
                && ds.covers(zone, key).unwrap_or(false)
        }
    })
}

/// The key sets of the anchors' zones, validated, in the form hickory's validator takes.
#[derive(Clone)]
pub(super) struct TrustedKeys {
    /// Every key of every anchor zone's DNSKEY RRset.
    pub(super) anchors: Arc<TrustAnchors>,
    /// The keys, to tell a changed key set from the same one.
    pub(super) keys: Vec<(Name, DNSKEY)>,
    /// Until when the set may be used without fetching it again.
    pub(super) valid_until: Instant,
}

/// Why the anchors' key sets could not be established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeysFailure {
    /// The keys could not be fetched (no answer, an error code, a server that does not speak
    /// DNSSEC, signatures stripped): nothing is proven either way.
    Unobtainable,
    /// The keys came, signed, and the anchors do not validate them: no designated key, or no
    /// signature by one that verifies within its dates.
    NotValidated,
}

/// Fetches every anchor zone's DNSKEY RRset through `upstream` and checks it against `anchors`
/// at `now` (Unix seconds).
pub(super) async fn trusted_keys(
    anchors: &DnssecTrustAnchors,
    upstream: &Upstream,
    now: u32,
) -> Result<TrustedKeys, KeysFailure> {
    let mut trusted = TrustAnchors::empty();
    let mut keys = Vec::new();
    let mut lifetime = MAX_KEYS_LIFETIME;
    for zone in zones(anchors) {
        let response = upstream
            .query(&zone, RecordType::DNSKEY)
            .await
            .map_err(|Unanswered| KeysFailure::Unobtainable)?;
        if response.metadata.response_code != ResponseCode::NoError
            || !response
                .edns
                .as_ref()
                .is_some_and(|edns| edns.flags().dnssec_ok)
        {
            return Err(KeysFailure::Unobtainable);
        }
        let (zone_keys, signatures) = key_set(&zone, &response.answers);
        if zone_keys.is_empty() || signatures.is_empty() {
            return Err(KeysFailure::Unobtainable);
        }
        let expiration = validate_key_set(anchors, &zone, &zone_keys, &signatures, now)
            .ok_or(KeysFailure::NotValidated)?;
        let ttl = zone_keys.iter().map(|record| record.ttl).min().unwrap_or(0);
        let until_expiry = expiration.saturating_sub(now);
        lifetime = lifetime
            .min(Duration::from_secs(u64::from(ttl.min(until_expiry))))
            .max(MIN_KEYS_LIFETIME);
        for record in &zone_keys {
            if let RData::DNSSEC(DNSSECRData::DNSKEY(key)) = &record.data {
                trusted.insert_with_name(key.public_key(), (&zone).into());
                keys.push((zone.clone(), key.clone()));
            }
        }
    }
    Ok(TrustedKeys {
        anchors: Arc::new(trusted),
        keys,
        valid_until: Instant::now() + lifetime,
    })
}

/// The DNSKEY records of `zone` in `answers`, and the RRSIGs covering them.
fn key_set<'a>(zone: &Name, answers: &'a [Record]) -> (Vec<Record>, Vec<&'a RRSIG>) {
    let keys = answers
        .iter()
        .filter(|record| &record.name == zone && record.record_type() == RecordType::DNSKEY)
        .cloned()
        .collect();
    let signatures = answers
        .iter()
        .filter(|record| &record.name == zone)
        .filter_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig))
                if rrsig.input().type_covered == RecordType::DNSKEY =>
            {
                Some(rrsig)
            }
            _ => None,
        })
        .collect();
    (keys, signatures)
}

/// The expiration (Unix seconds) of a signature over `keys` made by a key the anchors designate
/// and valid at `now`, if there is one.
fn validate_key_set(
    anchors: &DnssecTrustAnchors,
    zone: &Name,
    keys: &[Record],
    signatures: &[&RRSIG],
    now: u32,
) -> Option<u32> {
    let designated: Vec<&DNSKEY> = keys
        .iter()
        .filter_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) if designates(anchors, zone, key) => Some(key),
            _ => None,
        })
        .collect();
    let now = SerialNumber::new(now);
    signatures.iter().find_map(|rrsig| {
        let input = rrsig.input();
        if &input.signer_name != zone || now < input.sig_inception || now > input.sig_expiration {
            return None;
        }
        designated.iter().find_map(|key| {
            let tag = key.calculate_key_tag().ok()?;
            if tag != input.key_tag || key.algorithm() != input.algorithm {
                return None;
            }
            key.verify_rrsig(zone, DNSClass::IN, rrsig, keys.iter())
                .ok()
                .map(|()| input.sig_expiration.get())
        })
    })
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKeys")
            .field("keys", &self.keys.len())
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use hickory_resolver::proto::dnssec::PublicKeyBuf;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// hickory's built-in root keys, as DNSKEY records.
    fn root_keys() -> Vec<DNSKEY> {
        let builtin = TrustAnchors::default();
        (0..builtin.len())
            .map(|index| {
                let key = builtin.get(index).unwrap();
                DNSKEY::with_flags(
                    257,
                    PublicKeyBuf::new(key.public_bytes().to_vec(), key.algorithm()),
                )
            })
            .collect()
    }

    #[test]
    fn the_root_anchors_designate_the_root_key_signing_keys() {
        let root = DnssecTrustAnchors::root();
        assert_eq!(zones(&root), vec![Name::root()]);
        assert!(covers(&root, &name("mx.example.com.")));
        for key in root_keys() {
            assert!(designates(&root, &Name::root(), &key));
            assert!(!designates(&root, &name("com."), &key));
        }
        // A key the anchors don't name, or one without the zone-key flag, is not designated.
        let other = DNSKEY::with_flags(
            257,
            PublicKeyBuf::new(
                vec![1; 64],
                hickory_resolver::proto::dnssec::Algorithm::ECDSAP256SHA256,
            ),
        );
        assert!(!designates(&root, &Name::root(), &other));
        let first = &root_keys()[0];
        let not_a_zone_key = DNSKEY::with_flags(1, first.public_key().clone());
        assert!(!designates(&root, &Name::root(), &not_a_zone_key));
    }

    #[test]
    fn a_key_anchor_below_the_root_covers_its_zone_only() {
        let key = root_keys().remove(0);
        let anchors = DnssecTrustAnchors {
            file: None,
            anchors: vec![DnssecTrustAnchor::Dnskey {
                zone: name("test."),
                key: key.clone(),
            }]
            .into(),
        };
        assert_eq!(zones(&anchors), vec![name("test.")]);
        assert!(covers(&anchors, &name("mx.example.test.")));
        assert!(covers(&anchors, &name("test.")));
        assert!(!covers(&anchors, &name("example.com.")));
        assert!(designates(&anchors, &name("test."), &key));
        assert!(!designates(&anchors, &Name::root(), &key));
    }
}
