//! The web configuration file validated into a [`WebConfig`], every problem reported with its
//! file, line, column and key. The `tls_server_config` section, the largest, is checked in
//! [`tls_server_config`]; the other sections here.

mod tls_server_config;

use std::collections::BTreeMap;
use std::path::Path;

use hyper::header::{HeaderName, HeaderValue};
use serde_saphyr::{Location, Spanned};

use super::WebConfig;
use super::auth::{self, BasicAuth};
use super::rate_limit::{RateLimit, TokenBucket};
use super::raw::{RawHttp, RawRateLimit, RawWebConfig};
use crate::config::Problem;

/// Parses and validates web configuration `text`; `path` names it in problems and anchors the
/// relative paths in it.
pub(super) fn parse(text: &str, path: &Path) -> Result<WebConfig, Vec<Problem>> {
    let raw = deserialize(text, path)?;
    let mut checker = Checker {
        path,
        problems: Vec::new(),
    };
    let rate_limit = raw
        .rate_limit
        .and_then(|section| checker.rate_limit(section));
    let http = raw
        .http_server_config
        .map(|section| checker.http(section))
        .unwrap_or_default();
    let tls = raw
        .tls_server_config
        .and_then(|section| checker.tls(section, http.http2));
    let users = checker.users(raw.basic_auth_users.unwrap_or_default());
    if !checker.problems.is_empty() {
        return Err(checker.problems);
    }
    Ok(WebConfig {
        tls,
        http2: http.http2,
        headers: http.headers,
        rate_limit: rate_limit.map(TokenBucket::new),
        basic_auth: BasicAuth::new(users),
    })
}

/// Deserializes the file's shape; a YAML or schema error becomes one located problem.
fn deserialize(text: &str, path: &Path) -> Result<RawWebConfig, Vec<Problem>> {
    // An empty file (or one of comments only) is valid and configures nothing.
    if text
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        return Ok(RawWebConfig::default());
    }
    crate::config::from_yaml(text, path).map_err(|problem| vec![problem])
}

/// The headers `http_server_config.headers` may set, with their allowed values (`None`: any),
/// as in the exporter-toolkit.
const ALLOWED_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// `http_server_config`, validated.
struct HttpSettings {
    /// Offer HTTP/2 over TLS (the exporter-toolkit's default: on).
    http2: bool,
    /// Headers to add to every response.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            http2: true,
            headers: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Collects every problem of one file.
struct Checker<'a> {
    /// The web configuration file.
    path: &'a Path,
    /// What is wrong so far.
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, at: Option<Location>, key: &str, message: String) {
        let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
        self.problems.push(Problem {
            path: self.path.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message,
        });
    }

    /// `rate_limit`: `interval` (a duration) and `burst`. As in the exporter-toolkit, no
    /// `interval` (or `0`) means no limit; settings that would refuse every request or do
    /// nothing are problems.
    fn rate_limit(&mut self, section: Spanned<RawRateLimit>) -> Option<RateLimit> {
        let raw = section.value;
        let interval = match &raw.interval {
            None => None,
            Some(text) => match crate::config::parse_duration(&text.value) {
                Ok(interval) => Some(interval).filter(|i| !i.is_zero()),
                Err(message) => {
                    self.problem(Some(text.referenced), "rate_limit.interval", message);
                    return None;
                }
            },
        };
        match (interval, raw.burst) {
            (None, None) => None,
            (None, Some(burst)) => {
                self.problem(
                    Some(burst.referenced),
                    "rate_limit.burst",
                    "burst without an interval limits nothing: set interval (e.g. 1s), or \
                     remove rate_limit"
                        .to_owned(),
                );
                None
            }
            (Some(_), None) => {
                self.problem(
                    Some(section.referenced),
                    "rate_limit.burst",
                    "missing burst: how many requests may come at once (at least 1)".to_owned(),
                );
                None
            }
            (Some(_), Some(burst)) if burst.value == 0 => {
                self.problem(
                    Some(burst.referenced),
                    "rate_limit.burst",
                    "burst 0 would refuse every request: use at least 1".to_owned(),
                );
                None
            }
            (Some(interval), Some(burst)) => Some(RateLimit {
                interval,
                burst: burst.value,
            }),
        }
    }

    /// `http_server_config`: HTTP/2 on or off, and the allowed extra headers.
    fn http(&mut self, section: Spanned<RawHttp>) -> HttpSettings {
        let raw = section.value;
        let mut headers = Vec::new();
        for (name, value) in raw.headers.unwrap_or_default() {
            let key = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(allowed, _)| allowed.eq_ignore_ascii_case(&name))
            else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                self.problem(
                    Some(value.referenced),
                    &key,
                    format!(
                        "header {name:?} cannot be configured: expected one of {}",
                        names.join(", ")
                    ),
                );
                continue;
            };
            if let Some(allowed) = allowed
                && !allowed.contains(&value.value.as_str())
            {
                self.problem(
                    Some(value.referenced),
                    &key,
                    format!(
                        "invalid value {:?} for {canonical}: expected one of {}",
                        value.value,
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            match (
                HeaderName::from_bytes(canonical.as_bytes()),
                HeaderValue::from_str(&value.value),
            ) {
                (Ok(name), Ok(header)) => headers.push((name, header)),
                _ => self.problem(
                    Some(value.referenced),
                    &key,
                    "invalid header value: use visible ASCII characters".to_owned(),
                ),
            }
        }
        HttpSettings {
            http2: raw.http2.is_none_or(|h| h.value),
            headers,
        }
    }

    /// `basic_auth_users`: user names and their validated bcrypt hashes.
    fn users(&mut self, raw: BTreeMap<String, Spanned<String>>) -> BTreeMap<String, String> {
        let mut users = BTreeMap::new();
        for (user, hash) in raw {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                self.problem(
                    Some(hash.referenced),
                    &key,
                    "a user name cannot contain ':' (basic authentication splits on it)".to_owned(),
                );
                continue;
            }
            match auth::validate_hash(&hash.value) {
                Ok(()) => {
                    users.insert(user, hash.value);
                }
                Err(message) => self.problem(Some(hash.referenced), &key, message),
            }
        }
        users
    }
}
