//! Postfix delay reasons: what went wrong, in the vocabulary of [`crate::outcome`], and which next
//! hop it happened with.
//!
//! The wordings are Postfix's own (captured from Postfix 3.7, see `docs/postfix-delay-reasons.md`);
//! matching is on the fixed parts Postfix writes around host names and server replies, never on
//! the server's free text.

use std::net::IpAddr;

use crate::outcome::{
    Breakdown, CertificateFailure, Code, ConnectFailure, DnsFailure, Failure, SmtpFault, SmtpStep,
    StarttlsFailure, TlsFailure,
};

/// What the queue manager puts before the reason of the last attempt when it holds back mail for
/// a destination that it considers dead.
const SUSPENDED: &str = "delivery temporarily suspended: ";

/// How many nested `delivery temporarily suspended: ` prefixes are taken off (Postfix writes one).
const MAX_UNWRAP: usize = 4;

/// The mail flow code of a Postfix delay reason; `other` for anything not recognised.
pub fn classify(delay_reason: &str) -> Code {
    diagnose(delay_reason).map_or(Code::Other, |failure| failure.code())
}

/// The failure a Postfix delay reason describes, in the terms of a probe: the phase, the reason
/// and the server's reply code when a reply caused it; `None` when the wording is not recognised
/// (its code is then `other`).
///
/// Postfix does not always say as much as a probe does; the nearest value is used:
/// - "Host not found, try again" (SERVFAIL or no answer) is `servfail`;
/// - "refused to talk to me" is reported in the `greeting` phase, although Postfix uses it for a
///   rejected EHLO/HELO as well (the code, 4.4.317, is the same);
/// - "Server certificate not verified" does not say why (untrusted, expired, wrong name): it is
///   `cert_invalid`;
/// - a connect error other than refused or timed out is `unreachable`;
/// - a session that broke off or stalled after RCPT TO (DATA, message body) is reported in the
///   `rcpt` phase, the last one a probe knows.
pub fn diagnose(delay_reason: &str) -> Option<Failure> {
    let text = unwrap_suspended(delay_reason.trim());
    if let Some(failure) = dns_failure(text) {
        return Some(Failure::Dns(failure));
    }
    if let Some(rest) = text.strip_prefix("connect to ") {
        return Some(Failure::Connect(connect_failure(after_hop(rest)?)));
    }
    if let Some(rest) = text.strip_prefix("host ") {
        let rest = after_hop(rest)?;
        if let Some(reply) = rest.strip_prefix(" refused to talk to me: ") {
            return Some(from_reply(SmtpStep::Greeting, reply));
        }
        if let Some(reply) = rest.strip_prefix(" said: ") {
            let command = reply
                .strip_suffix(" command)")?
                .rsplit_once("(in reply to ")?
                .1;
            return Some(from_reply(command_step(command)?, reply));
        }
        return None;
    }
    if text.starts_with("TLS is required, but was not offered by host ") {
        return Some(Failure::Starttls(StarttlsFailure::NotOffered));
    }
    if let Some(rest) = text.strip_prefix("TLS is required, but host ") {
        let reply = after_hop(rest)?.strip_prefix(" refused to start TLS: ")?;
        return Some(Failure::Starttls(StarttlsFailure::Rejected(reply_code(
            reply,
        ))));
    }
    if text.starts_with("Cannot start TLS: ") {
        return Some(Failure::Tls(TlsFailure::Handshake));
    }
    if text.starts_with("Server certificate not verified") {
        return Some(Failure::Tls(TlsFailure::Certificate(
            CertificateFailure::Invalid,
        )));
    }
    if text.starts_with("Server certificate not trusted") {
        return Some(Failure::Tls(TlsFailure::Certificate(
            CertificateFailure::Untrusted,
        )));
    }
    if let Some(rest) = text.strip_prefix("lost connection with ") {
        let activity = after_hop(rest)?.strip_prefix(" while ")?;
        return Some(broken_while(activity, Breakdown::Closed));
    }
    if let Some(rest) = text.strip_prefix("conversation with ") {
        let activity = after_hop(rest)?.strip_prefix(" timed out while ")?;
        return Some(broken_while(activity, Breakdown::Timeout));
    }
    None
}

/// The next hop a delay reason names, if it names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The host name as Postfix wrote it, lower case, without a trailing dot (for an IP-literal
    /// next hop, the address itself; for a DNS failure, the name that did not resolve).
    pub host: String,
    /// The address Postfix connected to; `None` when it did not get that far (DNS failures).
    pub address: Option<IpAddr>,
    /// The port, when the reason names one (`connect to host[addr]:PORT: ...`).
    pub port: Option<u16>,
}

/// The next hop named in a delay reason: `connect to mx.example.com[192.0.2.1]:25: ...` gives host
/// `mx.example.com` and address `192.0.2.1`; a DNS failure gives the name that did not resolve
/// and no address. `None` when the reason names no host (for example "Server certificate not
/// verified" or "Cannot start TLS: handshake failure").
pub fn next_hop(delay_reason: &str) -> Option<NextHop> {
    let text = unwrap_suspended(delay_reason.trim());
    const BRACKETED: [&str; 6] = [
        "connect to ",
        "host ",
        "lost connection with ",
        "conversation with ",
        "TLS is required, but was not offered by host ",
        "TLS is required, but host ",
    ];
    if let Some(rest) = BRACKETED.iter().find_map(|p| text.strip_prefix(p)) {
        return bracketed_hop(rest);
    }
    let name = if let Some((_, rest)) = text.split_once("Name service error for name=") {
        rest.split_once(" type=")?.0
    } else if let Some(rest) = text.strip_prefix("Name service error for ") {
        rest.split_once(": ")?.0
    } else if let Some(rest) = text.strip_prefix("Domain ") {
        rest.strip_suffix(" does not accept mail (nullMX)")?
    } else if let Some(rest) = text.strip_prefix("no MX host for ") {
        rest.strip_suffix(" has a valid address record")?
    } else {
        return None;
    };
    Some(NextHop {
        host: normalise_host(name)?,
        address: None,
        port: None,
    })
}

/// `text` without the queue manager's `delivery temporarily suspended: ` prefixes.
fn unwrap_suspended(mut text: &str) -> &str {
    for _ in 0..MAX_UNWRAP {
        match text.strip_prefix(SUSPENDED) {
            Some(rest) => text = rest.trim_start(),
            None => break,
        }
    }
    text
}

/// The DNS failure a name service error describes, or `None` when `text` is not one.
fn dns_failure(text: &str) -> Option<DnsFailure> {
    if let Some(name) = text
        .strip_prefix("Domain ")
        .and_then(|rest| rest.strip_suffix(" does not accept mail (nullMX)"))
    {
        return (!name.contains(' ')).then_some(DnsFailure::NullMx);
    }
    if text.starts_with("no MX host for ") && text.ends_with(" has a valid address record") {
        return Some(DnsFailure::NoRecords);
    }
    if !text.starts_with("Host or domain name not found. ")
        && !text.starts_with("Name service error for ")
    {
        return None;
    }
    // The order matters: "Host not found, try again" also ends in something like "Host not found".
    Some(if text.ends_with("Host not found, try again") {
        DnsFailure::Servfail
    } else if text.ends_with("Host not found") || text.ends_with("invalid host or domain name") {
        DnsFailure::Nxdomain
    } else if text.ends_with("Host found but no data record of requested type") {
        DnsFailure::NoRecords
    } else {
        // "Malformed or unexpected name server reply" and anything newer.
        DnsFailure::Servfail
    })
}

/// Why a connect failed, from the system error text after `host[address]:port: `.
fn connect_failure(rest: &str) -> ConnectFailure {
    let error = rest
        .strip_prefix(':')
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    match error.strip_prefix(": ").unwrap_or(error).trim() {
        "Connection refused" => ConnectFailure::Refused,
        "Connection timed out" => ConnectFailure::Timeout,
        // "Network is unreachable", "No route to host", and whatever else kept the connection
        // from being made.
        _ => ConnectFailure::Unreachable,
    }
}

/// A failure of `step` caused by the server reply at the start of `reply` (`421 4.3.2 busy`); a
/// reply without a readable code is a protocol violation.
fn from_reply(step: SmtpStep, reply: &str) -> Failure {
    match reply_code(reply) {
        Some(code) => Failure::Smtp(step, SmtpFault::Reply(code)),
        None => Failure::Smtp(step, SmtpFault::Protocol),
    }
}

/// The three-digit reply code at the start of `reply`, if it is one (2xx to 5xx).
fn reply_code(reply: &str) -> Option<u16> {
    let digits = reply.get(..3)?;
    let code: u16 = digits.parse().ok()?;
    let ends = reply[3..]
        .chars()
        .next()
        .is_none_or(|c| c == ' ' || c == '-');
    ((200..600).contains(&code) && ends).then_some(code)
}

/// The step of the SMTP command named in "(in reply to ... command)"; `None` for the commands a
/// probe never sends (DATA, end of DATA, BDAT, AUTH, XFORWARD, ...): their code is `other`.
fn command_step(command: &str) -> Option<SmtpStep> {
    match command {
        "EHLO" | "HELO" | "LHLO" => Some(SmtpStep::Ehlo),
        "STARTTLS" => Some(SmtpStep::Starttls),
        "MAIL FROM" => Some(SmtpStep::Mail),
        "RCPT TO" => Some(SmtpStep::Rcpt),
        "RSET" | "QUIT" => Some(SmtpStep::Quit),
        _ => None,
    }
}

/// The failure of a session that broke off or stalled (`breakdown`) while Postfix was doing
/// `activity` ("receiving the initial server greeting", "performing the EHLO handshake", "sending
/// MAIL FROM", "performing the TLS handshake", ...).
fn broken_while(activity: &str, breakdown: Breakdown) -> Failure {
    let step = if activity.contains("greeting") {
        SmtpStep::Greeting
    } else if ["EHLO", "HELO", "LHLO"]
        .iter()
        .any(|c| activity.contains(c))
    {
        SmtpStep::Ehlo
    } else if activity.contains("STARTTLS") {
        SmtpStep::Starttls
    } else if activity.contains("TLS") {
        return Failure::Tls(TlsFailure::Broken(breakdown));
    } else if activity.contains("MAIL FROM") {
        SmtpStep::Mail
    } else if activity.contains("RSET") || activity.contains("QUIT") {
        SmtpStep::Quit
    } else {
        // RCPT TO, and the data stage after it.
        SmtpStep::Rcpt
    };
    Failure::Smtp(step, SmtpFault::Broken(breakdown))
}

/// What follows `host[address]` (or `host[address]:port`) at the start of `rest`.
fn after_hop(rest: &str) -> Option<&str> {
    let open = rest.find('[')?;
    let close = open + rest[open..].find(']')?;
    let host = &rest[..open];
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| &rest[close + 1..])
}

/// The `host[address]` at the start of `rest`.
fn bracketed_hop(rest: &str) -> Option<NextHop> {
    let open = rest.find('[')?;
    let close = open + rest[open..].find(']')?;
    let host = &rest[..open];
    if host.contains(char::is_whitespace) {
        return None;
    }
    let address = rest[open + 1..close].parse().ok();
    // `]:PORT:` follows in "connect to" reasons.
    let port = rest[close + 1..]
        .strip_prefix(':')
        .and_then(|after| after.split(':').next())
        .and_then(|digits| digits.parse().ok());
    Some(NextHop {
        host: normalise_host(host)?,
        address,
        port,
    })
}

/// A host name in the form used for comparisons: lower case, no trailing dot; `None` if empty.
fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.');
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of docs/postfix-delay-reasons.md: the delay reason, the code, the reason label, the
    /// next hop (host, address).
    fn row(text: &str, code: &str, reason: Option<&str>, hop: Option<(&str, Option<&str>)>) {
        assert_eq!(classify(text).as_str(), code, "code of {text:?}");
        assert_eq!(
            diagnose(text).map(|f| f.reason().as_str()),
            reason,
            "reason of {text:?}"
        );
        let expected =
            hop.map(|(host, address)| (host.to_owned(), address.map(|a| a.parse().unwrap())));
        let found = next_hop(text).map(|hop| (hop.host, hop.address));
        assert_eq!(found, expected, "next hop of {text:?}");
    }

    // Captured from Postfix 3.7.11 (`postqueue -j`), loopback-only test servers.

    #[test]
    fn dns_nxdomain_a() {
        row(
            "Host or domain name not found. Name service error for name=nonexistent.invalid type=A: Host not found",
            "4.4.312",
            Some("nxdomain"),
            Some(("nonexistent.invalid", None)),
        );
    }

    #[test]
    fn dns_nxdomain_aaaa() {
        row(
            "Host or domain name not found. Name service error for name=nonexistent.invalid type=AAAA: Host not found",
            "4.4.312",
            Some("nxdomain"),
            Some(("nonexistent.invalid", None)),
        );
    }

    #[test]
    fn dns_servfail_mx() {
        row(
            "Host or domain name not found. Name service error for name=servfail2.test type=MX: Host not found, try again",
            "4.4.312",
            Some("servfail"),
            Some(("servfail2.test", None)),
        );
    }

    #[test]
    fn dns_servfail_a() {
        row(
            "Host or domain name not found. Name service error for name=mx.servfail.test type=A: Host not found, try again",
            "4.4.312",
            Some("servfail"),
            Some(("mx.servfail.test", None)),
        );
    }

    #[test]
    fn connect_timed_out() {
        row(
            "connect to backlog.mf.test[127.0.0.3]:25: Connection timed out",
            "4.4.315",
            Some("timeout"),
            Some(("backlog.mf.test", Some("127.0.0.3"))),
        );
    }

    #[test]
    fn connect_network_unreachable() {
        row(
            "connect to 198.51.100.1[198.51.100.1]:25: Network is unreachable",
            "4.4.315",
            Some("unreachable"),
            Some(("198.51.100.1", Some("198.51.100.1"))),
        );
    }

    #[test]
    fn connect_refused() {
        row(
            "connect to refused.mf.test[127.0.0.2]:25: Connection refused",
            "4.4.316",
            Some("refused"),
            Some(("refused.mf.test", Some("127.0.0.2"))),
        );
    }

    #[test]
    fn connect_refused_mx_host() {
        row(
            "connect to mx.partner.test[127.0.0.30]:25: Connection refused",
            "4.4.316",
            Some("refused"),
            Some(("mx.partner.test", Some("127.0.0.30"))),
        );
    }

    #[test]
    fn connect_refused_ipv6_literal() {
        row(
            "connect to ::1[::1]:2: Connection refused",
            "4.4.316",
            Some("refused"),
            Some(("::1", Some("::1"))),
        );
    }

    #[test]
    fn greeting_421() {
        row(
            "host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy.mf.test Service not available, closing transmission channel",
            "4.4.317",
            Some("reply_4xx"),
            Some(("busy.mf.test", Some("127.0.0.6"))),
        );
        assert_eq!(
            diagnose("host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy")
                .and_then(|f| f.reply()),
            Some(421)
        );
    }

    #[test]
    fn greeting_554() {
        row(
            "host greet554.mf.test[127.0.0.7] refused to talk to me: 554 5.7.1 greet554.mf.test No SMTP service here",
            "4.4.317",
            Some("reply_5xx"),
            Some(("greet554.mf.test", Some("127.0.0.7"))),
        );
    }

    #[test]
    fn ehlo_421() {
        row(
            "host ehlo421.mf.test[127.0.0.8] refused to talk to me: 421 4.7.0 ehlo421.mf.test Try again later, closing connection",
            "4.4.317",
            Some("reply_4xx"),
            Some(("ehlo421.mf.test", Some("127.0.0.8"))),
        );
    }

    #[test]
    fn ehlo_then_helo_rejected() {
        row(
            "host ehlo5xx.mf.test[127.0.0.9] refused to talk to me: 550 5.7.1 HELO rejected: go away",
            "4.4.317",
            Some("reply_5xx"),
            Some(("ehlo5xx.mf.test", Some("127.0.0.9"))),
        );
    }

    #[test]
    fn tls_required_not_offered() {
        row(
            "TLS is required, but was not offered by host notls.mf.test[127.0.0.12]",
            "4.4.317",
            Some("starttls_not_offered"),
            Some(("notls.mf.test", Some("127.0.0.12"))),
        );
    }

    #[test]
    fn tls_required_starttls_refused() {
        let text = "TLS is required, but host tls454.mf.test[127.0.0.13] refused to start TLS: 454 4.7.0 TLS not available due to local problem";
        row(
            text,
            "4.4.317",
            Some("starttls_rejected"),
            Some(("tls454.mf.test", Some("127.0.0.13"))),
        );
        assert_eq!(diagnose(text).and_then(|f| f.reply()), Some(454));
    }

    #[test]
    fn tls_handshake_failure() {
        // Both a server answering STARTTLS with garbage and one closing after "220 Ready".
        row(
            "Cannot start TLS: handshake failure",
            "4.4.317",
            Some("tls_handshake"),
            None,
        );
    }

    #[test]
    fn certificate_not_verified() {
        // Self-signed (verify, secure), wrong name (verify, secure), expired (secure): one text.
        row(
            "Server certificate not verified",
            "4.7.320",
            Some("cert_invalid"),
            None,
        );
    }

    #[test]
    fn lost_connection_at_greeting() {
        row(
            "lost connection with close.mf.test[127.0.0.5] while receiving the initial server greeting",
            "4.4.318",
            Some("closed"),
            Some(("close.mf.test", Some("127.0.0.5"))),
        );
    }

    #[test]
    fn lost_connection_at_ehlo() {
        row(
            "lost connection with ehloclose.mf.test[127.0.0.10] while performing the EHLO handshake",
            "4.4.318",
            Some("closed"),
            Some(("ehloclose.mf.test", Some("127.0.0.10"))),
        );
    }

    #[test]
    fn lost_connection_at_rcpt() {
        row(
            "lost connection with rcptclose.mf.test[127.0.0.21] while sending RCPT TO",
            "4.4.318",
            Some("closed"),
            Some(("rcptclose.mf.test", Some("127.0.0.21"))),
        );
    }

    #[test]
    fn timeout_at_greeting() {
        row(
            "conversation with silent.mf.test[127.0.0.4] timed out while receiving the initial server greeting",
            "4.4.318",
            Some("timeout"),
            Some(("silent.mf.test", Some("127.0.0.4"))),
        );
    }

    #[test]
    fn timeout_at_ehlo() {
        row(
            "conversation with ehlohang.mf.test[127.0.0.11] timed out while performing the EHLO handshake",
            "4.4.318",
            Some("timeout"),
            Some(("ehlohang.mf.test", Some("127.0.0.11"))),
        );
    }

    #[test]
    fn timeout_at_mail_from() {
        row(
            "conversation with mailhang.mf.test[127.0.0.20] timed out while sending MAIL FROM",
            "4.4.318",
            Some("timeout"),
            Some(("mailhang.mf.test", Some("127.0.0.20"))),
        );
    }

    #[test]
    fn mail_from_451() {
        row(
            "host mail451.mf.test[127.0.0.22] said: 451 4.3.0 Temporary local problem, try again later (in reply to MAIL FROM command)",
            "other",
            Some("reply_4xx"),
            Some(("mail451.mf.test", Some("127.0.0.22"))),
        );
    }

    #[test]
    fn rcpt_to_550() {
        row(
            "host rcpt550.mf.test[127.0.0.19] said: 550 5.1.1 <user@d-rcpt550.test>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
            "other",
            Some("reply_5xx"),
            Some(("rcpt550.mf.test", Some("127.0.0.19"))),
        );
    }

    #[test]
    fn suspended_connect_refused() {
        row(
            "delivery temporarily suspended: connect to refused.mf.test[127.0.0.2]:25: Connection refused",
            "4.4.316",
            Some("refused"),
            Some(("refused.mf.test", Some("127.0.0.2"))),
        );
    }

    #[test]
    fn suspended_connect_timed_out() {
        row(
            "delivery temporarily suspended: connect to backlog.mf.test[127.0.0.3]:25: Connection timed out",
            "4.4.315",
            Some("timeout"),
            Some(("backlog.mf.test", Some("127.0.0.3"))),
        );
    }

    #[test]
    fn suspended_greeting_421() {
        row(
            "delivery temporarily suspended: host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy.mf.test Service not available, closing transmission channel",
            "4.4.317",
            Some("reply_4xx"),
            Some(("busy.mf.test", Some("127.0.0.6"))),
        );
    }

    #[test]
    fn suspended_greeting_timeout() {
        row(
            "delivery temporarily suspended: conversation with silent.mf.test[127.0.0.4] timed out while receiving the initial server greeting",
            "4.4.318",
            Some("timeout"),
            Some(("silent.mf.test", Some("127.0.0.4"))),
        );
    }

    // From the Postfix 3.7 sources and binaries (texts not reproduced against a test server).

    #[test]
    fn said_4xx_in_reply_to_ehlo() {
        row(
            "host mx.example.com[192.0.2.1] said: 451 4.3.0 try later (in reply to EHLO command)",
            "4.4.317",
            Some("reply_4xx"),
            Some(("mx.example.com", Some("192.0.2.1"))),
        );
    }

    #[test]
    fn said_in_reply_to_end_of_data() {
        row(
            "host mx.example.com[192.0.2.1] said: 451 4.7.1 greylisted (in reply to end of DATA command)",
            "other",
            None,
            Some(("mx.example.com", Some("192.0.2.1"))),
        );
    }

    #[test]
    fn connect_no_route_to_host() {
        row(
            "connect to mx.example.com[2001:db8::1]:25: No route to host",
            "4.4.315",
            Some("unreachable"),
            Some(("mx.example.com", Some("2001:db8::1"))),
        );
    }

    #[test]
    fn dns_no_data() {
        row(
            "Host or domain name not found. Name service error for name=mx.example.com type=A: Host found but no data record of requested type",
            "4.4.312",
            Some("no_records"),
            Some(("mx.example.com", None)),
        );
    }

    #[test]
    fn dns_null_mx() {
        row(
            "Domain example.com does not accept mail (nullMX)",
            "4.4.312",
            Some("null_mx"),
            Some(("example.com", None)),
        );
    }

    #[test]
    fn dns_no_usable_mx_host() {
        row(
            "no MX host for example.com has a valid address record",
            "4.4.312",
            Some("no_records"),
            Some(("example.com", None)),
        );
    }

    #[test]
    fn certificate_not_trusted_older_postfix() {
        row(
            "Server certificate not trusted",
            "4.7.320",
            Some("cert_untrusted"),
            None,
        );
    }

    #[test]
    fn lost_connection_during_data() {
        row(
            "lost connection with mx.example.com[192.0.2.1] while sending end of data -- message may be sent more than once",
            "4.4.318",
            Some("closed"),
            Some(("mx.example.com", Some("192.0.2.1"))),
        );
    }

    #[test]
    fn anything_else_is_other() {
        for text in [
            "",
            "mail for example.com loops back to myself",
            "mail transport unavailable",
            "TLS is required, but our TLS engine is unavailable",
            "host mx.example.com[192.0.2.1] said: 250 odd (no command)",
            "something Postfix never wrote",
            "host [",
            "connect to ",
        ] {
            assert_eq!(classify(text), Code::Other, "{text:?}");
        }
        assert_eq!(next_hop("mail for example.com loops back to myself"), None);
        assert_eq!(next_hop("host [1.2.3.4] said: 421"), None);
    }

    #[test]
    fn next_hop_is_lower_case_without_trailing_dot() {
        assert_eq!(
            next_hop("connect to MX.Example.COM.[192.0.2.1]:25: Connection refused"),
            Some(NextHop {
                host: "mx.example.com".into(),
                address: Some("192.0.2.1".parse().unwrap()),
                port: Some(25),
            })
        );
        assert_eq!(
            next_hop("lost connection with mx.example.com[192.0.2.1] while receiving the initial server greeting")
                .and_then(|hop| hop.port),
            None
        );
    }

    #[test]
    fn reply_codes_need_three_digits_and_a_separator() {
        assert_eq!(reply_code("421 busy"), Some(421));
        assert_eq!(reply_code("421-busy"), Some(421));
        assert_eq!(reply_code("421"), Some(421));
        assert_eq!(reply_code("4210 busy"), None);
        assert_eq!(reply_code("42"), None);
        assert_eq!(reply_code("999 x"), None);
        assert_eq!(
            diagnose("host a[192.0.2.1] refused to talk to me: garbage").map(|f| f.code()),
            Some(Code::Other)
        );
    }
}
