//! The raw shapes into the validated [`Config`], collecting every problem with its file, line,
//! column and key path.
//!
//! `defaults` and each connector's own keys are parsed once each into [`Settings`] (so a bad
//! value in `defaults` is reported once, under `defaults`), then merged; the rules that relate
//! several keys run on the merged result.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::raw::{RawConfig, RawPostfixQueue, RawSettings};
use super::yaml::{KeyPath, Locations};
use super::{
    Config, ConfigError, Connector, ConnectorType, DnsSettings, DnssecTrustAnchors,
    DnssecValidation, DomainName, Host, LabelName, LabelValue, Mailbox, MtaStsMode,
    PostfixQueueSettings, Problem, Route, SmtpDaneMode, SmtpDomain, TlsDomain, TlsSettings,
    TrustAnchors, resolve_relative,
};

const DEFAULT_PORT: u16 = 25;
const DEFAULT_IMPLICIT_TLS_PORT: u16 = 465;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_QUEUE_EXPIRY: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_POSTQUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates `raw`, read from `text` in `file`.
pub(super) fn validate(raw: RawConfig, text: &str, file: &Path) -> Result<Config, ConfigError> {
    let mut validator = Validator {
        file,
        locations: Locations::of(text),
        problems: Vec::new(),
        root_anchors: DnssecTrustAnchors::root(),
    };
    let config = validator.config(raw);
    if validator.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(validator.problems))
    }
}

/// One block of settings (`defaults`, or a connector's own keys) with every value parsed;
/// `None` where the block leaves a key unset.
#[derive(Clone, Default)]
struct Settings {
    port: Option<u16>,
    timeout: Option<Duration>,
    helo_name: Option<SmtpDomain>,
    tls_settings: Option<TlsSettings>,
    tls_domain: Option<TlsDomain>,
    ca: Option<TrustAnchors>,
    implicit_tls: Option<bool>,
    mail_from: Option<Mailbox>,
    rcpt_to: Option<Mailbox>,
    queue_expiry: Option<Duration>,
    smtp_dane_mode: Option<SmtpDaneMode>,
    mta_sts_mode: Option<MtaStsMode>,
    nameservers: Option<Vec<SocketAddr>>,
    dns_timeout: Option<Duration>,
    dnssec_validation: Option<DnssecValidation>,
    trust_anchors: Option<DnssecTrustAnchors>,
}

impl Settings {
    /// These settings, each one left unset taken from `defaults`.
    fn or(self, defaults: &Settings) -> Settings {
        let defaults = defaults.clone();
        Settings {
            port: self.port.or(defaults.port),
            timeout: self.timeout.or(defaults.timeout),
            helo_name: self.helo_name.or(defaults.helo_name),
            tls_settings: self.tls_settings.or(defaults.tls_settings),
            tls_domain: self.tls_domain.or(defaults.tls_domain),
            ca: self.ca.or(defaults.ca),
            implicit_tls: self.implicit_tls.or(defaults.implicit_tls),
            mail_from: self.mail_from.or(defaults.mail_from),
            rcpt_to: self.rcpt_to.or(defaults.rcpt_to),
            queue_expiry: self.queue_expiry.or(defaults.queue_expiry),
            smtp_dane_mode: self.smtp_dane_mode.or(defaults.smtp_dane_mode),
            mta_sts_mode: self.mta_sts_mode.or(defaults.mta_sts_mode),
            nameservers: self.nameservers.or(defaults.nameservers),
            dns_timeout: self.dns_timeout.or(defaults.dns_timeout),
            dnssec_validation: self.dnssec_validation.or(defaults.dnssec_validation),
            trust_anchors: self.trust_anchors.or(defaults.trust_anchors),
        }
    }
}

struct Validator<'a> {
    /// The configuration file, for problems and relative paths.
    file: &'a Path,
    /// Where each value of the file sits.
    locations: Locations,
    /// Everything found wrong so far, in file order.
    problems: Vec<Problem>,
    /// The root zone's DNSSEC anchors, shared by every connector without a file of its own.
    root_anchors: DnssecTrustAnchors,
}

impl Validator<'_> {
    /// A problem with the value at `key`.
    fn problem(&mut self, key: &KeyPath, message: String) {
        self.problem_at(key, key, message);
    }

    /// A problem with `key`, shown at the place of the value at `at`.
    fn problem_at(&mut self, key: &KeyPath, at: &KeyPath, message: String) {
        let (line, column) = self.locations.find(at).unwrap_or((0, 0));
        self.problems.push(Problem {
            path: self.file.to_owned(),
            line,
            column,
            key: key.to_string(),
            message,
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let defaults_key = KeyPath::root().key("defaults");
        self.reject_connector_keys(&defaults_key, &raw.defaults);
        let defaults = self.settings(&defaults_key, &raw.defaults);
        let machine_name = machine_helo_name();
        let mut names = HashSet::new();
        let mut connectors = Vec::with_capacity(raw.connectors.len());
        for (index, connector) in raw.connectors.iter().enumerate() {
            let key = KeyPath::root().key("connectors").index(index);
            if let Some(valid) = self.connector(
                &key,
                connector,
                &defaults,
                machine_name.as_ref(),
                &mut names,
            ) {
                connectors.push(Arc::new(valid));
            }
        }
        let postfix_queue = raw
            .postfix_queue
            .and_then(|queue| self.postfix_queue(queue));
        Config {
            connectors,
            postfix_queue,
        }
    }

    /// Keys only a connector may have, written in `defaults`.
    fn reject_connector_keys(&mut self, key: &KeyPath, defaults: &RawSettings) {
        let misplaced = [
            ("name", defaults.name.is_some()),
            ("type", defaults.connector_type.is_some()),
            ("labels", defaults.labels.is_some()),
            ("smart_hosts", defaults.smart_hosts.is_some()),
            ("use_mx_record", defaults.use_mx_record.is_some()),
            ("recipient_domains", defaults.recipient_domains.is_some()),
        ];
        for (field, present) in misplaced {
            if present {
                self.problem(
                    &key.key(field),
                    format!("{field} belongs to a connector, not to defaults"),
                );
            }
        }
    }

    /// The keys of one block, each value parsed; a value that does not parse is a problem and
    /// stays unset.
    fn settings(&mut self, key: &KeyPath, raw: &RawSettings) -> Settings {
        let dns = raw.dns.as_ref();
        let dns_key = key.key("dns");
        let trust_anchors = dns
            .and_then(|dns| dns.trust_anchor_file.as_ref())
            .and_then(|file| {
                if file.as_os_str().is_empty() {
                    Some(self.root_anchors.clone())
                } else {
                    self.read(
                        &dns_key.key("trust_anchor_file"),
                        file,
                        DnssecTrustAnchors::read,
                    )
                }
            });
        Settings {
            port: raw.port.map(|port| port.0),
            timeout: raw.timeout.map(|d| d.0),
            helo_name: self.value(key, "helo_name", raw.helo_name.as_deref()),
            tls_settings: raw.tls_settings,
            tls_domain: self.value(key, "tls_domain", raw.tls_domain.as_deref()),
            ca: raw
                .ca_file
                .as_ref()
                .and_then(|file| self.read(&key.key("ca_file"), file, read_trust_anchors)),
            implicit_tls: raw.implicit_tls,
            mail_from: self.value(key, "mail_from", raw.mail_from.as_deref()),
            rcpt_to: self.value(key, "rcpt_to", raw.rcpt_to.as_deref()),
            queue_expiry: raw.queue_expiry.map(|d| d.0),
            smtp_dane_mode: raw.smtp_dane_mode,
            mta_sts_mode: raw.mta_sts_mode,
            nameservers: dns
                .and_then(|dns| dns.nameservers.as_ref())
                .map(|servers| servers.iter().map(|server| server.0).collect()),
            dns_timeout: dns.and_then(|dns| dns.timeout).map(|d| d.0),
            dnssec_validation: dns.and_then(|dns| dns.dnssec_validation),
            trust_anchors,
        }
    }

    /// The value of `field` under `key`, parsed; a problem when it does not parse.
    fn value<T: FromStr<Err = String>>(
        &mut self,
        key: &KeyPath,
        field: &str,
        text: Option<&str>,
    ) -> Option<T> {
        let text = text?;
        T::from_str(text)
            .map_err(|why| {
                self.problem(&key.key(field), format!("invalid {field} {text:?}: {why}"))
            })
            .ok()
    }

    /// The file at `key` (relative to the configuration file), read by `reader`.
    fn read<T>(
        &mut self,
        key: &KeyPath,
        file: &Path,
        reader: fn(&Path) -> Result<T, String>,
    ) -> Option<T> {
        reader(&resolve_relative(self.file, file))
            .map_err(|message| self.problem(key, message))
            .ok()
    }

    fn connector(
        &mut self,
        key: &KeyPath,
        raw: &RawSettings,
        defaults: &Settings,
        machine_name: Option<&SmtpDomain>,
        names: &mut HashSet<String>,
    ) -> Option<Connector> {
        let before = self.problems.len();
        let name_key = key.key("name");
        // Rules about the connector as a whole point at its name, or at the entry without one.
        let at = if raw.name.is_some() { &name_key } else { key };
        let name = match &raw.name {
            None => {
                self.problem_at(&name_key, key, "every connector needs a name".to_owned());
                String::new()
            }
            Some(name) => {
                if !names.insert(name.clone()) {
                    self.problem(&name_key, format!("duplicate connector name {name:?}"));
                }
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    self.problem(
                        &name_key,
                        format!(
                            "invalid connector name {name:?}: use letters, digits, '.', '_' and '-'"
                        ),
                    );
                }
                name.clone()
            }
        };
        let route = self.route(key, raw, at);
        let settings = self.settings(key, raw).or(defaults);
        let tls_settings = settings.tls_settings.unwrap_or(TlsSettings::Opportunistic);
        let implicit_tls = settings.implicit_tls.unwrap_or(false);
        if implicit_tls && tls_settings == TlsSettings::None {
            self.problem_at(
                &key.key("implicit_tls"),
                at,
                "implicit_tls needs a tls_settings other than none".to_owned(),
            );
        }
        if settings.rcpt_to.is_some() && settings.mail_from.is_none() {
            self.problem_at(
                &key.key("rcpt_to"),
                at,
                "rcpt_to needs mail_from".to_owned(),
            );
        }
        let smtp_dane_mode = settings
            .smtp_dane_mode
            .unwrap_or(SmtpDaneMode::Opportunistic);
        if let (SmtpDaneMode::Mandatory, Some(Route::SmartHosts(hosts))) = (smtp_dane_mode, &route)
        {
            self.require_names_for_dane(key, hosts);
        }
        let helo_name = settings.helo_name.or_else(|| machine_name.cloned());
        if helo_name.is_none() {
            self.problem_at(
                &key.key("helo_name"),
                at,
                "no helo_name, and this machine's host name is not a DNS name: set helo_name"
                    .to_owned(),
            );
        }
        let labels = self.labels(key, raw.labels.as_ref());
        if self.problems.len() > before {
            return None;
        }
        Some(Connector {
            name,
            connector_type: raw.connector_type.unwrap_or(ConnectorType::OnPremises),
            labels,
            route: route?,
            recipient_domains: raw
                .recipient_domains
                .iter()
                .flatten()
                .map(|domain| domain.to_ascii_lowercase())
                .collect(),
            port: settings.port.unwrap_or(if implicit_tls {
                DEFAULT_IMPLICIT_TLS_PORT
            } else {
                DEFAULT_PORT
            }),
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            helo_name: helo_name?,
            tls_settings,
            tls_domain: settings.tls_domain,
            ca: settings.ca,
            implicit_tls,
            mail_from: settings.mail_from,
            rcpt_to: settings.rcpt_to,
            queue_expiry: settings.queue_expiry.unwrap_or(DEFAULT_QUEUE_EXPIRY),
            dns: DnsSettings {
                nameservers: settings.nameservers.unwrap_or_default(),
                timeout: settings.dns_timeout.unwrap_or(DEFAULT_DNS_TIMEOUT),
                dnssec_validation: settings
                    .dnssec_validation
                    .unwrap_or(DnssecValidation::Exporter),
                trust_anchors: settings
                    .trust_anchors
                    .unwrap_or_else(|| self.root_anchors.clone()),
            },
            smtp_dane_mode,
            mta_sts_mode: settings.mta_sts_mode.unwrap_or(MtaStsMode::Opportunistic),
        })
    }

    /// The connector's route: its smart hosts, or the MX of its first recipient domain; `None`
    /// (with a problem) when there is none.
    fn route(&mut self, key: &KeyPath, raw: &RawSettings, at: &KeyPath) -> Option<Route> {
        let hosts_key = key.key("smart_hosts");
        if raw.use_mx_record == Some(true) {
            if raw.smart_hosts.is_some() {
                self.problem(
                    &hosts_key,
                    "smart_hosts and use_mx_record exclude each other".to_owned(),
                );
            }
            let domains_key = key.key("recipient_domains");
            let Some(domain) = raw.recipient_domains.iter().flatten().next() else {
                self.problem_at(
                    &domains_key,
                    at,
                    "use_mx_record needs at least one recipient domain".to_owned(),
                );
                return None;
            };
            return DomainName::from_str(domain)
                .map(Route::Mx)
                .map_err(|why| {
                    self.problem(
                        &domains_key.index(0),
                        format!("invalid domain name {domain:?}: {why}"),
                    );
                })
                .ok();
        }
        let texts = raw.smart_hosts.as_deref().unwrap_or_default();
        if texts.is_empty() {
            self.problem_at(
                &hosts_key,
                at,
                "no smart_hosts: name at least one host, or set use_mx_record".to_owned(),
            );
            return None;
        }
        let mut hosts = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            match Host::from_str(text) {
                Ok(host) => hosts.push(host),
                Err(why) => self.problem(
                    &hosts_key.index(index),
                    format!("invalid host {text:?}: {why}"),
                ),
            }
        }
        Some(Route::SmartHosts(hosts))
    }

    /// `smtp_dane_mode: mandatory` can only be met by names: TLSA records live under them.
    fn require_names_for_dane(&mut self, key: &KeyPath, hosts: &[Host]) {
        for (index, host) in hosts.iter().enumerate() {
            if let Host::Ip(ip) = host {
                self.problem(
                    &key.key("smart_hosts").index(index),
                    format!(
                        "smtp_dane_mode mandatory needs host names: DANE cannot apply to the IP \
                         literal {ip} (TLSA records are published under names)"
                    ),
                );
            }
        }
    }

    /// The connector's own target labels.
    fn labels(
        &mut self,
        key: &KeyPath,
        raw: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<LabelName, LabelValue> {
        let mut labels = BTreeMap::new();
        for (name, value) in raw.into_iter().flatten() {
            let label_key = key.key("labels").key(name);
            let parsed_name = LabelName::from_str(name).map_err(|why| {
                self.problem(&label_key, format!("invalid label name {name:?}: {why}"));
            });
            let parsed_value = LabelValue::from_str(value).map_err(|why| {
                self.problem(
                    &label_key,
                    format!("invalid value of label {name:?}: {why}"),
                );
            });
            if let (Ok(name), Ok(value)) = (parsed_name, parsed_value) {
                labels.insert(name, value);
            }
        }
        labels
    }

    fn postfix_queue(&mut self, queue: RawPostfixQueue) -> Option<PostfixQueueSettings> {
        if queue.command.first().is_none_or(|c| c.is_empty()) {
            self.problem(
                &KeyPath::root().key("postfix_queue").key("command"),
                "the command is empty: name a program, e.g. [postqueue, -j]".to_owned(),
            );
            return None;
        }
        Some(PostfixQueueSettings {
            command: queue.command,
            timeout: queue.timeout.map_or(DEFAULT_POSTQUEUE_TIMEOUT, |d| d.0),
        })
    }
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

/// This machine's host name, the name a sending server would announce; `localhost` when the
/// host name is not a DNS name.
fn machine_helo_name() -> Option<SmtpDomain> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|name| DomainName::from_str(name.trim()).ok())
        .or_else(|| DomainName::from_str("localhost").ok())
        .map(SmtpDomain::Name)
}
