//! `--web.config.file`: TLS, HTTP/2, response headers, a rate limit and basic authentication
//! for the exporter's own HTTP endpoint, in the format of the Prometheus exporter-toolkit.
//!
//! [`WebConfig::load`] reads and validates the file, reads the certificate, key and CA files
//! it names (relative paths are relative to the web config file) and builds the rustls server
//! configuration once. The server then asks [`WebConfig::tls_acceptor`] for the handshake and
//! [`WebConfig::authorize`] for each request.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   http2: true            # the default: offered over TLS (ALPN), as the toolkit does
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! rate_limit:
//!   interval: 1s           # one more request a second...
//!   burst: 20              # ...after up to 20 at once; past it: 429
//! basic_auth_users:
//!   alice: $2y$10$...
//! ```

mod auth;
mod file;
mod rate_limit;
mod raw;
mod tls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};

pub use auth::{Authorization, WWW_AUTHENTICATE};
pub use rate_limit::RateLimit;

use crate::config::Problem;

/// A loaded web configuration. The default serves plain HTTP to everyone.
#[derive(Default)]
pub struct WebConfig {
    /// The TLS server configuration; `None`: plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// HTTP/2 is offered over TLS (`http_server_config.http2`); plain HTTP is HTTP/1.1 only.
    http2: bool,
    /// Headers to add to every response (`http_server_config.headers`).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The request rate limit (`rate_limit`), if any.
    rate_limit: Option<rate_limit::TokenBucket>,
    /// The basic authentication users; `None`: no authentication.
    basic_auth: Option<auth::BasicAuth>,
}

impl WebConfig {
    /// Reads and validates the web configuration file at `path`, with the files it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        file::parse(&text, path).map_err(WebConfigError::Invalid)
    }

    /// The TLS acceptor for new connections; `None` when the file has no `tls_server_config`.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// Checks a request's `Authorization` header value against `basic_auth_users`; everything
    /// is allowed when there are none. May run bcrypt (CPU-bound, up to a few hundred
    /// milliseconds, one at a time): call it from `tokio::task::spawn_blocking`.
    pub fn authorize(&self, authorization_header: Option<&str>) -> Authorization {
        match &self.basic_auth {
            Some(basic_auth) => basic_auth.authorize(authorization_header),
            None => Authorization::Allowed,
        }
    }

    /// Whether HTTP/2 is offered to TLS clients (ALPN `h2`).
    pub fn http2(&self) -> bool {
        self.tls.is_some() && self.http2
    }

    /// The request rate limit in force, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit.as_ref().map(rate_limit::TokenBucket::limit)
    }

    /// Whether the rate limit lets one more request through now (always, without one).
    pub fn admits_request(&self) -> bool {
        self.rate_limit
            .as_ref()
            .is_none_or(|bucket| bucket.take(tokio::time::Instant::now()))
    }

    /// Headers to add to every response, from `http_server_config.headers`.
    pub fn response_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit())
            .field("basic_auth", &self.basic_auth)
            .finish()
    }
}

/// Everything wrong with a web configuration file.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the web configuration file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML, does not fit the schema, has invalid values, or names
    /// certificate, key or CA files that cannot be used.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

#[cfg(test)]
mod tests;
