//! `import-connectors`: Exchange Online outbound connectors → a configuration file.
//!
//! Reads the JSON that `Get-OutboundConnector | ConvertTo-Json` writes in Exchange Online
//! PowerShell (`raw`), maps each connector's settings onto the configuration keys (`map`) and
//! writes the YAML by hand (`yaml`), with a [`Note`] for everything that did not map exactly.
//!
//! | Exchange property | configuration |
//! |---|---|
//! | `Name` | `name`: other characters → `-`, repeats get `-2`, `-3` (note when changed) |
//! | `Enabled: false` | the connector is written commented out (note) |
//! | `SmartHosts`, else `SmartHostsString` | `smart_hosts`; a CIDR range → its address (note) |
//! | `UseMXRecord: true` | `use_mx_record: true`; without a named recipient domain: skipped (note) |
//! | `RecipientDomains` | `recipient_domains`; `*` left out, `*.d` → `d` (notes) |
//! | `TlsSettings` | `tls_settings` by the one table `enums::TLS_SETTINGS`: `null` → `opportunistic`, 1 `EncryptionOnly`, 2 `CertificateValidation`, 4 `DomainValidation` |
//! | `TlsDomain` | `tls_domain` under `DomainValidation` only (Exchange ignores it otherwise); `*.d` kept (note) |
//! | `ConnectorType` | `type`: 1 `OnPremises` → `on_premises`, 2 `Partner` → `partner`; also in the comment |
//! | `SmtpDaneMode` | `smtp_dane_mode` by name (`Opportunistic`, `Mandatory`, `None`; numbers are not documented: note); `Mandatory` with an IP smart host → `opportunistic` (note) |
//! | `MtaStsMode` | `mta_sts_mode` by name (`Opportunistic`, `None`) |
//! | `ConnectorSource`, `WhenChanged`, `Comment` | comments |
//! | `IsTransportRuleScoped`, `RouteAllMessagesViaOnPremises`, `CloudServicesMailEnabled`, `AllAcceptedDomains`, `SenderRewritingEnabled`, `TestMode` | no equivalent: a note when `true` |
//! | `ValidationRecipients` | not set as `rcpt_to` (that needs a `mail_from` of yours): a note |
//! | `Identity`, `Guid`, `IsValidated`, `LastValidationTimestamp`, `LinkForModifiedConnector`, … | ignored |

mod enums;
mod map;
mod raw;
mod values;
mod yaml;

use std::fmt;

/// The result of an import: the configuration text and what did not map exactly.
#[derive(Debug, Clone)]
pub struct Import {
    /// The configuration file, ready for `check-config`.
    pub yaml: String,
    /// Everything that was skipped, mapped approximately or is not supported, in file order.
    pub notes: Vec<Note>,
}

/// One thing about one connector that did not map exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The connector's name in Exchange.
    pub connector: String,
    /// The Exchange property, e.g. `TlsDomain`.
    pub setting: &'static str,
    /// What happened.
    pub kind: NoteKind,
    /// Why, and what to do.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.connector,
            self.setting,
            self.kind.as_str(),
            self.message
        )
    }
}

/// What happened to a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Left out: a value, or (for a route setting) the whole connector.
    Skipped,
    /// The connector is disabled in Exchange and written commented out.
    CommentedOut,
    /// The connector got another name.
    Renamed,
    /// Mapped, but the exporter's meaning differs a little.
    Approximate,
    /// The exporter has no equivalent.
    NotSupported,
}

impl NoteKind {
    /// How notes print it.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Skipped => "skipped",
            NoteKind::CommentedOut => "commented out",
            NoteKind::Renamed => "renamed",
            NoteKind::Approximate => "approximate",
            NoteKind::NotSupported => "not supported",
        }
    }
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Nothing but white space (PowerShell writes nothing when there is no connector).
    #[error(
        "the file is empty: expected the JSON that `Get-OutboundConnector | ConvertTo-Json` writes"
    )]
    Empty,
    /// The bytes are neither UTF-8 nor UTF-16 with a byte order mark.
    #[error("the file is not UTF-8 or UTF-16 text: {0}")]
    Encoding(&'static str),
    /// Not JSON.
    #[error(
        "not JSON: {0} (expected the JSON that `Get-OutboundConnector | ConvertTo-Json` writes)"
    )]
    Json(#[source] serde_json::Error),
    /// JSON, but neither a connector nor an array of connectors.
    #[error("expected a connector object or an array of them, found {found}")]
    Shape {
        /// What was found instead, e.g. "a string".
        found: &'static str,
    },
    /// An item of the array is not an object.
    #[error("connector #{index}: expected an object, found {found}")]
    NotAConnector {
        /// 1-based position in the file.
        index: usize,
        /// What was found instead.
        found: &'static str,
    },
    /// A property has a shape the cmdlet does not write.
    #[error("connector #{index} ({name}): {property}: {message}")]
    Connector {
        /// 1-based position in the file.
        index: usize,
        /// The connector's name, quoted, or "without a name".
        name: String,
        /// The property, e.g. `Enabled`.
        property: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Imports the JSON text of `Get-OutboundConnector | ConvertTo-Json` (a leading BOM is allowed).
pub fn import(json: &str) -> Result<Import, ImportError> {
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    if json.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let document: serde_json::Value = serde_json::from_str(json).map_err(ImportError::Json)?;
    let mut connectors = Vec::new();
    for (index, value) in raw::connectors(document)?.into_iter().enumerate() {
        connectors.push(map::connector(index, raw::connector(index, value)?));
    }
    map::assign_names(&mut connectors);
    let yaml = yaml::document(&connectors);
    let notes = connectors.into_iter().flat_map(|c| c.notes).collect();
    Ok(Import { yaml, notes })
}

/// Imports a file's bytes: UTF-8 (with or without a BOM) or UTF-16 with a BOM, which Windows
/// PowerShell's `>` writes.
pub fn import_bytes(bytes: &[u8]) -> Result<Import, ImportError> {
    import(&decode(bytes)?)
}

/// The text of a file in UTF-8 or BOM-marked UTF-16.
fn decode(bytes: &[u8]) -> Result<String, ImportError> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        if !rest.len().is_multiple_of(2) {
            return Err(ImportError::Encoding("UTF-16 with an odd number of bytes"));
        }
        let units = rest.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| ImportError::Encoding("invalid UTF-16"))
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| ImportError::Encoding("invalid UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{self, ConnectorType, MtaStsMode, Route, SmtpDaneMode, TlsSettings};

    /// A host name for the assertions.
    fn name(text: &str) -> config::DomainName {
        text.parse().expect("a host name")
    }

    /// A fixture of `tests/fixtures/import/`.
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/import/", $name))
        };
    }

    /// Imports `json` and checks that the YAML passes the configuration parser.
    fn round_trip(json: &str) -> (Import, config::Config) {
        let import = import(json).expect("imports");
        let config = config::parse(&import.yaml, Path::new("imported.yml"))
            .unwrap_or_else(|e| panic!("{e}\n---\n{}", import.yaml));
        (import, config)
    }

    fn notes(import: &Import) -> Vec<String> {
        import.notes.iter().map(ToString::to_string).collect()
    }

    fn names(config: &config::Config) -> Vec<&str> {
        config.connectors.iter().map(|c| c.name.as_str()).collect()
    }

    /// The YAML with the disabled connectors' lines uncommented.
    fn uncommented(yaml: &str) -> String {
        yaml.lines()
            .map(|line| match line.strip_prefix("  # ") {
                Some(rest) if rest.starts_with("- ") || rest.starts_with("  ") => {
                    format!("  {rest}")
                }
                _ => line.to_owned(),
            })
            .map(|line| {
                if line == "connectors: []" {
                    "connectors:".to_owned()
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn array_of_named_enums_exact_yaml() {
        let (import, config) = round_trip(fixture!("array.json"));
        assert_eq!(
            import.yaml,
            r##"# mailflow_exporter configuration, imported from Exchange Online outbound connectors
# (the JSON of `Get-OutboundConnector | ConvertTo-Json`) by `mailflow_exporter import-connectors`.
# 3 connectors read: 3 imported, 0 disabled (commented out), 0 skipped; 4 notes.
# Read the notes ("# note:") next to each connector before relying on it.
connectors:
  # Exchange Online connector "Outbound to Contoso" (OnPremises, HybridWizard), changed 2023-11-14T22:13:20Z
  # note: CloudServicesMailEnabled: not supported: keeping internal Exchange headers has no equivalent and no effect on a probe
  # note: Name: renamed: named "Outbound-to-Contoso": names may hold only letters, digits, '.', '_' and '-'
  - name: "Outbound-to-Contoso"
    type: "on_premises"
    smart_hosts: ["mail.contoso.com", "192.0.2.25"]
    tls_settings: "domain_validation"
    tls_domain: "mail.contoso.com"

  # Exchange Online connector "Fabrikam" (Partner, Default), changed 2023-11-14T22:13:20Z
  # Comment: TLS to Fabrikam, agreed "2023"
  - name: "Fabrikam"
    type: "partner"
    use_mx_record: true
    recipient_domains: ["fabrikam.com"]
    tls_settings: "certificate_validation"

  # Exchange Online connector "Tailspin relay" (Partner, Default), changed 2023-11-15T10:00:00Z
  # note: TlsDomain: skipped: "relay.tailspin.example" left out: Exchange uses TlsDomain only with TlsSettings DomainValidation
  # note: Name: renamed: named "Tailspin-relay": names may hold only letters, digits, '.', '_' and '-'
  - name: "Tailspin-relay"
    type: "partner"
    smart_hosts: ["relay.tailspin.example"]
    recipient_domains: ["tailspin.example", "wingtip.example"]
    tls_settings: "encryption_only"
"##
        );
        assert_eq!(
            names(&config),
            ["Outbound-to-Contoso", "Fabrikam", "Tailspin-relay"]
        );
        assert_eq!(config.connectors[1].route, Route::Mx(name("fabrikam.com")));
        assert_eq!(
            config.connectors[0].tls_domain,
            Some(config::TlsDomain::Exact(name("mail.contoso.com")))
        );
        let types: Vec<ConnectorType> =
            config.connectors.iter().map(|c| c.connector_type).collect();
        assert_eq!(
            types,
            [
                ConnectorType::OnPremises,
                ConnectorType::Partner,
                ConnectorType::Partner
            ]
        );
    }

    #[test]
    fn single_object() {
        let (import, config) = round_trip(fixture!("single.json"));
        assert_eq!(names(&config), ["Northwind"]);
        assert_eq!(
            config.connectors[0].tls_settings,
            TlsSettings::DomainValidation
        );
        assert_eq!(notes(&import), Vec::<String>::new());
    }

    #[test]
    fn nulls_mean_unset() {
        let (import, config) = round_trip(fixture!("nulls.json"));
        assert_eq!(names(&config), ["Adatum"]);
        let adatum = &config.connectors[0];
        assert_eq!(adatum.tls_settings, TlsSettings::Opportunistic);
        assert_eq!(adatum.tls_domain, None);
        assert!(adatum.recipient_domains.is_empty());
        assert!(
            import
                .yaml
                .ends_with("connectors:\n  # Exchange Online connector \"Adatum\" (Partner)\n  - name: \"Adatum\"\n    type: \"partner\"\n    smart_hosts: [\"smtp.adatum.com\"]\n    tls_settings: \"opportunistic\"\n"),
            "{}",
            import.yaml
        );
        assert_eq!(notes(&import), Vec::<String>::new());
    }

    #[test]
    fn disabled_connectors_are_commented_out() {
        let (import, config) = round_trip(fixture!("disabled.json"));
        assert_eq!(names(&config), ["Litware"]);
        assert_eq!(
            notes(&import),
            [
                "Old relay: Enabled: commented out: the connector is disabled in Exchange: written commented out; uncomment it to probe it",
                "Old relay: Name: renamed: named \"Old-relay\": names may hold only letters, digits, '.', '_' and '-'",
            ]
        );
        assert!(
            import.yaml.contains(
                "  # - name: \"Old-relay\"\n  #   type: \"partner\"\n  #   smart_hosts: [\"192.0.2.7\"]\n  #   tls_settings: \"opportunistic\"\n"
            ),
            "{}",
            import.yaml
        );
        let enabled = config::parse(&uncommented(&import.yaml), Path::new("u.yml")).expect("valid");
        assert_eq!(names(&enabled), ["Litware", "Old-relay"]);
    }

    #[test]
    fn only_disabled_connectors_still_parse() {
        let json = r#"{"Name": "Off", "Enabled": false, "SmartHosts": ["smtp.off.example"]}"#;
        let (import, config) = round_trip(json);
        assert!(config.connectors.is_empty());
        assert!(import.yaml.contains("connectors: []\n"));
        let enabled = config::parse(&uncommented(&import.yaml), Path::new("u.yml")).expect("valid");
        assert_eq!(names(&enabled), ["Off"]);
    }

    #[test]
    fn star_and_wildcard_domains() {
        let (import, config) = round_trip(fixture!("star-domains.json"));
        assert_eq!(
            names(&config),
            ["All-partners-via-relay", "Contoso-subsidiaries"]
        );
        assert_eq!(config.connectors[1].route, Route::Mx(name("contoso.com")));
        assert_eq!(
            config.connectors[1].recipient_domains,
            ["contoso.com", "contoso.net"]
        );
        assert_eq!(
            notes(&import),
            [
                "Force TLS to everyone: RecipientDomains: skipped: \"*\" (every domain) left out: recipient_domains names domains",
                "Force TLS to everyone: UseMXRecord: skipped: connector left out: it routes by MX but has no recipient domain to look up (RecipientDomains names none by name); add one connector per partner domain by hand",
                "All partners via relay: RecipientDomains: skipped: \"*\" (every domain) left out: recipient_domains names domains",
                "All partners via relay: IsTransportRuleScoped: not supported: only mail flow rules route mail to this connector in Exchange; the exporter probes it like any other",
                "All partners via relay: Name: renamed: named \"All-partners-via-relay\": names may hold only letters, digits, '.', '_' and '-'",
                "Contoso subsidiaries: RecipientDomains: approximate: \"*.contoso.com\" written as \"contoso.com\": recipient_domains cannot name subdomains, and an MX lookup needs one domain",
                "Contoso subsidiaries: RecipientDomains: approximate: the exporter probes the MX of contoso.com only; add a connector per domain to probe contoso.net too",
                "Contoso subsidiaries: Name: renamed: named \"Contoso-subsidiaries\": names may hold only letters, digits, '.', '_' and '-'",
            ]
        );
        assert!(import.yaml.contains(
            "# 3 connectors read: 2 imported, 0 disabled (commented out), 1 skipped; 8 notes."
        ));
    }

    #[test]
    fn numeric_enums_use_exchange_values() {
        let (import, config) = round_trip(fixture!("numeric-enums.json"));
        let tls: Vec<TlsSettings> = config.connectors.iter().map(|c| c.tls_settings).collect();
        assert_eq!(
            tls,
            [
                TlsSettings::EncryptionOnly,
                TlsSettings::CertificateValidation,
                TlsSettings::DomainValidation,
                TlsSettings::Opportunistic,
                TlsSettings::Opportunistic,
            ]
        );
        assert!(import.yaml.contains("\"one\" (OnPremises, Default)"));
        assert!(import.yaml.contains("\"two\" (Partner, Migrated)"));
        assert!(import.yaml.contains("\"seven\" (7, HybridWizard)"));
        let types: Vec<ConnectorType> =
            config.connectors.iter().map(|c| c.connector_type).collect();
        assert_eq!(
            types,
            [
                ConnectorType::OnPremises,
                ConnectorType::Partner,
                ConnectorType::Partner,
                ConnectorType::Partner,
                ConnectorType::OnPremises,
            ]
        );
        assert_eq!(
            notes(&import),
            [
                "zero: TlsSettings: not supported: unknown value 0 (known: 1 EncryptionOnly, 2 CertificateValidation, 4 DomainValidation): tls_settings left at opportunistic",
                "seven: TlsSettings: not supported: unknown value \"Strict\" (known: 1 EncryptionOnly, 2 CertificateValidation, 4 DomainValidation): tls_settings left at opportunistic",
                "seven: ConnectorType: not supported: unknown value 7 (known: 1 OnPremises, 2 Partner): type left at on_premises",
            ]
        );
    }

    #[test]
    fn smart_hosts_as_objects() {
        let (import, config) = round_trip(fixture!("smart-host-objects.json"));
        assert_eq!(
            config.connectors[0].route,
            Route::SmartHosts(vec![
                config::Host::Name(name("mx1.contoso.com")),
                config::Host::Ip("192.0.2.25".parse().expect("ip")),
                config::Host::Ip("2001:db8::25".parse().expect("ip")),
                config::Host::Name(name("mx2.contoso.com")),
                config::Host::Ip("198.51.100.1".parse().expect("ip")),
            ])
        );
        assert_eq!(
            notes(&import),
            [
                "Contoso hosts: SmartHosts: approximate: the range \"198.51.100.1/25\" is probed at 198.51.100.1 only: a probe needs one address",
                "Contoso hosts: SmartHosts: skipped: \"not a host!\" left out: not a host name or an IP address",
                "Contoso hosts: Name: renamed: named \"Contoso-hosts\": names may hold only letters, digits, '.', '_' and '-'",
            ]
        );
    }

    #[test]
    fn smart_hosts_string_only() {
        let (import, config) = round_trip(fixture!("smart-hosts-string.json"));
        assert_eq!(
            config.connectors[0].route,
            Route::SmartHosts(vec![
                config::Host::Name(name("relay1.woodgrove.example")),
                config::Host::Ip("203.0.113.9".parse().expect("ip")),
            ])
        );
        assert_eq!(notes(&import), Vec::<String>::new());
    }

    #[test]
    fn byte_order_mark_and_utf16() {
        let text = fixture!("bom.json");
        assert!(text.starts_with('\u{feff}'));
        let (_, config) = round_trip(text);
        assert_eq!(names(&config), ["Proseware"]);
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(
            text.trim_start_matches('\u{feff}')
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let from_bytes = import_bytes(&utf16).expect("imports UTF-16");
        assert_eq!(from_bytes.yaml, import(text).expect("imports").yaml);
    }

    #[test]
    fn names_are_sanitized_and_unique() {
        let (import, config) = round_trip(fixture!("names.json"));
        assert_eq!(
            names(&config),
            [
                "Partner-TLS",
                "Partner-TLS-2",
                "Connecteur-f-r-M-ller",
                "connector-4"
            ]
        );
        assert_eq!(
            notes(&import),
            [
                "Partner TLS: Name: renamed: named \"Partner-TLS\": names may hold only letters, digits, '.', '_' and '-'",
                "Partner - TLS: Name: renamed: named \"Partner-TLS-2\": another connector already has that name",
                "Connecteur für Müller: Name: renamed: named \"Connecteur-f-r-M-ller\": names may hold only letters, digits, '.', '_' and '-'",
                "connector #4: Name: renamed: named \"connector-4\": names may hold only letters, digits, '.', '_' and '-'",
            ]
        );
    }

    #[test]
    fn settings_without_equivalent_are_noted() {
        let (import, config) = round_trip(fixture!("unmapped.json"));
        assert_eq!(config.connectors[0].rcpt_to, None);
        assert_eq!(
            notes(&import),
            [
                "Hybrid: SmartHosts: skipped: \"relay.contoso.com\" left out: UseMXRecord is true, so Exchange does not use them",
                "Hybrid: TlsDomain: approximate: \"*.contoso.com\": Exchange accepts contoso.com and names at any depth under it; the exporter accepts names exactly one label under contoso.com",
                "Hybrid: RouteAllMessagesViaOnPremises: not supported: centralized mail transport has no equivalent; the route is probed as written",
                "Hybrid: CloudServicesMailEnabled: not supported: keeping internal Exchange headers has no equivalent and no effect on a probe",
                "Hybrid: AllAcceptedDomains: not supported: the exporter cannot list every accepted domain; recipient_domains holds only RecipientDomains",
                "Hybrid: SenderRewritingEnabled: not supported: the Sender Rewriting Scheme has no equivalent and no effect on a probe",
                "Hybrid: TestMode: not supported: the exporter has no test mode; it probes the connector as configured",
                "Hybrid: ValidationRecipients: not supported: not used: to test the envelope too, set mail_from to an address of yours and rcpt_to, e.g. to \"postmaster@contoso.com\"",
            ]
        );
        assert_eq!(
            config.connectors[0].tls_domain,
            Some(config::TlsDomain::Wildcard(name("contoso.com")))
        );
    }

    #[test]
    fn dane_mta_sts_and_connector_type() {
        let (import, config) = round_trip(fixture!("dane-mta-sts.json"));
        assert_eq!(
            import.yaml,
            r##"# mailflow_exporter configuration, imported from Exchange Online outbound connectors
# (the JSON of `Get-OutboundConnector | ConvertTo-Json`) by `mailflow_exporter import-connectors`.
# 5 connectors read: 5 imported, 0 disabled (commented out), 0 skipped; 5 notes.
# Read the notes ("# note:") next to each connector before relying on it.
connectors:
  # Exchange Online connector "Fabrikam DANE" (Partner, Default)
  # note: Name: renamed: named "Fabrikam-DANE": names may hold only letters, digits, '.', '_' and '-'
  - name: "Fabrikam-DANE"
    type: "partner"
    use_mx_record: true
    recipient_domains: ["fabrikam.com"]
    tls_settings: "certificate_validation"
    smtp_dane_mode: "mandatory"
    mta_sts_mode: "none"

  # Exchange Online connector "Contoso relay" (OnPremises, HybridWizard)
  # note: SmtpDaneMode: approximate: Mandatory written as opportunistic: DANE cannot apply to the IP smart host(s) 192.0.2.25 (TLSA records are published under names), so Exchange holds mail for them
  # note: Name: renamed: named "Contoso-relay": names may hold only letters, digits, '.', '_' and '-'
  - name: "Contoso-relay"
    type: "on_premises"
    smart_hosts: ["192.0.2.25", "relay.contoso.com"]
    tls_settings: "encryption_only"
    smtp_dane_mode: "opportunistic"
    mta_sts_mode: "opportunistic"

  # Exchange Online connector "Contoso-mail" (OnPremises)
  - name: "Contoso-mail"
    type: "on_premises"
    smart_hosts: ["mail.contoso.com"]
    tls_settings: "opportunistic"
    smtp_dane_mode: "none"
    mta_sts_mode: "opportunistic"

  # Exchange Online connector "Tailspin" (Partner)
  # note: SmtpDaneMode: not supported: unknown value 1 (known: Opportunistic, Mandatory, None; its numbers are not documented: export with `ConvertTo-Json -EnumsAsStrings`, or set the key by hand): smtp_dane_mode left at opportunistic
  # note: MtaStsMode: not supported: unknown value 0 (known: Opportunistic, None; its numbers are not documented: export with `ConvertTo-Json -EnumsAsStrings`, or set the key by hand): mta_sts_mode left at opportunistic
  - name: "Tailspin"
    type: "partner"
    smart_hosts: ["smtp.tailspin.example"]
    tls_settings: "certificate_validation"

  # Exchange Online connector "Wingtip" (Partner)
  - name: "Wingtip"
    type: "partner"
    smart_hosts: ["smtp.wingtip.example"]
    tls_settings: "opportunistic"
"##
        );
        let modes: Vec<(ConnectorType, SmtpDaneMode, MtaStsMode)> = config
            .connectors
            .iter()
            .map(|c| (c.connector_type, c.smtp_dane_mode, c.mta_sts_mode))
            .collect();
        assert_eq!(
            modes,
            [
                (
                    ConnectorType::Partner,
                    SmtpDaneMode::Mandatory,
                    MtaStsMode::None
                ),
                (
                    ConnectorType::OnPremises,
                    SmtpDaneMode::Opportunistic,
                    MtaStsMode::Opportunistic
                ),
                (
                    ConnectorType::OnPremises,
                    SmtpDaneMode::None,
                    MtaStsMode::Opportunistic
                ),
                (
                    ConnectorType::Partner,
                    SmtpDaneMode::Opportunistic,
                    MtaStsMode::Opportunistic
                ),
                (
                    ConnectorType::Partner,
                    SmtpDaneMode::Opportunistic,
                    MtaStsMode::Opportunistic
                ),
            ]
        );
        assert_eq!(import.notes.len(), 5);
    }

    #[test]
    fn powershell_value_wrapper() {
        let (_, config) = round_trip(fixture!("value-wrapper.json"));
        assert_eq!(names(&config), ["first", "second"]);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let error = import(fixture!("garbage.json")).expect_err("not JSON");
        assert_eq!(
            error.to_string(),
            "not JSON: expected value at line 2 column 1 (expected the JSON that `Get-OutboundConnector | ConvertTo-Json` writes)"
        );
        assert_eq!(
            import("  \r\n").expect_err("empty").to_string(),
            "the file is empty: expected the JSON that `Get-OutboundConnector | ConvertTo-Json` writes"
        );
        assert_eq!(
            import("\"Contoso\"").expect_err("a string").to_string(),
            "expected a connector object or an array of them, found a string"
        );
        assert_eq!(
            import("[{\"Name\": \"a\", \"SmartHosts\": [\"h.example\"]}, 7]")
                .expect_err("a number")
                .to_string(),
            "connector #2: expected an object, found a number"
        );
        assert_eq!(
            import("{\"Name\": \"a\", \"Enabled\": \"maybe\"}")
                .expect_err("bad Enabled")
                .to_string(),
            "connector #1 (\"a\"): Enabled: invalid type: string \"maybe\", expected a boolean"
        );
        assert!(matches!(
            import_bytes(&[0xFF, 0xFE, 0x00]),
            Err(ImportError::Encoding(_))
        ));
    }

    #[test]
    fn quoting_survives_any_text() {
        let text = "a \"b\" \\ c\nd\te\u{1}\u{2028}: # x";
        let yaml = format!("k: {}\n", yaml::quote(text));
        #[derive(serde::Deserialize)]
        struct K {
            k: String,
        }
        let parsed: K = serde_saphyr::from_str(&yaml).expect("parses");
        assert_eq!(parsed.k, text);
        assert_eq!(yaml::comment("a\nb\r\nc"), "a b  c");
    }
}
