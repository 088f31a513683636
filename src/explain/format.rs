//! Times, dates and durations as the report writes them for people.

use std::time::{Duration, SystemTime};

use crate::metrics::unix_seconds;

/// `at` as an RFC 3339 date.
pub(super) fn date_of(at: SystemTime) -> String {
    date(unix_seconds(at) as i64)
}

/// How far `at` is from `now`, in seconds, minutes, hours or days.
pub(super) fn ago(at: SystemTime, now: SystemTime) -> String {
    let seconds = unix_seconds(at) as i64 - unix_seconds(now) as i64;
    let size = seconds.unsigned_abs();
    let span = match size {
        0..120 => format!("{size} s"),
        120..7_200 => format!("{} min", size / 60),
        7_200..172_800 => format!("{:.1} h", size as f64 / 3_600.0),
        _ => format!("{:.1} days", size as f64 / 86_400.0),
    };
    match seconds.signum() {
        0 => "now".to_owned(),
        1 => format!("in {span}"),
        _ => format!("{span} ago"),
    }
}

/// A duration in milliseconds, to a tenth.
pub(super) fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// Unix seconds as an RFC 3339 date (the number itself when out of range).
pub(super) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// How far off a span of `seconds` is, in days: ahead when positive, past when negative.
pub(super) fn relative_days(seconds: i64) -> String {
    let days = seconds as f64 / 86_400.0;
    if seconds >= 0 {
        format!("in {days:.1} days")
    } else {
        format!("{:.1} days ago", -days)
    }
}
