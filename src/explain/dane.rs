//! DNSSEC and DANE explained, where the connector checks them: the status of each RRset, each
//! host's TLSA records, which one matched the served chain (or the record to publish), and
//! whether a certificate renewal would break DANE.

use std::fmt::Write;

use crate::config::Route;
use crate::probe::dane_rule::TlsaAnswer;
use crate::probe::{DaneCheck, Report, TargetReport};

/// DNSSEC and DANE, where the connector checks them: the status of each RRset, each host's TLSA
/// records, which one matched the served chain (or the record it would need), and what to
/// publish.
pub(super) fn render_dane(out: &mut String, report: &Report) {
    if !report.targets.iter().any(|t| t.dane.is_some()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n  DANE (smtp_dane_mode {}):",
        report.connector.smtp_dane_mode.as_str()
    );
    if let (Route::Mx(domain), Some(status)) = (&report.connector.route, report.mx_dnssec) {
        let _ = writeln!(out, "    {domain} MX: DNSSEC {}", status.as_str());
    }
    let port = report.connector.port;
    for (index, target) in report.targets.iter().enumerate() {
        let Some(dane) = &target.dane else { continue };
        let first_of_host = !report.targets[..index]
            .iter()
            .any(|t| t.host == target.host);
        if first_of_host {
            let owner = format!("_{port}._tcp.{}.", target.host);
            let _ = writeln!(
                out,
                "    {} A/AAAA: DNSSEC {}",
                target.host,
                dane.host.status.as_str()
            );
            match &dane.host.tlsa {
                TlsaAnswer::NotAsked => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: not looked up (the host's records are not secure: DANE does not apply)"
                    );
                }
                TlsaAnswer::Failed(failure) => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: lookup failed ({}): senders that check DANE hold the mail",
                        failure.reason()
                    );
                }
                TlsaAnswer::Insecure => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: answer not signed (DANE does not apply)"
                    );
                }
                TlsaAnswer::Secure(records) if records.is_empty() => {
                    let _ = writeln!(
                        out,
                        "    {owner} TLSA: none published (secure denial: DANE does not apply)"
                    );
                }
                TlsaAnswer::Secure(records) => {
                    let _ = writeln!(out, "    {owner} TLSA (DNSSEC secure):");
                    for record in records.iter() {
                        let usable = if record.is_usable() {
                            "usable"
                        } else {
                            "unusable for SMTP (usage 0/1, or bad parameters)"
                        };
                        let _ = writeln!(out, "      {record}  {usable}");
                    }
                }
            }
        }
        if let Some(check) = &dane.check {
            render_dane_check(out, target, check, port);
        }
    }
}

/// How one address's chain fared against its host's TLSA records, and what to publish.
fn render_dane_check(out: &mut String, target: &TargetReport, check: &DaneCheck, port: u16) {
    let address = target.address.map(|a| a.to_string()).unwrap_or_default();
    let owner = format!("_{port}._tcp.{}.", target.host);
    match (&check.matched, &check.needed) {
        (Some(record), _) if check.broken_chain => {
            let _ = writeln!(
                out,
                "    {address}: the DANE-TA record {record} matches, but the chain does not lead from the leaf to it"
            );
        }
        (Some(record), _) => {
            let _ = writeln!(out, "    {address}: matched by {record}");
        }
        (None, Some(needed)) => {
            let _ = writeln!(
                out,
                "    {address}: no usable record matches the served certificate; publish\n      {owner} IN TLSA {needed}\n      (or serve the certificate the records name)"
            );
        }
        (None, None) => {
            let _ = writeln!(
                out,
                "    {address}: no usable record matches, and no leaf could be read"
            );
        }
    }
    if check.matched.is_some() && !check.rollover_ready {
        let _ = writeln!(
            out,
            "    {address}: rollover not ready: the next certificate renewal breaks DANE. Before it, publish the 3 1 1 record of the next key beside the current one, or a 2 1 1 record of the issuing CA"
        );
    }
}
