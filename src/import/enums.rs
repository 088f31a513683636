//! Exchange's enum settings, each mapped by one table onto a configuration value.
//!
//! PowerShell writes an enum as its number (`ConvertTo-Json`) or as its name (`-EnumsAsStrings`,
//! or an object that was deserialized); a table row matches either, names in any case. Where
//! the number of a value is not documented, only its name is matched.

use super::NoteKind;
use super::map::{ImportedRoute, Notes};
use super::raw::RawEnum;
use crate::config::{ConnectorType, MtaStsMode, SmtpDaneMode, TlsSettings};

/// One row of a table: the value's number (when known), its name, and what it maps to.
pub(super) type Row<T> = (Option<i64>, &'static str, T);

/// `TlsSettings` (`Microsoft.Exchange.Data.TlsAuthLevel`) → `tls_settings`. `null` (unset) is
/// Exchange's default, opportunistic TLS: STARTTLS when the receiver offers it, nothing
/// validated. Any other value is noted and left at `opportunistic`.
pub(super) const TLS_SETTINGS: [Row<TlsSettings>; 3] = [
    (Some(1), "EncryptionOnly", TlsSettings::EncryptionOnly),
    (
        Some(2),
        "CertificateValidation",
        TlsSettings::CertificateValidation,
    ),
    (Some(4), "DomainValidation", TlsSettings::DomainValidation),
];

/// `ConnectorType` (`TenantConnectorType`) → `type`.
pub(super) const CONNECTOR_TYPES: [Row<ConnectorType>; 2] = [
    (Some(1), "OnPremises", ConnectorType::OnPremises),
    (Some(2), "Partner", ConnectorType::Partner),
];

/// `ConnectorSource` (`TenantConnectorSource`): only described in a comment.
pub(super) const CONNECTOR_SOURCES: [Row<()>; 3] = [
    (Some(0), "Default", ()),
    (Some(1), "Migrated", ()),
    (Some(2), "HybridWizard", ()),
];

/// `SmtpDaneMode` → `smtp_dane_mode` (by name: the numbers are not documented).
pub(super) const SMTP_DANE_MODES: [Row<SmtpDaneMode>; 3] = [
    (None, "Opportunistic", SmtpDaneMode::Opportunistic),
    (None, "Mandatory", SmtpDaneMode::Mandatory),
    (None, "None", SmtpDaneMode::None),
];

/// `MtaStsMode` → `mta_sts_mode` (by name: the numbers are not documented).
pub(super) const MTA_STS_MODES: [Row<MtaStsMode>; 2] = [
    (None, "Opportunistic", MtaStsMode::Opportunistic),
    (None, "None", MtaStsMode::None),
];

/// The value's name in `table`, or the value as written.
pub(super) fn label<T: Copy>(table: &[Row<T>], raw: &RawEnum) -> String {
    table
        .iter()
        .find(|(number, name, _)| raw.is(*number, name))
        .map_or_else(|| raw.to_string(), |(_, name, _)| (*name).to_owned())
}

/// The value of the row of `table` that `raw` names; `None` for an empty name (unset) or an
/// unknown value, which is noted for `setting` (`key` and `default` say what the
/// configuration then holds).
pub(super) fn lookup<T: Copy>(
    table: &[Row<T>],
    raw: Option<&RawEnum>,
    setting: &'static str,
    (key, default): (&str, &str),
    notes: &mut Notes,
) -> Option<T> {
    let raw = raw.filter(|raw| !matches!(raw, RawEnum::Name(name) if name.trim().is_empty()))?;
    let found = table
        .iter()
        .find(|(number, name, _)| raw.is(*number, name))
        .map(|(_, _, value)| *value);
    if found.is_none() {
        let known: Vec<String> = table
            .iter()
            .map(|(number, name, _)| match number {
                Some(number) => format!("{number} {name}"),
                None => (*name).to_owned(),
            })
            .collect();
        let by_name = if table.iter().all(|(number, _, _)| number.is_none()) {
            "; its numbers are not documented: export with `ConvertTo-Json -EnumsAsStrings`, \
             or set the key by hand"
        } else {
            ""
        };
        notes.push(
            setting,
            NoteKind::NotSupported,
            format!(
                "unknown value {raw} (known: {}{by_name}): {key} left at {default}",
                known.join(", ")
            ),
        );
    }
    found
}

impl RawEnum {
    /// Whether this is the enum value called `name` (any case), or numbered `number`.
    fn is(&self, number: Option<i64>, name: &str) -> bool {
        match self {
            RawEnum::Number(n) => number == Some(*n),
            RawEnum::Name(text) => {
                let text = text.trim();
                text.eq_ignore_ascii_case(name)
                    || number.is_some_and(|number| text.parse::<i64>() == Ok(number))
            }
        }
    }
}

/// `tls_settings` from `TlsSettings`; unset is opportunistic.
pub(super) fn tls_settings(raw: Option<&RawEnum>, notes: &mut Notes) -> TlsSettings {
    lookup(
        &TLS_SETTINGS,
        raw,
        "TlsSettings",
        ("tls_settings", "opportunistic"),
        notes,
    )
    .unwrap_or(TlsSettings::Opportunistic)
}

/// `type` from `ConnectorType`; `None` leaves the key out (the exporter's default).
pub(super) fn connector_type(raw: Option<&RawEnum>, notes: &mut Notes) -> Option<ConnectorType> {
    lookup(
        &CONNECTOR_TYPES,
        raw,
        "ConnectorType",
        ("type", "on_premises"),
        notes,
    )
}

/// `smtp_dane_mode` from `SmtpDaneMode`, for a connector with `route`; `None` leaves the key
/// out (opportunistic, as in Exchange).
pub(super) fn smtp_dane_mode(
    raw: Option<&RawEnum>,
    route: &ImportedRoute,
    notes: &mut Notes,
) -> Option<SmtpDaneMode> {
    lookup(
        &SMTP_DANE_MODES,
        raw,
        "SmtpDaneMode",
        ("smtp_dane_mode", "opportunistic"),
        notes,
    )
    .map(|mode| dane_for_route(mode, route, notes))
}

/// `Mandatory` as the exporter can hold it: DANE needs host names, so for a connector with an IP
/// smart host it is written as `opportunistic`, with a note.
fn dane_for_route(mode: SmtpDaneMode, route: &ImportedRoute, notes: &mut Notes) -> SmtpDaneMode {
    let ImportedRoute::SmartHosts(hosts) = route else {
        return mode;
    };
    let literals: Vec<&str> = hosts
        .iter()
        .filter(|host| host.parse::<std::net::IpAddr>().is_ok())
        .map(String::as_str)
        .collect();
    if mode != SmtpDaneMode::Mandatory || literals.is_empty() {
        return mode;
    }
    notes.push(
        "SmtpDaneMode",
        NoteKind::Approximate,
        format!(
            "Mandatory written as opportunistic: DANE cannot apply to the IP smart host(s) {} \
             (TLSA records are published under names), so Exchange holds mail for them",
            literals.join(", ")
        ),
    );
    SmtpDaneMode::Opportunistic
}

/// `mta_sts_mode` from `MtaStsMode`; `None` leaves the key out (opportunistic, as in Exchange).
pub(super) fn mta_sts_mode(raw: Option<&RawEnum>, notes: &mut Notes) -> Option<MtaStsMode> {
    lookup(
        &MTA_STS_MODES,
        raw,
        "MtaStsMode",
        ("mta_sts_mode", "opportunistic"),
        notes,
    )
}
