//! DNSSEC trust anchors: where every chain of trust starts.
//!
//! Anchors are DS or DNSKEY records in zone-file form (as in `dns.trust_anchor_file`, or the
//! IANA root anchors); without a file, the root's published key-signing keys. Before a lookup
//! validates anything, each anchor zone's DNSKEY RRset is fetched and checked here: it must be
//! signed, within its dates, by a key the anchors designate. Its keys are then what hickory's
//! validator trusts. (hickory's own `TrustAnchors` takes keys only, and for a zone other than
//! the root it would still ask the parent for a DS; handing it the zone's whole validated key
//! set avoids both.)

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_resolver::proto::dnssec::{
    Algorithm, DigestType, PublicKey, PublicKeyBuf, TrustAnchors, Verifier,
};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use tokio::time::Instant;

use super::upstream::{Unanswered, Upstream};

/// The longest a validated key set is trusted before it is fetched and checked again.
const MAX_KEYS_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest, so that a zero TTL does not mean a fetch per lookup.
const MIN_KEYS_LIFETIME: Duration = Duration::from_secs(5);

/// A set of DNSSEC trust anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchors {
    entries: Vec<Anchor>,
}

/// One trust anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Anchor {
    /// A DNSKEY of `zone`, trusted as it is.
    Key { zone: Name, key: DNSKEY },
    /// A DS for `zone`: the digest of a DNSKEY to trust.
    Digest { zone: Name, ds: DS },
}

/// Why a trust anchor text was refused. Lines count from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// A record that does not parse.
    #[error("line {line}: {message}")]
    Syntax {
        /// Where the record starts.
        line: usize,
        /// What the zone-file parser said.
        message: String,
    },
    /// A record other than DS or DNSKEY.
    #[error("line {line}: a {record_type} record is no trust anchor (only DS and DNSKEY are)")]
    NotAnAnchor {
        /// Where the record starts.
        line: usize,
        /// Its type.
        record_type: String,
    },
    /// A `$` directive other than `$TTL`.
    #[error("line {line}: {directive} is not allowed in a trust anchor file")]
    Directive {
        /// Where it is.
        line: usize,
        /// The directive.
        directive: String,
    },
    /// An owner name that is not absolute.
    #[error("line {line}: the owner name {name:?} must be absolute (end with a dot)")]
    RelativeName {
        /// Where the record starts.
        line: usize,
        /// The name as written.
        name: String,
    },
    /// An algorithm or digest type this build can't validate.
    #[error("line {line}: {what} is not supported")]
    Unsupported {
        /// Where the record starts.
        line: usize,
        /// The algorithm or digest type.
        what: String,
    },
    /// A DNSKEY without the zone-key flag, or revoked: it can't sign a zone.
    #[error("line {line}: the DNSKEY is not a usable zone key (flags {flags})")]
    NotAZoneKey {
        /// Where the record starts.
        line: usize,
        /// Its flags.
        flags: u16,
    },
    /// No record at all.
    #[error("no DS or DNSKEY record found")]
    Empty,
}

impl AnchorError {
    /// The line the error is on, for a configuration error that names file and line; `None`
    /// when it concerns the whole text.
    pub fn line(&self) -> Option<usize> {
        match self {
            AnchorError::Syntax { line, .. }
            | AnchorError::NotAnAnchor { line, .. }
            | AnchorError::Directive { line, .. }
            | AnchorError::RelativeName { line, .. }
            | AnchorError::Unsupported { line, .. }
            | AnchorError::NotAZoneKey { line, .. } => Some(*line),
            AnchorError::Empty => None,
        }
    }
}

impl Anchors {
    /// The root zone's key-signing keys, as IANA publishes them (KSK-2017 and KSK-2024).
    pub fn root() -> Self {
        let builtin = TrustAnchors::default();
        let entries = (0..builtin.len())
            .filter_map(|index| builtin.get(index))
            .map(|key| Anchor::Key {
                zone: Name::root(),
                key: DNSKEY::with_flags(DNSKEY_KSK_FLAGS, key.clone()),
            })
            .collect();
        Anchors { entries }
    }

    /// Parses DS and DNSKEY records in zone-file form: one record per line (or spread over
    /// lines with parentheses), absolute owner names, `;` comments, an optional `$TTL`.
    pub fn parse(text: &str) -> Result<Self, AnchorError> {
        let mut entries = Vec::new();
        for (line, record) in logical_records(text) {
            if let Some(directive) = record
                .split_whitespace()
                .next()
                .filter(|w| w.starts_with('$'))
            {
                if directive.eq_ignore_ascii_case("$TTL") {
                    continue;
                }
                return Err(AnchorError::Directive {
                    line,
                    directive: directive.to_owned(),
                });
            }
            entries.push(parse_record(line, &record)?);
        }
        if entries.is_empty() {
            return Err(AnchorError::Empty);
        }
        Ok(Anchors { entries })
    }

    /// Whether some anchor's zone is `name` or one of its ancestors.
    pub fn covers(&self, name: &Name) -> bool {
        self.entries
            .iter()
            .any(|anchor| anchor.zone().zone_of(name))
    }

    /// The anchors' zones, each once.
    fn zones(&self) -> Vec<Name> {
        let mut zones: Vec<Name> = Vec::new();
        for anchor in &self.entries {
            if !zones.contains(anchor.zone()) {
                zones.push(anchor.zone().clone());
            }
        }
        zones
    }

    /// Whether an anchor designates `key` of `zone`.
    fn designates(&self, zone: &Name, key: &DNSKEY) -> bool {
        if !key.zone_key() || key.revoke() {
            return false;
        }
        self.entries.iter().any(|anchor| match anchor {
            Anchor::Key {
                zone: anchor_zone,
                key: anchor_key,
            } => {
                anchor_zone == zone
                    && anchor_key.algorithm() == key.algorithm()
                    && anchor_key.public_key().public_bytes() == key.public_key().public_bytes()
            }
            Anchor::Digest {
                zone: anchor_zone,
                ds,
            } => {
                anchor_zone == zone
                    && ds.algorithm() == key.algorithm()
                    && ds.covers(zone, key).unwrap_or(false)
            }
        })
    }
}

/// The flags of a key-signing key: zone key (256) and secure entry point (1).
const DNSKEY_KSK_FLAGS: u16 = 257;

impl Anchor {
    fn zone(&self) -> &Name {
        match self {
            Anchor::Key { zone, .. } | Anchor::Digest { zone, .. } => zone,
        }
    }
}

/// The records of `text` with the line each starts on: comments dropped, parenthesised
/// continuations joined, blank lines skipped.
fn logical_records(text: &str) -> Vec<(usize, String)> {
    let mut records = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth = depth.saturating_sub(1),
                _ => {}
            }
            current.push(c);
        }
        if current.trim().is_empty() {
            current.clear();
            continue;
        }
        if start == 0 {
            start = index + 1;
        }
        if depth == 0 {
            records.push((start, std::mem::take(&mut current)));
            start = 0;
        } else {
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        records.push((start, current));
    }
    records
}

/// One DS or DNSKEY record of an anchor text: owner, optional TTL and class (either order),
/// type, then the RDATA (RFC 4034 §2.2 and §5.3 presentation forms; the key or digest may be
/// split over several words).
fn parse_record(line: usize, record: &str) -> Result<Anchor, AnchorError> {
    let syntax = |message: String| AnchorError::Syntax { line, message };
    let mut words = record
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|word| !word.is_empty());
    let owner = words.next().unwrap_or_default();
    if record.starts_with(char::is_whitespace) || !owner.ends_with('.') {
        return Err(AnchorError::RelativeName {
            line,
            name: owner.to_owned(),
        });
    }
    let zone = Name::from_ascii(owner)
        .map_err(|e| syntax(format!("bad owner name {owner:?}: {e}")))?
        .to_lowercase();
    let mut record_type = None;
    for word in words.by_ref() {
        let is_ttl = word.bytes().all(|b| b.is_ascii_digit());
        if !is_ttl && !word.eq_ignore_ascii_case("IN") {
            record_type = Some(word.to_ascii_uppercase());
            break;
        }
    }
    let record_type = record_type.ok_or_else(|| syntax("no record type".to_owned()))?;
    let rdata: Vec<&str> = words.collect();
    match record_type.as_str() {
        "DS" => parse_ds(&rdata).map_err(syntax).and_then(|ds| {
            if !ds.algorithm().is_supported() {
                return Err(AnchorError::Unsupported {
                    line,
                    what: format!("algorithm {}", u8::from(ds.algorithm())),
                });
            }
            if !ds.digest_type().is_supported() {
                return Err(AnchorError::Unsupported {
                    line,
                    what: format!("digest type {}", u8::from(ds.digest_type())),
                });
            }
            Ok(Anchor::Digest { zone, ds })
        }),
        "DNSKEY" => parse_dnskey(&rdata).map_err(syntax).and_then(|key| {
            if !key.algorithm().is_supported() {
                return Err(AnchorError::Unsupported {
                    line,
                    what: format!("algorithm {}", u8::from(key.algorithm())),
                });
            }
            if !key.zone_key() || key.revoke() {
                return Err(AnchorError::NotAZoneKey {
                    line,
                    flags: key.flags(),
                });
            }
            Ok(Anchor::Key { zone, key })
        }),
        _ => Err(AnchorError::NotAnAnchor { line, record_type }),
    }
}

/// DS RDATA: key tag, algorithm, digest type, digest in hex.
fn parse_ds(words: &[&str]) -> Result<DS, String> {
    let [key_tag, algorithm, digest_type, digest @ ..] = words else {
        return Err("a DS record needs a key tag, an algorithm, a digest type and a digest".into());
    };
    let digest: String = digest.concat();
    if digest.is_empty() {
        return Err("the DS record has no digest".into());
    }
    Ok(DS::new(
        number(key_tag, "key tag")?,
        Algorithm::from_u8(number(algorithm, "algorithm")?),
        DigestType::from(number::<u8>(digest_type, "digest type")?),
        hex(&digest).ok_or("the DS digest is not hexadecimal")?,
    ))
}

/// DNSKEY RDATA: flags, protocol (3), algorithm, public key in base64.
fn parse_dnskey(words: &[&str]) -> Result<DNSKEY, String> {
    let [flags, protocol, algorithm, key @ ..] = words else {
        return Err("a DNSKEY record needs flags, a protocol, an algorithm and a key".into());
    };
    if number::<u8>(protocol, "protocol")? != 3 {
        return Err(format!("the DNSKEY protocol must be 3, not {protocol}"));
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.concat())
        .map_err(|_| "the DNSKEY public key is not base64".to_owned())?;
    if key.is_empty() {
        return Err("the DNSKEY record has no public key".into());
    }
    let algorithm = Algorithm::from_u8(number(algorithm, "algorithm")?);
    Ok(DNSKEY::with_flags(
        number(flags, "flags")?,
        PublicKeyBuf::new(key, algorithm),
    ))
}

/// A decimal field.
fn number<T: std::str::FromStr>(word: &str, field: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("the {field} {word:?} is not a number in range"))
}

/// Hex digits to bytes.
fn hex(digits: &str) -> Option<Vec<u8>> {
    if digits.len() % 2 != 0 {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(digits.get(at..at + 2)?, 16).ok())
        .collect()
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
    anchors: &Anchors,
    upstream: &Upstream,
    now: u32,
) -> Result<TrustedKeys, KeysFailure> {
    let mut trusted = TrustAnchors::empty();
    let mut keys = Vec::new();
    let mut lifetime = MAX_KEYS_LIFETIME;
    for zone in anchors.zones() {
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
    anchors: &Anchors,
    zone: &Name,
    keys: &[Record],
    signatures: &[&RRSIG],
    now: u32,
) -> Option<u32> {
    let designated: Vec<&DNSKEY> = keys
        .iter()
        .filter_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) if anchors.designates(zone, key) => Some(key),
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

    const ROOT_DS: &str =
        ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D";

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn the_default_anchors_are_the_root_key_signing_keys() {
        let root = Anchors::root();
        assert_eq!(root.entries.len(), 2);
        assert_eq!(root.zones(), vec![Name::root()]);
        let tags: Vec<u16> = root
            .entries
            .iter()
            .map(|anchor| match anchor {
                Anchor::Key { key, .. } => key.calculate_key_tag().unwrap(),
                Anchor::Digest { .. } => 0,
            })
            .collect();
        assert_eq!(tags, vec![20326, 38696]);
        assert!(root.covers(&name("mx.example.com.")));
    }

    #[test]
    fn parses_ds_and_dnskey_anchors_in_zone_file_form() {
        let text = format!(
            "; the root, as IANA publishes it\n\
             {ROOT_DS}\n\
             \n\
             $TTL 3600\n\
             test. 172800 IN DNSKEY 257 3 13 (\n\
             \tmdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+\n\
             \tKkxLbxILfDLUT0rAK9iUzy1L53eKGQ== ) ; a KSK\n"
        );
        let anchors = Anchors::parse(&text).unwrap();
        assert_eq!(anchors.entries.len(), 2);
        assert_eq!(anchors.zones(), vec![Name::root(), name("test.")]);
        assert!(matches!(&anchors.entries[0], Anchor::Digest { ds, .. } if ds.key_tag() == 20326));
        assert!(matches!(&anchors.entries[1], Anchor::Key { zone, .. } if *zone == name("test.")));
        assert!(anchors.covers(&name("mx.example.test.")));
        // The root DS anchor covers everything; a test. key alone does not cover other names.
        let test_only =
            Anchors::parse(text.lines().skip(3).collect::<Vec<_>>().join("\n").as_str()).unwrap();
        assert!(test_only.covers(&name("example.test.")));
        assert!(!test_only.covers(&name("example.com.")));
    }

    #[test]
    fn the_root_ds_designates_the_root_ksk() {
        let anchors = Anchors::parse(ROOT_DS).unwrap();
        let root = Anchors::root();
        let Anchor::Key { key, .. } = &root.entries[0] else {
            panic!("the root anchors are keys");
        };
        assert!(anchors.designates(&Name::root(), key));
        assert!(root.designates(&Name::root(), key));
        assert!(!anchors.designates(&name("test."), key));
        let Anchor::Key { key: other, .. } = &root.entries[1] else {
            panic!("the root anchors are keys");
        };
        assert!(!anchors.designates(&Name::root(), other));
    }

    #[test]
    fn refuses_what_is_no_trust_anchor_with_its_line() {
        let error = |text: &str| Anchors::parse(text).unwrap_err().to_string();
        assert_eq!(error(""), "no DS or DNSKEY record found");
        assert_eq!(Anchors::parse("").unwrap_err().line(), None);
        assert_eq!(
            Anchors::parse("\n\nx. IN TXT hello\n").unwrap_err().line(),
            Some(3)
        );
        assert_eq!(error("; only a comment\n"), "no DS or DNSKEY record found");
        assert_eq!(
            error("\nexample.test. IN A 127.0.0.1\n"),
            "line 2: a A record is no trust anchor (only DS and DNSKEY are)"
        );
        assert_eq!(
            error("$INCLUDE /etc/passwd\n"),
            "line 1: $INCLUDE is not allowed in a trust anchor file"
        );
        assert_eq!(
            error("$ORIGIN test.\n"),
            "line 1: $ORIGIN is not allowed in a trust anchor file"
        );
        assert_eq!(
            error("test IN DS 1 13 2 00\n"),
            "line 1: the owner name \"test\" must be absolute (end with a dot)"
        );
        let root_digest = "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D";
        assert_eq!(
            error(&format!(". IN DS 20326 8 5 {root_digest}\n")),
            "line 1: digest type 5 is not supported"
        );
        assert_eq!(
            error(&format!(". IN DS 20326 3 2 {root_digest}\n")),
            "line 1: algorithm 3 is not supported"
        );
        assert_eq!(
            error(". IN DS twenty 8 2 00\n"),
            "line 1: the key tag \"twenty\" is not a number in range"
        );
        assert_eq!(
            error(". IN DS 1 8 2 0g\n"),
            "line 1: the DS digest is not hexadecimal"
        );
        assert_eq!(
            error(". IN DS 1 8\n"),
            "line 1: a DS record needs a key tag, an algorithm, a digest type and a digest"
        );
        assert_eq!(
            error(". IN DNSKEY 257 2 13 AAAA\n"),
            "line 1: the DNSKEY protocol must be 3, not 2"
        );
        assert_eq!(
            error(". IN DNSKEY 257 3 13 !!!\n"),
            "line 1: the DNSKEY public key is not base64"
        );
        assert_eq!(error(". IN\n"), "line 1: no record type");
        assert_eq!(
            error(
                ". IN DNSKEY 256 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n\
                 . IN DNSKEY 385 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n"
            ),
            "line 2: the DNSKEY is not a usable zone key (flags 385)"
        );
    }

    #[test]
    fn splits_records_over_parentheses_and_comments() {
        let records = logical_records(
            "a. IN DS 1 2 3 (\n  aa ; comment (\n  bb )\n\n; c\nb. IN DS 4 5 6 cc ; x\n",
        );
        assert_eq!(
            records,
            vec![
                (1, "a. IN DS 1 2 3 (\n  aa \n  bb )".to_owned()),
                (6, "b. IN DS 4 5 6 cc ".to_owned()),
            ]
        );
    }
}
