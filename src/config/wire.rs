//! The typed values that go onto the wire: DNS names, the EHLO argument, envelope addresses and
//! the name a certificate must carry. Each is parsed once, at load time, so that nothing a
//! configuration says can add a line to an SMTP command (`helo_name: "x\r\nDATA"` is refused)
//! and the probe never parses them again.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Deref;
use std::str::FromStr;

use rustls::pki_types::{DnsName, ServerName};

use super::Host;

/// A DNS host name: letters, digits, `-` and `_` in dot-separated labels of at most 63
/// characters, at most 253 in all, the last label not a number; stored in lower case without
/// a trailing dot. It is also a valid TLS server name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DomainName(DnsName<'static>);

impl DomainName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The name as the TLS server name (SNI) and the name a certificate is checked against.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::DnsName(self.0.clone())
    }
}

impl FromStr for DomainName {
    type Err = String;

    /// Parses a host name; one trailing dot is allowed and dropped.
    fn from_str(text: &str) -> Result<Self, String> {
        printable_ascii(text)?;
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        if name.is_empty() {
            return Err("the name is empty".to_owned());
        }
        if name.len() > 253 {
            return Err("the name is longer than 253 characters".to_owned());
        }
        if let Some((position, c)) = name
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "{} at position {} is not allowed in a DNS name (letters, digits, '-' and '_' in \
                 dot-separated labels)",
                describe(c),
                position + 1
            ));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(
                    "the name has an empty label (a leading dot or two dots in a row)".to_owned(),
                );
            }
            if label.len() > 63 {
                return Err(format!("the label {label:?} is longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(format!("the label {label:?} starts or ends with '-'"));
            }
        }
        // What is left for rustls to refuse: a last label that reads as a number.
        DnsName::try_from(name).map(DomainName).map_err(|_| {
            "the last label is a number: write an IP address as it is, or a DNS name".to_owned()
        })
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Deref for DomainName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Host {
    type Err = String;

    /// An IP literal (in brackets or not) or a DNS name.
    fn from_str(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        if let Ok(ip) = IpAddr::from_str(bare.unwrap_or(text)) {
            return Ok(Host::Ip(ip));
        }
        DomainName::from_str(text)
            .map(Host::Name)
            .map_err(|why| format!("{why}; expected a DNS name or an IP address"))
    }
}

/// A domain as SMTP commands carry it (RFC 5321 `Domain / address-literal`): the argument of
/// EHLO and HELO, and the part of an address after `@`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SmtpDomain {
    /// A DNS name, e.g. `probe.example.net`.
    Name(DomainName),
    /// An address literal, written `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl FromStr for SmtpDomain {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        printable_ascii(text)?;
        let Some(literal) = text.strip_prefix('[') else {
            if let Some(position) = text.find(' ') {
                return Err(format!(
                    "space at position {}: this is one DNS name, or an address literal such as \
                     [192.0.2.1]",
                    position + 1
                ));
            }
            return DomainName::from_str(text).map(SmtpDomain::Name);
        };
        let invalid = || {
            format!(
                "invalid address literal {text:?}: expected [IPv4 address] or [IPv6:IPv6 address], \
                 e.g. [192.0.2.1] or [IPv6:2001:db8::1]"
            )
        };
        let inner = literal.strip_suffix(']').ok_or_else(invalid)?;
        match inner.strip_prefix("IPv6:") {
            Some(v6) => Ipv6Addr::from_str(v6).map(|ip| SmtpDomain::Literal(IpAddr::V6(ip))),
            None => inner
                .parse::<std::net::Ipv4Addr>()
                .map(|ip| SmtpDomain::Literal(IpAddr::V4(ip))),
        }
        .map_err(|_| invalid())
    }
}

impl fmt::Display for SmtpDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpDomain::Name(name) => f.write_str(name),
            SmtpDomain::Literal(IpAddr::V4(ip)) => write!(f, "[{ip}]"),
            SmtpDomain::Literal(IpAddr::V6(ip)) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

/// An envelope address `local-part@domain` (RFC 5321 `Mailbox`), as `MAIL FROM:<…>` and
/// `RCPT TO:<…>` carry it. The local part is a dot-string (quoted local parts and SMTPUTF8 are
/// not supported).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The part before `@`.
    local_part: String,
    /// The part after `@`.
    domain: SmtpDomain,
}

impl Mailbox {
    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.local_part
    }

    /// The part after `@`.
    pub fn domain(&self) -> &SmtpDomain {
        &self.domain
    }
}

/// The characters of an atom (RFC 5322 `atext`) besides letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

impl FromStr for Mailbox {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        printable_ascii(text)?;
        if text.contains(['<', '>']) {
            return Err(
                "write the bare address, without '<' and '>': the probe adds them".to_owned(),
            );
        }
        // RFC 5321: a path is at most 256 octets with its angle brackets.
        if text.len() > 254 {
            return Err("the address is longer than 254 characters".to_owned());
        }
        let Some((local_part, domain)) = text.rsplit_once('@') else {
            return Err("expected local-part@domain, e.g. probe@example.com".to_owned());
        };
        if local_part.is_empty() {
            return Err("the local part before '@' is empty".to_owned());
        }
        if local_part.len() > 64 {
            return Err("the local part is longer than 64 characters".to_owned());
        }
        if let Some((position, c)) = local_part
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || ATEXT_SPECIALS.contains(*c)))
        {
            return Err(format!(
                "{} at position {} is not allowed in the local part (letters, digits, \
                 {ATEXT_SPECIALS} and dots; quoted local parts are not supported)",
                describe(c),
                position + 1
            ));
        }
        if local_part.starts_with('.') || local_part.ends_with('.') || local_part.contains("..") {
            return Err("the local part starts or ends with '.' or holds \"..\"".to_owned());
        }
        let domain = SmtpDomain::from_str(domain).map_err(|why| format!("domain: {why}"))?;
        Ok(Mailbox {
            local_part: local_part.to_owned(),
            domain,
        })
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

/// The name a certificate must carry under `domain_validation` (`tls_domain`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TlsDomain {
    /// Exactly this name.
    Exact(DomainName),
    /// `*.parent`: any name exactly one label under `parent`.
    Wildcard(DomainName),
}

impl FromStr for TlsDomain {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        printable_ascii(text)?;
        if let Some(parent) = text.strip_prefix("*.") {
            return DomainName::from_str(parent).map(TlsDomain::Wildcard);
        }
        if text.contains('*') {
            return Err("a wildcard is written \"*.\" and a domain, e.g. *.example.com".to_owned());
        }
        DomainName::from_str(text).map(TlsDomain::Exact)
    }
}

impl fmt::Display for TlsDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsDomain::Exact(name) => f.write_str(name),
            TlsDomain::Wildcard(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// Refuses what no wire value may hold: control characters (CR and LF above all, which would
/// end a protocol line early) and characters outside ASCII.
fn printable_ascii(text: &str) -> Result<(), String> {
    match text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || !c.is_ascii())
    {
        None => Ok(()),
        Some((position, c)) if c.is_control() => Err(format!(
            "{} at position {}: control characters are refused, as CR and LF would end the \
             protocol line early",
            describe(c),
            position + 1
        )),
        Some((position, c)) => Err(format!(
            "{} at position {}: only ASCII is allowed (write an international domain name in its \
             xn-- form; SMTPUTF8 addresses are not supported)",
            describe(c),
            position + 1
        )),
    }
}

/// A character for a message: `'!'`, or `U+000D` for what a terminal would not show.
fn describe(c: char) -> String {
    if c.is_control() || c == ' ' || !c.is_ascii() {
        let name = match c {
            '\r' => " (CR)",
            '\n' => " (LF)",
            '\0' => " (NUL)",
            '\t' => " (tab)",
            ' ' => " (space)",
            _ => "",
        };
        format!("U+{:04X}{name}", u32::from(c))
    } else {
        format!("{c:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        let name: DomainName = "Mail.Example.COM.".parse().expect("valid");
        assert_eq!(name.as_str(), "mail.example.com");
        assert_eq!(name.server_name().to_str(), "mail.example.com");
        assert_eq!(format!("EHLO {name}"), "EHLO mail.example.com");
        for valid in ["localhost", "_dmarc.example.com", "a-b.c", "x1.y2"] {
            assert!(DomainName::from_str(valid).is_ok(), "{valid}");
        }
        let refused = |text: &str| DomainName::from_str(text).expect_err(text);
        assert_eq!(refused(""), "the name is empty");
        assert_eq!(
            refused("mail server.test"),
            "U+0020 (space) at position 5 is not allowed in a DNS name (letters, digits, '-' and '_' in dot-separated labels)"
        );
        assert_eq!(
            refused("a..b"),
            "the name has an empty label (a leading dot or two dots in a row)"
        );
        assert_eq!(refused("-a.b"), "the label \"-a\" starts or ends with '-'");
        assert_eq!(
            refused(&"a".repeat(64)),
            format!(
                "the label {:?} is longer than 63 characters",
                "a".repeat(64)
            )
        );
        assert_eq!(
            refused(&["a"; 128].join(".")),
            "the name is longer than 253 characters"
        );
        assert_eq!(
            refused("host.123"),
            "the last label is a number: write an IP address as it is, or a DNS name"
        );
        assert_eq!(
            refused("bücher.de"),
            "U+00FC at position 2: only ASCII is allowed (write an international domain name in its xn-- form; SMTPUTF8 addresses are not supported)"
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Host::from_str("[2001:db8::1]"),
            Ok(Host::Ip("2001:db8::1".parse().expect("ip")))
        );
        assert_eq!(
            Host::from_str("192.0.2.1"),
            Ok(Host::Ip("192.0.2.1".parse().expect("ip")))
        );
        assert!(matches!(Host::from_str("MX.test"), Ok(Host::Name(n)) if n.as_str() == "mx.test"));
        assert!(Host::from_str("[mx.test]").is_err());
    }

    #[test]
    fn smtp_domains() {
        let text = |t: &str| SmtpDomain::from_str(t).map(|d| d.to_string());
        assert_eq!(
            text("Probe.Example.NET"),
            Ok("probe.example.net".to_owned())
        );
        assert_eq!(text("[192.0.2.1]"), Ok("[192.0.2.1]".to_owned()));
        assert_eq!(
            text("[IPv6:2001:DB8::1]"),
            Ok("[IPv6:2001:db8::1]".to_owned())
        );
        assert_eq!(
            text("x\r\nDATA"),
            Err("U+000D (CR) at position 2: control characters are refused, as CR and LF would end the protocol line early".to_owned())
        );
        assert_eq!(
            text("probe host"),
            Err("space at position 6: this is one DNS name, or an address literal such as [192.0.2.1]".to_owned())
        );
        assert_eq!(
            text("[2001:db8::1]"),
            Err("invalid address literal \"[2001:db8::1]\": expected [IPv4 address] or [IPv6:IPv6 address], e.g. [192.0.2.1] or [IPv6:2001:db8::1]".to_owned())
        );
        assert!(text("[192.0.2.1").is_err());
        assert!(text("x\0").is_err());
    }

    #[test]
    fn mailboxes() {
        let parse = |t: &str| Mailbox::from_str(t).map(|m| m.to_string());
        assert_eq!(
            parse("probe@Example.COM"),
            Ok("probe@example.com".to_owned())
        );
        assert_eq!(
            parse("a.b+tag@[192.0.2.1]"),
            Ok("a.b+tag@[192.0.2.1]".to_owned())
        );
        let mailbox = Mailbox::from_str("postmaster@mx.test").expect("valid");
        assert_eq!(mailbox.local_part(), "postmaster");
        assert_eq!(mailbox.domain().to_string(), "mx.test");
        let refused = |t: &str| Mailbox::from_str(t).expect_err(t);
        assert_eq!(
            refused("<probe@example.com>"),
            "write the bare address, without '<' and '>': the probe adds them"
        );
        assert_eq!(
            refused("probe@example.com>\r\nDATA"),
            "U+000D (CR) at position 19: control characters are refused, as CR and LF would end the protocol line early"
        );
        assert_eq!(
            refused("probe"),
            "expected local-part@domain, e.g. probe@example.com"
        );
        assert_eq!(
            refused("@example.com"),
            "the local part before '@' is empty"
        );
        assert_eq!(
            refused("pro be@example.com"),
            "U+0020 (space) at position 4 is not allowed in the local part (letters, digits, !#$%&'*+-/=?^_`{|}~ and dots; quoted local parts are not supported)"
        );
        assert_eq!(
            refused("\"pro be\"@example.com"),
            "'\"' at position 1 is not allowed in the local part (letters, digits, !#$%&'*+-/=?^_`{|}~ and dots; quoted local parts are not supported)"
        );
        assert_eq!(
            refused("a..b@example.com"),
            "the local part starts or ends with '.' or holds \"..\""
        );
        assert_eq!(
            refused(&format!("{}@example.com", "a".repeat(65))),
            "the local part is longer than 64 characters"
        );
        assert_eq!(
            refused("probe@exa mple.com"),
            "domain: space at position 4: this is one DNS name, or an address literal such as [192.0.2.1]"
        );
        assert_eq!(
            refused(&format!("a@{}.com", ["b"; 126].join("."))),
            "the address is longer than 254 characters"
        );
    }

    #[test]
    fn tls_domains() {
        assert_eq!(
            TlsDomain::from_str("*.Contoso.com").map(|d| d.to_string()),
            Ok("*.contoso.com".to_owned())
        );
        assert!(matches!(
            TlsDomain::from_str("mail.contoso.com"),
            Ok(TlsDomain::Exact(n)) if n.as_str() == "mail.contoso.com"
        ));
        assert_eq!(
            TlsDomain::from_str("*"),
            Err("a wildcard is written \"*.\" and a domain, e.g. *.example.com".to_owned())
        );
        assert_eq!(
            TlsDomain::from_str("mail*.contoso.com"),
            Err("a wildcard is written \"*.\" and a domain, e.g. *.example.com".to_owned())
        );
        assert!(TlsDomain::from_str("*.*.contoso.com").is_err());
    }
}
