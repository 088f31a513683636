//! What a probe found: the connector's outcome and what each of its addresses showed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Connector;
use crate::outcome::{Outcome, Phase, TlsFailure};

use super::limits::NoSlot;
use super::tls::TlsFacts;

/// What one probe of a connector found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The connector probed.
    pub connector: Arc<Connector>,
    /// The connector-level outcome (`ok` when any address delivered).
    pub outcome: Outcome,
    /// How long the whole probe took.
    pub duration: Duration,
    /// Each address (or each host whose name did not resolve), in order of preference.
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// The target whose phases represent the connector: the most preferred one that delivered,
    /// else the most preferred one.
    pub fn representative(&self) -> Option<&TargetReport> {
        self.targets
            .iter()
            .find(|t| t.outcome.is_ok())
            .or_else(|| self.targets.first())
    }
}

/// A probe the exporter could not run to the end by its own limits: an address got no connection
/// slot before the deadline (`--probe.max-connections*`) and no other address delivered, so the
/// connector's outcome is unknown. It is no finding about the connector and changes none of its
/// state; the scrape that asked for it fails instead.
#[derive(Clone, Debug)]
pub struct Throttled {
    /// The connector that was not probed.
    pub connector: Arc<Connector>,
    /// The (first) address that got no slot.
    pub no_slot: NoSlot,
    /// How long the probe waited before giving up.
    pub duration: Duration,
}

/// What one address showed.
#[derive(Clone, Debug)]
pub struct TargetReport {
    /// The host name (or IP literal) the address came from, as written in labels and reports.
    pub host: String,
    /// The address; `None` when the host did not resolve.
    pub address: Option<IpAddr>,
    /// This address's own outcome.
    pub outcome: Outcome,
    /// How long each phase took, in the order they ran.
    pub phases: Vec<(Phase, Duration)>,
    /// What TLS showed, when a handshake completed.
    pub tls: Option<TlsFacts>,
    /// The server's last reply line, for people.
    pub last_reply: Option<String>,
    /// Under `opportunistic`: the TLS handshake failure after which the exchange was held again
    /// over a new connection without TLS, as a sending server does (`mailflow_tls_fallback`).
    pub tls_fallback: Option<TlsFailure>,
}
