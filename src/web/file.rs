//! The web configuration file validated into a [`WebConfig`], every problem reported with its
//! file, line, column and key.

use std::collections::BTreeMap;
use std::path::Path;

use hyper::header::{HeaderName, HeaderValue};
use serde_saphyr::{Location, Spanned};

use super::WebConfig;
use super::auth::{self, BasicAuth};
use super::rate_limit::{RateLimit, TokenBucket};
use super::raw::{RawHttp, RawRateLimit, RawTls, RawWebConfig};
use super::tls::{self, BuildError, ClientAuth, ServerTls};
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

/// One of the two ways to give a PEM object: a file or the text itself.
enum Source<'a> {
    /// A path, relative to the web configuration file.
    File(&'a Spanned<String>),
    /// The PEM text.
    Inline(&'a Spanned<String>),
}

impl Source<'_> {
    fn at(&self) -> Location {
        match self {
            Source::File(s) | Source::Inline(s) => s.referenced,
        }
    }
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

    /// `tls_server_config`: the server's TLS settings, files read and the config built.
    fn tls(
        &mut self,
        section: Spanned<RawTls>,
        http2: bool,
    ) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        let before = self.problems.len();
        let at = section.referenced;
        let raw = section.value;
        let cert = self.source(set(&raw.cert_file), set(&raw.cert), "cert_file", "cert");
        let key = self.source(set(&raw.key_file), set(&raw.key), "key_file", "key");
        let ca = self.source(
            set(&raw.client_ca_file),
            set(&raw.client_ca),
            "client_ca_file",
            "client_ca",
        );
        let auth_type = set(&raw.client_auth_type);
        if cert.is_none() && key.is_none() && ca.is_none() && auth_type.is_none() {
            // As in the exporter-toolkit, a section that names no certificate means plain HTTP;
            // but settings that would then silently do nothing are refused.
            if raw.min_version.is_some()
                || raw.max_version.is_some()
                || raw.cipher_suites.is_some()
                || raw.curve_preferences.is_some()
                || raw.client_allowed_sans.is_some()
            {
                self.problem(
                    Some(at),
                    "tls_server_config",
                    "TLS settings without cert_file and key_file: name the server's \
                     certificate and key, or remove tls_server_config"
                        .to_owned(),
                );
            }
            return None;
        }
        if cert.is_none() {
            self.problem(
                Some(at),
                "tls_server_config.cert_file",
                "missing cert_file (or cert): the server's certificate chain, PEM".to_owned(),
            );
        }
        if key.is_none() {
            self.problem(
                Some(at),
                "tls_server_config.key_file",
                "missing key_file (or key): the server's private key, PEM".to_owned(),
            );
        }
        let client_auth = auth_type.map_or(Some(ClientAuth::NoClientCert), |t| {
            let parsed = ClientAuth::parse(&t.value);
            if parsed.is_none() {
                self.problem(
                    Some(t.referenced),
                    "tls_server_config.client_auth_type",
                    format!(
                        "invalid client_auth_type {:?}: expected one of {}",
                        t.value,
                        ClientAuth::NAMES
                    ),
                );
            }
            parsed
        });
        let auth_at = auth_type.map_or(at, |t| t.referenced);
        if let Some(client_auth) = client_auth {
            self.check_client_auth(client_auth, ca.as_ref(), &raw, auth_at);
        }
        let versions = self.versions(&raw);
        let cipher_suites = self.cipher_suites(raw.cipher_suites.as_deref());
        let groups = self.groups(raw.curve_preferences.as_deref());
        let chain = cert.and_then(|c| self.pem(&c, "cert", tls::certificates));
        let private_key = key.and_then(|k| self.pem(&k, "key", tls::private_key));
        let client_cas = match &ca {
            Some(ca) => self.pem(ca, "client_ca", tls::certificates),
            None => Some(Vec::new()),
        };
        if self.problems.len() > before {
            return None;
        }
        let (Some(chain), Some(private_key), Some(client_auth), Some(client_cas), Some(versions)) =
            (chain, private_key, client_auth, client_cas, versions)
        else {
            return None;
        };
        let settings = ServerTls {
            chain,
            key: private_key,
            client_auth,
            client_cas,
            versions,
            cipher_suites,
            groups,
            prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
            client_allowed_sans: raw.client_allowed_sans.map(|s| s.value).unwrap_or_default(),
            http2,
        };
        match tls::server_config(settings) {
            Ok(config) => Some(config),
            Err(error) => {
                let (at, key, message) = match error {
                    BuildError::Certificate(m) => (
                        set(&raw.key_file).or(set(&raw.key)).map(|k| k.referenced),
                        "tls_server_config.key_file",
                        m,
                    ),
                    BuildError::ClientCa(m) => (
                        ca.as_ref().map(Source::at),
                        "tls_server_config.client_ca_file",
                        m,
                    ),
                    BuildError::Protocol(m) => (Some(at), "tls_server_config", m),
                };
                self.problem(at, key, message);
                None
            }
        }
    }

    /// The file or inline form of a PEM object; both at once is a problem.
    fn source<'s>(
        &mut self,
        file: Option<&'s Spanned<String>>,
        inline: Option<&'s Spanned<String>>,
        file_key: &str,
        inline_key: &str,
    ) -> Option<Source<'s>> {
        match (file, inline) {
            (Some(file), Some(_)) => {
                self.problem(
                    Some(file.referenced),
                    &format!("tls_server_config.{file_key}"),
                    format!("{file_key} and {inline_key} exclude each other: use one"),
                );
                None
            }
            (Some(file), None) => Some(Source::File(file)),
            (None, Some(inline)) => Some(Source::Inline(inline)),
            (None, None) => None,
        }
    }

    /// Reads and decodes a PEM object, from its file or inline.
    fn pem<T>(
        &mut self,
        source: &Source<'_>,
        inline_key: &str,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        let (key, result) = match source {
            Source::File(file) => {
                let resolved = crate::config::resolve_relative(self.path, Path::new(&file.value));
                let result = std::fs::read(&resolved)
                    .map_err(|e| format!("cannot read {}: {e}", resolved.display()))
                    .and_then(|bytes| {
                        decode(&bytes).map_err(|e| format!("{}: {e}", resolved.display()))
                    });
                (format!("tls_server_config.{inline_key}_file"), result)
            }
            Source::Inline(text) => (
                format!("tls_server_config.{inline_key}"),
                decode(text.value.as_bytes()),
            ),
        };
        result
            .map_err(|message| self.problem(Some(source.at()), &key, message))
            .ok()
    }

    /// The rules between `client_auth_type`, the client CAs and `client_allowed_sans`.
    fn check_client_auth(
        &mut self,
        client_auth: ClientAuth,
        ca: Option<&Source<'_>>,
        raw: &RawTls,
        auth_at: Location,
    ) {
        if client_auth.verifies() && ca.is_none() {
            self.problem(
                Some(auth_at),
                "tls_server_config.client_auth_type",
                "VerifyClientCertIfGiven and RequireAndVerifyClientCert need client_ca_file \
                 (or client_ca): the CAs that client certificates must chain to"
                    .to_owned(),
            );
        }
        if let (ClientAuth::NoClientCert, Some(ca)) = (client_auth, ca) {
            self.problem(
                Some(ca.at()),
                "tls_server_config.client_ca_file",
                "client CAs are configured but client_auth_type is NoClientCert: set \
                 client_auth_type, e.g. RequireAndVerifyClientCert"
                    .to_owned(),
            );
        }
        if let Some(sans) = &raw.client_allowed_sans
            && !sans.value.is_empty()
            && !client_auth.requires_certificate()
        {
            self.problem(
                Some(sans.referenced),
                "tls_server_config.client_allowed_sans",
                "client_allowed_sans needs client_auth_type RequireAnyClientCert or \
                     RequireAndVerifyClientCert"
                    .to_owned(),
            );
        }
    }

    /// `min_version` and `max_version` as the protocol versions to offer.
    fn versions(&mut self, raw: &RawTls) -> Option<Vec<&'static rustls::SupportedProtocolVersion>> {
        let mut version = |field: &str, value: Option<&Spanned<String>>, default: u8| {
            let Some(value) = value.filter(|v| !v.value.is_empty()) else {
                return Some(default);
            };
            let message = match value.value.as_str() {
                "TLS12" => return Some(12),
                "TLS13" => return Some(13),
                "TLS10" | "TLS11" => format!(
                    "{} is not supported: rustls speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13",
                    value.value
                ),
                other => format!("invalid {field} {other:?}: expected TLS12 or TLS13"),
            };
            self.problem(
                Some(value.referenced),
                &format!("tls_server_config.{field}"),
                message,
            );
            None
        };
        let min = version("min_version", raw.min_version.as_ref(), 12);
        let max = version("max_version", raw.max_version.as_ref(), 13);
        let (min, max) = (min?, max?);
        if min > max {
            self.problem(
                raw.max_version.as_ref().map(|v| v.referenced),
                "tls_server_config.max_version",
                "max_version is lower than min_version".to_owned(),
            );
            return None;
        }
        let mut versions = Vec::new();
        if max >= 13 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= 12 {
            versions.push(&rustls::version::TLS12);
        }
        Some(versions)
    }

    /// `cipher_suites`: the TLS 1.2 suites to keep (TLS 1.3 names are accepted and ignored).
    fn cipher_suites(&mut self, names: Option<&[Spanned<String>]>) -> Option<Vec<&'static str>> {
        let names = names.filter(|n| !n.is_empty())?;
        let known = tls::tls12_cipher_suite_names();
        let mut kept = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(suite) = known.iter().find(|k| **k == name.value) {
                kept.push(*suite);
            } else if !tls::TLS13_CIPHER_SUITES.contains(&name.value.as_str()) {
                self.problem(
                    Some(name.referenced),
                    &format!("tls_server_config.cipher_suites[{i}]"),
                    format!(
                        "unsupported cipher suite {:?}: expected one of {}",
                        name.value,
                        known.join(", ")
                    ),
                );
            }
        }
        Some(kept)
    }

    /// `curve_preferences`: the key exchange groups, in order.
    fn groups(&mut self, names: Option<&[Spanned<String>]>) -> Option<Vec<rustls::NamedGroup>> {
        let names = names.filter(|n| !n.is_empty())?;
        let mut groups = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match tls::named_group(&name.value) {
                Some(group) => groups.push(group),
                None => self.problem(
                    Some(name.referenced),
                    &format!("tls_server_config.curve_preferences[{i}]"),
                    format!(
                        "unsupported curve {:?}: expected one of CurveP256, CurveP384, X25519",
                        name.value
                    ),
                ),
            }
        }
        Some(groups)
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

/// A string setting, unless it is absent or empty (empty means unset, as in Go).
fn set(setting: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    setting.as_ref().filter(|s| !s.value.is_empty())
}
