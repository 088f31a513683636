//! Durations written exactly as Prometheus writes them (`model.ParseDuration`).
//!
//! A duration is `0`, or one or more `NUMBER UNIT` pairs with the units `y`, `w`, `d`, `h`, `m`,
//! `s`, `ms` from the largest to the smallest, each at most once: `1h30m` and `1y2w` are valid,
//! `5s5s` and `1s1m` are not. A year is 365 days, a week 7 days, a day 24 hours. As in
//! Prometheus, the total must fit in a signed 64-bit count of nanoseconds (about 292 years).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The largest duration Prometheus accepts: `i64::MAX` nanoseconds, in milliseconds.
const MAX_MILLIS: u64 = i64::MAX as u64 / 1_000_000;

/// Parses a duration as Prometheus does; `0` (with or without a unit) is a valid duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration: expected e.g. \"15s\", \"1h30m\" or \"24h\"".to_owned());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index in UNITS of the previous unit: each one must come after it.
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        if number.is_empty() || unit.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: expected numbers with units (y, w, d, h, m, s, ms), \
                 e.g. \"15s\", \"1h30m\" or \"24h\""
            ));
        }
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?}; the units are y, w, d, h, m, s and ms"
            ));
        };
        if previous.is_some_and(|p| position <= p) {
            return Err(format!(
                "invalid duration {text:?}: units must go from the largest to the smallest, \
                 each at most once (y, w, d, h, m, s, ms), e.g. \"1h30m\""
            ));
        }
        previous = Some(position);
        let out_of_range = || format!("invalid duration {text:?}: out of range");
        let value: u64 = number.parse().map_err(|_| out_of_range())?;
        total = value
            .checked_mul(UNITS[position].1)
            .and_then(|millis| total.checked_add(millis))
            .filter(|millis| *millis <= MAX_MILLIS)
            .ok_or_else(out_of_range)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// A duration that must be greater than zero (every duration key of the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PositiveDuration(pub Duration);

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match parse_duration(&text) {
            Ok(duration) if duration.is_zero() => Err(serde::de::Error::custom(format!(
                "invalid duration {text:?}: must be greater than zero"
            ))),
            Ok(duration) => Ok(PositiveDuration(duration)),
            Err(message) => Err(serde::de::Error::custom(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    /// The table of the issue: what Prometheus accepts, with its value, and what it refuses.
    #[test]
    fn prometheus_durations() {
        let valid: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("15s", Duration::from_secs(15)),
            ("1m30s", Duration::from_secs(90)),
            ("1h30m", Duration::from_secs(HOUR + 30 * MINUTE)),
            ("24h", Duration::from_secs(DAY)),
            ("2d", Duration::from_secs(2 * DAY)),
            ("1w", Duration::from_secs(7 * DAY)),
            ("1y", Duration::from_secs(365 * DAY)),
            (
                "1y2w3d4h5m6s7ms",
                Duration::from_millis(
                    (365 * DAY + 14 * DAY + 3 * DAY + 4 * HOUR + 5 * MINUTE + 6) * 1000 + 7,
                ),
            ),
            ("90m", Duration::from_secs(90 * MINUTE)),
            ("1h0m", Duration::from_secs(HOUR)),
            ("0015s", Duration::from_secs(15)),
            ("106751d", Duration::from_secs(106_751 * DAY)),
        ];
        for (text, expected) in valid {
            assert_eq!(parse_duration(text), Ok(*expected), "{text}");
        }
        let invalid = [
            "",
            "5",
            "s",
            "5s5s",
            "1s1m",
            "1m1h",
            "1ms1s",
            "1d1y",
            "15 s",
            " 15s",
            "15s ",
            "1.5h",
            "-1s",
            "+1s",
            "1S",
            "1H",
            "15x",
            "1us",
            "1h-30m",
            "106752d",
            "99999999999999999999w",
        ];
        for text in invalid {
            assert!(parse_duration(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn messages_name_the_rule() {
        assert_eq!(
            parse_duration("5s5s"),
            Err("invalid duration \"5s5s\": units must go from the largest to the smallest, each at most once (y, w, d, h, m, s, ms), e.g. \"1h30m\"".to_owned())
        );
        assert_eq!(
            parse_duration("15x"),
            Err("invalid duration \"15x\": unknown unit \"x\"; the units are y, w, d, h, m, s and ms".to_owned())
        );
        assert_eq!(
            parse_duration("5"),
            Err("invalid duration \"5\": expected numbers with units (y, w, d, h, m, s, ms), e.g. \"15s\", \"1h30m\" or \"24h\"".to_owned())
        );
        assert_eq!(
            parse_duration("300y"),
            Err("invalid duration \"300y\": out of range".to_owned())
        );
    }
}
