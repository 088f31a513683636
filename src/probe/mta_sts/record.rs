//! The `_mta-sts.DOMAIN` TXT record (RFC 8461 §3.1), and the rules it shares with the TLS-RPT
//! record (RFC 8460 §3): only records that begin with the version tag count, exactly one of them
//! must be published, fields are separated by `;` with optional spaces around it.

use std::fmt;

/// The `_mta-sts` record of a domain: it announces a policy and names its version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StsRecord {
    /// The policy's `id`: 1 to 32 letters and digits; a new id means a new policy.
    pub id: String,
}

/// What a domain's `_mta-sts` TXT records say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsPublication {
    /// Exactly one `v=STSv1` record, and it is well-formed.
    Published(StsRecord),
    /// No TXT record begins with `v=STSv1` (other TXT records are ignored).
    NotPublished,
    /// Two or more records begin with `v=STSv1`: as if none were published.
    Several,
    /// The one `v=STSv1` record is malformed: as if none were published.
    Invalid(RecordError),
}

impl StsPublication {
    /// Reads the TXT records of `_mta-sts.DOMAIN` (each already joined from its strings).
    pub fn from_txt<S: AsRef<str>>(records: &[S]) -> StsPublication {
        match select(records, STS_VERSION) {
            Selection::None => StsPublication::NotPublished,
            Selection::Several => StsPublication::Several,
            Selection::One(fields) => match StsRecord::from_fields(fields) {
                Ok(record) => StsPublication::Published(record),
                Err(error) => StsPublication::Invalid(error),
            },
        }
    }
}

impl StsRecord {
    /// The record from the fields after `v=STSv1`.
    fn from_fields(fields: &str) -> Result<StsRecord, RecordError> {
        let mut id = None;
        for field in split_fields(fields)? {
            let (name, value) = field.split_once('=').ok_or(RecordError::MalformedField)?;
            if name == "id" {
                if !is_policy_id(value) {
                    return Err(RecordError::BadId);
                }
                if id.replace(value).is_some() {
                    return Err(RecordError::RepeatedId);
                }
            } else if !is_extension(name, value) {
                return Err(RecordError::MalformedField);
            }
        }
        let id = id.ok_or(RecordError::MissingId)?;
        Ok(StsRecord { id: id.to_owned() })
    }
}

/// What is wrong with a `v=STSv1` or `v=TLSRPTv1` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A field is not `name=value` with a well-formed name and value, or a field is empty.
    MalformedField,
    /// `id` is not 1 to 32 letters and digits.
    BadId,
    /// `id` appears twice.
    RepeatedId,
    /// There is no `id` field.
    MissingId,
    /// A `rua` URI is malformed.
    BadUri,
    /// `rua` appears twice.
    RepeatedRua,
    /// There is no `rua` field.
    MissingRua,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordError::MalformedField => "a field is not name=value",
            RecordError::BadId => "id is not 1 to 32 letters and digits",
            RecordError::RepeatedId => "id appears more than once",
            RecordError::MissingId => "the record has no id",
            RecordError::BadUri => "a rua URI is malformed",
            RecordError::RepeatedRua => "rua appears more than once",
            RecordError::MissingRua => "the record has no rua",
        })
    }
}

impl std::error::Error for RecordError {}

/// The version tag of an MTA-STS record.
const STS_VERSION: &str = "v=STSv1";

/// The record among a TXT RRset that carries `version`.
pub(super) enum Selection<'a> {
    /// No record begins with the tag.
    None,
    /// Exactly one does: what follows the tag.
    One(&'a str),
    /// Two or more do.
    Several,
}

/// Picks the one record that begins with `version` (followed by the end, a space or `;`).
pub(super) fn select<'a, S: AsRef<str>>(records: &'a [S], version: &str) -> Selection<'a> {
    let mut tagged = records.iter().filter_map(|record| {
        let rest = record.as_ref().strip_prefix(version)?;
        rest.chars()
            .next()
            .is_none_or(|c| c == ';' || is_wsp(c))
            .then_some(rest)
    });
    match (tagged.next(), tagged.next()) {
        (None, _) => Selection::None,
        (Some(rest), None) => Selection::One(rest),
        (Some(_), Some(_)) => Selection::Several,
    }
}

/// The fields after the version tag: `1*(*WSP ";" *WSP field) [*WSP ";" *WSP]`. At least one
/// field; an empty field only at the very end.
pub(super) fn split_fields(rest: &str) -> Result<Vec<&str>, RecordError> {
    let rest = rest.trim_start_matches(is_wsp);
    let rest = rest.strip_prefix(';').ok_or(RecordError::MalformedField)?;
    let mut fields: Vec<&str> = rest.split(';').map(|f| f.trim_matches(is_wsp)).collect();
    if fields.len() > 1 && fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    if fields.iter().any(|f| f.is_empty()) {
        return Err(RecordError::MalformedField);
    }
    Ok(fields)
}

/// An extension field: a name of a letter or digit and up to 31 letters, digits, `_`, `-`, `.`;
/// a value of printable characters other than `=`, `;` and space.
pub(super) fn is_extension(name: &str, value: &str) -> bool {
    let mut name_bytes = name.bytes();
    name_bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 32
        && name_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'=' && b != b';')
}

/// A policy id: 1 to 32 letters and digits.
fn is_policy_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Space or tab.
pub(super) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(records: &[&str]) -> StsPublication {
        StsPublication::from_txt(records)
    }

    fn published(id: &str) -> StsPublication {
        StsPublication::Published(StsRecord { id: id.to_owned() })
    }

    #[test]
    fn one_record_with_an_id() {
        assert_eq!(
            publication(&["v=STSv1; id=20240101T000000"]),
            publication(&["v=STSv1;id=20240101T000000;"])
        );
        assert_eq!(publication(&["v=STSv1; id=abc123"]), published("abc123"));
        assert_eq!(
            publication(&["v=STSv1 ;\tid=abc123 ; "]),
            published("abc123")
        );
        assert_eq!(
            publication(&["v=STSv1; id=abc; ext.1=some-value"]),
            published("abc"),
            "extensions are allowed"
        );
        assert_eq!(
            publication(&[&format!("v=STSv1; id={}", "a".repeat(32))]),
            published(&"a".repeat(32))
        );
    }

    #[test]
    fn other_txt_records_are_ignored() {
        assert_eq!(
            publication(&[
                "v=spf1 -all",
                "v=STSv1; id=one",
                "google-site-verification=x"
            ]),
            published("one")
        );
        assert_eq!(publication(&["v=spf1 -all"]), StsPublication::NotPublished);
        assert_eq!(publication(&[]), StsPublication::NotPublished);
        assert_eq!(
            publication(&["v=STSv10; id=1", "V=STSv1; id=1", " v=STSv1; id=1"]),
            StsPublication::NotPublished,
            "the tag is exact, case-sensitive and first"
        );
    }

    #[test]
    fn two_sts_records_count_as_none() {
        assert_eq!(
            publication(&["v=STSv1; id=one", "v=STSv1; id=two"]),
            StsPublication::Several
        );
        assert_eq!(
            publication(&["v=STSv1; id=one", "v=STSv1"]),
            StsPublication::Several
        );
    }

    #[test]
    fn malformed_records() {
        let invalid = |record: &str| match publication(&[record]) {
            StsPublication::Invalid(error) => error,
            other => panic!("{record:?} gave {other:?}"),
        };
        assert_eq!(invalid("v=STSv1"), RecordError::MalformedField);
        assert_eq!(invalid("v=STSv1;"), RecordError::MalformedField);
        assert_eq!(
            invalid("v=STSv1; id=abc;; x=1"),
            RecordError::MalformedField
        );
        assert_eq!(invalid("v=STSv1 id=abc"), RecordError::MalformedField);
        assert_eq!(invalid("v=STSv1; x=1"), RecordError::MissingId);
        assert_eq!(invalid("v=STSv1; id="), RecordError::BadId);
        assert_eq!(invalid("v=STSv1; id=a-b"), RecordError::BadId);
        assert_eq!(
            invalid(&format!("v=STSv1; id={}", "a".repeat(33))),
            RecordError::BadId
        );
        assert_eq!(invalid("v=STSv1; id=a; id=b"), RecordError::RepeatedId);
        assert_eq!(
            invalid("v=STSv1; id=a; bad name=1"),
            RecordError::MalformedField
        );
        assert_eq!(invalid("v=STSv1; id=a; x=a=b"), RecordError::MalformedField);
        assert_eq!(invalid("v=STSv1; id=a; x"), RecordError::MalformedField);
    }
}
