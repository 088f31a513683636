//! Query strings: the value of one parameter, percent-decoded; values percent-encoded for links.

use std::fmt::Write as _;

/// The first value of `key` in a query string, percent-decoded.
pub(super) fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == key)
            .then(|| percent_decode(v))
            .flatten()
    })
}

/// Decodes `%XX` escapes and `+`; `None` for malformed escapes or non-UTF-8 results.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `text` percent-encoded for a query value (everything but unreserved characters).
pub(super) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{percent_encode, query_param};

    #[test]
    fn values_are_encoded_and_decode_back() {
        assert_eq!(percent_encode("a.b-c_d"), "a.b-c_d");
        assert_eq!(percent_encode("a&b=<c>"), "a%26b%3D%3Cc%3E");
        let name = "a&b=<c> d";
        let query = format!("connector={}", percent_encode(name));
        assert_eq!(query_param(&query, "connector").as_deref(), Some(name));
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("connector=a.b-c", "connector").as_deref(),
            Some("a.b-c")
        );
        assert_eq!(
            query_param("x=1&connector=a%2Db", "connector").as_deref(),
            Some("a-b")
        );
        assert_eq!(query_param("x=1", "connector"), None);
        assert_eq!(query_param("connector=%zz", "connector"), None);
        assert_eq!(query_param("connector", "connector").as_deref(), Some(""));
    }
}
