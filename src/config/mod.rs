//! The configuration file, parsed into a validated [`Config`].
//!
//! `raw` holds the file's shape exactly (unknown keys are errors), `validate` turns it into the
//! types below, collecting every problem; `wire`, `labels`, `trust_anchor` and `duration` parse
//! single values; `yaml` reads YAML and knows where each value sits. Every problem carries the
//! file, line, column and key path, so that `check-config` can point at the exact spot.

mod duration;
mod labels;
mod raw;
#[cfg(test)]
mod tests;
mod trust_anchor;
mod validate;
mod wire;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;

pub use duration::parse_duration;
pub use labels::{LabelName, LabelValue, MAX_LABEL_VALUE_CHARS, RESERVED_LABELS};
pub use trust_anchor::{DnssecTrustAnchor, DnssecTrustAnchors};
pub use wire::{DomainName, Mailbox, SmtpDomain, TlsDomain};
pub(crate) use yaml::from_yaml;

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The connectors, in file order; names are unique.
    pub connectors: Vec<Arc<Connector>>,
    /// Where to read a real Postfix queue, if there is one on this host.
    pub postfix_queue: Option<PostfixQueueSettings>,
}

impl Config {
    /// The connector called `name`.
    pub fn connector(&self, name: &str) -> Option<&Arc<Connector>> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

/// How to read a Postfix queue (`postfix_queue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostfixQueueSettings {
    /// The command and its arguments, e.g. `postqueue -j`.
    pub command: Vec<String>,
    /// How long the command may run.
    pub timeout: Duration,
}

/// One connector: a route to a mail server, and how to talk to it.
#[derive(Clone, Debug)]
pub struct Connector {
    /// Unique name; letters, digits, '.', '_' and '-'.
    pub name: String,
    /// Who runs the other end (`type`), for routing alerts.
    pub connector_type: ConnectorType,
    /// Extra target labels that `/sd` hands to Prometheus (`labels`).
    pub labels: BTreeMap<LabelName, LabelValue>,
    /// Where the mail goes: fixed smart hosts or the MX of a domain.
    pub route: Route,
    /// The recipient domains this connector carries mail for, lower case, as written (a
    /// `*.domain` entry matches subdomains in the Postfix queue).
    pub recipient_domains: Vec<String>,
    /// TCP port of the mail servers.
    pub port: u16,
    /// The whole probe's time limit.
    pub timeout: Duration,
    /// The argument of EHLO and HELO.
    pub helo_name: SmtpDomain,
    /// What TLS the connector requires and validates.
    pub tls_settings: TlsSettings,
    /// The name the certificate must carry under `domain_validation`, instead of the host.
    pub tls_domain: Option<TlsDomain>,
    /// Extra trust anchors, beside the system roots.
    pub ca: Option<TrustAnchors>,
    /// TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
    /// Envelope sender to test with MAIL FROM.
    pub mail_from: Option<Mailbox>,
    /// Envelope recipient to test with RCPT TO (only with `mail_from`).
    pub rcpt_to: Option<Mailbox>,
    /// Retry window before queued mail bounces.
    pub queue_expiry: Duration,
    /// How names are resolved and DNSSEC validated.
    pub dns: DnsSettings,
    /// Whether DANE (TLSA records) is checked and required, as Exchange Online's `SmtpDaneMode`.
    pub smtp_dane_mode: SmtpDaneMode,
    /// Whether an MTA-STS policy is honoured, as Exchange Online's `MtaStsMode`.
    pub mta_sts_mode: MtaStsMode,
}

/// Where a connector delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Fixed hosts, in order of preference.
    SmartHosts(Vec<Host>),
    /// The MX records of this domain (the first recipient domain).
    Mx(DomainName),
}

/// A smart host: a DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name to resolve.
    Name(DomainName),
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

/// DANE for a connector (`smtp_dane_mode`), as Exchange Online's `SmtpDaneMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpDaneMode {
    /// TLSA records are not looked up.
    None,
    /// Where a host publishes DNSSEC-secure TLSA records, they must match (the default).
    Opportunistic,
    /// Every host must publish DNSSEC-secure, usable TLSA records, and they must match.
    Mandatory,
}

impl SmtpDaneMode {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpDaneMode::None => "none",
            SmtpDaneMode::Opportunistic => "opportunistic",
            SmtpDaneMode::Mandatory => "mandatory",
        }
    }
}

/// MTA-STS for a connector (`mta_sts_mode`), as Exchange Online's `MtaStsMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtaStsMode {
    /// Policies are not looked up.
    None,
    /// A published policy in `enforce` mode is honoured (the default).
    Opportunistic,
}

impl MtaStsMode {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            MtaStsMode::None => "none",
            MtaStsMode::Opportunistic => "opportunistic",
        }
    }
}

/// Who runs the other end of a connector (`type`), as Exchange Online's `ConnectorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorType {
    /// The organisation's own servers (the default).
    OnPremises,
    /// A partner organisation's servers.
    Partner,
}

impl ConnectorType {
    /// The configuration value, also the `connector_type` target label.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::OnPremises => "on_premises",
            ConnectorType::Partner => "partner",
        }
    }
}

/// Who decides whether DNS answers are DNSSEC-secure (`dns.dnssec_validation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnssecValidation {
    /// The exporter validates in-process from its trust anchors (the default).
    Exporter,
    /// The configured name servers validate; their AD bit is trusted.
    Resolver,
}

impl DnssecValidation {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecValidation::Exporter => "exporter",
            DnssecValidation::Resolver => "resolver",
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
    /// Who validates DNSSEC: the exporter or the name servers.
    pub dnssec_validation: DnssecValidation,
    /// Where validation in the exporter starts: the root's anchors, or `trust_anchor_file`'s.
    pub trust_anchors: DnssecTrustAnchors,
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

/// Parses and validates configuration `text`; `path` names it in errors and anchors the files
/// it names (`ca_file`, `dns.trust_anchor_file`).
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
    let raw: raw::RawConfig = from_yaml(text, path).map_err(|p| ConfigError::Invalid(vec![p]))?;
    validate::validate(raw, text, path)
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
