//! Exchange settings → configuration keys, one connector at a time, with a note for everything
//! that does not map exactly.

use std::collections::HashSet;

use super::enums::{
    CONNECTOR_SOURCES, CONNECTOR_TYPES, connector_type, label, mta_sts_mode, smtp_dane_mode,
    tls_settings,
};
use super::raw::{RawConnector, RawDomain, RawList, RawSmartHost};
use super::values::{Domain, HostVerdict, date, domains, host, smart_host_texts, split_list};
use super::{Note, NoteKind};
use crate::config::{ConnectorType, MtaStsMode, SmtpDaneMode, TlsSettings};

/// Exchange settings without an equivalent: noted when `true` (their default, `false`, loses
/// nothing).
const UNSUPPORTED_FLAGS: [(&str, &str); 6] = [
    (
        "IsTransportRuleScoped",
        "only mail flow rules route mail to this connector in Exchange; the exporter probes it like any other",
    ),
    (
        "RouteAllMessagesViaOnPremises",
        "centralized mail transport has no equivalent; the route is probed as written",
    ),
    (
        "CloudServicesMailEnabled",
        "keeping internal Exchange headers has no equivalent and no effect on a probe",
    ),
    (
        "AllAcceptedDomains",
        "the exporter cannot list every accepted domain; recipient_domains holds only RecipientDomains",
    ),
    (
        "SenderRewritingEnabled",
        "the Sender Rewriting Scheme has no equivalent and no effect on a probe",
    ),
    (
        "TestMode",
        "the exporter has no test mode; it probes the connector as configured",
    ),
];

/// One Exchange connector after mapping.
#[derive(Debug)]
pub(super) struct Mapped {
    /// The connector's name in Exchange, which the notes use.
    pub exchange_name: String,
    /// What Exchange says about it: type, source, last change.
    pub description: String,
    /// The administrator's comment.
    pub comment: Option<String>,
    /// What becomes of it.
    pub disposition: Disposition,
    /// Everything that did not map exactly.
    pub notes: Vec<Note>,
}

/// What becomes of a connector.
#[derive(Debug)]
pub(super) enum Disposition {
    /// Written as a connector.
    Active(ConnectorEntry),
    /// Disabled in Exchange: written commented out.
    Disabled(ConnectorEntry),
    /// Cannot be probed: only the notes are written.
    Skipped,
}

/// A connector of the configuration file.
#[derive(Debug)]
pub(super) struct ConnectorEntry {
    /// The configuration name; assigned by [`assign_names`].
    pub name: String,
    /// Who runs the other end (`type`); `None` leaves the key out.
    pub connector_type: Option<ConnectorType>,
    /// Fixed smart hosts (names or IP literals), or the MX of the first recipient domain.
    pub route: ImportedRoute,
    /// Recipient domains; with [`ImportedRoute::Mx`] the first one is looked up.
    pub recipient_domains: Vec<String>,
    /// The TLS requirement.
    pub tls_settings: TlsSettings,
    /// The name the certificate must carry.
    pub tls_domain: Option<String>,
    /// DANE (`smtp_dane_mode`); `None` leaves the key out.
    pub smtp_dane_mode: Option<SmtpDaneMode>,
    /// MTA-STS (`mta_sts_mode`); `None` leaves the key out.
    pub mta_sts_mode: Option<MtaStsMode>,
}

/// Where a connector delivers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ImportedRoute {
    /// Smart hosts, most preferred first.
    SmartHosts(Vec<String>),
    /// The MX of `recipient_domains[0]`.
    Mx,
}

/// Maps the connector at 0-based `index`.
pub(super) fn connector(index: usize, raw: RawConnector) -> Mapped {
    let exchange_name = raw
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            raw.identity
                .as_ref()
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("connector #{}", index + 1));
    let mut notes = Notes {
        connector: exchange_name.clone(),
        notes: Vec::new(),
    };
    let description = describe(&raw);
    let comment = raw
        .comment
        .clone()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let disposition = match entry(raw, &mut notes) {
        Some((entry, true)) => Disposition::Active(entry),
        Some((entry, false)) => {
            notes.push(
                "Enabled",
                NoteKind::CommentedOut,
                "the connector is disabled in Exchange: written commented out; uncomment it to probe it",
            );
            Disposition::Disabled(entry)
        }
        None => Disposition::Skipped,
    };
    Mapped {
        exchange_name,
        description,
        comment,
        disposition,
        notes: notes.notes,
    }
}

/// Gives every written connector a valid, unique name, in file order, noting each change.
pub(super) fn assign_names(connectors: &mut [Mapped]) {
    let mut taken = HashSet::new();
    for (index, connector) in connectors.iter_mut().enumerate() {
        let entry = match &mut connector.disposition {
            Disposition::Active(entry) | Disposition::Disabled(entry) => entry,
            Disposition::Skipped => continue,
        };
        let base = Some(sanitize(&connector.exchange_name))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("connector-{}", index + 1));
        let mut name = base.clone();
        let mut suffix = 2;
        while !taken.insert(name.to_ascii_lowercase()) {
            name = format!("{base}-{suffix}");
            suffix += 1;
        }
        if name != connector.exchange_name {
            let why = if name != base {
                "another connector already has that name"
            } else {
                "names may hold only letters, digits, '.', '_' and '-'"
            };
            connector.notes.push(Note {
                connector: connector.exchange_name.clone(),
                setting: "Name",
                kind: NoteKind::Renamed,
                message: format!("named {name:?}: {why}"),
            });
        }
        entry.name = name;
    }
}

/// The connector's entry and whether it is enabled; `None` when it cannot be probed.
fn entry(raw: RawConnector, notes: &mut Notes) -> Option<(ConnectorEntry, bool)> {
    let domains = recipient_domains(raw.recipient_domains, notes);
    let use_mx = raw.use_mx_record.unwrap_or(false);
    let hosts = smart_hosts(raw.smart_hosts, raw.smart_hosts_string, use_mx, notes);
    let route = if use_mx {
        let Some(first) = domains.first() else {
            notes.push(
                "UseMXRecord",
                NoteKind::Skipped,
                "connector left out: it routes by MX but has no recipient domain to look up \
                 (RecipientDomains names none by name); add one connector per partner domain by hand",
            );
            return None;
        };
        if domains.len() > 1 {
            notes.push(
                "RecipientDomains",
                NoteKind::Approximate,
                format!(
                    "the exporter probes the MX of {first} only; add a connector per domain to probe {} too",
                    domains[1..].join(", ")
                ),
            );
        }
        ImportedRoute::Mx
    } else {
        if hosts.is_empty() {
            notes.push(
                "SmartHosts",
                NoteKind::Skipped,
                "connector left out: no usable smart host, and UseMXRecord is false",
            );
            return None;
        }
        ImportedRoute::SmartHosts(hosts)
    };
    let tls_settings = tls_settings(raw.tls_settings.as_ref(), notes);
    let tls_domain = tls_domain(raw.tls_domain, tls_settings, notes);
    let smtp_dane_mode = smtp_dane_mode(raw.smtp_dane_mode.as_ref(), &route, notes);
    let mta_sts_mode = mta_sts_mode(raw.mta_sts_mode.as_ref(), notes);
    let flags = [
        raw.is_transport_rule_scoped,
        raw.route_all_messages_via_on_premises,
        raw.cloud_services_mail_enabled,
        raw.all_accepted_domains,
        raw.sender_rewriting_enabled,
        raw.test_mode,
    ];
    for ((setting, message), value) in UNSUPPORTED_FLAGS.into_iter().zip(flags) {
        if value == Some(true) {
            notes.push(setting, NoteKind::NotSupported, message);
        }
    }
    let recipients: Vec<String> = raw
        .validation_recipients
        .map(RawList::into_items)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(first) = recipients.first() {
        notes.push(
            "ValidationRecipients",
            NoteKind::NotSupported,
            format!(
                "not used: to test the envelope too, set mail_from to an address of yours and rcpt_to, e.g. to {first:?}"
            ),
        );
    }
    let entry = ConnectorEntry {
        name: String::new(),
        connector_type: connector_type(raw.connector_type.as_ref(), notes),
        route,
        recipient_domains: domains,
        tls_settings,
        tls_domain,
        smtp_dane_mode,
        mta_sts_mode,
    };
    Some((entry, raw.enabled.unwrap_or(true)))
}

/// The usable recipient domains, lowercase and without repeats, noting the others.
fn recipient_domains(raw: Option<RawList<RawDomain>>, notes: &mut Notes) -> Vec<String> {
    let mut usable: Vec<String> = Vec::new();
    for domain in raw
        .map(RawList::into_items)
        .unwrap_or_default()
        .into_iter()
        .flat_map(domains)
    {
        let name = match domain {
            Domain::Every => {
                notes.push(
                    "RecipientDomains",
                    NoteKind::Skipped,
                    "\"*\" (every domain) left out: recipient_domains names domains",
                );
                continue;
            }
            Domain::Invalid(text) => {
                notes.push(
                    "RecipientDomains",
                    NoteKind::Skipped,
                    format!("{text:?} left out: not a domain name"),
                );
                continue;
            }
            Domain::WithSubdomains(name) => {
                notes.push(
                    "RecipientDomains",
                    NoteKind::Approximate,
                    format!(
                        "\"*.{name}\" written as {name:?}: recipient_domains cannot name subdomains, \
                         and an MX lookup needs one domain"
                    ),
                );
                name
            }
            Domain::Exact(name) => name,
        };
        if !usable.contains(&name) {
            usable.push(name);
        }
    }
    usable
}

/// The usable smart hosts, from `SmartHosts` or else `SmartHostsString`, noting the others.
fn smart_hosts(
    raw: Option<RawList<RawSmartHost>>,
    string: Option<String>,
    use_mx: bool,
    notes: &mut Notes,
) -> Vec<String> {
    let mut texts: Vec<String> = raw
        .map(RawList::into_items)
        .unwrap_or_default()
        .into_iter()
        .flat_map(smart_host_texts)
        .collect();
    if texts.is_empty() {
        texts = string.as_deref().map(split_list).unwrap_or_default();
    }
    if use_mx {
        if !texts.is_empty() {
            notes.push(
                "SmartHosts",
                NoteKind::Skipped,
                format!(
                    "{} left out: UseMXRecord is true, so Exchange does not use them",
                    texts
                        .iter()
                        .map(|t| format!("{t:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        return Vec::new();
    }
    let mut hosts: Vec<String> = Vec::new();
    for text in texts {
        let host = match host(&text) {
            HostVerdict::Valid(host) => host,
            HostVerdict::Range(address) => {
                notes.push(
                    "SmartHosts",
                    NoteKind::Approximate,
                    format!(
                        "the range {text:?} is probed at {address} only: a probe needs one address"
                    ),
                );
                address
            }
            HostVerdict::Invalid => {
                notes.push(
                    "SmartHosts",
                    NoteKind::Skipped,
                    format!("{text:?} left out: not a host name or an IP address"),
                );
                continue;
            }
        };
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// `tls_domain` from Exchange's `TlsDomain`, which Exchange uses only under `DomainValidation`.
fn tls_domain(
    raw: Option<RawDomain>,
    tls_settings: TlsSettings,
    notes: &mut Notes,
) -> Option<String> {
    let domain = domains(raw?).into_iter().next()?;
    if tls_settings != TlsSettings::DomainValidation {
        notes.push(
            "TlsDomain",
            NoteKind::Skipped,
            format!(
                "{} left out: Exchange uses TlsDomain only with TlsSettings DomainValidation",
                domain.text()
            ),
        );
        return None;
    }
    match domain {
        Domain::Exact(name) => Some(name),
        Domain::WithSubdomains(name) => {
            notes.push(
                "TlsDomain",
                NoteKind::Approximate,
                format!(
                    "\"*.{name}\": Exchange accepts {name} and names at any depth under it; \
                     the exporter accepts names exactly one label under {name}"
                ),
            );
            Some(format!("*.{name}"))
        }
        Domain::Every | Domain::Invalid(_) => {
            notes.push(
                "TlsDomain",
                NoteKind::Skipped,
                format!(
                    "{} left out: not a name; the certificate must name the host connected to",
                    domain.text()
                ),
            );
            None
        }
    }
}

/// "Exchange Online: \"Name\" (Partner, Default), changed 2023-11-14T22:13:20Z".
fn describe(raw: &RawConnector) -> String {
    let mut facts = Vec::new();
    if let Some(kind) = &raw.connector_type {
        facts.push(label(&CONNECTOR_TYPES, kind));
    }
    if let Some(source) = &raw.connector_source {
        facts.push(label(&CONNECTOR_SOURCES, source));
    }
    let mut text = match raw.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("Exchange Online connector {name:?}"),
        None => "Exchange Online connector without a name".to_owned(),
    };
    if !facts.is_empty() {
        text.push_str(&format!(" ({})", facts.join(", ")));
    }
    if let Some(changed) = raw.when_changed.as_ref().and_then(date) {
        text.push_str(&format!(", changed {changed}"));
    }
    text
}

/// A connector name with letters, digits, '.', '_' and '-' only: each run of other characters
/// becomes one '-', and leading and trailing '-' go.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut replaced = false;
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            out.push(c);
            replaced = false;
        } else if c == '-' {
            if !replaced {
                out.push(c);
            }
        } else if !out.ends_with('-') {
            out.push('-');
            replaced = true;
        } else {
            replaced = true;
        }
    }
    out.trim_matches('-').to_owned()
}

/// The notes of one connector.
pub(super) struct Notes {
    /// The connector's Exchange name.
    connector: String,
    /// The notes so far.
    notes: Vec<Note>,
}

impl Notes {
    /// Notes `message` about the Exchange property `setting`.
    pub(super) fn push(
        &mut self,
        setting: &'static str,
        kind: NoteKind,
        message: impl Into<String>,
    ) {
        self.notes.push(Note {
            connector: self.connector.clone(),
            setting,
            kind,
            message: message.into(),
        });
    }
}
