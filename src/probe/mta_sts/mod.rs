//! MTA-STS (RFC 8461) and TLS-RPT (RFC 8460), as a sending server sees them: which policy a
//! destination domain publishes, fetched and cached the way a sending server keeps it.
//!
//! - [`record`] reads the `_mta-sts.DOMAIN` TXT record (exactly one `v=STSv1`, with an `id`);
//! - [`policy`] parses the policy file and decides whether a host is one it allows;
//! - [`fetch`] gets the policy from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`: a valid
//!   certificate, status 200, no redirects, `text/plain`, at most 64 KiB, before a deadline;
//! - [`cache`] keeps policies per domain for their `max_age`, refetches on a new `id` or on
//!   expiry, keeps a still-valid copy when a refetch fails, and runs one fetch per domain at a
//!   time whatever the number of probes asking;
//! - [`tlsrpt`] reads the `_smtp._tls.DOMAIN` TXT record;
//! - [`lookup`] lets hickory's resolver answer the names these need.
//!
//! [`discover`] ties them together for one domain: read the TXT record, then take the policy
//! from the cache, fetching it when the cache has no current copy.

pub mod cache;
pub mod fetch;
pub mod lookup;
pub mod policy;
pub mod record;
pub mod tlsrpt;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, timeout_at};

use cache::{CachedPolicy, PolicyCache, PolicyStatus};
use fetch::PolicyClient;
use policy::Mode;
use record::{StsPublication, StsRecord};

/// How long one policy fetch may take, whatever the deadline of the probe that started it (a
/// fetch outlives a probe that gives up, so that the next probe finds the policy cached).
pub const FETCH_TIME_LIMIT: Duration = Duration::from_secs(10);

/// A domain whose MTA-STS policy is looked up: lower-case, without a trailing dot, a name and
/// not an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyDomain(String);

impl PolicyDomain {
    /// `name` as a policy domain; `None` for an IP literal or a malformed name.
    pub fn new(name: &str) -> Option<PolicyDomain> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 240
            && name.parse::<IpAddr>().is_err()
            && name.split('.').all(policy::is_ldh_label);
        valid.then(|| PolicyDomain(name.to_ascii_lowercase()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Name lookups, through whichever resolver the connector uses.
pub trait Resolve: Send + Sync {
    /// The TXT records at the absolute name `name`, each one's strings joined (RFC 8461 §3.1).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupFailure>> + Send;

    /// The addresses (A and AAAA) of the absolute name `name`.
    fn addresses(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, LookupFailure>> + Send;
}

/// Why a lookup gave no records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    /// The name does not exist, or has no record of the type (NXDOMAIN, NODATA).
    NotFound,
    /// No usable answer: SERVFAIL, REFUSED, a malformed name, no answer in time.
    Failed,
}

/// What the `_mta-sts` TXT lookup gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsLookup {
    /// An answer (which may say that no policy is published).
    Answer(StsPublication),
    /// No usable answer: a still-valid cached policy stays in force (RFC 8461 §3.3).
    Failed,
}

/// The MTA-STS state of one domain at one probe.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// What the TXT lookup said.
    pub record: StsLookup,
    /// What the cache holds for the domain after this lookup (empty unless a policy is
    /// published, or the lookup failed and a copy is cached).
    pub status: PolicyStatus,
}

impl Discovery {
    /// The policy in force, if any: a copy fetched for the published id, or a still-valid older
    /// copy while its refetch fails.
    pub fn policy(&self) -> Option<&CachedPolicy> {
        self.status.policy.as_deref()
    }

    /// The mode in force; `None` means `absent`.
    pub fn mode(&self) -> Option<Mode> {
        self.policy().map(|cached| cached.policy.mode)
    }

    /// The `mode` label of `mailflow_mta_sts_policy_mode`.
    pub fn mode_label(&self) -> &'static str {
        self.mode().map_or("absent", Mode::as_str)
    }

    /// `mailflow_mta_sts_policy_fetch_success`: whether the last fetch succeeded (a copy served
    /// from the cache counts as the fetch that filled it; a first fetch still running counts as
    /// not yet succeeded). `None` where no `v=STSv1` record is published. Several `v=STSv1`
    /// records or a malformed one count as a publication that cannot be fetched.
    pub fn fetch_success(&self) -> Option<bool> {
        match &self.record {
            StsLookup::Answer(StsPublication::NotPublished) => None,
            StsLookup::Answer(StsPublication::Several | StsPublication::Invalid(_)) => Some(false),
            StsLookup::Answer(StsPublication::Published(_)) => Some(self.status.last_fetch_ok()),
            StsLookup::Failed => self
                .status
                .last_fetch
                .as_ref()
                .map(|attempt| attempt.result.is_ok()),
        }
    }
}

/// Looks up the MTA-STS policy of `domain`: reads its `_mta-sts` TXT record through
/// `resolver`, then takes the policy from `cache`, which fetches it with `client` when it holds
/// no current copy. Waits for a fetch until `deadline` at most; a fetch still running then
/// completes in the background (within [`FETCH_TIME_LIMIT`]) and fills the cache. `now` is the
/// wall-clock time of the probe.
pub async fn discover<R>(
    domain: &PolicyDomain,
    resolver: &R,
    client: &PolicyClient,
    cache: &PolicyCache,
    now: SystemTime,
    deadline: Instant,
) -> Discovery
where
    R: Resolve + Clone + 'static,
{
    let name = format!("_mta-sts.{domain}");
    let record = match timeout_at(deadline, resolver.txt(&name)).await {
        Ok(Ok(records)) => StsLookup::Answer(StsPublication::from_txt(&records)),
        Ok(Err(LookupFailure::NotFound)) => StsLookup::Answer(StsPublication::NotPublished),
        Ok(Err(LookupFailure::Failed)) | Err(_) => StsLookup::Failed,
    };
    let status = match &record {
        StsLookup::Answer(StsPublication::Published(StsRecord { id })) => {
            let fetch = {
                let (client, resolver, domain) = (client.clone(), resolver.clone(), domain.clone());
                move || async move {
                    let limit = Instant::now() + FETCH_TIME_LIMIT;
                    client.fetch(&domain, &resolver, limit).await
                }
            };
            cache.policy(domain, id, now, deadline, fetch).await
        }
        StsLookup::Failed => cache.cached(domain, now),
        StsLookup::Answer(
            StsPublication::NotPublished | StsPublication::Several | StsPublication::Invalid(_),
        ) => PolicyStatus::default(),
    };
    Discovery { record, status }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_domains_are_normalised_names() {
        let domain = PolicyDomain::new("Example.COM.").expect("a domain");
        assert_eq!(domain.as_str(), "example.com");
        assert_eq!(domain.to_string(), "example.com");
        for bad in [
            "",
            ".",
            "192.0.2.1",
            "::1",
            "a..b",
            "-a.example",
            "a_b.example",
            "a b",
        ] {
            assert_eq!(PolicyDomain::new(bad), None, "{bad:?}");
        }
    }
}
