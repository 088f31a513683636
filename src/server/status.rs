//! The status page at `/`: one row per connector with who runs it (and its labels), its code,
//! what the code means and whom to contact, the queue age against the retry window as a bar, the
//! time until queued mail bounces, the certificate's days left, the recent outcomes as a strip,
//! and links to a probe and to the explanation of the last one. Plain HTML and CSS: no
//! JavaScript, and every value from the configuration, the state or a server's reply is escaped.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::config::{Connector, ConnectorType};
use crate::explain::whom_to_contact;
use crate::exporter::{Exporter, FinishedProbe};
use crate::outcome::{Code, code_of};
use crate::state::{ConnectorState, unix_seconds};

use super::query::percent_encode;

/// How often the page reloads itself (a `<meta>` refresh, no script).
const REFRESH_SECONDS: u32 = 30;
/// The longest server reply shown in a row; the explanation has it whole.
const REPLY_CHARS: usize = 120;
/// Certificates with fewer days left than this are shown as a warning...
const CERTIFICATE_WARNING_DAYS: i64 = 14;
/// ...and with fewer than this, as critical (the defaults of the shipped alerts).
const CERTIFICATE_CRITICAL_DAYS: i64 = 3;
/// From this fraction of the retry window on, the queue bar is shown as critical.
const QUEUE_CRITICAL_FRACTION: f64 = 0.75;

/// What the page shows of one connector.
struct Row<'a> {
    /// The connector.
    connector: &'a Connector,
    /// Its remembered history; `None` before its first probe.
    state: Option<ConnectorState>,
    /// Its last probe since start, if any.
    last: Option<std::sync::Arc<FinishedProbe>>,
}

/// Renders the page for every configured connector, as things stand at `now`.
pub(super) fn page(exporter: &Exporter, now: SystemTime) -> String {
    let loaded = exporter.loaded();
    let rows: Vec<Row<'_>> = loaded
        .config
        .connectors
        .iter()
        .map(|connector| Row {
            connector,
            state: exporter.state_of(&connector.name),
            last: exporter.last_probe(&connector.name),
        })
        .collect();
    render(&rows, now)
}

fn render(rows: &[Row<'_>], now: SystemTime) -> String {
    let mut out = String::with_capacity(4096 + rows.len() * 2048);
    let failing = rows
        .iter()
        .filter(|row| row.code().is_some_and(|code| code != Code::Ok))
        .count();
    let unprobed = rows.iter().filter(|row| row.code().is_none()).count();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>mailflow_exporter: {} failing</title>\n<style>{STYLE}</style></head>\n<body>\n\
         <header><h1>mailflow_exporter</h1><p class=\"summary\">{} connectors: \
         <b class=\"good\">{} delivering</b>, <b class=\"bad\">{failing} failing</b>, {unprobed} not \
         probed yet · version {} · this page reloads every {REFRESH_SECONDS} s</p>\
         <nav><a href=\"/probe\">probe all</a> <a href=\"/metrics\">metrics</a> \
         <a href=\"/sd\">service discovery</a></nav></header>\n",
        failing,
        rows.len(),
        rows.len() - failing - unprobed,
        escape(env!("CARGO_PKG_VERSION")),
    );
    out.push_str(
        "<table>\n<thead><tr><th>connector</th><th>code</th><th>what it means · whom to contact</th>\
         <th>queue age of retry window</th><th>bounces in</th><th>certificate</th>\
         <th>recent, oldest first</th><th></th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        render_row(&mut out, row, now);
    }
    out.push_str("</tbody></table>\n");
    out.push_str(
        "<footer>Queue age: how long the oldest message would have waited, since the first \
         failed probe of the current streak; queued mail bounces when it reaches the retry \
         window. Probe now runs a probe (its metrics); explain describes the last one.\
         </footer>\n</body></html>\n",
    );
    out
}

fn render_row(out: &mut String, row: &Row<'_>, now: SystemTime) {
    let connector = row.connector;
    let name = escape(&connector.name);
    let link = escape(&percent_encode(&connector.name));
    let code = row.code();
    let (chip_class, chip) = match code {
        None => ("none", "not probed".to_owned()),
        Some(Code::Ok) => ("good", Code::Ok.as_str().to_owned()),
        Some(code) => ("bad", code.as_str().to_owned()),
    };
    let owner = match connector.connector_type {
        ConnectorType::OnPremises => "on-premises",
        ConnectorType::Partner => "partner",
    };
    let _ = write!(
        out,
        "<tr><td class=\"name\">{name}<br><span class=\"owner\">{owner}</span>"
    );
    for (label, value) in &connector.labels {
        let _ = write!(
            out,
            " <span class=\"label\">{}={}</span>",
            escape(label.as_str()),
            escape(value.as_str())
        );
    }
    let _ = write!(
        out,
        "</td><td><span class=\"chip {chip_class}\">{}</span></td>",
        escape(&chip)
    );
    render_meaning(out, row);
    render_queue(out, row, now);
    render_certificate(out, row, now);
    out.push_str("<td class=\"strip\">");
    if let Some(state) = &row.state {
        for code in state.recent.iter() {
            let class = if code == Code::Ok { "good" } else { "bad" };
            let _ = write!(
                out,
                "<span class=\"tick {class}\" title=\"{}: {}\"></span>",
                escape(code.as_str()),
                escape(code.title())
            );
        }
    }
    let _ = writeln!(
        out,
        "</td><td class=\"links\"><a href=\"/probe?connector={link}\">probe now</a> \
         <a href=\"/explain?connector={link}\">explain</a></td></tr>"
    );
}

/// The code's meaning with the phase, reason and the server's reply when failing, then whom to
/// contact; two lines, cut short on the page (whole in their tooltip and in the explanation).
fn render_meaning(out: &mut String, row: &Row<'_>) {
    out.push_str("<td class=\"meaning\"><div class=\"line\">");
    let Some(probe) = &row.last else {
        let text = match row.code() {
            // Restored from the state file: the code is known, the details are not.
            Some(code) => code.title(),
            None => "waiting for the first scrape",
        };
        let _ = write!(out, "{}</div></td>", escape(text));
        return;
    };
    let code = code_of(&probe.report.outcome);
    let _ = write!(out, "<b>{}</b>", escape(code.title()));
    if let Err(failure) = &probe.report.outcome {
        let _ = write!(
            out,
            " <span class=\"detail\">{} / {}</span>",
            escape(failure.phase().as_str()),
            escape(failure.reason().as_str())
        );
    }
    if let Some(reply) = failure_reply(probe) {
        let shown: String = reply.chars().take(REPLY_CHARS).collect();
        let reply = reply.as_ref();
        let more = if shown.len() < reply.len() { "…" } else { "" };
        let shown = escape(&shown);
        let _ = write!(
            out,
            " <q class=\"reply\" title=\"{shown}{more}\">{shown}{more}</q>"
        );
    }
    out.push_str("</div>");
    if let Some(contact) = whom_to_contact(row.connector.connector_type, code) {
        let contact = escape(contact);
        let _ = write!(
            out,
            "<div class=\"line contact\" title=\"Contact {contact}.\">Contact {contact}.</div>"
        );
    }
    out.push_str("</td>");
}

/// The server's reply that the probe failed on: the last reply line when it carries the
/// failure's reply code (after a refused RCPT the last line is QUIT's 221, which would mislead),
/// else the bare code; `None` when the failure was not a reply.
fn failure_reply(probe: &FinishedProbe) -> Option<std::borrow::Cow<'_, str>> {
    let failure = probe.report.outcome.as_ref().err()?;
    let code = failure.reply()?.to_string();
    let last = probe
        .report
        .representative()
        .and_then(|target| target.last_reply.as_deref());
    Some(match last {
        Some(line) if line.starts_with(&code) => line.into(),
        _ => code.into(),
    })
}

/// The queue age against the retry window as a bar, and the time until bounces.
fn render_queue(out: &mut String, row: &Row<'_>, now: SystemTime) {
    let age = row
        .state
        .as_ref()
        .map(|state| state.queue_age(now))
        .unwrap_or_default();
    let expiry = row.connector.queue_expiry;
    let fraction = if expiry.is_zero() {
        1.0
    } else {
        (age.as_secs_f64() / expiry.as_secs_f64()).min(1.0)
    };
    let level = if age.is_zero() {
        "good"
    } else if fraction >= QUEUE_CRITICAL_FRACTION {
        "bad"
    } else {
        "warn"
    };
    let _ = write!(
        out,
        "<td class=\"queue\"><div class=\"bar\"><span class=\"{level}\" style=\"width:{:.1}%\">\
         </span></div><span class=\"small\">{} of {}</span></td>",
        fraction * 100.0,
        human(age),
        human(expiry),
    );
    let bounce = if age.is_zero() {
        "<span class=\"muted\">delivering</span>".to_owned()
    } else if age >= expiry {
        "<b class=\"bad\">bouncing now</b>".to_owned()
    } else {
        format!("<b class=\"{level}\">{}</b>", human(expiry - age))
    };
    let _ = write!(out, "<td>{bounce}</td>");
}

/// Days left on the earliest-expiring certificate (or chain) of the last probe.
fn render_certificate(out: &mut String, row: &Row<'_>, now: SystemTime) {
    let earliest = row.last.as_ref().and_then(|probe| {
        probe
            .report
            .targets
            .iter()
            .filter_map(|target| target.tls.as_ref()?.certificate.as_ref())
            .map(|certificate| certificate.not_after.min(certificate.chain_not_after))
            .min()
    });
    let Some(not_after) = earliest else {
        out.push_str("<td class=\"muted\">none seen</td>");
        return;
    };
    let days = (not_after - unix_seconds(now) as i64).div_euclid(86_400);
    let plural = |n: i64| if n == 1 { "day" } else { "days" };
    let (class, text) = if days < 0 {
        ("bad", format!("expired {} {} ago", -days, plural(-days)))
    } else if days < CERTIFICATE_CRITICAL_DAYS {
        ("bad", format!("{days} {} left", plural(days)))
    } else if days < CERTIFICATE_WARNING_DAYS {
        ("warn", format!("{days} {} left", plural(days)))
    } else {
        ("good", format!("{days} {} left", plural(days)))
    };
    let _ = write!(out, "<td><b class=\"{class}\">{text}</b></td>");
}

impl Row<'_> {
    /// The code of the last probe; `None` before the first.
    fn code(&self) -> Option<Code> {
        self.last
            .as_ref()
            .map(|probe| code_of(&probe.report.outcome))
            .or_else(|| self.state.as_ref()?.last_outcome.as_ref().map(code_of))
    }
}

/// A duration for people: the two largest units (`3d 4h`, `2h 10m`, `45s`).
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) if seconds.is_multiple_of(60) => format!("{m}m"),
        (0, 0, m) => format!("{m}m {}s", seconds % 60),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `text` escaped for HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's look: a readable table, colour only as a second cue beside the words.
const STYLE: &str = "\
body{font:13px/1.3 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\
header{background:#1d2330;color:#fff;padding:10px 20px}\
header h1{margin:0 16px 0 0;font-size:18px;display:inline}header .summary{display:inline}\
header nav{display:inline;margin-left:16px}header a{color:#9cc3ff;margin-right:12px}\
header b.good{color:#8fe3a0}header b.bad{color:#ff9d9d}\
table{border-collapse:collapse;margin:12px 20px;background:#fff;\
box-shadow:0 1px 3px rgba(0,0,0,.15)}\
th,td{padding:5px 8px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}\
th{font-size:11px;text-transform:uppercase;color:#5b6475;background:#eef0f4}\
td.name{font-weight:600;font-family:ui-monospace,monospace;white-space:nowrap}\
.owner{font:11px system-ui,sans-serif;color:#5b6475}\
.label{font:11px ui-monospace,monospace;background:#eef0f4;border-radius:3px;padding:0 4px;\
color:#3d4656;font-weight:400}\
.chip{display:inline-block;padding:1px 7px;border-radius:9px;font-family:ui-monospace,monospace;\
font-weight:600;color:#fff;white-space:nowrap}\
.chip.good{background:#2e8b46}.chip.bad{background:#c0392b}.chip.none{background:#8a93a3}\
.line{max-width:330px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}\
.detail{color:#5b6475;font-family:ui-monospace,monospace;font-size:12px}\
q.reply{font-family:ui-monospace,monospace;font-size:12px;color:#7a4b00}\
.contact{font-size:12px;color:#3d4656}.small{font-size:12px;white-space:nowrap}\
.bar{width:110px;height:8px;background:#e3e6eb;border-radius:4px;overflow:hidden;margin:4px 0 2px}\
.bar span{display:block;height:100%}\
.bar .good{background:#2e8b46}.bar .warn{background:#e6a23c}.bar .bad{background:#c0392b}\
b.good{color:#2e8b46}b.warn{color:#b7791f}b.bad{color:#c0392b}.muted{color:#8a93a3}\
td{white-space:nowrap}td.meaning{white-space:normal}\
.tick{display:inline-block;width:4px;height:14px;margin-right:1px;border-radius:1px}\
.tick.good{background:#2e8b46}.tick.bad{background:#c0392b}\
td.links a{display:block;font-size:12px}\
footer{margin:0 20px 20px;color:#5b6475;font-size:12px;max-width:900px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    fn probe(failure: crate::outcome::Failure, last_reply: Option<&str>) -> FinishedProbe {
        use crate::probe::{Report, TargetReport};
        let config = crate::config::parse(
            "connectors:\n  - name: c1\n    smart_hosts: [127.0.0.1]\n",
            std::path::Path::new("t.yml"),
        )
        .expect("config");
        FinishedProbe {
            report: Report {
                connector: config.connectors[0].clone(),
                outcome: Err(failure),
                duration: Duration::from_millis(5),
                mta_sts: None,
                mx_dnssec: None,
                targets: vec![TargetReport {
                    host: "127.0.0.1".into(),
                    address: None,
                    outcome: Err(failure),
                    phases: Vec::new(),
                    tls: None,
                    last_reply: last_reply.map(str::to_owned),
                    tls_fallback: None,
                    dane: None,
                }],
            },
            state: ConnectorState::default(),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn shows_the_reply_the_probe_failed_on_not_a_later_one() {
        use crate::outcome::{ConnectFailure, Failure, SmtpFault, SmtpStep};
        let rcpt = Failure::Smtp(SmtpStep::Rcpt, SmtpFault::Reply(550));
        // After the refused RCPT the probe said QUIT: its 221 is not the reason.
        let after_quit = probe(rcpt, Some("221 2.0.0 bye"));
        assert_eq!(failure_reply(&after_quit).as_deref(), Some("550"));
        let refused = probe(rcpt, Some("550 5.1.1 no such user"));
        assert_eq!(
            failure_reply(&refused).as_deref(),
            Some("550 5.1.1 no such user")
        );
        let no_reply = probe(
            Failure::Connect(ConnectFailure::Refused),
            Some("220 left over"),
        );
        assert_eq!(failure_reply(&no_reply), None);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(125)), "2m 5s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 600)), "2h 10m");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(86_400 * 2)), "2d");
        assert_eq!(human(Duration::from_secs(86_400 * 3 + 3600 * 4)), "3d 4h");
    }
}
