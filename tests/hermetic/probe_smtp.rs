//! The SMTP dialogue against scripted servers: greeting, EHLO/HELO, STARTTLS refusals, the
//! session breaking off (closed, reset, hang), protocol violations and the envelope.

use std::time::{Duration, Instant};

use crate::common::exporter::{HELO, local, local_case, probe_all, probe_one};
use crate::common::metrics::Metrics;
use crate::common::smtp::{Dialogue, End, Server};

fn dialogue_with(f: impl FnOnce(&mut Dialogue)) -> Server {
    let mut d = Dialogue::default();
    f(&mut d);
    Server::dialogue(d)
}

/// A server that accepts STARTTLS, reads the start of the ClientHello, answers with `bytes`
/// instead of a ServerHello, and closes.
fn after_starttls(bytes: &'static [u8]) -> Server {
    Server::start(move |c| {
        let d = Dialogue {
            starttls: Some("220 2.0.0 Ready to start TLS".into()),
            ..Dialogue::default()
        };
        if c.serve(&d) == End::StartTls {
            c.hang(Duration::from_millis(200));
            c.send(bytes);
            c.close();
        }
    })
}

/// A connector to `s` that tests the envelope (MAIL FROM probe@mf.test, RCPT TO `rcpt`) in
/// plain text.
fn envelope(name: &str, s: &Server, rcpt: &str) -> String {
    local(
        name,
        s.port(),
        &[
            ("mail_from", "probe@mf.test"),
            ("rcpt_to", rcpt),
            ("tls_settings", "none"),
        ],
    )
}

const OK: (&str, &str, &str) = ("ok", "", "");

/// The server's reply code in `mailflow_probe_failure_info` of `connector`.
fn reply(m: &Metrics, connector: &str) -> Option<String> {
    m.failure(connector).map(|f| f.reply)
}

#[test]
fn healthy_plaintext_server_is_ok_and_sees_exact_commands() {
    let s = Server::dialogue(Dialogue::default());
    let (_e, m) = probe_one(
        local("plain", s.port(), &[("tls_settings", "none")]),
        "plain",
        "ok",
        "",
        "",
    );
    s.wait_for_verb("QUIT", Duration::from_secs(1));
    let raw = s.raw();
    assert_eq!(
        raw.first().map(String::as_str),
        Some(format!("EHLO {HELO}\r\n").as_str()),
        "{raw:?}"
    );
    assert_eq!(raw.last().map(String::as_str), Some("QUIT\r\n"), "{raw:?}");
    assert!(
        !s.verbs().iter().any(|v| v == "DATA" || v == "STARTTLS"),
        "{raw:?}"
    );
    assert_eq!(s.connections(), 1);
    for phase in ["connect", "greeting", "ehlo"] {
        let d = m.expect(
            "mailflow_probe_phase_duration_seconds",
            &[("connector", "plain"), ("phase", phase)],
        );
        assert!((0.0..3.0).contains(&d), "phase {phase} took {d}");
    }
    let total = m.expect("mailflow_probe_duration_seconds", &[("connector", "plain")]);
    assert!((0.0..3.0).contains(&total), "{total}");
    assert_eq!(
        m.value(
            "mailflow_target_success",
            &[("connector", "plain"), ("address", "127.0.0.1")]
        ),
        Some(1.0)
    );
    assert_eq!(m.target_code("plain", "127.0.0.1"), "ok");
    assert!(
        m.all("mailflow_tls_info", &[("connector", "plain")])
            .is_empty(),
        "no TLS under none"
    );
}

#[test]
fn servers_that_deliver_in_other_ways_are_ok() {
    // No STARTTLS under opportunistic; a multi-line greeting; EHLO refused but HELO accepted.
    let no_starttls = Server::dialogue(Dialogue::default());
    let multiline = Server::start(|c| {
        c.send(b"220-fixture.mf.test ESMTP\r\n220-second line\r\n220 ready\r\n");
        c.commands(&Dialogue::default());
    });
    let helo_only =
        dialogue_with(|d| d.ehlo_reject = Some("502 5.5.2 Error: command not recognized".into()));
    let none = [("tls_settings", "none")];
    let opportunistic = [("tls_settings", "opportunistic")];
    probe_all(
        None,
        &[
            local_case("opp", no_starttls.port(), &opportunistic, OK),
            local_case("ml", multiline.port(), &none, OK),
            local_case("helo", helo_only.port(), &none, OK),
        ],
    );
    assert!(!no_starttls.verbs().iter().any(|v| v == "STARTTLS"));
    assert!(
        helo_only.verbs().contains(&"HELO".to_string()),
        "{:?}",
        helo_only.verbs()
    );
}

#[test]
fn rejecting_replies_are_4_4_317_with_the_reply_code() {
    let g421 =
        dialogue_with(|d| d.greeting = "421 4.3.2 Service not available, closing channel".into());
    let g554 = dialogue_with(|d| d.greeting = "554 5.7.1 No SMTP service here".into());
    let ehlo5 = dialogue_with(|d| {
        d.ehlo_reject = Some("550 5.7.1 EHLO not welcome".into());
        d.helo = "550 5.7.1 HELO not welcome either".into();
    });
    let ehlo4 = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
        c.line("421 4.7.0 Try again later, closing connection");
        c.close();
    });
    let tls454 = dialogue_with(|d| {
        d.starttls = Some("454 4.7.0 TLS not available due to local problem".into())
    });
    let encryption_only = [("tls_settings", "encryption_only")];
    let cases = [
        (g421.port(), "g421", &[][..], "greeting", "reply_4xx", "421"),
        (g554.port(), "g554", &[], "greeting", "reply_5xx", "554"),
        // EHLO, then the HELO fallback, both rejected.
        (ehlo5.port(), "ehlo5", &[], "ehlo", "reply_5xx", "550"),
        (ehlo4.port(), "ehlo4", &[], "ehlo", "reply_4xx", "421"),
        (
            tls454.port(),
            "tls454",
            &encryption_only,
            "starttls",
            "starttls_rejected",
            "454",
        ),
    ];
    let (_e, m) = probe_all(
        None,
        &cases.map(|(port, name, extra, phase, reason, _)| {
            local_case(name, port, extra, ("4.4.317", phase, reason))
        }),
    );
    for (_, name, _, _, _, code) in cases {
        assert_eq!(reply(&m, name), Some(code.into()), "{name}");
    }
    let verbs = ehlo5.verbs();
    assert!(
        verbs.starts_with(&["EHLO".to_string(), "HELO".to_string()]),
        "HELO fallback: {verbs:?}"
    );
    assert_eq!(
        ehlo5.commands().get(1).cloned(),
        Some(format!("HELO {HELO}"))
    );
}

#[test]
fn starttls_not_offered_under_encryption_only_is_4_4_317() {
    let s = Server::dialogue(Dialogue::default());
    probe_one(
        local(
            "nostarttls",
            s.port(),
            &[("tls_settings", "encryption_only")],
        ),
        "nostarttls",
        "4.4.317",
        "starttls",
        "starttls_not_offered",
    );
    assert!(
        !s.verbs().iter().any(|v| v == "STARTTLS" || v == "MAIL"),
        "{:?}",
        s.verbs()
    );
}

#[test]
fn tls_handshake_failures_after_starttls_are_4_4_317_tls_handshake() {
    // A fatal handshake_failure alert; an HTTP answer instead of a ServerHello.
    let alert = after_starttls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    let garbage = after_starttls(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let encryption_only = [("tls_settings", "encryption_only")];
    let handshake = ("4.4.317", "tls", "tls_handshake");
    probe_all(
        None,
        &[
            local_case("alert", alert.port(), &encryption_only, handshake),
            local_case("tlsgarbage", garbage.port(), &encryption_only, handshake),
        ],
    );
    for s in [&alert, &garbage] {
        assert!(
            s.raw().contains(&"STARTTLS\r\n".to_string()),
            "{:?}",
            s.raw()
        );
    }
}

#[test]
fn sessions_breaking_off_are_4_4_318() {
    let after_greeting = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
    });
    let before_greeting = Server::start(|c| {
        std::thread::sleep(Duration::from_millis(50));
        let _ = c;
    });
    let reset_mid_reply = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
        c.send(b"250-fixture.mf.test\r\n250-PIPEL");
        std::thread::sleep(Duration::from_millis(50));
        c.reset_now();
    });
    probe_all(
        None,
        &[
            local_case(
                "closed",
                after_greeting.port(),
                &[],
                ("4.4.318", "ehlo", "closed"),
            ),
            local_case(
                "closed0",
                before_greeting.port(),
                &[],
                ("4.4.318", "greeting", "closed"),
            ),
            local_case(
                "reset",
                reset_mid_reply.port(),
                &[],
                ("4.4.318", "ehlo", "reset"),
            ),
        ],
    );
}

#[test]
fn silent_servers_are_4_4_318_timeout_within_the_probe_timeout() {
    let silent = Server::start(|c| c.hang(Duration::from_secs(10)));
    let silent_after_greeting = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        c.hang(Duration::from_secs(10));
    });
    let two_seconds = [("timeout", "2s")];
    let start = Instant::now();
    probe_all(
        None,
        &[
            local_case(
                "hang",
                silent.port(),
                &two_seconds,
                ("4.4.318", "greeting", "timeout"),
            ),
            local_case(
                "hang2",
                silent_after_greeting.port(),
                &two_seconds,
                ("4.4.318", "ehlo", "timeout"),
            ),
        ],
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "the 2 s probes took {took:?}"
    );
}

#[test]
fn protocol_violations_are_other_protocol() {
    let garbage = Server::start(|c| {
        c.send(b"HTTP/1.1 400 Bad Request\r\nServer: not-smtp\r\n\r\n");
        c.hang(Duration::from_secs(3));
    });
    let long = Server::start(|c| {
        let mut line = b"220 ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 100_000));
        line.extend_from_slice(b"\r\n");
        c.send(&line);
        c.hang(Duration::from_secs(3));
    });
    let many = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
        let mut reply = Vec::new();
        for i in 0..20_000 {
            reply.extend_from_slice(format!("250-KEYWORD{i}\r\n").as_bytes());
        }
        reply.extend_from_slice(b"250 END\r\n");
        c.send(&reply);
        c.hang(Duration::from_secs(3));
    });
    probe_all(
        None,
        &[
            local_case(
                "garbage",
                garbage.port(),
                &[],
                ("other", "greeting", "protocol"),
            ),
            local_case("long", long.port(), &[], ("other", "greeting", "protocol")),
            local_case("many", many.port(), &[], ("other", "ehlo", "protocol")),
        ],
    );
}

#[test]
fn rcpt_550_is_other_rcpt_reply_5xx_and_never_data() {
    let s = dialogue_with(|d| {
        d.rcpt = "550 5.1.1 <nobody@partner.example>: Recipient address rejected".into()
    });
    let (_e, m) = probe_one(
        envelope("rcpt", &s, "nobody@partner.example"),
        "rcpt",
        "other",
        "rcpt",
        "reply_5xx",
    );
    assert_eq!(reply(&m, "rcpt"), Some("550".into()));
    let cmds = s.commands();
    assert!(
        cmds.contains(&"MAIL FROM:<probe@mf.test>".to_string()),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&"RCPT TO:<nobody@partner.example>".to_string()),
        "{cmds:?}"
    );
    assert!(
        s.wait_for_verb("QUIT", Duration::from_secs(1)),
        "the probe ends with QUIT: {:?}",
        s.commands()
    );
    assert!(!s.verbs().contains(&"DATA".to_string()), "{cmds:?}");
    assert_eq!(
        s.verbs().last().map(String::as_str),
        Some("QUIT"),
        "{:?}",
        s.commands()
    );
}

#[test]
fn mail_451_is_other_mail_reply_4xx() {
    let s = dialogue_with(|d| d.mail = "451 4.3.0 Temporary lookup failure".into());
    let (_e, m) = probe_one(
        envelope("mail", &s, "x@partner.example"),
        "mail",
        "other",
        "mail",
        "reply_4xx",
    );
    assert_eq!(reply(&m, "mail"), Some("451".into()));
    assert!(!s.verbs().contains(&"RCPT".to_string()));
}

#[test]
fn envelope_accepted_is_ok_then_rset_quit_never_data() {
    let s = Server::dialogue(Dialogue::default());
    probe_one(
        envelope("env", &s, "postmaster@partner.example"),
        "env",
        "ok",
        "",
        "",
    );
    s.wait_for_verb("QUIT", Duration::from_secs(1));
    let verbs = s.verbs();
    assert_eq!(
        verbs,
        ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"],
        "{:?}",
        s.commands()
    );
    assert!(
        s.raw().iter().all(|l| l.ends_with("\r\n")),
        "every command ends with CRLF: {:?}",
        s.raw()
    );
}
