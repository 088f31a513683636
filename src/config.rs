//! The configuration file: raw serde structures, parsed into a validated [`Config`].
//!
//! Parsing errors and validation errors both carry the file, line, column and key path, so that
//! `check-config` can point at the exact spot.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The connectors, in file order; names are unique.
    pub connectors: Vec<Arc<Connector>>,
    /// Where to read a real Postfix queue, if there is one on this host.
    pub postfix_queue: Option<PostfixQueueSettings>,
}

/// How to read a Postfix queue (`postfix_queue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostfixQueueSettings {
    /// The command and its arguments, e.g. `postqueue -j`.
    pub command: Vec<String>,
    /// How long the command may run.
    pub timeout: Duration,
}

impl Config {
    /// The connector called `name`.
    pub fn connector(&self, name: &str) -> Option<&Arc<Connector>> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

/// One connector: a route to a mail server, and how to talk to it.
#[derive(Clone, Debug)]
pub struct Connector {
    /// Unique name; letters, digits, '.', '_' and '-'.
    pub name: String,
    /// Where the mail goes: fixed smart hosts or the MX of a domain.
    pub route: Route,
    /// The recipient domains this connector carries mail for.
    pub recipient_domains: Vec<String>,
    /// TCP port of the mail servers.
    pub port: u16,
    /// The whole probe's time limit.
    pub timeout: Duration,
    /// The name sent with EHLO/HELO.
    pub helo_name: String,
    /// What TLS the connector requires and validates.
    pub tls_settings: TlsSettings,
    /// The name the certificate must carry under `domain_validation` (may be `*.domain`).
    pub tls_domain: Option<String>,
    /// Extra trust anchors, beside the system roots.
    pub ca: Option<TrustAnchors>,
    /// TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
    /// Envelope sender to test with MAIL FROM.
    pub mail_from: Option<String>,
    /// Envelope recipient to test with RCPT TO (needs `mail_from`).
    pub rcpt_to: Option<String>,
    /// Retry window before queued mail bounces.
    pub queue_expiry: Duration,
    /// How names are resolved.
    pub dns: DnsSettings,
}

/// Where a connector delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Fixed hosts, in order of preference.
    SmartHosts(Vec<Host>),
    /// The MX records of this domain (the first recipient domain).
    Mx(String),
}

/// A smart host: a DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name to resolve.
    Name(String),
    /// An address used as it is.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The TLS setting of an Exchange Online outbound connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsSettings {
    /// Never start TLS.
    None,
    /// STARTTLS when offered; validate nothing.
    Opportunistic,
    /// TLS required; validate nothing.
    EncryptionOnly,
    /// TLS required, with a trusted and current chain.
    CertificateValidation,
    /// As `certificate_validation`, and the certificate must name the expected host.
    DomainValidation,
}

impl TlsSettings {
    /// Whether the connector fails when TLS cannot be negotiated.
    pub fn requires_tls(self) -> bool {
        !matches!(self, TlsSettings::None | TlsSettings::Opportunistic)
    }

    /// Whether the chain must be trusted and current.
    pub fn validates_chain(self) -> bool {
        matches!(
            self,
            TlsSettings::CertificateValidation | TlsSettings::DomainValidation
        )
    }

    /// Whether the certificate must name the expected host.
    pub fn validates_name(self) -> bool {
        self == TlsSettings::DomainValidation
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsSettings::None => "none",
            TlsSettings::Opportunistic => "opportunistic",
            TlsSettings::EncryptionOnly => "encryption_only",
            TlsSettings::CertificateValidation => "certificate_validation",
            TlsSettings::DomainValidation => "domain_validation",
        }
    }
}

/// Extra trust anchors read from a `ca_file`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrustAnchors {
    /// Where they were read from.
    pub path: PathBuf,
    /// The certificates, DER encoded.
    pub certificates: Arc<[CertificateDer<'static>]>,
}

/// How a connector resolves names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsSettings {
    /// Name servers to ask; empty: the system resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Time limit of one lookup.
    pub timeout: Duration,
}

/// Everything wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not fit the schema; or values are invalid.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One problem in a configuration file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The key path, e.g. `connectors[0].timeout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration `text`; `path` names it in errors and anchors `ca_file`.
///
/// ```
/// use std::path::Path;
/// use mailflow_exporter::config::{parse, Route, TlsSettings};
///
/// let config = parse(
///     "connectors:\n  - name: contoso-onprem\n    smart_hosts: [mail.contoso.com]\n",
///     Path::new("mailflow.yml"),
/// )
/// .expect("a valid configuration");
/// let connector = &config.connectors[0];
/// assert_eq!(connector.port, 25);
/// assert_eq!(connector.tls_settings, TlsSettings::Opportunistic);
/// assert!(matches!(&connector.route, Route::SmartHosts(hosts) if hosts.len() == 1));
///
/// let problem = parse("connectors:\n  - name: x\n    smart_host: [h]\n", Path::new("mailflow.yml"))
///     .expect_err("a typo");
/// assert!(problem.to_string().starts_with("mailflow.yml:3:5: connectors[0].smart_host: unknown field"));
/// ```
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = from_yaml(text, path).map_err(|p| ConfigError::Invalid(vec![p]))?;
    Validator::new(path).validate(raw)
}

/// Deserializes YAML `text` (read from `path`) into `T`; the first problem names its line,
/// column and key path. Shared by every YAML file the exporter reads.
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, Problem> {
    let mut key = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned<T> shows up as a `.value` step; the file has no such key.
            key = e.path().to_string().replace(".value", "");
            e.into_inner()
        })
    })
    .map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The message without the snippet, and without the location that Problem prints itself.
        let message = e.without_snippet().to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(text, _)| text)
            .to_owned();
        Problem {
            path: path.to_owned(),
            line,
            column,
            key: if key.is_empty() || key == "." {
                "(document)".to_owned()
            } else {
                key
            },
            message,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Raw structures: exactly the file's shape.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: RawSettings,
    #[serde(default)]
    connectors: Vec<Spanned<RawSettings>>,
    postfix_queue: Option<Spanned<RawPostfixQueue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostfixQueue {
    #[serde(default = "default_postqueue_command")]
    command: Vec<String>,
    timeout: Option<ConfigDuration>,
}

fn default_postqueue_command() -> Vec<String> {
    vec!["postqueue".to_owned(), "-j".to_owned()]
}

/// The keys of a connector; `defaults` has the same shape but may not name a route.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: Option<Spanned<String>>,
    #[serde(default)]
    smart_hosts: Vec<Spanned<String>>,
    use_mx_record: Option<Spanned<bool>>,
    #[serde(default)]
    recipient_domains: Vec<Spanned<String>>,
    port: Option<Port>,
    timeout: Option<ConfigDuration>,
    helo_name: Option<String>,
    tls_settings: Option<TlsSettings>,
    tls_domain: Option<String>,
    ca_file: Option<Spanned<PathBuf>>,
    implicit_tls: Option<bool>,
    mail_from: Option<String>,
    rcpt_to: Option<String>,
    queue_expiry: Option<ConfigDuration>,
    dns: Option<RawDns>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Option<Vec<Nameserver>>,
    timeout: Option<ConfigDuration>,
}

/// A duration written as Prometheus does: `500ms`, `15s`, `1m30s`, `24h`, `2d`.
#[derive(Clone, Copy, Debug)]
struct ConfigDuration(Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(ConfigDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A TCP port, 1 to 65535.
#[derive(Clone, Copy, Debug)]
struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = i64::deserialize(deserializer)?;
        u16::try_from(number)
            .ok()
            .filter(|port| *port != 0)
            .map(Port)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("invalid port {number}: expected 1 to 65535"))
            })
    }
}

/// A name server address; the port defaults to 53.
#[derive(Clone, Copy, Debug)]
struct Nameserver(SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(address) = SocketAddr::from_str(&text) {
            return Ok(Nameserver(address));
        }
        IpAddr::from_str(text.trim_start_matches('[').trim_end_matches(']'))
            .map(|ip| Nameserver(SocketAddr::new(ip, 53)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid name server {text:?}: expected an IP address with an optional port, \
                     e.g. \"127.0.0.1:5353\" or \"[::1]:53\""
                ))
            })
    }
}

/// Parses a Prometheus-style duration; it must be positive.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected a number and a unit (ms, s, m, h, d, w), e.g. \"15s\" or \"24h\""
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_millis: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let millis = number.checked_mul(unit_millis).ok_or_else(invalid)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(invalid)?;
    }
    if total.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// Validation: raw structures into the validated Config, collecting every problem.

const DEFAULT_PORT: u16 = 25;
const DEFAULT_IMPLICIT_TLS_PORT: u16 = 465;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_QUEUE_EXPIRY: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_POSTQUEUE_TIMEOUT: Duration = Duration::from_secs(10);

struct Validator<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn new(path: &'a Path) -> Self {
        Validator {
            path,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, at: Option<serde_saphyr::Location>, key: String, message: String) {
        let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
        self.problems.push(Problem {
            path: self.path.to_owned(),
            line,
            column,
            key,
            message,
        });
    }

    fn validate(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        self.reject_route_in_defaults(&raw.defaults);
        let mut names = HashSet::new();
        let mut connectors = Vec::with_capacity(raw.connectors.len());
        for (index, connector) in raw.connectors.into_iter().enumerate() {
            let key = format!("connectors[{index}]");
            if let Some(name) = &connector.value.name
                && !names.insert(name.value.clone())
            {
                self.problem(
                    Some(name.referenced),
                    format!("{key}.name"),
                    format!("duplicate connector name {:?}", name.value),
                );
            }
            if let Some(valid) = self.connector(&key, connector, &raw.defaults) {
                connectors.push(Arc::new(valid));
            }
        }
        let postfix_queue = raw.postfix_queue.and_then(|queue| {
            if queue.value.command.first().is_none_or(|c| c.is_empty()) {
                self.problem(
                    Some(queue.referenced),
                    "postfix_queue.command".to_owned(),
                    "the command is empty: name a program, e.g. [postqueue, -j]".to_owned(),
                );
                return None;
            }
            Some(PostfixQueueSettings {
                command: queue.value.command,
                timeout: queue
                    .value
                    .timeout
                    .map_or(DEFAULT_POSTQUEUE_TIMEOUT, |d| d.0),
            })
        });
        if self.problems.is_empty() {
            Ok(Config {
                connectors,
                postfix_queue,
            })
        } else {
            Err(ConfigError::Invalid(self.problems))
        }
    }

    fn reject_route_in_defaults(&mut self, defaults: &RawSettings) {
        let misplaced = [
            ("name", defaults.name.as_ref().map(|n| n.referenced)),
            (
                "smart_hosts",
                defaults.smart_hosts.first().map(|h| h.referenced),
            ),
            (
                "use_mx_record",
                defaults.use_mx_record.as_ref().map(|u| u.referenced),
            ),
            (
                "recipient_domains",
                defaults.recipient_domains.first().map(|d| d.referenced),
            ),
        ];
        for (field, at) in misplaced {
            if let Some(at) = at {
                self.problem(
                    Some(at),
                    format!("defaults.{field}"),
                    format!("{field} belongs to a connector, not to defaults"),
                );
            }
        }
    }

    fn connector(
        &mut self,
        key: &str,
        raw: Spanned<RawSettings>,
        defaults: &RawSettings,
    ) -> Option<Connector> {
        let before = self.problems.len();
        let entry_at = Some(raw.referenced);
        let raw = raw.value;
        let (name, name_at) = match &raw.name {
            Some(name) => (name.value.clone(), Some(name.referenced)),
            None => {
                self.problem(
                    entry_at,
                    format!("{key}.name"),
                    "every connector needs a name".to_owned(),
                );
                (String::new(), entry_at)
            }
        };
        if raw.name.is_some()
            && (name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            self.problem(
                name_at,
                format!("{key}.name"),
                format!("invalid connector name {name:?}: use letters, digits, '.', '_' and '-'"),
            );
        }
        let route = self.route(key, &raw, name_at);
        let settings = merge(&raw, defaults);
        let tls_settings = settings.tls_settings.unwrap_or(TlsSettings::Opportunistic);
        let implicit_tls = settings.implicit_tls.unwrap_or(false);
        if implicit_tls && tls_settings == TlsSettings::None {
            self.problem(
                name_at,
                format!("{key}.implicit_tls"),
                "implicit_tls needs a tls_settings other than none".to_owned(),
            );
        }
        if let Some(domain) = &settings.tls_domain
            && !is_domain_name(domain.strip_prefix("*.").unwrap_or(domain))
        {
            self.problem(
                name_at,
                format!("{key}.tls_domain"),
                format!("invalid tls_domain {domain:?}: expected a DNS name, or *.domain"),
            );
        }
        if settings.rcpt_to.is_some() && settings.mail_from.is_none() {
            self.problem(
                name_at,
                format!("{key}.rcpt_to"),
                "rcpt_to needs mail_from".to_owned(),
            );
        }
        let ca = settings.ca_file.as_ref().and_then(|file| {
            let resolved = resolve_relative(self.path, &file.value);
            match read_trust_anchors(&resolved) {
                Ok(ca) => Some(ca),
                Err(message) => {
                    self.problem(Some(file.referenced), format!("{key}.ca_file"), message);
                    None
                }
            }
        });
        if self.problems.len() > before {
            return None;
        }
        let dns = settings.dns.unwrap_or_default();
        Some(Connector {
            name,
            route,
            recipient_domains: raw
                .recipient_domains
                .iter()
                .map(|d| d.value.to_ascii_lowercase())
                .collect(),
            port: settings.port.map(|p| p.0).unwrap_or(if implicit_tls {
                DEFAULT_IMPLICIT_TLS_PORT
            } else {
                DEFAULT_PORT
            }),
            timeout: settings.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            helo_name: settings.helo_name.unwrap_or_else(default_helo_name),
            tls_settings,
            tls_domain: settings.tls_domain.map(|d| d.to_ascii_lowercase()),
            ca,
            implicit_tls,
            mail_from: settings.mail_from,
            rcpt_to: settings.rcpt_to,
            queue_expiry: settings.queue_expiry.map_or(DEFAULT_QUEUE_EXPIRY, |d| d.0),
            dns: DnsSettings {
                nameservers: dns
                    .nameservers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| n.0)
                    .collect(),
                timeout: dns.timeout.map_or(DEFAULT_DNS_TIMEOUT, |d| d.0),
            },
        })
    }

    /// The connector's route: its smart hosts, or the MX of its first recipient domain.
    fn route(
        &mut self,
        key: &str,
        raw: &RawSettings,
        name_at: Option<serde_saphyr::Location>,
    ) -> Route {
        if raw.use_mx_record.as_ref().is_some_and(|u| u.value) {
            if let Some(host) = raw.smart_hosts.first() {
                self.problem(
                    Some(host.referenced),
                    format!("{key}.smart_hosts"),
                    "smart_hosts and use_mx_record exclude each other".to_owned(),
                );
            }
            return match raw.recipient_domains.first() {
                Some(domain) if is_domain_name(&domain.value) => {
                    Route::Mx(domain.value.trim_end_matches('.').to_ascii_lowercase())
                }
                Some(domain) => {
                    self.problem(
                        Some(domain.referenced),
                        format!("{key}.recipient_domains[0]"),
                        format!("invalid domain name {:?}", domain.value),
                    );
                    Route::Mx(String::new())
                }
                None => {
                    self.problem(
                        name_at,
                        format!("{key}.recipient_domains"),
                        "use_mx_record needs at least one recipient domain".to_owned(),
                    );
                    Route::Mx(String::new())
                }
            };
        }
        if raw.smart_hosts.is_empty() {
            self.problem(
                name_at,
                format!("{key}.smart_hosts"),
                "no smart_hosts: name at least one host, or set use_mx_record".to_owned(),
            );
        }
        let mut hosts = Vec::with_capacity(raw.smart_hosts.len());
        for (i, host) in raw.smart_hosts.iter().enumerate() {
            match parse_host(&host.value) {
                Some(parsed) => hosts.push(parsed),
                None => self.problem(
                    Some(host.referenced),
                    format!("{key}.smart_hosts[{i}]"),
                    format!(
                        "invalid host {:?}: expected a DNS name or an IP address",
                        host.value
                    ),
                ),
            }
        }
        Route::SmartHosts(hosts)
    }
}

/// A connector's own settings, each falling back to `defaults` (route keys are not merged).
fn merge(own: &RawSettings, defaults: &RawSettings) -> RawSettings {
    let dns = match (&own.dns, &defaults.dns) {
        (Some(own), Some(defaults)) => Some(RawDns {
            nameservers: own
                .nameservers
                .clone()
                .or_else(|| defaults.nameservers.clone()),
            timeout: own.timeout.or(defaults.timeout),
        }),
        (own, defaults) => own.clone().or_else(|| defaults.clone()),
    };
    RawSettings {
        port: own.port.or(defaults.port),
        timeout: own.timeout.or(defaults.timeout),
        helo_name: own.helo_name.clone().or_else(|| defaults.helo_name.clone()),
        tls_settings: own.tls_settings.or(defaults.tls_settings),
        tls_domain: own
            .tls_domain
            .clone()
            .or_else(|| defaults.tls_domain.clone()),
        ca_file: own.ca_file.clone().or_else(|| defaults.ca_file.clone()),
        implicit_tls: own.implicit_tls.or(defaults.implicit_tls),
        mail_from: own.mail_from.clone().or_else(|| defaults.mail_from.clone()),
        rcpt_to: own.rcpt_to.clone().or_else(|| defaults.rcpt_to.clone()),
        queue_expiry: own.queue_expiry.or(defaults.queue_expiry),
        dns,
        ..RawSettings::default()
    }
}

/// A host as written in `smart_hosts`: an IP literal (optionally in brackets) or a DNS name.
fn parse_host(text: &str) -> Option<Host> {
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = IpAddr::from_str(bare) {
        return Some(Host::Ip(ip));
    }
    is_domain_name(text).then(|| Host::Name(text.trim_end_matches('.').to_ascii_lowercase()))
}

/// Whether `name` is a syntactically valid DNS host name (a trailing dot is allowed).
pub(crate) fn is_domain_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `file` relative to the directory of the configuration file that names it.
pub(crate) fn resolve_relative(config_path: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        return file.to_owned();
    }
    config_path
        .parent()
        .map_or_else(|| file.to_owned(), |dir| dir.join(file))
}

/// Reads PEM certificates from `path`; at least one is required.
fn read_trust_anchors(path: &Path) -> Result<TrustAnchors, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM in CA file {}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("no certificate in CA file {}", path.display()));
    }
    Ok(TrustAnchors {
        path: path.to_owned(),
        certificates: certificates.into(),
    })
}

/// This machine's host name, the name a sending server would announce.
fn default_helo_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| is_domain_name(name))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("test.yml")) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn defaults_merge_into_connectors() {
        let config = parse(
            "defaults:\n  port: 2525\n  timeout: 3s\n  helo_name: probe.test\n  tls_settings: encryption_only\n  dns:\n    nameservers: [\"127.0.0.1:5353\"]\nconnectors:\n  - name: a\n    smart_hosts: [mail.example.test, 127.0.0.1]\n    timeout: 1m30s\n    dns:\n      timeout: 2s\n",
            Path::new("t.yml"),
        )
        .expect("valid");
        let a = &config.connectors[0];
        assert_eq!(a.port, 2525);
        assert_eq!(a.timeout, Duration::from_secs(90));
        assert_eq!(a.helo_name, "probe.test");
        assert_eq!(a.tls_settings, TlsSettings::EncryptionOnly);
        assert_eq!(a.queue_expiry, Duration::from_secs(86400));
        assert_eq!(
            a.dns.nameservers,
            vec!["127.0.0.1:5353".parse().expect("addr")]
        );
        assert_eq!(a.dns.timeout, Duration::from_secs(2));
        assert_eq!(
            a.route,
            Route::SmartHosts(vec![
                Host::Name("mail.example.test".into()),
                Host::Ip("127.0.0.1".parse().expect("ip"))
            ])
        );
    }

    #[test]
    fn mx_route_and_implicit_tls_port() {
        let config = parse(
            "connectors:\n  - name: p\n    use_mx_record: true\n    recipient_domains: [Fabrikam.test]\n    implicit_tls: true\n    tls_settings: domain_validation\n",
            Path::new("t.yml"),
        )
        .expect("valid");
        assert_eq!(
            config.connectors[0].route,
            Route::Mx("fabrikam.test".into())
        );
        assert_eq!(config.connectors[0].port, 465);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        assert_eq!(
            problems("connectors:\n  - name: a\n    smart_hosts: [h.test]\n    smarthost: x\n"),
            vec![
                "test.yml:4:5: connectors[0].smarthost: unknown field `smarthost`, expected one of name, smart_hosts, use_mx_record, recipient_domains, port, timeout, helo_name, tls_settings, tls_domain, ca_file, implicit_tls, mail_from, rcpt_to, queue_expiry, dns"
            ]
        );
    }

    #[test]
    fn bad_duration_names_the_key() {
        assert_eq!(
            problems("defaults:\n  timeout: 15x\n"),
            vec![
                "test.yml:2:12: defaults.timeout: invalid duration \"15x\": expected a number and a unit (ms, s, m, h, d, w), e.g. \"15s\" or \"24h\""
            ]
        );
    }

    #[test]
    fn duplicate_names_and_missing_hosts_are_all_reported() {
        assert_eq!(
            problems("connectors:\n  - name: a\n    smart_hosts: [h.test]\n  - name: a\n"),
            vec![
                "test.yml:4:11: connectors[1].name: duplicate connector name \"a\"",
                "test.yml:4:11: connectors[1].smart_hosts: no smart_hosts: name at least one host, or set use_mx_record",
            ]
        );
    }

    #[test]
    fn unreadable_ca_file_is_an_error() {
        let found = problems(
            "connectors:\n  - name: a\n    smart_hosts: [h.test]\n    ca_file: /nonexistent/ca.pem\n",
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(
                "test.yml:4:14: connectors[0].ca_file: cannot read CA file /nonexistent/ca.pem"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn other_rules() {
        assert_eq!(
            problems(
                "connectors:\n  - name: 'bad name'\n    smart_hosts: ['bad host!']\n    rcpt_to: x@y\n"
            ),
            vec![
                "test.yml:2:11: connectors[0].name: invalid connector name \"bad name\": use letters, digits, '.', '_' and '-'",
                "test.yml:3:19: connectors[0].smart_hosts[0]: invalid host \"bad host!\": expected a DNS name or an IP address",
                "test.yml:2:11: connectors[0].rcpt_to: rcpt_to needs mail_from",
            ]
        );
        assert_eq!(
            problems("connectors:\n  - name: m\n    use_mx_record: true\n"),
            vec![
                "test.yml:2:11: connectors[0].recipient_domains: use_mx_record needs at least one recipient domain"
            ]
        );
    }

    #[test]
    fn postfix_queue_settings() {
        let config = parse("postfix_queue: {}\n", Path::new("t.yml")).expect("valid");
        assert_eq!(
            config.postfix_queue,
            Some(PostfixQueueSettings {
                command: vec!["postqueue".into(), "-j".into()],
                timeout: Duration::from_secs(10),
            })
        );
        assert_eq!(
            problems("postfix_queue:\n  command: []\n"),
            vec![
                "test.yml:2:3: postfix_queue.command: the command is empty: name a program, e.g. [postqueue, -j]"
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }
}
