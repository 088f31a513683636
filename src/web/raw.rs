//! The web configuration file's raw shape, exactly as written (keys of the exporter-toolkit),
//! before validation. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebConfig {
    pub(super) tls_server_config: Option<Spanned<RawTls>>,
    pub(super) http_server_config: Option<Spanned<RawHttp>>,
    pub(super) rate_limit: Option<Spanned<RawRateLimit>>,
    pub(super) basic_auth_users: Option<BTreeMap<String, Spanned<String>>>,
}

/// `tls_server_config`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_file: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) client_auth_type: Option<Spanned<String>>,
    pub(super) client_ca_file: Option<Spanned<String>>,
    pub(super) client_ca: Option<Spanned<String>>,
    pub(super) min_version: Option<Spanned<String>>,
    pub(super) max_version: Option<Spanned<String>>,
    pub(super) cipher_suites: Option<Vec<Spanned<String>>>,
    pub(super) curve_preferences: Option<Vec<Spanned<String>>>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) client_allowed_sans: Option<Spanned<Vec<String>>>,
}

/// `http_server_config`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) http2: Option<Spanned<bool>>,
    pub(super) headers: Option<BTreeMap<String, Spanned<String>>>,
}

/// `rate_limit`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) interval: Option<Spanned<String>>,
    pub(super) burst: Option<Spanned<u32>>,
}
