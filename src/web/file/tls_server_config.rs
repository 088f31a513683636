//! `tls_server_config` validated: the certificate, key and client CAs read from their files or
//! given inline, the client authentication rules, versions, cipher suites and curves, and the
//! rustls server configuration built from them.

use std::path::Path;
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::Checker;
use crate::web::raw::RawTls;
use crate::web::tls::{self, BuildError, ClientAuth, ServerTls};

/// One of the two ways to give a PEM object: a file or the text itself.
enum Source<'a> {
    /// A path, relative to the web configuration file.
    File(&'a Spanned<String>),
    /// The PEM text.
    Inline(&'a Spanned<String>),
}

impl Source<'_> {
    /// Where the object is given in the file.
    fn at(&self) -> Location {
        match self {
            Source::File(s) | Source::Inline(s) => s.referenced,
        }
    }
}

impl Checker<'_> {
    /// `tls_server_config`: the server's TLS settings, files read and the config built.
    pub(super) fn tls(
        &mut self,
        section: Spanned<RawTls>,
        http2: bool,
    ) -> Option<Arc<rustls::ServerConfig>> {
        let before = self.problems.len();
        let at = section.referenced;
        let raw = section.value;
        let cert = self.source(set(&raw.cert_file), set(&raw.cert), "cert_file", "cert");
        let key = self.source(set(&raw.key_file), set(&raw.key), "key_file", "key");
        let ca = self.source(
            set(&raw.client_ca_file),
            set(&raw.client_ca),
            "client_ca_file",
            "client_ca",
        );
        let auth_type = set(&raw.client_auth_type);
        if cert.is_none() && key.is_none() && ca.is_none() && auth_type.is_none() {
            // As in the exporter-toolkit, a section that names no certificate means plain HTTP;
            // but settings that would then silently do nothing are refused.
            if raw.min_version.is_some()
                || raw.max_version.is_some()
                || raw.cipher_suites.is_some()
                || raw.curve_preferences.is_some()
                || raw.client_allowed_sans.is_some()
            {
                self.problem(
                    Some(at),
                    "tls_server_config",
                    "TLS settings without cert_file and key_file: name the server's \
                     certificate and key, or remove tls_server_config"
                        .to_owned(),
                );
            }
            return None;
        }
        if cert.is_none() {
            self.problem(
                Some(at),
                "tls_server_config.cert_file",
                "missing cert_file (or cert): the server's certificate chain, PEM".to_owned(),
            );
        }
        if key.is_none() {
            self.problem(
                Some(at),
                "tls_server_config.key_file",
                "missing key_file (or key): the server's private key, PEM".to_owned(),
            );
        }
        let client_auth = auth_type.map_or(Some(ClientAuth::NoClientCert), |t| {
            let parsed = ClientAuth::parse(&t.value);
            if parsed.is_none() {
                self.problem(
                    Some(t.referenced),
                    "tls_server_config.client_auth_type",
                    format!(
                        "invalid client_auth_type {:?}: expected one of {}",
                        t.value,
                        ClientAuth::NAMES
                    ),
                );
            }
            parsed
        });
        let auth_at = auth_type.map_or(at, |t| t.referenced);
        if let Some(client_auth) = client_auth {
            self.check_client_auth(client_auth, ca.as_ref(), &raw, auth_at);
        }
        let versions = self.versions(&raw);
        let cipher_suites = self.cipher_suites(raw.cipher_suites.as_deref());
        let groups = self.groups(raw.curve_preferences.as_deref());
        let chain = cert.and_then(|c| self.pem(&c, "cert", tls::certificates));
        let private_key = key.and_then(|k| self.pem(&k, "key", tls::private_key));
        let client_cas = match &ca {
            Some(ca) => self.pem(ca, "client_ca", tls::certificates),
            None => Some(Vec::new()),
        };
        if self.problems.len() > before {
            return None;
        }
        let (Some(chain), Some(private_key), Some(client_auth), Some(client_cas), Some(versions)) =
            (chain, private_key, client_auth, client_cas, versions)
        else {
            return None;
        };
        let settings = ServerTls {
            chain,
            key: private_key,
            client_auth,
            client_cas,
            versions,
            cipher_suites,
            groups,
            prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
            client_allowed_sans: raw.client_allowed_sans.map(|s| s.value).unwrap_or_default(),
            http2,
        };
        match tls::server_config(settings) {
            Ok(config) => Some(config),
            Err(error) => {
                let (at, key, message) = match error {
                    BuildError::Certificate(m) => (
                        set(&raw.key_file).or(set(&raw.key)).map(|k| k.referenced),
                        "tls_server_config.key_file",
                        m,
                    ),
                    BuildError::ClientCa(m) => (
                        ca.as_ref().map(Source::at),
                        "tls_server_config.client_ca_file",
                        m,
                    ),
                    BuildError::Protocol(m) => (Some(at), "tls_server_config", m),
                };
                self.problem(at, key, message);
                None
            }
        }
    }

    /// The file or inline form of a PEM object; both at once is a problem.
    fn source<'s>(
        &mut self,
        file: Option<&'s Spanned<String>>,
        inline: Option<&'s Spanned<String>>,
        file_key: &str,
        inline_key: &str,
    ) -> Option<Source<'s>> {
        match (file, inline) {
            (Some(file), Some(_)) => {
                self.problem(
                    Some(file.referenced),
                    &format!("tls_server_config.{file_key}"),
                    format!("{file_key} and {inline_key} exclude each other: use one"),
                );
                None
            }
            (Some(file), None) => Some(Source::File(file)),
            (None, Some(inline)) => Some(Source::Inline(inline)),
            (None, None) => None,
        }
    }

    /// Reads and decodes a PEM object, from its file or inline.
    fn pem<T>(
        &mut self,
        source: &Source<'_>,
        inline_key: &str,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        let (key, result) = match source {
            Source::File(file) => {
                let resolved = crate::config::resolve_relative(self.path, Path::new(&file.value));
                let result = std::fs::read(&resolved)
                    .map_err(|e| format!("cannot read {}: {e}", resolved.display()))
                    .and_then(|bytes| {
                        decode(&bytes).map_err(|e| format!("{}: {e}", resolved.display()))
                    });
                (format!("tls_server_config.{inline_key}_file"), result)
            }
            Source::Inline(text) => (
                format!("tls_server_config.{inline_key}"),
                decode(text.value.as_bytes()),
            ),
        };
        result
            .map_err(|message| self.problem(Some(source.at()), &key, message))
            .ok()
    }

    /// The rules between `client_auth_type`, the client CAs and `client_allowed_sans`.
    fn check_client_auth(
        &mut self,
        client_auth: ClientAuth,
        ca: Option<&Source<'_>>,
        raw: &RawTls,
        auth_at: Location,
    ) {
        if client_auth.verifies() && ca.is_none() {
            self.problem(
                Some(auth_at),
                "tls_server_config.client_auth_type",
                "VerifyClientCertIfGiven and RequireAndVerifyClientCert need client_ca_file \
                 (or client_ca): the CAs that client certificates must chain to"
                    .to_owned(),
            );
        }
        if let (ClientAuth::NoClientCert, Some(ca)) = (client_auth, ca) {
            self.problem(
                Some(ca.at()),
                "tls_server_config.client_ca_file",
                "client CAs are configured but client_auth_type is NoClientCert: set \
                 client_auth_type, e.g. RequireAndVerifyClientCert"
                    .to_owned(),
            );
        }
        if let Some(sans) = &raw.client_allowed_sans
            && !sans.value.is_empty()
            && !client_auth.requires_certificate()
        {
            self.problem(
                Some(sans.referenced),
                "tls_server_config.client_allowed_sans",
                "client_allowed_sans needs client_auth_type RequireAnyClientCert or \
                     RequireAndVerifyClientCert"
                    .to_owned(),
            );
        }
    }

    /// `min_version` and `max_version` as the protocol versions to offer.
    fn versions(&mut self, raw: &RawTls) -> Option<Vec<&'static rustls::SupportedProtocolVersion>> {
        let mut version = |field: &str, value: Option<&Spanned<String>>, default: u8| {
            let Some(value) = value.filter(|v| !v.value.is_empty()) else {
                return Some(default);
            };
            let message = match value.value.as_str() {
                "TLS12" => return Some(12),
                "TLS13" => return Some(13),
                "TLS10" | "TLS11" => format!(
                    "{} is not supported: rustls speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13",
                    value.value
                ),
                other => format!("invalid {field} {other:?}: expected TLS12 or TLS13"),
            };
            self.problem(
                Some(value.referenced),
                &format!("tls_server_config.{field}"),
                message,
            );
            None
        };
        let min = version("min_version", raw.min_version.as_ref(), 12);
        let max = version("max_version", raw.max_version.as_ref(), 13);
        let (min, max) = (min?, max?);
        if min > max {
            self.problem(
                raw.max_version.as_ref().map(|v| v.referenced),
                "tls_server_config.max_version",
                "max_version is lower than min_version".to_owned(),
            );
            return None;
        }
        let mut versions = Vec::new();
        if max >= 13 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= 12 {
            versions.push(&rustls::version::TLS12);
        }
        Some(versions)
    }

    /// `cipher_suites`: the TLS 1.2 suites to keep (TLS 1.3 names are accepted and ignored).
    fn cipher_suites(&mut self, names: Option<&[Spanned<String>]>) -> Option<Vec<&'static str>> {
        let names = names.filter(|n| !n.is_empty())?;
        let known = tls::tls12_cipher_suite_names();
        let mut kept = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(suite) = known.iter().find(|k| **k == name.value) {
                kept.push(*suite);
            } else if !tls::TLS13_CIPHER_SUITES.contains(&name.value.as_str()) {
                self.problem(
                    Some(name.referenced),
                    &format!("tls_server_config.cipher_suites[{i}]"),
                    format!(
                        "unsupported cipher suite {:?}: expected one of {}",
                        name.value,
                        known.join(", ")
                    ),
                );
            }
        }
        Some(kept)
    }

    /// `curve_preferences`: the key exchange groups, in order.
    fn groups(&mut self, names: Option<&[Spanned<String>]>) -> Option<Vec<rustls::NamedGroup>> {
        let names = names.filter(|n| !n.is_empty())?;
        let mut groups = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match tls::named_group(&name.value) {
                Some(group) => groups.push(group),
                None => self.problem(
                    Some(name.referenced),
                    &format!("tls_server_config.curve_preferences[{i}]"),
                    format!(
                        "unsupported curve {:?}: expected one of CurveP256, CurveP384, X25519",
                        name.value
                    ),
                ),
            }
        }
        Some(groups)
    }
}

/// A string setting, unless it is absent or empty (empty means unset, as in Go).
fn set(setting: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    setting.as_ref().filter(|s| !s.value.is_empty())
}
