//! The TLS-RPT record (RFC 8460 §3) at `_smtp._tls.DOMAIN`: where a domain wants reports about
//! failed TLS sessions. It counts as present when exactly one `v=TLSRPTv1` record is published,
//! it is well-formed, and its `rua` names at least one `mailto:` or `https:` URI.

use tokio::time::{Instant, timeout_at};

use super::record::{RecordError, Selection, is_extension, is_wsp, select, split_fields};
use super::{PolicyDomain, Resolve};

/// The version tag of a TLS-RPT record.
const TLSRPT_VERSION: &str = "v=TLSRPTv1";

/// The most `rua` URIs kept from one record.
const MAX_RUA: usize = 16;

/// A well-formed TLS-RPT record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRptRecord {
    /// The report destinations of `rua`, in order (at most 16).
    pub rua: Vec<String>,
}

impl TlsRptRecord {
    /// Whether a sender could deliver reports: some `rua` URI is `mailto:` or `https:`.
    pub fn reachable(&self) -> bool {
        self.rua.iter().any(|uri| {
            let (scheme, rest) = uri.split_once(':').unwrap_or_default();
            !rest.is_empty()
                && (scheme.eq_ignore_ascii_case("mailto") || scheme.eq_ignore_ascii_case("https"))
        })
    }
}

/// What a domain's `_smtp._tls` TXT records say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsRpt {
    /// Exactly one well-formed `v=TLSRPTv1` record.
    Published(TlsRptRecord),
    /// No TXT record begins with `v=TLSRPTv1`.
    NotPublished,
    /// Two or more records begin with `v=TLSRPTv1`: as if none were published.
    Several,
    /// The one `v=TLSRPTv1` record is malformed.
    Invalid(RecordError),
    /// The TXT lookup failed (not "no such record": an error or no answer in time).
    LookupFailed,
}

impl TlsRpt {
    /// Looks up `_smtp._tls.DOMAIN` through `resolver`, giving up at `deadline`.
    pub async fn lookup<R: Resolve>(
        domain: &PolicyDomain,
        resolver: &R,
        deadline: Instant,
    ) -> TlsRpt {
        let name = format!("_smtp._tls.{}", domain.as_str());
        match timeout_at(deadline, resolver.txt(&name)).await {
            Ok(Ok(records)) => TlsRpt::from_txt(&records),
            Ok(Err(super::LookupFailure::NotFound)) => TlsRpt::NotPublished,
            Ok(Err(super::LookupFailure::Failed)) | Err(_) => TlsRpt::LookupFailed,
        }
    }

    /// Reads the TXT records of `_smtp._tls.DOMAIN` (each already joined from its strings).
    pub fn from_txt<S: AsRef<str>>(records: &[S]) -> TlsRpt {
        match select(records, TLSRPT_VERSION) {
            Selection::None => TlsRpt::NotPublished,
            Selection::Several => TlsRpt::Several,
            Selection::One(fields) => match parse_fields(fields) {
                Ok(record) => TlsRpt::Published(record),
                Err(error) => TlsRpt::Invalid(error),
            },
        }
    }

    /// Whether the domain publishes a usable record (`mailflow_tlsrpt_record_present`).
    pub fn present(&self) -> bool {
        match self {
            TlsRpt::Published(record) => record.reachable(),
            TlsRpt::NotPublished | TlsRpt::Several | TlsRpt::Invalid(_) | TlsRpt::LookupFailed => {
                false
            }
        }
    }
}

/// The record from the fields after `v=TLSRPTv1`.
fn parse_fields(fields: &str) -> Result<TlsRptRecord, RecordError> {
    let mut rua: Option<Vec<String>> = None;
    for field in split_fields(fields)? {
        let (name, value) = field.split_once('=').ok_or(RecordError::MalformedField)?;
        if name == "rua" {
            let uris = value
                .split(',')
                .map(|uri| uri.trim_matches(is_wsp))
                .map(|uri| {
                    is_uri(uri)
                        .then(|| uri.to_owned())
                        .ok_or(RecordError::BadUri)
                })
                .take(MAX_RUA)
                .collect::<Result<Vec<_>, _>>()?;
            if rua.replace(uris).is_some() {
                return Err(RecordError::RepeatedRua);
            }
        } else if !is_extension(name, value) {
            return Err(RecordError::MalformedField);
        }
    }
    let rua = rua.ok_or(RecordError::MissingRua)?;
    Ok(TlsRptRecord { rua })
}

/// `scheme:rest`: a scheme of a letter then letters, digits, `+`, `-` or `.`, and a non-empty
/// rest of printable characters (commas and semicolons would be %-encoded).
fn is_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(records: &[&str]) -> TlsRpt {
        TlsRpt::from_txt(records)
    }

    #[test]
    fn a_record_with_mailto_or_https_is_present() {
        for record in [
            "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
            "v=TLSRPTv1;rua=https://reports.example.com/tlsrpt",
            "v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/x;",
            "v=TLSRPTv1; rua=MAILTO:a@example.com; ext=1",
        ] {
            assert!(read(&[record, "v=spf1 -all"]).present(), "{record}");
        }
        assert_eq!(
            read(&["v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/"]),
            TlsRpt::Published(TlsRptRecord {
                rua: vec![
                    "mailto:a@example.com".into(),
                    "https://r.example.com/".into()
                ]
            })
        );
    }

    #[test]
    fn anything_else_is_absent() {
        assert_eq!(read(&[]), TlsRpt::NotPublished);
        assert_eq!(read(&["v=spf1 -all"]), TlsRpt::NotPublished);
        assert_eq!(
            read(&[
                "v=TLSRPTv1; rua=mailto:a@x.example",
                "v=TLSRPTv1; rua=mailto:b@x.example"
            ]),
            TlsRpt::Several
        );
        assert_eq!(
            read(&["v=TLSRPTv1"]),
            TlsRpt::Invalid(RecordError::MalformedField)
        );
        assert_eq!(
            read(&["v=TLSRPTv1; ext=1"]),
            TlsRpt::Invalid(RecordError::MissingRua)
        );
        assert_eq!(
            read(&["v=TLSRPTv1; rua="]),
            TlsRpt::Invalid(RecordError::BadUri)
        );
        assert_eq!(
            read(&["v=TLSRPTv1; rua=a@example.com"]),
            TlsRpt::Invalid(RecordError::BadUri)
        );
        assert_eq!(
            read(&["v=TLSRPTv1; rua=mailto:"]),
            TlsRpt::Invalid(RecordError::BadUri)
        );
        assert_eq!(
            read(&["v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example"]),
            TlsRpt::Invalid(RecordError::RepeatedRua)
        );
        let other_scheme = read(&["v=TLSRPTv1; rua=ftp://r.example.com/x"]);
        assert!(matches!(other_scheme, TlsRpt::Published(_)), "well-formed");
        assert!(
            !other_scheme.present(),
            "but no mailto or https destination"
        );
        assert!(!TlsRpt::LookupFailed.present());
    }
}
