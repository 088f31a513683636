//! The label sets of every metric, each defined once, as a struct whose field names are the label
//! names. A family is declared with its label set ([`super::text::Family`]), so its samples can
//! only be written with exactly those labels, in that order: a misspelt, missing or extra label
//! does not compile. Values from a bounded set come typed (a [`Code`], a [`Phase`]), never as
//! text built at the call site.

use hyper::StatusCode;

use super::own::HttpHandler;
use crate::outcome::{Code, Phase};
use crate::postfix::QueueReadFailure;
use crate::probe::dnssec::DnssecStatus;

/// The labels of one sample.
pub trait LabelSet {
    /// The same label set with its values borrowed for `'a`.
    type With<'a>: LabelSet;

    /// Calls `label` with each label's name and value, in order.
    fn each(&self, label: impl FnMut(&'static str, &str));
}

/// A label value.
pub trait LabelValue {
    /// The value as written in the exposition (before escaping).
    fn label_value(&self) -> &str;
}

impl LabelValue for &str {
    fn label_value(&self) -> &str {
        self
    }
}

impl LabelValue for Code {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

impl LabelValue for Phase {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

impl LabelValue for DnssecStatus {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

impl LabelValue for HttpHandler {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

/// Whether TLSA records are usable for SMTP: the `usable` label, `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usability(pub bool);

impl LabelValue for Usability {
    fn label_value(&self) -> &str {
        if self.0 { "true" } else { "false" }
    }
}

impl LabelValue for StatusCode {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

impl LabelValue for QueueReadFailure {
    fn label_value(&self) -> &str {
        self.as_str()
    }
}

/// Defines label sets, `Name<'a> { label: Type, ... }` when values borrow, else
/// `Name { label: Type, ... }`. The field names are the label names.
macro_rules! label_sets {
    () => {};
    (
        $(#[$doc:meta])*
        $set:ident<'a> { $( $(#[$label_doc:meta])* $label:ident: $value:ty ),+ $(,)? }
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $set<'a> {
            $( $(#[$label_doc])* pub $label: $value, )+
        }

        impl LabelSet for $set<'_> {
            type With<'b> = $set<'b>;

            fn each(&self, mut label: impl FnMut(&'static str, &str)) {
                $( label(stringify!($label), self.$label.label_value()); )+
            }
        }

        label_sets! { $($rest)* }
    };
    (
        $(#[$doc:meta])*
        $set:ident { $( $(#[$label_doc:meta])* $label:ident: $value:ty ),+ $(,)? }
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $set {
            $( $(#[$label_doc])* pub $label: $value, )+
        }

        impl LabelSet for $set {
            type With<'b> = $set;

            fn each(&self, mut label: impl FnMut(&'static str, &str)) {
                $( label(stringify!($label), self.$label.label_value()); )+
            }
        }

        label_sets! { $($rest)* }
    };
}

label_sets! {
    /// A connector's series.
    ConnectorLabels<'a> {
        /// The connector's name.
        connector: &'a str,
    }

    /// A connector's series per code.
    ConnectorCodeLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The code.
        code: Code,
    }

    /// A connector's series per phase.
    ConnectorPhaseLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The phase.
        phase: Phase,
    }

    /// Why a connector fails.
    FailureLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The failure's code.
        code: Code,
        /// The phase it failed in.
        phase: Phase,
        /// The reason (a bounded label of the outcome's vocabulary).
        reason: &'static str,
        /// The server's 3-digit reply code, or empty.
        reply: &'a str,
    }

    /// The mode of a connector's MTA-STS policy.
    PolicyModeLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// `enforce`, `testing`, `none` or `absent`.
        mode: &'static str,
    }

    /// One host of a connector, by name.
    ConnectorHostLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The host name.
        host: &'a str,
    }

    /// The DNSSEC status of a host's records (or of an MX connector's MX RRset).
    DnssecStatusLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The host name (for the MX RRset, the domain).
        host: &'a str,
        /// `secure`, `insecure`, `bogus` or `indeterminate`.
        status: DnssecStatus,
    }

    /// A host's TLSA records, usable or not.
    TlsaRecordLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The host name.
        host: &'a str,
        /// Whether the records counted are usable for SMTP (RFC 7672).
        usable: Usability,
    }

    /// One address a connector's host resolved to.
    TargetLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The host name (or IP literal) the address came from.
        host: &'a str,
        /// The address (empty when the host did not resolve).
        address: &'a str,
    }

    /// One address's series per code.
    TargetCodeLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The host name (or IP literal) the address came from.
        host: &'a str,
        /// The address (empty when the host did not resolve).
        address: &'a str,
        /// The code.
        code: Code,
    }

    /// An address's series without its host.
    AddressLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The address.
        address: &'a str,
    }

    /// The TLS session negotiated with an address.
    TlsLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The address.
        address: &'a str,
        /// The protocol version, e.g. `TLSv1.3`.
        version: &'a str,
        /// The cipher suite.
        cipher: &'a str,
    }

    /// The leaf certificate an address presented, by its identity.
    CertificateLabels<'a> {
        /// The connector's name.
        connector: &'a str,
        /// The address.
        address: &'a str,
        /// The certificate's subject.
        subject: &'a str,
        /// The certificate's issuer.
        issuer: &'a str,
        /// The certificate's serial number.
        serial: &'a str,
    }

    /// The exporter's build.
    BuildLabels<'a> {
        /// The version, from Cargo.toml.
        version: &'a str,
        /// The source revision it was built from.
        revision: &'a str,
    }

    /// An HTTP request by the handler that answered it and its status.
    HttpRequestLabels {
        /// The handler (a bounded set).
        handler: HttpHandler,
        /// The status code, three digits.
        code: StatusCode,
    }

    /// Why reading the Postfix queue failed.
    QueueReadLabels {
        /// The kind of failure.
        reason: QueueReadFailure,
    }
}

/// A series without labels.
#[derive(Clone, Copy, Debug)]
pub struct NoLabels;

impl LabelSet for NoLabels {
    type With<'a> = NoLabels;

    fn each(&self, _: impl FnMut(&'static str, &str)) {}
}
