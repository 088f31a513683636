//! The configuration file's shape, exactly: every key, with the type YAML gives it. Unknown keys
//! are errors; nothing here judges a value beyond its type (see `validate`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::duration::PositiveDuration;
use super::{ConnectorType, DnssecValidation, MtaStsMode, SmtpDaneMode, TlsSettings};

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Settings every connector inherits.
    #[serde(default)]
    pub defaults: RawSettings,
    /// The connectors, in file order.
    #[serde(default)]
    pub connectors: Vec<RawSettings>,
    /// The Postfix queue on this host.
    pub postfix_queue: Option<RawPostfixQueue>,
}

/// `postfix_queue`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostfixQueue {
    /// The command that prints the queue as JSON lines.
    #[serde(default = "default_postqueue_command")]
    pub command: Vec<String>,
    /// Its time limit.
    pub timeout: Option<PositiveDuration>,
}

fn default_postqueue_command() -> Vec<String> {
    vec!["postqueue".to_owned(), "-j".to_owned()]
}

/// The keys of a connector; `defaults` has the same shape but may not name a connector's own
/// keys (its name, route, type and labels).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub name: Option<String>,
    pub smart_hosts: Option<Vec<String>>,
    pub use_mx_record: Option<bool>,
    pub recipient_domains: Option<Vec<String>>,
    pub port: Option<Port>,
    pub timeout: Option<PositiveDuration>,
    pub helo_name: Option<String>,
    pub tls_settings: Option<TlsSettings>,
    pub tls_domain: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub implicit_tls: Option<bool>,
    pub mail_from: Option<String>,
    pub rcpt_to: Option<String>,
    pub queue_expiry: Option<PositiveDuration>,
    pub dns: Option<RawDns>,
    pub smtp_dane_mode: Option<SmtpDaneMode>,
    pub mta_sts_mode: Option<MtaStsMode>,
    #[serde(rename = "type")]
    pub connector_type: Option<ConnectorType>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `dns`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub nameservers: Option<Vec<Nameserver>>,
    pub timeout: Option<PositiveDuration>,
    pub dnssec_validation: Option<DnssecValidation>,
    pub trust_anchor_file: Option<PathBuf>,
}

/// A TCP port, 1 to 65535.
#[derive(Clone, Copy, Debug)]
pub(super) struct Port(pub u16);

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
pub(super) struct Nameserver(pub SocketAddr);

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
