//! One Exchange value at a time: dates, domains and smart hosts.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::raw::{RawAddress, RawDate, RawDomain, RawHostname, RawSmartHost, RawSmtpDomain};

/// A date as RFC 3339, from `\/Date(ms)\/` or as written.
pub(super) fn date(raw: &RawDate) -> Option<String> {
    let text = match raw {
        RawDate::Text(text) => text.as_str(),
        RawDate::Object { value } => value.as_deref()?,
    };
    let text = text.trim();
    let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|rest| rest.strip_suffix(")/"))
    else {
        return Some(text.to_owned()).filter(|t| !t.is_empty());
    };
    // "/Date(1700000000000)/" or "/Date(1700000000000+0100)/": milliseconds since 1970, UTC.
    let end = inner
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(inner.len(), |(i, _)| i);
    let millis: i128 = inner[..end].parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// A domain as Exchange holds it (`SmtpDomainWithSubdomains`).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Domain {
    /// `*`: every domain.
    Every,
    /// One domain.
    Exact(String),
    /// `*.name`: the domain and its subdomains.
    WithSubdomains(String),
    /// Not a domain name.
    Invalid(String),
}

impl Domain {
    /// As Exchange writes it.
    pub(super) fn text(&self) -> String {
        match self {
            Domain::Every => "\"*\"".to_owned(),
            Domain::Exact(name) => format!("{name:?}"),
            Domain::WithSubdomains(name) => format!("\"*.{name}\""),
            Domain::Invalid(text) => format!("{text:?}"),
        }
    }
}

/// The domains one raw value holds (a string may list several).
pub(super) fn domains(raw: RawDomain) -> Vec<Domain> {
    match raw {
        RawDomain::Text(text) => split_list(&text)
            .iter()
            .map(|t| domain(t, false, false))
            .collect(),
        RawDomain::Object {
            domain: name,
            include_subdomains,
            address,
            is_star,
        } => {
            let name = name.and_then(|d| match d {
                RawSmtpDomain::Text(text) => Some(text),
                RawSmtpDomain::Object { domain } => domain,
            });
            let subdomains = include_subdomains.unwrap_or(false)
                || address
                    .as_deref()
                    .is_some_and(|a| a.trim().starts_with("*."));
            match name.or(address) {
                Some(text) => vec![domain(&text, subdomains, is_star.unwrap_or(false))],
                None if is_star == Some(true) => vec![Domain::Every],
                None => Vec::new(),
            }
        }
    }
}

/// One domain from its text.
fn domain(text: &str, subdomains: bool, star: bool) -> Domain {
    let text = text.trim();
    if star || text == "*" {
        return Domain::Every;
    }
    let (name, subdomains) = match text.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (text, subdomains),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if !is_domain_name(&name) {
        Domain::Invalid(text.to_owned())
    } else if subdomains {
        Domain::WithSubdomains(name)
    } else {
        Domain::Exact(name)
    }
}

/// The texts of one smart host.
pub(super) fn smart_host_texts(raw: RawSmartHost) -> Vec<String> {
    match raw {
        RawSmartHost::Text(text) => split_list(&text),
        RawSmartHost::Object { domain, address } => {
            let name = domain.and_then(|d| match d {
                RawHostname::Text(text) => Some(text),
                RawHostname::Object {
                    hostname_string,
                    domain,
                } => hostname_string.or(domain),
            });
            let address = address.and_then(|a| match a {
                RawAddress::Text(text) => Some(text),
                RawAddress::Object { text } => text,
            });
            name.into_iter()
                .chain(address)
                .map(|t| t.trim().to_owned())
                .find(|t| !t.is_empty())
                .into_iter()
                .collect()
        }
    }
}

/// A smart host, judged.
pub(super) enum HostVerdict {
    /// A host name (lowercase) or an IP literal.
    Valid(String),
    /// A CIDR range (`192.0.2.1/25`): only its address can be probed.
    Range(String),
    /// Neither.
    Invalid,
}

/// Judges one smart host text: a name, an IP (`[...]` allowed) or a CIDR range.
pub(super) fn host(text: &str) -> HostVerdict {
    let bare = text.trim().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return HostVerdict::Valid(ip.to_string());
    }
    if let Some((address, prefix)) = bare.split_once('/')
        && let (Ok(ip), Ok(_)) = (address.parse::<IpAddr>(), prefix.parse::<u8>())
    {
        return HostVerdict::Range(ip.to_string());
    }
    let name = bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase();
    if is_domain_name(&name) {
        HostVerdict::Valid(name)
    } else {
        HostVerdict::Invalid
    }
}

/// Splits a list written as one string ("a,b", "a; b").
pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `name` is a DNS name as the configuration accepts it, written without a trailing dot.
fn is_domain_name(name: &str) -> bool {
    !name.ends_with('.') && name.parse::<crate::config::DomainName>().is_ok()
}
