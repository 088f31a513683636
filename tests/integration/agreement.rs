//! Agreement with a real sending MTA: the exporter says `ok` exactly when a sending Postfix,
//! configured like Exchange Online, delivers.
//!
//! Every SMTP fixture server of the system tests is a destination: the real receiving Postfix
//! with each of its certificates (valid, expired, not yet valid, wrong name, untrusted,
//! self-signed, self-signed with the CA flag, bad signature), without STARTTLS, with TLS 1.0 only
//! and rejecting every recipient, each under the four TLS settings; and scripted servers for the
//! faults a real server does not show (421 and 554 greetings, recipients refused with 450 and
//! 550, a rejected EHLO, a refused STARTTLS, a TLS handshake answered with garbage, a session
//! closed before and after the greeting, a server that never greets, a closed port). One
//! connector per destination and setting; for each, the exporter probes it (envelope included)
//! and the sending Postfix submits one message to it. The test asserts `ok` ⇔ `status=sent`, and
//! prints, for every connector, the exporter's code, phase and reason beside Postfix's result
//! and its delay or bounce reason (run with `--nocapture` to see the table when it passes).
//! Where both deliver, they must also agree on how: over TLS, in plain text after a failed TLS
//! handshake (`mailflow_tls_fallback` against Postfix's `SSL_connect error` before `sent`), or in
//! plain text from the start.
//!
//! The sending Postfix (see `Sender` in `postfix_sender.rs`, mode `Deliver`) speaks TLS 1.2 and
//! later only, trusts the test CA, bounces what a server refuses for good, and retries within
//! seconds (`queue_run_delay`, `minimal_backoff_time`, `maximal_backoff_time`), so "delivered
//! within its retry" takes seconds. A message counts as not delivered once it bounced or was
//! deferred twice (a first attempt and a retry). Each connector's next hop is its own name under
//! `hop.test` (all 127.0.0.1), so that each has its own TLS policy:
//!
//! | `tls_settings` | Postfix policy |
//! |---|---|
//! | `opportunistic` | `may` |
//! | `encryption_only` | `encrypt` |
//! | `certificate_validation` | `verify`, matching every name the test certificates carry |
//! | `domain_validation` (`tls_domain: mx.mf.test`) | `secure match=mx.mf.test` |
//!
//! Postfix's `verify` always checks a name; Exchange Online's certificate validation never does.
//! Matching every name the test's certificates carry (`mx.mf.test`, `wrong.example`) leaves the
//! chain check, which is what `certificate_validation` means.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::common::exporter::{Exporter, config, connector};
use crate::common::metrics::Metrics;
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, End, Server};
use crate::system::certs::certs;
use crate::system::postfix::postfix;
use crate::system::postfix_sender::{Delivery, Route, Sender, SenderMode};

/// The envelope sender of the test messages, and of the exporter's envelope test.
const MAIL_FROM: &str = "sender@test.invalid";

/// A TLS setting of the exporter and the Postfix policy that means the same.
#[derive(Clone, Copy, Debug)]
struct Setting {
    /// The exporter's `tls_settings`.
    tls_settings: &'static str,
    /// The short name in connector names.
    short: &'static str,
    /// The `smtp_tls_policy_maps` entry.
    policy: &'static str,
}

const OPPORTUNISTIC: Setting = Setting {
    tls_settings: "opportunistic",
    short: "opp",
    policy: "may",
};
const ENCRYPTION_ONLY: Setting = Setting {
    tls_settings: "encryption_only",
    short: "enc",
    policy: "encrypt",
};
const CERTIFICATE_VALIDATION: Setting = Setting {
    tls_settings: "certificate_validation",
    short: "cert",
    policy: "verify match=mx.mf.test:wrong.example",
};
const DOMAIN_VALIDATION: Setting = Setting {
    tls_settings: "domain_validation",
    short: "dom",
    policy: "secure match=mx.mf.test",
};
const EVERY_SETTING: [Setting; 4] = [
    OPPORTUNISTIC,
    ENCRYPTION_ONLY,
    CERTIFICATE_VALIDATION,
    DOMAIN_VALIDATION,
];

/// A destination: a fixture server on 127.0.0.1, and the settings it is tried under.
struct Destination {
    /// Its name in the table and in connector names.
    name: &'static str,
    /// Its port on 127.0.0.1.
    port: u16,
    /// The TLS settings it is tried under.
    settings: &'static [Setting],
    /// The scripted server, kept running for the test.
    _server: Option<Server>,
}

impl Destination {
    /// A listener of the real receiving Postfix, under every TLS setting.
    fn postfix(name: &'static str, listener: &str) -> Destination {
        Destination {
            name,
            port: postfix().port(listener),
            settings: &EVERY_SETTING,
            _server: None,
        }
    }

    /// A scripted server, under `settings`.
    fn scripted(name: &'static str, settings: &'static [Setting], server: Server) -> Destination {
        Destination {
            name,
            port: server.port(),
            settings,
            _server: Some(server),
        }
    }
}

/// A scripted server that takes mail like a real one, after `change` to its replies.
fn taking_mail(change: impl FnOnce(&mut Dialogue)) -> Server {
    let mut dialogue = Dialogue {
        accepts_data: true,
        ..Dialogue::default()
    };
    change(&mut dialogue);
    Server::dialogue(dialogue)
}

/// Every destination of the agreement.
fn destinations() -> Vec<Destination> {
    let opportunistic: &'static [Setting] = &[OPPORTUNISTIC];
    let tls_or_not: &'static [Setting] = &[OPPORTUNISTIC, ENCRYPTION_ONLY];
    let mut all: Vec<Destination> = [
        ("valid", "valid"),
        ("expired", "expired"),
        ("notyet", "notyet"),
        ("wrongname", "wrongname"),
        ("untrusted", "untrusted"),
        ("selfsigned", "selfsigned"),
        ("selfsigned-ca", "selfsigned_ca"),
        ("badsig", "badsig"),
        ("notls", "notls"),
        ("tls10", "tls10"),
        ("pf-rcpt-554", "rcpt_reject"),
    ]
    .into_iter()
    .map(|(name, listener)| Destination::postfix(name, listener))
    .collect();
    all.push(Destination::scripted(
        "plain",
        opportunistic,
        taking_mail(|_| {}),
    ));
    all.push(Destination::scripted(
        "greeting-421",
        opportunistic,
        taking_mail(|d| d.greeting = "421 4.3.2 Service not available".into()),
    ));
    all.push(Destination::scripted(
        "greeting-554",
        opportunistic,
        taking_mail(|d| d.greeting = "554 5.7.1 No service for you".into()),
    ));
    all.push(Destination::scripted(
        "rcpt-450",
        opportunistic,
        taking_mail(|d| d.rcpt = "450 4.2.0 Mailbox busy, try later".into()),
    ));
    all.push(Destination::scripted(
        "rcpt-550",
        opportunistic,
        taking_mail(|d| d.rcpt = "550 5.1.1 No such user".into()),
    ));
    all.push(Destination::scripted(
        "ehlo-502",
        opportunistic,
        taking_mail(|d| d.ehlo_reject = Some("502 5.5.2 EHLO not implemented".into())),
    ));
    all.push(Destination::scripted(
        "starttls-454",
        tls_or_not,
        taking_mail(|d| d.starttls = Some("454 4.7.0 TLS not available now".into())),
    ));
    all.push(Destination::scripted(
        "tls-garbage",
        tls_or_not,
        garbage_after_starttls(),
    ));
    all.push(Destination::scripted(
        "closed-at-once",
        opportunistic,
        Server::start(|c| c.close()),
    ));
    all.push(Destination::scripted(
        "closed-after-greeting",
        opportunistic,
        Server::start(|c| {
            c.line("220 fixture.mf.test ESMTP");
            let _ = c.read_line();
            c.close();
        }),
    ));
    all.push(Destination::scripted(
        "silent",
        opportunistic,
        Server::start(|c| c.hang(Duration::from_secs(30))),
    ));
    all.push(Destination {
        name: "refused",
        port: closed_port("127.0.0.1"),
        settings: opportunistic,
        _server: None,
    });
    all
}

/// A server that takes mail, but answers the TLS ClientHello after STARTTLS with an HTTP error
/// and hangs up: every handshake fails, a session without STARTTLS delivers.
fn garbage_after_starttls() -> Server {
    Server::start(|c| {
        let dialogue = Dialogue {
            starttls: Some("220 2.0.0 Ready to start TLS".into()),
            accepts_data: true,
            ..Dialogue::default()
        };
        if c.serve(&dialogue) == End::StartTls {
            c.hang(Duration::from_millis(200));
            c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            c.close();
        }
    })
}

/// One connector of the agreement: a destination under one setting.
struct Case {
    /// The connector's name.
    connector: String,
    /// The destination's name.
    destination: &'static str,
    /// The setting.
    setting: Setting,
    /// The recipient of the test message (and of the exporter's RCPT TO).
    recipient: String,
}

/// What the exporter said about one connector.
struct Verdict {
    /// Its code.
    code: String,
    /// The phase and reason of a failure (empty for `ok`).
    phase: String,
    reason: String,
    /// How the exchange was protected.
    tls: Protection,
}

/// How a delivering exchange went over the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protection {
    /// Over TLS.
    Tls,
    /// In plain text after a failed TLS handshake.
    Fallback,
    /// In plain text (no STARTTLS, or STARTTLS refused), or not at all.
    Plain,
}

impl Protection {
    /// What the exporter's TLS series say of `connector` at 127.0.0.1.
    fn of_probe(metrics: &Metrics, connector: &str) -> Protection {
        let at = [("connector", connector), ("address", "127.0.0.1")];
        if metrics.value("mailflow_tls_fallback", &at) == Some(1.0) {
            Protection::Fallback
        } else if !metrics.all("mailflow_tls_info", &at).is_empty() {
            Protection::Tls
        } else {
            Protection::Plain
        }
    }

    /// What the sending Postfix's log says of the next hop `host`: a TLS session established,
    /// or a handshake that failed (under `may`, followed by a plain-text session).
    fn of_postfix(log: &str, host: &str) -> Protection {
        let to_host = format!(" to {host}[");
        let lines = || log.lines().filter(|l| l.contains(&to_host));
        if lines().any(|l| l.contains("TLS connection established")) {
            Protection::Tls
        } else if lines().any(|l| l.contains("SSL_connect error")) {
            Protection::Fallback
        } else {
            Protection::Plain
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Protection::Tls => "tls",
            Protection::Fallback => "fallback",
            Protection::Plain => "plain",
        }
    }
}

#[test]
fn the_exporter_says_ok_exactly_when_a_sending_postfix_delivers() {
    let destinations = destinations();
    let ca_file = certs().ca_file.display().to_string();
    let mut cases = Vec::new();
    let mut entries = Vec::new();
    let mut routes = Vec::new();
    for destination in &destinations {
        for setting in destination.settings {
            let name = format!("{}-{}", destination.name, setting.short);
            let domain = format!("{name}.agree.test");
            let recipient = format!("postmaster@{domain}");
            let port = destination.port.to_string();
            let mut fields = vec![
                ("smart_hosts", "[127.0.0.1]"),
                ("port", port.as_str()),
                ("tls_settings", setting.tls_settings),
                ("ca_file", ca_file.as_str()),
                ("mail_from", MAIL_FROM),
                ("rcpt_to", recipient.as_str()),
                ("timeout", "5s"),
            ];
            if setting.tls_settings == "domain_validation" {
                fields.push(("tls_domain", "mx.mf.test"));
            }
            entries.push(connector(&name, &fields));
            let next_hop = format!("[{name}.hop.test]:{port}");
            routes.push(Route::new(&domain, &next_hop).tls(setting.policy));
            cases.push(Case {
                connector: name,
                destination: destination.name,
                setting: *setting,
                recipient,
            });
        }
    }

    // The exporter's word on every connector, from one scrape of all of them.
    let exporter = Exporter::start(&config(None, &entries));
    let metrics = exporter.probe_path("/probe");
    let said: BTreeMap<&str, Verdict> = cases
        .iter()
        .map(|case| {
            let code = metrics.code(&case.connector);
            let failure = metrics.failure(&case.connector);
            let (phase, reason) = failure.map_or_else(Default::default, |f| (f.phase, f.reason));
            let tls = Protection::of_probe(&metrics, &case.connector);
            (
                case.connector.as_str(),
                Verdict {
                    code,
                    phase,
                    reason,
                    tls,
                },
            )
        })
        .collect();

    // What a sending Postfix does with one message per connector.
    let sender = Sender::start_with(&routes, SenderMode::Deliver { ca_file: &ca_file });
    for case in &cases {
        sender.send_from(MAIL_FROM, &case.recipient);
    }
    let recipients: Vec<&str> = cases.iter().map(|c| c.recipient.as_str()).collect();
    let deliveries = sender.wait_outcomes(&recipients, Duration::from_secs(120));

    let log = sender.log();
    let mut table = String::new();
    let mut disagreements = Vec::new();
    let _ = writeln!(
        table,
        "  {:<22} {:<23} {:<37} {:<19} postfix",
        "destination", "tls_settings", "exporter", "tls exporter/postfix"
    );
    for case in &cases {
        let verdict = &said[case.connector.as_str()];
        let delivery = &deliveries[case.recipient.as_str()];
        let exporter_says = if verdict.code == "ok" {
            "ok".to_owned()
        } else {
            format!("{} {}/{}", verdict.code, verdict.phase, verdict.reason)
        };
        let postfix_says = match delivery {
            Delivery::Sent => "sent".to_owned(),
            Delivery::Bounced(why) => format!("bounced: {why}"),
            Delivery::Deferred(why) => format!("deferred: {why}"),
        };
        let sent = matches!(delivery, Delivery::Sent);
        let postfix_tls = Protection::of_postfix(&log, &format!("{}.hop.test", case.connector));
        // Where both delivered, they did so the same way: over TLS, after a fallback, or plain.
        let agree = (verdict.code == "ok") == sent && (!sent || verdict.tls == postfix_tls);
        let tls = if sent {
            format!("{}/{}", verdict.tls.as_str(), postfix_tls.as_str())
        } else {
            String::new()
        };
        let _ = writeln!(
            table,
            "{}{:<22} {:<23} {:<37} {:<19} {postfix_says}",
            if agree { "  " } else { "! " },
            case.destination,
            case.setting.tls_settings,
            exporter_says,
            tls,
        );
        if !agree {
            disagreements.push(case.connector.clone());
        }
    }
    println!("{table}");
    assert!(
        disagreements.is_empty(),
        "the exporter and a sending Postfix disagree on {disagreements:?}:\n{table}\n\
         Postfix log (tail):\n{}",
        crate::common::exporter::tail(&log, 60)
    );
    // Both outcomes occur: the agreement is not vacuous.
    let delivered = deliveries
        .values()
        .filter(|d| matches!(d, Delivery::Sent))
        .count();
    assert!(
        delivered > 5 && delivered < cases.len() - 5,
        "{delivered} of {} delivered:\n{table}",
        cases.len()
    );
}
