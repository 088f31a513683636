//! DNSSEC trust anchors (`dns.trust_anchor_file`): DS or DNSKEY records in zone-file form, as
//! `dig +noall +answer . DS`, unbound's `root.key` or `dnssec-keygen`'s `.key` files write them.
//! Without a file, the anchors are the root zone's own (IANA's KSK-2017 and KSK-2024).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DS};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKeyBuf};
use hickory_resolver::proto::rr::Name;

/// The trust anchors DNSSEC validation starts from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnssecTrustAnchors {
    /// The file they were read from; `None` for the root zone's own anchors.
    pub file: Option<PathBuf>,
    /// The anchors, in file order; never empty.
    pub anchors: Arc<[DnssecTrustAnchor]>,
}

/// One trust anchor: a DS or DNSKEY record for a zone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DnssecTrustAnchor {
    /// A digest of the zone's key-signing key.
    Ds {
        /// The zone (lower case, fully qualified).
        zone: Name,
        /// The record's data.
        ds: DS,
    },
    /// The zone's key itself.
    Dnskey {
        /// The zone (lower case, fully qualified).
        zone: Name,
        /// The record's data.
        key: DNSKEY,
    },
}

/// The root zone's DS records (https://data.iana.org/root-anchors/root-anchors.xml):
/// key tag, and the SHA-256 digest of the RSA/SHA-256 key.
const ROOT_DS: [(u16, [u8; 32]); 2] = [
    (
        20326,
        [
            0xe0, 0x6d, 0x44, 0xb8, 0x0b, 0x8f, 0x1d, 0x39, 0xa9, 0x5c, 0x0b, 0x0d, 0x7c, 0x65,
            0xd0, 0x84, 0x58, 0xe8, 0x80, 0x40, 0x9b, 0xbc, 0x68, 0x34, 0x57, 0x10, 0x42, 0x37,
            0xc7, 0xf8, 0xec, 0x8d,
        ],
    ),
    (
        38696,
        [
            0x68, 0x3d, 0x2d, 0x0a, 0xcb, 0x8c, 0x9b, 0x71, 0x2a, 0x19, 0x48, 0xb2, 0x7f, 0x74,
            0x12, 0x19, 0x29, 0x8d, 0x0a, 0x45, 0x0d, 0x61, 0x2c, 0x48, 0x3a, 0xf4, 0x44, 0xa4,
            0xc0, 0xfb, 0x2b, 0x16,
        ],
    ),
];

/// The DNSKEY flag of a zone key (RFC 4034 2.1.1).
const ZONE_KEY: u16 = 0x0100;
/// The DNSKEY flag of a revoked key (RFC 5011 3).
const REVOKED: u16 = 0x0080;

impl DnssecTrustAnchors {
    /// The root zone's anchors.
    pub fn root() -> Self {
        let anchors: Vec<DnssecTrustAnchor> = ROOT_DS
            .iter()
            .map(|(key_tag, digest)| DnssecTrustAnchor::Ds {
                zone: Name::root(),
                ds: DS::new(
                    *key_tag,
                    Algorithm::RSASHA256,
                    DigestType::SHA256,
                    digest.to_vec(),
                ),
            })
            .collect();
        DnssecTrustAnchors {
            file: None,
            anchors: anchors.into(),
        }
    }

    /// Reads and parses the anchors in `path`; the error names the file and line.
    pub(super) fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read trust anchor file {}: {e}", path.display()))?;
        let anchors = parse(&text)
            .map_err(|(line, message)| format!("{}:{line}: {message}", path.display()))?;
        if anchors.is_empty() {
            return Err(format!(
                "no DS or DNSKEY record in trust anchor file {}",
                path.display()
            ));
        }
        Ok(DnssecTrustAnchors {
            file: Some(path.to_owned()),
            anchors: anchors.into(),
        })
    }
}

/// The records of a trust anchor file; an error comes with the line its record starts on.
fn parse(text: &str) -> Result<Vec<DnssecTrustAnchor>, (usize, String)> {
    let mut anchors = Vec::new();
    let mut record = String::new();
    let mut starts_at = 0;
    let mut open = false;
    for (index, line) in text.lines().enumerate() {
        let content = line.split_once(';').map_or(line, |(data, _)| data);
        if !open {
            if content.trim().is_empty() {
                continue;
            }
            starts_at = index + 1;
            if content.starts_with(char::is_whitespace) {
                return Err((
                    starts_at,
                    "a record must start with its owner name at the beginning of the line"
                        .to_owned(),
                ));
            }
        }
        for c in content.chars() {
            match c {
                '(' if open => {
                    return Err((starts_at, "nested '(' in a record".to_owned()));
                }
                '(' => open = true,
                ')' if !open => return Err((starts_at, "')' without '('".to_owned())),
                ')' => open = false,
                c => record.push(c),
            }
        }
        record.push(' ');
        if !open {
            anchors.push(anchor(&record).map_err(|message| (starts_at, message))?);
            record.clear();
        }
    }
    if open {
        return Err((starts_at, "'(' without ')'".to_owned()));
    }
    Ok(anchors)
}

/// One record: `OWNER [TTL] [CLASS] TYPE DATA…` (TTL and class in either order).
fn anchor(record: &str) -> Result<DnssecTrustAnchor, String> {
    let mut tokens = record.split_whitespace();
    let owner = tokens.next().unwrap_or_default();
    if owner.starts_with('$') {
        return Err(format!(
            "the directive {owner} is not supported: write every record with its full owner \
             name, ending with '.'"
        ));
    }
    if !owner.ends_with('.') {
        return Err(format!(
            "the owner name {owner:?} must be fully qualified (end with '.'), e.g. \".\" for the root"
        ));
    }
    let zone = Name::from_ascii(owner)
        .map(|name| name.to_lowercase())
        .map_err(|e| format!("invalid owner name {owner:?}: {e}"))?;
    let mut record_type = None;
    let (mut ttl, mut class) = (false, false);
    for token in tokens.by_ref() {
        if !ttl && !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            ttl = true;
        } else if !class && token.eq_ignore_ascii_case("IN") {
            class = true;
        } else {
            record_type = Some(token);
            break;
        }
    }
    let data: Vec<&str> = tokens.collect();
    match record_type.map(str::to_ascii_uppercase).as_deref() {
        Some("DS") => ds(&data).map(|ds| DnssecTrustAnchor::Ds { zone, ds }),
        Some("DNSKEY") => dnskey(&data).map(|key| DnssecTrustAnchor::Dnskey { zone, key }),
        Some(other) => Err(format!(
            "the record type {other:?} is not a trust anchor: expected DS or DNSKEY (class IN)"
        )),
        None => Err("the record has no type: expected DS or DNSKEY".to_owned()),
    }
}

/// `KEY-TAG ALGORITHM DIGEST-TYPE DIGEST` (the digest in hexadecimal, spaces allowed).
fn ds(data: &[&str]) -> Result<DS, String> {
    let [key_tag, algorithm, digest_type, digest @ ..] = data else {
        return Err("a DS record is: key tag, algorithm, digest type, digest".to_owned());
    };
    let key_tag: u16 = number(key_tag, "key tag")?;
    let algorithm: u8 = number(algorithm, "algorithm")?;
    let (digest_type, length) = match number::<u8>(digest_type, "digest type")? {
        1 => (DigestType::SHA1, 20),
        2 => (DigestType::SHA256, 32),
        4 => (DigestType::SHA384, 48),
        other => {
            return Err(format!(
                "unsupported digest type {other}: expected 1 (SHA-1), 2 (SHA-256) or 4 (SHA-384)"
            ));
        }
    };
    let digest = hex(&digest.concat())?;
    if digest.len() != length {
        return Err(format!(
            "the digest has {} bytes; digest type {} has {length}",
            digest.len(),
            u8::from(digest_type)
        ));
    }
    Ok(DS::new(
        key_tag,
        Algorithm::from_u8(algorithm),
        digest_type,
        digest,
    ))
}

/// `FLAGS PROTOCOL ALGORITHM KEY` (the key in base64, spaces allowed).
fn dnskey(data: &[&str]) -> Result<DNSKEY, String> {
    let [flags, protocol, algorithm, key @ ..] = data else {
        return Err("a DNSKEY record is: flags, protocol, algorithm, public key".to_owned());
    };
    let flags: u16 = number(flags, "flags")?;
    if flags & ZONE_KEY == 0 {
        return Err(format!("flags {flags} do not mark a zone key (256 or 257)"));
    }
    if flags & REVOKED != 0 {
        return Err(format!("flags {flags} mark a revoked key"));
    }
    if number::<u8>(protocol, "protocol")? != 3 {
        return Err(format!("protocol {protocol}: a DNSKEY's protocol is 3"));
    }
    let algorithm: u8 = number(algorithm, "algorithm")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.concat())
        .map_err(|e| format!("the public key is not valid base64: {e}"))?;
    if key.is_empty() {
        return Err("the public key is missing".to_owned());
    }
    Ok(DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(key, Algorithm::from_u8(algorithm)),
    ))
}

/// A decimal field of a record.
fn number<T: std::str::FromStr>(text: &str, field: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("invalid {field} {text:?}: expected a decimal number"))
}

/// Bytes written in hexadecimal.
fn hex(text: &str) -> Result<Vec<u8>, String> {
    let invalid = || format!("the digest {text:?} is not hexadecimal");
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return Err(invalid());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| invalid()))
        .collect()
}

#[cfg(test)]
mod tests {
    use hickory_resolver::proto::dnssec::{PublicKey, TrustAnchors};

    use super::*;

    /// The root DS records above are the digests of the root keys that hickory ships.
    #[test]
    fn root_digests_match_the_root_keys() {
        let keys = TrustAnchors::default();
        let root = DnssecTrustAnchors::root();
        assert_eq!(root.anchors.len(), 2);
        for (index, anchor) in root.anchors.iter().enumerate() {
            let DnssecTrustAnchor::Ds { zone, ds } = anchor else {
                panic!("root anchors are DS records");
            };
            let public = keys.get(index).expect("a root key");
            let key = DNSKEY::new(
                true,
                true,
                false,
                PublicKeyBuf::new(public.public_bytes().to_vec(), public.algorithm()),
            );
            assert!(
                ds.covers(zone, &key).expect("digest"),
                "DS {}",
                ds.key_tag()
            );
            assert_eq!(key.calculate_key_tag().expect("tag"), ds.key_tag());
        }
    }

    const ROOT_KEY: &str = "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=";

    #[test]
    fn ds_and_dnskey_in_zone_file_form() {
        let text = format!(
            "; anchors for a test world\n\
             test.  3600 IN DS 12345 13 2 (\n  0123456789ABCDEF0123456789ABCDEF\n  0123456789abcdef0123456789abcdef ) ; KSK\n\
             \n\
             Test. IN 172800 DNSKEY 257 3 8 {}\n   {} ; unbound style\n",
            &ROOT_KEY[..100],
            &ROOT_KEY[100..]
        );
        // The DNSKEY's base64 goes on the next line only inside parentheses.
        assert_eq!(parse(&text).expect_err("continuation").0, 7);
        let text = text
            .replace("DNSKEY 257 3 8 ", "DNSKEY 257 3 8 (")
            .replace(" ; unbound style", ") ; unbound style");
        let anchors = parse(&text).expect("valid");
        assert_eq!(anchors.len(), 2);
        let DnssecTrustAnchor::Ds { zone, ds } = &anchors[0] else {
            panic!("DS")
        };
        assert_eq!(zone.to_ascii(), "test.");
        assert_eq!(
            (ds.key_tag(), u8::from(ds.algorithm()), ds.digest().len()),
            (12345, 13, 32)
        );
        assert_eq!(ds.digest()[..2], [0x01, 0x23]);
        let DnssecTrustAnchor::Dnskey { zone, key } = &anchors[1] else {
            panic!("DNSKEY")
        };
        assert_eq!(zone.to_ascii(), "test.");
        assert_eq!(key.flags(), 257);
        assert_eq!(key.calculate_key_tag().expect("tag"), 20326);
    }

    #[test]
    fn every_error_names_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                ". IN A 192.0.2.1\n",
                1,
                "the record type \"A\" is not a trust anchor: expected DS or DNSKEY (class IN)",
            ),
            (
                "\n\nexample IN DS 1 8 2 00\n",
                3,
                "the owner name \"example\" must be fully qualified (end with '.'), e.g. \".\" for the root",
            ),
            (
                "$ORIGIN .\n",
                1,
                "the directive $ORIGIN is not supported: write every record with its full owner name, ending with '.'",
            ),
            (
                ". DS 1 8 2 0011\n",
                1,
                "the digest has 2 bytes; digest type 2 has 32",
            ),
            (
                ". DS 1 8 3 0011\n",
                1,
                "unsupported digest type 3: expected 1 (SHA-1), 2 (SHA-256) or 4 (SHA-384)",
            ),
            (
                ". DS 1 8 2 XYZ0\n",
                1,
                "the digest \"XYZ0\" is not hexadecimal",
            ),
            (
                ". DS 99999 8 2 00\n",
                1,
                "invalid key tag \"99999\": expected a decimal number",
            ),
            (
                ". DS 1 8\n",
                1,
                "a DS record is: key tag, algorithm, digest type, digest",
            ),
            (
                ". DNSKEY 256 3 8 AwEAAQ==\n. DNSKEY 1 3 8 AwEAAQ==\n",
                2,
                "flags 1 do not mark a zone key (256 or 257)",
            ),
            (
                ". DNSKEY 385 3 8 AwEAAQ==\n",
                1,
                "flags 385 mark a revoked key",
            ),
            (
                ". DNSKEY 257 2 8 AwEAAQ==\n",
                1,
                "protocol 2: a DNSKEY's protocol is 3",
            ),
            (
                ". DNSKEY 257 3 8 !!!\n",
                1,
                "the public key is not valid base64: Invalid symbol 33, offset 0.",
            ),
            (
                ". IN 300\n",
                1,
                "the record has no type: expected DS or DNSKEY",
            ),
            (". DS ( 1 8 2\n", 1, "'(' without ')'"),
            (
                " . DS 1 8 2 00\n",
                1,
                "a record must start with its owner name at the beginning of the line",
            ),
        ];
        for (text, line, message) in cases {
            assert_eq!(
                parse(text).map(|a| a.len()),
                Err((*line, (*message).to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("anchors.txt");
        std::fs::write(&file, "; nothing\n").expect("write");
        assert_eq!(
            DnssecTrustAnchors::read(&file),
            Err(format!(
                "no DS or DNSKEY record in trust anchor file {}",
                file.display()
            ))
        );
        std::fs::write(&file, "\n. DS 1 8 2 0011\n").expect("write");
        assert_eq!(
            DnssecTrustAnchors::read(&file),
            Err(format!(
                "{}:2: the digest has 2 bytes; digest type 2 has 32",
                file.display()
            ))
        );
        std::fs::write(&file, format!(". DNSKEY 257 3 8 {ROOT_KEY}\n")).expect("write");
        let anchors = DnssecTrustAnchors::read(&file).expect("valid");
        assert_eq!(anchors.file.as_deref(), Some(file.as_path()));
        assert!(DnssecTrustAnchors::read(&dir.path().join("missing")).is_err());
    }
}
