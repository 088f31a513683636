//! A connector's own target labels (`labels:`), which `/sd` hands to Prometheus so that every
//! series of the connector carries them and alerts can be routed on them.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// The labels the exporter sets itself (on its series or on `/sd` targets) and those Prometheus
/// sets on every target: a connector's own labels may not take them over.
pub const RESERVED_LABELS: [&str; 19] = [
    "address",
    "cipher",
    "code",
    "connector",
    "connector_type",
    "host",
    "instance",
    "issuer",
    "job",
    "mode",
    "phase",
    "reason",
    "reply",
    "revision",
    "serial",
    "status",
    "subject",
    "usable",
    "version",
];

/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 128;

/// A label name: `[a-z_][a-z0-9_]*`, not starting with `__`, not one of [`RESERVED_LABELS`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelName(String);

impl LabelName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LabelName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut chars = text.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(
                "a label name is a lower-case letter or '_', then lower-case letters, digits \
                 and '_'"
                    .to_owned(),
            );
        }
        if text.starts_with("__") {
            return Err("names starting with \"__\" are reserved for Prometheus".to_owned());
        }
        if RESERVED_LABELS.contains(&text) {
            return Err(format!(
                "the exporter or Prometheus sets {text:?} itself; choose another name"
            ));
        }
        Ok(LabelName(text.to_owned()))
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for LabelName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A label value: 1 to [`MAX_LABEL_VALUE_CHARS`] characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelValue(String);

impl LabelValue {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LabelValue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "the value is empty (Prometheus drops an empty label: leave the key out instead)"
                    .to_owned(),
            );
        }
        if text.chars().count() > MAX_LABEL_VALUE_CHARS {
            return Err(format!(
                "the value is longer than {MAX_LABEL_VALUE_CHARS} characters"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("the value holds a control character".to_owned());
        }
        Ok(LabelValue(text.to_owned()))
    }
}

impl fmt::Display for LabelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for LabelValue {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for valid in ["team", "_x", "site_2", "owner_team"] {
            assert_eq!(
                LabelName::from_str(valid).map(|n| n.to_string()),
                Ok(valid.to_owned())
            );
        }
        let refused = |t: &str| LabelName::from_str(t).expect_err(t);
        let syntax =
            "a label name is a lower-case letter or '_', then lower-case letters, digits and '_'";
        for bad in ["", "Team", "2site", "a-b", "a.b", "é"] {
            assert_eq!(refused(bad), syntax, "{bad:?}");
        }
        assert_eq!(
            refused("__meta_x"),
            "names starting with \"__\" are reserved for Prometheus"
        );
        for reserved in RESERVED_LABELS {
            assert_eq!(
                refused(reserved),
                format!("the exporter or Prometheus sets {reserved:?} itself; choose another name")
            );
        }
    }

    #[test]
    fn values() {
        assert_eq!(
            LabelValue::from_str("Messaging team").map(|v| v.to_string()),
            Ok("Messaging team".to_owned())
        );
        assert_eq!(
            LabelValue::from_str(&"é".repeat(128)).map(|v| v.chars().count()),
            Ok(128)
        );
        assert_eq!(
            LabelValue::from_str(&"x".repeat(129)),
            Err("the value is longer than 128 characters".to_owned())
        );
        assert_eq!(
            LabelValue::from_str("a\nb"),
            Err("the value holds a control character".to_owned())
        );
        assert!(LabelValue::from_str("").is_err());
    }
}
