//! A probe report explained to a person (the `probe` subcommand, `/explain`): what each phase
//! showed, what the code usually means and what to do, and whom to contact, by who runs the
//! other end of the connector (its `type`).
//!
//! [`render`] writes the report's head and advice here; the sections come from `target` (each
//! address), `mta_sts` and `dane`; `contact` names whom to turn to; `format` writes times and
//! dates.

mod contact;
mod dane;
mod format;
mod mta_sts;
mod target;

use std::fmt::Write;
use std::time::SystemTime;

use crate::outcome::{Code, code_of};
use crate::probe::Report;
use dane::render_dane;
use format::millis;
use mta_sts::render_mta_sts;
use target::render_target;

pub use contact::{owner, whom_to_contact};

/// Renders `report`, probed at `now`, as plain text.
pub fn render(report: &Report, now: SystemTime) -> String {
    let mut out = String::new();
    let code = code_of(&report.outcome);
    let _ = writeln!(
        out,
        "connector {}: {} ({}){}",
        report.connector.name,
        code,
        code.title(),
        match &report.outcome {
            Ok(()) => String::new(),
            Err(f) => format!(" in phase {}, reason {}", f.phase(), f.reason()),
        }
    );
    let connector_type = report.connector.connector_type;
    let _ = writeln!(
        out,
        "owner: {} (type {})",
        owner(connector_type),
        connector_type.as_str()
    );
    let _ = writeln!(out, "probe took {}", millis(report.duration));
    for target in &report.targets {
        render_target(&mut out, target, now);
    }
    if let Some(sts) = &report.mta_sts {
        render_mta_sts(&mut out, sts, now);
    }
    render_dane(&mut out, report);
    let _ = writeln!(out);
    if code == Code::Ok {
        let _ = writeln!(out, "{}", code.advice());
    } else {
        let _ = writeln!(out, "What {code} usually means and what to do:");
        let _ = writeln!(out, "  {}", code.advice());
    }
    if let Some(contact) = whom_to_contact(connector_type, code) {
        let _ = writeln!(out, "Whom to contact: {contact}.");
    }
    out
}
