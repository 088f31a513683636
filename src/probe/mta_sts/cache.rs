//! The policy cache, kept the way a sending server keeps it (RFC 8461 §3.3, §5.1):
//! - one entry per policy domain, shared by every connector delivering to that domain, and
//!   independent of the configuration (the exporter holds it across reloads);
//! - a policy is used for its `max_age` from its fetch; it is refetched when the `_mta-sts`
//!   record announces another `id`, or when the copy has expired;
//! - a failed refetch leaves a still-valid copy in force;
//! - one fetch per domain at a time: probes asking meanwhile wait for that fetch (up to their own
//!   deadline) instead of starting their own; a fetch runs as its own task, so it completes and
//!   fills the cache even when the probe that started it gives up;
//! - no fetch starts within [`CacheSettings::min_fetch_interval`] of the previous one for the
//!   same domain, whatever happened to it, so a failing policy host is not asked once per scrape;
//!   a copy is kept at least that long, even when its `max_age` is shorter.
//!
//! Wall-clock time is an argument of every call, so that expiry is tested without waiting.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

use super::PolicyDomain;
use super::fetch::FetchFailure;
use super::policy::Policy;

/// How the cache paces fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The shortest time between two fetch starts for one domain.
    pub min_fetch_interval: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            min_fetch_interval: Duration::from_secs(60),
        }
    }
}

/// Policies by domain. Hold it for the life of the process.
#[derive(Debug, Default)]
pub struct PolicyCache {
    settings: CacheSettings,
    entries: Mutex<HashMap<PolicyDomain, Arc<Mutex<Entry>>>>,
}

/// A policy as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The policy itself (mode, `max_age`, `mx` patterns).
    pub policy: Policy,
    /// The `id` of the `_mta-sts` record it was fetched under.
    pub id: String,
    /// When the fetch started.
    pub fetched_at: SystemTime,
    /// When the copy expires: `fetched_at` + `max_age`.
    pub expires_at: SystemTime,
    /// The id of the copy this one replaced, when that copy held the very same policy: the
    /// record announced a new id but the policy host still serves the old policy.
    pub same_policy_as: Option<String>,
}

/// One fetch of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchAttempt {
    /// The `id` the record announced when the fetch started.
    pub id: String,
    /// When the fetch started.
    pub at: SystemTime,
    /// How it ended.
    pub result: Result<(), FetchFailure>,
}

/// What the cache holds for a domain at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    /// The policy in force: the newest fetched copy, while it is kept.
    pub policy: Option<Arc<CachedPolicy>>,
    /// The last fetch that ended.
    pub last_fetch: Option<FetchAttempt>,
    /// A fetch was still running when the caller stopped waiting.
    pub fetching: bool,
}

impl PolicyStatus {
    /// Whether the last fetch that ended succeeded (false before any has ended).
    pub fn last_fetch_ok(&self) -> bool {
        self.last_fetch
            .as_ref()
            .is_some_and(|attempt| attempt.result.is_ok())
    }
}

/// The cache's state for one domain.
#[derive(Debug, Default)]
struct Entry {
    /// The newest successfully fetched copy.
    policy: Option<Arc<CachedPolicy>>,
    /// The last fetch that ended.
    last_fetch: Option<FetchAttempt>,
    /// When the last fetch started (also while it runs).
    last_start: Option<SystemTime>,
    /// The running fetch: becomes `true` when it has ended.
    running: Option<watch::Receiver<bool>>,
}

impl PolicyCache {
    /// An empty cache pacing fetches with `settings`.
    pub fn new(settings: CacheSettings) -> PolicyCache {
        PolicyCache {
            settings,
            entries: Mutex::default(),
        }
    }

    /// The policy of `domain`, whose `_mta-sts` record announces `id`, at wall-clock time `now`.
    ///
    /// A copy fetched under `id` and still kept is returned at once, without any fetch. Else a
    /// fetch is started with `fetch` (unless one is running, or one started less than
    /// `min_fetch_interval` ago), and awaited until `deadline`.
    pub async fn policy<F, Fut>(
        &self,
        domain: &PolicyDomain,
        id: &str,
        now: SystemTime,
        deadline: Instant,
        fetch: F,
    ) -> PolicyStatus
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Policy, FetchFailure>> + Send + 'static,
    {
        let slot = self.slot(domain);
        let running = {
            let mut entry = lock(&slot);
            let current = entry
                .policy
                .as_ref()
                .is_some_and(|cached| cached.id == id && self.kept(cached, now));
            let paced = entry.last_start.is_some_and(|start| {
                now.duration_since(start)
                    .is_ok_and(|since| since < self.settings.min_fetch_interval)
            });
            if current {
                None
            } else if let Some(running) = &entry.running {
                Some(running.clone())
            } else if paced {
                None
            } else {
                Some(start_fetch(&slot, &mut entry, id, now, fetch()))
            }
        };
        if let Some(mut running) = running {
            let _ = timeout_at(deadline, running.wait_for(|ended| *ended)).await;
        }
        self.status(&slot, now)
    }

    /// What the cache holds for `domain` at `now`, without fetching: for a probe whose
    /// `_mta-sts` lookup failed, where a still-kept copy stays in force.
    pub fn cached(&self, domain: &PolicyDomain, now: SystemTime) -> PolicyStatus {
        let slot = lock(&self.entries).get(domain).cloned();
        slot.map(|slot| self.status(&slot, now)).unwrap_or_default()
    }

    /// Drops the entries of the domains for which `keep` is false (for example the domains no
    /// connector uses after a reload). A fetch still running completes into its dropped entry.
    pub fn retain(&self, mut keep: impl FnMut(&PolicyDomain) -> bool) {
        lock(&self.entries).retain(|domain, _| keep(domain));
    }

    /// How many domains the cache holds.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether the cache holds no domain.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `domain`, created empty if needed.
    fn slot(&self, domain: &PolicyDomain) -> Arc<Mutex<Entry>> {
        lock(&self.entries)
            .entry(domain.clone())
            .or_default()
            .clone()
    }

    /// The entry's state at `now`.
    fn status(&self, slot: &Mutex<Entry>, now: SystemTime) -> PolicyStatus {
        let entry = lock(slot);
        PolicyStatus {
            policy: entry.policy.clone().filter(|cached| self.kept(cached, now)),
            last_fetch: entry.last_fetch.clone(),
            fetching: entry.running.is_some(),
        }
    }

    /// Whether `cached` is still used at `now`: before its expiry, and in any case for
    /// `min_fetch_interval` after its fetch.
    fn kept(&self, cached: &CachedPolicy, now: SystemTime) -> bool {
        let floor = cached
            .fetched_at
            .checked_add(self.settings.min_fetch_interval)
            .unwrap_or(cached.fetched_at);
        now < cached.expires_at.max(floor)
    }
}

/// Starts `fetch` as its own task, recording it in `entry`; returns what ends with it.
fn start_fetch<Fut>(
    slot: &Arc<Mutex<Entry>>,
    entry: &mut Entry,
    id: &str,
    now: SystemTime,
    fetch: Fut,
) -> watch::Receiver<bool>
where
    Fut: Future<Output = Result<Policy, FetchFailure>> + Send + 'static,
{
    let (ended, running) = watch::channel(false);
    entry.running = Some(running.clone());
    entry.last_start = Some(now);
    let slot = slot.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let result = fetch.await;
        let mut entry = lock(&slot);
        entry.record(id, now, result);
        entry.running = None;
        drop(entry);
        let _ = ended.send(true);
    });
    running
}

impl Entry {
    /// Records the end of the fetch that started at `at` under `id`.
    fn record(&mut self, id: String, at: SystemTime, result: Result<Policy, FetchFailure>) {
        let outcome = match result {
            Ok(policy) => {
                let expires_at = at.checked_add(policy.max_age).unwrap_or(at);
                let same_policy_as = self
                    .policy
                    .as_ref()
                    .filter(|old| old.id != id && old.policy == policy)
                    .map(|old| old.id.clone());
                self.policy = Some(Arc::new(CachedPolicy {
                    policy,
                    id: id.clone(),
                    fetched_at: at,
                    expires_at,
                    same_policy_as,
                }));
                Ok(())
            }
            Err(failure) => Err(failure),
        };
        self.last_fetch = Some(FetchAttempt {
            id,
            at,
            result: outcome,
        });
    }
}

/// Locks `mutex`; a panic elsewhere while it was held cannot leave an entry half-written (each
/// update is a few plain assignments), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
