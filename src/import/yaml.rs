//! Writes mapped connectors as a configuration file, by hand: every string double-quoted and
//! escaped, every comment on one line.

use std::fmt::Write as _;

use super::map::{ConnectorEntry, Disposition, ImportedRoute, Mapped};

/// The configuration text for `connectors`, with a header and the notes as comments.
pub(super) fn document(connectors: &[Mapped]) -> String {
    let count =
        |f: fn(&Disposition) -> bool| connectors.iter().filter(|c| f(&c.disposition)).count();
    let active = count(|d| matches!(d, Disposition::Active(_)));
    let disabled = count(|d| matches!(d, Disposition::Disabled(_)));
    let skipped = count(|d| matches!(d, Disposition::Skipped));
    let notes: usize = connectors.iter().map(|c| c.notes.len()).sum();

    let mut out = String::new();
    out.push_str(
        "# mailflow_exporter configuration, imported from Exchange Online outbound connectors\n\
         # (the JSON of `Get-OutboundConnector | ConvertTo-Json`) by `mailflow_exporter import-connectors`.\n",
    );
    let _ = writeln!(
        out,
        "# {} read: {active} imported, {disabled} disabled (commented out), {skipped} skipped; {}.",
        plural(connectors.len(), "connector"),
        plural(notes, "note"),
    );
    if notes > 0 {
        out.push_str(
            "# Read the notes (\"# note:\") next to each connector before relying on it.\n",
        );
    }
    if active == 0 {
        out.push_str(
            "# No connector is enabled: to probe a disabled one, remove the [] and uncomment it.\n",
        );
        out.push_str("connectors: []\n");
    } else {
        out.push_str("connectors:\n");
    }
    for (i, connector) in connectors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_connector(&mut out, connector);
    }
    out
}

/// One connector: its description, comment and notes as comments, then its entry.
fn write_connector(out: &mut String, connector: &Mapped) {
    let _ = writeln!(out, "  # {}", comment(&connector.description));
    if let Some(text) = &connector.comment {
        let _ = writeln!(out, "  # Comment: {}", comment(text));
    }
    for note in &connector.notes {
        let _ = writeln!(
            out,
            "  # note: {}: {}: {}",
            note.setting,
            note.kind.as_str(),
            comment(&note.message)
        );
    }
    match &connector.disposition {
        Disposition::Active(entry) => write_entry(out, entry, "  "),
        Disposition::Disabled(entry) => write_entry(out, entry, "  # "),
        Disposition::Skipped => {}
    }
}

/// The entry's keys, each line after `prefix` ("  ", or "  # " to comment it out).
fn write_entry(out: &mut String, entry: &ConnectorEntry, prefix: &str) {
    let _ = writeln!(out, "{prefix}- name: {}", quote(&entry.name));
    if let Some(connector_type) = entry.connector_type {
        let _ = writeln!(out, "{prefix}  type: {}", quote(connector_type.as_str()));
    }
    match &entry.route {
        ImportedRoute::SmartHosts(hosts) => {
            let _ = writeln!(out, "{prefix}  smart_hosts: {}", list(hosts));
        }
        ImportedRoute::Mx => {
            let _ = writeln!(out, "{prefix}  use_mx_record: true");
        }
    }
    if !entry.recipient_domains.is_empty() {
        let _ = writeln!(
            out,
            "{prefix}  recipient_domains: {}",
            list(&entry.recipient_domains)
        );
    }
    let _ = writeln!(
        out,
        "{prefix}  tls_settings: {}",
        quote(entry.tls_settings.as_str())
    );
    if let Some(domain) = &entry.tls_domain {
        let _ = writeln!(out, "{prefix}  tls_domain: {}", quote(domain));
    }
    if let Some(mode) = entry.smtp_dane_mode {
        let _ = writeln!(out, "{prefix}  smtp_dane_mode: {}", quote(mode.as_str()));
    }
    if let Some(mode) = entry.mta_sts_mode {
        let _ = writeln!(out, "{prefix}  mta_sts_mode: {}", quote(mode.as_str()));
    }
}

/// A flow sequence of quoted strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `text` as a YAML double-quoted scalar: `\` and `"` escaped, and every control or line-break
/// character written as an escape, so no value can end the line or the string.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` for a comment: one line, control and line-break characters as spaces.
pub(super) fn comment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// "1 connector", "3 notes".
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
