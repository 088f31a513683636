//! `exporter` mode: in-process validation from the trust anchors. hickory's validator decides on
//! a validator shared by the lookups (with its cache); a `bogus` verdict is checked again on a
//! fresh validator whose every query a witness sees, and stands only on a run without hiccups.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::anchors::{KeysFailure, TrustedKeys, covers, trusted_keys};
use super::answer::{answer, chain_status, denial_status, failure_of, negative};
use super::status::{DnssecStatus, Lookup};
use super::upstream::{Checked, Unanswered, Upstream, Witness};
use crate::config::DnssecTrustAnchors;
use crate::outcome::DnsFailure;

/// In-process validation: the anchors and the validator built on their zones' keys.
pub(super) struct Exporter {
    /// The trust anchors.
    anchors: DnssecTrustAnchors,
    /// The validated keys and the validator shared by lookups, while the keys are valid.
    shared: Mutex<Option<Shared>>,
}

/// A validator over validated anchor keys. Its validation cache is shared by the lookups; a
/// `bogus` verdict from it is always checked again on a fresh one (see [`Exporter::validate`]).
#[derive(Clone)]
struct Shared {
    /// The anchor zones' keys.
    keys: TrustedKeys,
    /// hickory's validator on them.
    validator: DnssecDnsHandle<Checked>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("anchors", &self.anchors)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Validation from `anchors`; their zones' keys are fetched on the first lookup.
    pub(super) fn new(anchors: DnssecTrustAnchors) -> Self {
        Exporter {
            anchors,
            shared: Mutex::new(None),
        }
    }

    /// `name` `rtype` validated by hickory on the shared validator; a `bogus` verdict is
    /// checked again on a fresh validator whose every query a [`Witness`] sees, and only stands
    /// if none of them had a hiccup.
    pub(super) async fn validate(
        &self,
        upstream: &Arc<Upstream>,
        name: &Name,
        rtype: RecordType,
    ) -> Lookup<RData> {
        if !covers(&self.anchors, name) {
            return unvalidated(upstream, name, rtype, DnssecStatus::Indeterminate).await;
        }
        let shared = match self.shared(upstream).await {
            Ok(shared) => shared,
            Err(KeysFailure::Unobtainable) => {
                tracing::debug!(%name, "DNSSEC: the trust anchors' keys could not be fetched");
                return unvalidated(upstream, name, rtype, DnssecStatus::Indeterminate).await;
            }
            Err(KeysFailure::NotValidated) => {
                tracing::debug!(%name, "DNSSEC: no trust anchor validates the anchor zones' keys");
                return unvalidated(upstream, name, rtype, DnssecStatus::Bogus).await;
            }
        };
        let first = validated(&shared.validator, name, rtype).await;
        if first.status != DnssecStatus::Bogus {
            return first;
        }
        let witness = Arc::new(Witness::default());
        let fresh = DnssecDnsHandle::with_trust_anchor(
            Checked::new(upstream.clone(), Some(witness.clone())),
            shared.keys.anchors.clone(),
        );
        let mut second = validated(&fresh, name, rtype).await;
        if second.status == DnssecStatus::Bogus
            && let Some((hiccup, query_name, query_type)) = witness.hiccup()
        {
            tracing::debug!(
                %name, %rtype, ?hiccup, %query_name, %query_type,
                "DNSSEC: not bogus but indeterminate: a query of the chain of trust failed"
            );
            second.status = DnssecStatus::Indeterminate;
        }
        second
    }

    /// The shared validator, rebuilt when the anchor zones' keys must be checked again and
    /// have changed.
    async fn shared(&self, upstream: &Arc<Upstream>) -> Result<Shared, KeysFailure> {
        let now = Instant::now();
        if let Some(shared) = self.current().filter(|s| s.keys.valid_until > now) {
            return Ok(shared);
        }
        let keys = trusted_keys(&self.anchors, upstream, unix_now()).await?;
        let mut guard = self.shared.lock().map_err(|_| KeysFailure::Unobtainable)?;
        let shared = match guard.take() {
            // The same keys: keep the validator, and with it its validation cache.
            Some(old) if old.keys.keys == keys.keys => Shared {
                keys,
                validator: old.validator,
            },
            _ => Shared {
                validator: DnssecDnsHandle::with_trust_anchor(
                    Checked::new(upstream.clone(), None),
                    keys.anchors.clone(),
                ),
                keys,
            },
        };
        *guard = Some(shared.clone());
        Ok(shared)
    }

    fn current(&self) -> Option<Shared> {
        self.shared.lock().ok().and_then(|shared| shared.clone())
    }
}

/// Asks `validator` for `name` `rtype` and reads the verdicts it left on the records.
async fn validated(
    validator: &DnssecDnsHandle<Checked>,
    name: &Name,
    rtype: RecordType,
) -> Lookup<RData> {
    let mut options = DnsRequestOptions::default();
    options.edns_set_dnssec_ok = true;
    let request = DnsRequest::from_query(Query::query(name.clone(), rtype), options);
    match validator.send(request).first_answer().await {
        Ok(response) => {
            let denial = denial_status(&response);
            let mut lookup = answer(&response, name, rtype, denial);
            if lookup.records.is_ok() {
                lookup.status = chain_status(&response.answers, name, rtype);
            }
            lookup
        }
        // A negative answer whose denial did not prove out: `proof` says how.
        Err(NetError::Dns(DnsError::Nsec {
            response, proof, ..
        })) => Lookup::failed(
            DnssecStatus::of_proof(proof),
            negative(response.metadata.response_code),
        ),
        Err(error) => Lookup::failed(DnssecStatus::Indeterminate, failure_of(&error)),
    }
}

/// The answer as the name servers give it, with a status decided elsewhere.
async fn unvalidated(
    upstream: &Upstream,
    name: &Name,
    rtype: RecordType,
    status: DnssecStatus,
) -> Lookup<RData> {
    match upstream.query(name, rtype).await {
        Ok(response) => answer(&response, name, rtype, status),
        Err(Unanswered) => Lookup::failed(DnssecStatus::Indeterminate, DnsFailure::Timeout),
    }
}

/// Now, in Unix seconds, as RRSIG validity periods count it (modulo 2^32, RFC 4034 §3.1.5).
fn unix_now() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    // Serial-number arithmetic: the value wraps.
    (seconds % (1u64 << 32)) as u32
}
