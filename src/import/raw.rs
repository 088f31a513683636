//! The shapes that `Get-OutboundConnector | ConvertTo-Json` writes, as they are.
//!
//! PowerShell is loose about shapes, so each property accepts every form it is known to take:
//! enums as numbers or as names, lists as arrays, as `{"value": [...], "Count": n}` or as one
//! string, smart hosts and domains as strings or as serialized Exchange objects, and `null`
//! anywhere. Nothing here judges values; [`super::map`] does.

use serde::Deserialize;
use serde_json::Value;

use super::ImportError;

/// One outbound connector, with the properties the import reads (the others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawConnector {
    /// The connector's name, unique in the tenant.
    pub name: Option<String>,
    /// Usually the name again; an object in some remote sessions.
    pub identity: Option<Value>,
    /// `false`: Exchange does not use the connector.
    pub enabled: Option<bool>,
    /// `OnPremises` (1) or `Partner` (2).
    pub connector_type: Option<RawEnum>,
    /// `Default` (0), `Migrated` (1) or `HybridWizard` (2).
    pub connector_source: Option<RawEnum>,
    /// The administrator's comment.
    pub comment: Option<String>,
    /// The smart hosts, most preferred first.
    pub smart_hosts: Option<RawList<RawSmartHost>>,
    /// The smart hosts as one comma-separated string.
    pub smart_hosts_string: Option<String>,
    /// Route by the MX records of the recipient's domain.
    #[serde(rename = "UseMXRecord")]
    pub use_mx_record: Option<bool>,
    /// The domains the connector carries mail for.
    pub recipient_domains: Option<RawList<RawDomain>>,
    /// The `TlsAuthLevel`; `null` when unset.
    pub tls_settings: Option<RawEnum>,
    /// DANE: `Opportunistic` (the default), `Mandatory` or `None`.
    pub smtp_dane_mode: Option<RawEnum>,
    /// MTA-STS: `Opportunistic` (the default) or `None`.
    pub mta_sts_mode: Option<RawEnum>,
    /// The name the certificate must carry under `DomainValidation`.
    pub tls_domain: Option<RawDomain>,
    /// Only transport rules route mail to the connector.
    pub is_transport_rule_scoped: Option<bool>,
    /// Centralized mail transport.
    pub route_all_messages_via_on_premises: Option<bool>,
    /// Internal Exchange headers are kept.
    pub cloud_services_mail_enabled: Option<bool>,
    /// The connector serves every accepted domain.
    pub all_accepted_domains: Option<bool>,
    /// Sender Rewriting Scheme.
    pub sender_rewriting_enabled: Option<bool>,
    /// Test mode.
    pub test_mode: Option<bool>,
    /// Addresses that Exchange's connector validation sent test mail to.
    pub validation_recipients: Option<RawList<String>>,
    /// When the connector last changed.
    pub when_changed: Option<RawDate>,
}

/// An enum value: PowerShell writes a number, or the name when the object was deserialized.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawEnum {
    /// The numeric value.
    Number(i64),
    /// The name, e.g. `DomainValidation`.
    Name(String),
}

impl std::fmt::Display for RawEnum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawEnum::Number(n) => write!(f, "{n}"),
            RawEnum::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// A multi-valued property.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawList<T> {
    /// A JSON array (`null` items are dropped).
    Items(Vec<Option<T>>),
    /// PowerShell's wrapper of a collection: `{"value": [...], "Count": n}`.
    Wrapped {
        /// The items.
        value: Vec<Option<T>>,
    },
    /// One value where an array was expected (strings may still list several, comma-separated).
    One(T),
}

impl<T> RawList<T> {
    /// The items, in order.
    pub fn into_items(self) -> Vec<T> {
        match self {
            RawList::Items(items) | RawList::Wrapped { value: items } => {
                items.into_iter().flatten().collect()
            }
            RawList::One(item) => vec![item],
        }
    }
}

/// A smart host: a string (`mail.contoso.com`, `[192.0.2.1]`) or a serialized `SmartHost`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSmartHost {
    /// The host as text.
    Text(String),
    /// A serialized `Microsoft.Exchange.Data.SmartHost`.
    Object {
        /// The host name (`Hostname`), when the host is a name.
        #[serde(rename = "Domain")]
        domain: Option<RawHostname>,
        /// The address (`System.Net.IPAddress`), when the host is an IP address.
        #[serde(rename = "Address")]
        address: Option<RawAddress>,
    },
}

/// A serialized `Microsoft.Exchange.Data.Hostname`, or its text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawHostname {
    /// The name as text.
    Text(String),
    /// The object.
    Object {
        /// The name.
        #[serde(rename = "HostnameString")]
        hostname_string: Option<String>,
        /// The name, in some serializations.
        #[serde(rename = "Domain")]
        domain: Option<String>,
    },
}

/// A serialized `System.Net.IPAddress`, or its text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawAddress {
    /// The address as text.
    Text(String),
    /// The object; its text form is `IPAddressToString`.
    Object {
        /// The address as text.
        #[serde(rename = "IPAddressToString")]
        text: Option<String>,
    },
}

/// A domain: a string (`fabrikam.com`, `*.fabrikam.com`, `*`) or a serialized
/// `SmtpDomainWithSubdomains`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDomain {
    /// The domain as text.
    Text(String),
    /// The object.
    Object {
        /// The domain without `*.`; `*` for every domain.
        #[serde(rename = "Domain")]
        domain: Option<RawSmtpDomain>,
        /// Whether subdomains are included (`*.domain`).
        #[serde(rename = "IncludeSubDomains")]
        include_subdomains: Option<bool>,
        /// The text form, e.g. `*.fabrikam.com`.
        #[serde(rename = "Address")]
        address: Option<String>,
        /// Whether this is `*`, every domain.
        #[serde(rename = "IsStar")]
        is_star: Option<bool>,
    },
}

/// A domain name, or a serialized `SmtpDomain` (`{"Domain": "fabrikam.com"}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSmtpDomain {
    /// The name as text.
    Text(String),
    /// The object.
    Object {
        /// The name.
        #[serde(rename = "Domain")]
        domain: Option<String>,
    },
}

/// A date: `"\/Date(1700000000000)\/"`, an ISO text, or `{"value": ..., "DateTime": ...}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDate {
    /// The date as text.
    Text(String),
    /// The wrapper Windows PowerShell writes around a `DateTime`.
    Object {
        /// The date as text.
        value: Option<String>,
    },
}

/// The connectors of a document: one object, an array, or PowerShell's `{"value": [...]}`.
pub(super) fn connectors(document: Value) -> Result<Vec<Value>, ImportError> {
    match document {
        Value::Array(items) => Ok(items),
        Value::Object(mut object)
            if object.contains_key("Count") && object.get("value").is_some_and(Value::is_array) =>
        {
            match object.remove("value") {
                Some(Value::Array(items)) => Ok(items),
                _ => Ok(Vec::new()),
            }
        }
        object @ Value::Object(_) => Ok(vec![object]),
        other => Err(ImportError::Shape {
            found: kind(&other),
        }),
    }
}

/// The connector at 0-based `index` of the document.
pub(super) fn connector(index: usize, value: Value) -> Result<RawConnector, ImportError> {
    if !value.is_object() {
        return Err(ImportError::NotAConnector {
            index: index + 1,
            found: kind(&value),
        });
    }
    let name = value
        .get("Name")
        .and_then(Value::as_str)
        .map_or_else(|| "without a name".to_owned(), |n| format!("{n:?}"));
    serde_path_to_error::deserialize(value).map_err(|e| ImportError::Connector {
        index: index + 1,
        name,
        property: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// What a JSON value is, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
