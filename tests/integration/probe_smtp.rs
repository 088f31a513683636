//! The SMTP dialogue against scripted servers: greeting, EHLO/HELO, STARTTLS refusals, the
//! session breaking off (closed, reset, hang), protocol violations and the envelope.

use std::time::{Duration, Instant};

use crate::common::exporter::{Exporter, HELO, config, local, probe_one};
use crate::common::smtp::{Dialogue, End, Server};

fn dialogue_with(f: impl FnOnce(&mut Dialogue)) -> Server {
    let mut d = Dialogue::default();
    f(&mut d);
    Server::dialogue(d)
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
fn opportunistic_without_starttls_is_ok() {
    let s = Server::dialogue(Dialogue::default());
    probe_one(
        local("opp", s.port(), &[("tls_settings", "opportunistic")]),
        "opp",
        "ok",
        "",
        "",
    );
    assert!(!s.verbs().iter().any(|v| v == "STARTTLS"));
}

#[test]
fn greeting_421_is_4_4_317_reply_4xx() {
    let s =
        dialogue_with(|d| d.greeting = "421 4.3.2 Service not available, closing channel".into());
    let (_e, m) = probe_one(
        local("g421", s.port(), &[]),
        "g421",
        "4.4.317",
        "greeting",
        "reply_4xx",
    );
    assert_eq!(m.failure("g421").map(|f| f.reply), Some("421".into()));
}

#[test]
fn greeting_554_is_4_4_317_reply_5xx() {
    let s = dialogue_with(|d| d.greeting = "554 5.7.1 No SMTP service here".into());
    let (_e, m) = probe_one(
        local("g554", s.port(), &[]),
        "g554",
        "4.4.317",
        "greeting",
        "reply_5xx",
    );
    assert_eq!(m.failure("g554").map(|f| f.reply), Some("554".into()));
}

#[test]
fn multiline_greeting_is_accepted() {
    let s = Server::start(|c| {
        c.send(b"220-fixture.mf.test ESMTP\r\n220-second line\r\n220 ready\r\n");
        c.commands(&Dialogue::default());
    });
    probe_one(
        local("ml", s.port(), &[("tls_settings", "none")]),
        "ml",
        "ok",
        "",
        "",
    );
}

#[test]
fn ehlo_and_helo_rejected_is_4_4_317_reply_5xx() {
    let s = dialogue_with(|d| {
        d.ehlo_reject = Some("550 5.7.1 EHLO not welcome".into());
        d.helo = "550 5.7.1 HELO not welcome either".into();
    });
    let (_e, m) = probe_one(
        local("ehlo5", s.port(), &[]),
        "ehlo5",
        "4.4.317",
        "ehlo",
        "reply_5xx",
    );
    assert_eq!(m.failure("ehlo5").map(|f| f.reply), Some("550".into()));
    let verbs = s.verbs();
    assert!(
        verbs.starts_with(&["EHLO".to_string(), "HELO".to_string()]),
        "HELO fallback: {verbs:?}"
    );
    assert_eq!(s.commands().get(1).cloned(), Some(format!("HELO {HELO}")));
}

#[test]
fn ehlo_421_is_4_4_317_reply_4xx() {
    let s = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
        c.line("421 4.7.0 Try again later, closing connection");
        c.close();
    });
    let (_e, m) = probe_one(
        local("ehlo4", s.port(), &[]),
        "ehlo4",
        "4.4.317",
        "ehlo",
        "reply_4xx",
    );
    assert_eq!(m.failure("ehlo4").map(|f| f.reply), Some("421".into()));
}

#[test]
fn ehlo_rejected_but_helo_accepted_is_ok() {
    let s =
        dialogue_with(|d| d.ehlo_reject = Some("502 5.5.2 Error: command not recognized".into()));
    probe_one(
        local("helo", s.port(), &[("tls_settings", "none")]),
        "helo",
        "ok",
        "",
        "",
    );
    assert!(s.verbs().contains(&"HELO".to_string()), "{:?}", s.verbs());
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
fn starttls_answered_454_is_starttls_rejected() {
    let s = dialogue_with(|d| {
        d.starttls = Some("454 4.7.0 TLS not available due to local problem".into())
    });
    let (_e, m) = probe_one(
        local("tls454", s.port(), &[("tls_settings", "encryption_only")]),
        "tls454",
        "4.4.317",
        "starttls",
        "starttls_rejected",
    );
    assert_eq!(m.failure("tls454").map(|f| f.reply), Some("454".into()));
}

#[test]
fn tls_alert_after_starttls_is_tls_handshake() {
    let s = Server::start(|c| {
        let d = Dialogue {
            starttls: Some("220 2.0.0 Ready to start TLS".into()),
            ..Dialogue::default()
        };
        if c.serve(&d) == End::StartTls {
            // Read the ClientHello's first bytes, then a fatal handshake_failure alert.
            c.hang(Duration::from_millis(200));
            c.send(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
            c.close();
        }
    });
    probe_one(
        local("alert", s.port(), &[("tls_settings", "encryption_only")]),
        "alert",
        "4.4.317",
        "tls",
        "tls_handshake",
    );
    assert!(
        s.raw().contains(&"STARTTLS\r\n".to_string()),
        "{:?}",
        s.raw()
    );
}

#[test]
fn garbage_instead_of_server_hello_is_tls_handshake() {
    let s = Server::start(|c| {
        let d = Dialogue {
            starttls: Some("220 2.0.0 Ready to start TLS".into()),
            ..Dialogue::default()
        };
        if c.serve(&d) == End::StartTls {
            c.hang(Duration::from_millis(200));
            c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            c.close();
        }
    });
    probe_one(
        local(
            "tlsgarbage",
            s.port(),
            &[("tls_settings", "encryption_only")],
        ),
        "tlsgarbage",
        "4.4.317",
        "tls",
        "tls_handshake",
    );
}

#[test]
fn closed_after_greeting_is_4_4_318_closed() {
    let s = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
    });
    probe_one(
        local("closed", s.port(), &[]),
        "closed",
        "4.4.318",
        "ehlo",
        "closed",
    );
}

#[test]
fn closed_before_greeting_is_4_4_318_closed() {
    let s = Server::start(|c| {
        std::thread::sleep(Duration::from_millis(50));
        let _ = c;
    });
    probe_one(
        local("closed0", s.port(), &[]),
        "closed0",
        "4.4.318",
        "greeting",
        "closed",
    );
}

#[test]
fn reset_mid_reply_is_4_4_318_reset() {
    let s = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        let _ = c.read_line();
        c.send(b"250-fixture.mf.test\r\n250-PIPEL");
        std::thread::sleep(Duration::from_millis(50));
        c.reset_now();
    });
    probe_one(
        local("reset", s.port(), &[]),
        "reset",
        "4.4.318",
        "ehlo",
        "reset",
    );
}

#[test]
fn silent_server_is_4_4_318_timeout_within_the_probe_timeout() {
    let s = Server::start(|c| c.hang(Duration::from_secs(10)));
    let start = Instant::now();
    let e = Exporter::start(&config(
        false,
        &[local("hang", s.port(), &[("timeout", "2s")])],
    ));
    e.expect("hang", "4.4.318", "greeting", "timeout");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "the 2 s probe took {took:?}"
    );
}

#[test]
fn hang_after_ehlo_is_4_4_318_timeout_in_ehlo() {
    let s = Server::start(|c| {
        c.line("220 fixture.mf.test ESMTP");
        c.hang(Duration::from_secs(10));
    });
    let e = Exporter::start(&config(
        false,
        &[local("hang2", s.port(), &[("timeout", "2s")])],
    ));
    e.expect("hang2", "4.4.318", "ehlo", "timeout");
}

#[test]
fn garbage_greeting_is_other_protocol() {
    let s = Server::start(|c| {
        c.send(b"HTTP/1.1 400 Bad Request\r\nServer: not-smtp\r\n\r\n");
        c.hang(Duration::from_secs(3));
    });
    probe_one(
        local("garbage", s.port(), &[]),
        "garbage",
        "other",
        "greeting",
        "protocol",
    );
}

#[test]
fn over_long_reply_line_is_other_protocol() {
    let s = Server::start(|c| {
        let mut line = b"220 ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 100_000));
        line.extend_from_slice(b"\r\n");
        c.send(&line);
        c.hang(Duration::from_secs(3));
    });
    probe_one(
        local("long", s.port(), &[]),
        "long",
        "other",
        "greeting",
        "protocol",
    );
}

#[test]
fn too_many_continuation_lines_is_other_protocol() {
    let s = Server::start(|c| {
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
    probe_one(
        local("many", s.port(), &[]),
        "many",
        "other",
        "ehlo",
        "protocol",
    );
}

#[test]
fn rcpt_550_is_other_rcpt_reply_5xx_and_never_data() {
    let s = dialogue_with(|d| {
        d.rcpt = "550 5.1.1 <nobody@partner.example>: Recipient address rejected".into()
    });
    let (_e, m) = probe_one(
        local(
            "rcpt",
            s.port(),
            &[
                ("mail_from", "probe@mf.test"),
                ("rcpt_to", "nobody@partner.example"),
                ("tls_settings", "none"),
            ],
        ),
        "rcpt",
        "other",
        "rcpt",
        "reply_5xx",
    );
    assert_eq!(m.failure("rcpt").map(|f| f.reply), Some("550".into()));
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
        local(
            "mail",
            s.port(),
            &[
                ("mail_from", "probe@mf.test"),
                ("rcpt_to", "x@partner.example"),
                ("tls_settings", "none"),
            ],
        ),
        "mail",
        "other",
        "mail",
        "reply_4xx",
    );
    assert_eq!(m.failure("mail").map(|f| f.reply), Some("451".into()));
    assert!(!s.verbs().contains(&"RCPT".to_string()));
}

#[test]
fn envelope_accepted_is_ok_then_rset_quit_never_data() {
    let s = Server::dialogue(Dialogue::default());
    probe_one(
        local(
            "env",
            s.port(),
            &[
                ("mail_from", "probe@mf.test"),
                ("rcpt_to", "postmaster@partner.example"),
                ("tls_settings", "none"),
            ],
        ),
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
