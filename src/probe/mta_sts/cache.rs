//! The policy cache, kept the way a sending server keeps it (RFC 8461 §3.3, §5.1):
//! - one entry per policy domain, shared by every connector delivering to that domain, and
//!   independent of the configuration (the exporter holds it across reloads);
//! - a policy is used for its `max_age` from its fetch; it is refetched when the `_mta-sts`
//!   record announces another `id`, or when the copy has expired;
//! - a copy past half its `max_age` is refetched in the background while it stays in force (as
//!   senders are advised to refresh a policy before it expires), so that a policy host that
//!   stopped serving is seen, and reported, while the copy is still valid;
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
    /// The id of an earlier copy that held the very same policy, when the record has announced
    /// a new id since and the policy host still serves the old policy (kept across refetches of
    /// the same id while the policy stays the same).
    pub same_policy_as: Option<String>,
}

impl CachedPolicy {
    /// When a refetch starts in the background: half way from the fetch to the expiry.
    pub fn refresh_at(&self) -> SystemTime {
        let lifetime = self
            .expires_at
            .duration_since(self.fetched_at)
            .unwrap_or_default();
        self.fetched_at + lifetime / 2
    }
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
    /// A copy fetched under `id` and still kept is returned at once; past its refresh time (see
    /// [`CachedPolicy::refresh_at`]) a fetch also starts in the background, unless one is
    /// running or one started less than `min_fetch_interval` ago. Without such a copy a fetch is
    /// started with `fetch` (under the same conditions), and awaited until `deadline`.
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
            // A fetch task that ended without recording (it panicked, or the runtime is shutting
            // down) dropped its sender: it is not running any more.
            if entry
                .running
                .as_ref()
                .is_some_and(|running| running.has_changed().is_err())
            {
                entry.running = None;
            }
            let current = entry
                .policy
                .as_ref()
                .filter(|cached| cached.id == id && self.kept(cached, now));
            let refresh_due = current.is_some_and(|cached| now >= cached.refresh_at());
            let paced = entry.last_start.is_some_and(|start| {
                now.duration_since(start)
                    .is_ok_and(|since| since < self.settings.min_fetch_interval)
            });
            if current.is_some() {
                if refresh_due && entry.running.is_none() && !paced {
                    // The copy stays in force meanwhile: nobody waits for this fetch.
                    start_fetch(&slot, &mut entry, id, now, fetch());
                }
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
            fetching: entry
                .running
                .as_ref()
                .is_some_and(|running| running.has_changed().is_ok()),
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
                    .filter(|old| old.policy == policy)
                    .and_then(|old| {
                        if old.id == id {
                            old.same_policy_as.clone()
                        } else {
                            Some(old.id.clone())
                        }
                    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::mta_sts::policy::Mode;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Fetch = Pin<Box<dyn Future<Output = Result<Policy, FetchFailure>> + Send>>;

    /// Counts fetches; each takes `delay` (tokio time) and ends with a clone of `result`.
    #[derive(Clone, Default)]
    struct Fetcher {
        count: Arc<AtomicUsize>,
    }

    impl Fetcher {
        fn serve(
            &self,
            result: Result<Policy, FetchFailure>,
            delay: Duration,
        ) -> impl FnOnce() -> Fetch + use<> {
            let count = self.count.clone();
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    result
                })
            }
        }

        fn count(&self) -> usize {
            self.count.load(Ordering::SeqCst)
        }
    }

    fn policy(mode: Mode, max_age: u64, mx: &str) -> Policy {
        Policy::parse(
            format!("version: STSv1\nmode: {mode}\nmax_age: {max_age}\nmx: {mx}\n").as_bytes(),
        )
        .expect("valid policy")
    }

    fn domain() -> PolicyDomain {
        PolicyDomain::new("example.test").expect("domain")
    }

    /// Wall-clock times as seconds after an arbitrary origin.
    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    const QUICK: Duration = Duration::from_millis(10);

    /// The policy of [`domain`] under TXT `id` at `now`, fetched by `fetch` if need be, with a
    /// deadline well ahead.
    async fn look_up<F, Fut>(
        cache: &PolicyCache,
        id: &str,
        now: SystemTime,
        fetch: F,
    ) -> PolicyStatus
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Policy, FetchFailure>> + Send + 'static,
    {
        cache.policy(&domain(), id, now, soon(), fetch).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_copy_is_served_without_fetching_until_it_expires() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let enforce = policy(Mode::Enforce, 3600, "mx.example.test");
        let first = look_up(
            &cache,
            "id1",
            at(0),
            fetcher.serve(Ok(enforce.clone()), QUICK),
        )
        .await;
        let cached = first.policy.clone().expect("fetched");
        assert_eq!(cached.policy, enforce);
        assert_eq!(cached.id, "id1");
        assert_eq!(cached.fetched_at, at(0));
        assert_eq!(cached.expires_at, at(3600));
        assert_eq!(cached.same_policy_as, None);
        assert!(first.last_fetch_ok());
        assert!(!first.fetching);
        for t in [1, 60, 1799] {
            let again = look_up(
                &cache,
                "id1",
                at(t),
                fetcher.serve(Err(FetchFailure::Connect), QUICK),
            )
            .await;
            assert_eq!(again.policy.as_deref(), Some(&*cached), "at {t}s");
            assert!(again.last_fetch_ok());
        }
        assert_eq!(fetcher.count(), 1, "served from the cache");
        let expired = look_up(
            &cache,
            "id1",
            at(3600),
            fetcher.serve(Ok(enforce.clone()), QUICK),
        )
        .await;
        assert_eq!(fetcher.count(), 2, "refetched on expiry");
        assert_eq!(expired.policy.expect("refetched").fetched_at, at(3600));
    }

    #[tokio::test(start_paused = true)]
    async fn past_half_its_max_age_a_copy_is_refreshed_in_the_background() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let enforce = policy(Mode::Enforce, 3600, "mx.example.test");
        look_up(
            &cache,
            "id1",
            at(0),
            fetcher.serve(Ok(enforce.clone()), QUICK),
        )
        .await;
        let started = Instant::now();
        let refreshing = cache
            .policy(
                &domain(),
                "id1",
                at(1800),
                soon(),
                fetcher.serve(Err(FetchFailure::Status(503)), Duration::from_secs(5)),
            )
            .await;
        assert_eq!(Instant::now(), started, "nobody waits for a refresh");
        assert_eq!(fetcher.count(), 2, "a refresh started");
        assert!(refreshing.fetching);
        assert_eq!(refreshing.policy.expect("still in force").fetched_at, at(0));
        tokio::time::sleep(Duration::from_secs(6)).await;
        let failed = cache.cached(&domain(), at(1810));
        assert_eq!(
            failed
                .policy
                .as_ref()
                .expect("a failed refresh keeps the copy")
                .fetched_at,
            at(0)
        );
        assert!(!failed.last_fetch_ok(), "the failure is seen before expiry");
        let paced = look_up(
            &cache,
            "id1",
            at(1830),
            fetcher.serve(Ok(enforce.clone()), QUICK),
        )
        .await;
        assert_eq!(fetcher.count(), 2, "refreshes are paced too");
        assert!(!paced.last_fetch_ok());
        let refreshed = look_up(&cache, "id1", at(1860), fetcher.serve(Ok(enforce), QUICK)).await;
        assert_eq!(fetcher.count(), 3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let renewed = cache.cached(&domain(), at(1861));
        assert_eq!(
            renewed.policy.as_ref().expect("renewed").expires_at,
            at(1860 + 3600)
        );
        assert!(renewed.last_fetch_ok());
        assert_eq!(
            refreshed.policy.expect("served meanwhile").fetched_at,
            at(0),
            "the refreshing probe was served the copy in force"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_id_refetches_and_a_failed_refetch_keeps_the_valid_copy() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let old = policy(Mode::Enforce, 3600, "old.example.test");
        look_up(&cache, "id1", at(0), fetcher.serve(Ok(old.clone()), QUICK)).await;
        let failed = look_up(
            &cache,
            "id2",
            at(100),
            fetcher.serve(Err(FetchFailure::Status(404)), QUICK),
        )
        .await;
        assert_eq!(fetcher.count(), 2, "the new id was fetched");
        let kept = failed
            .policy
            .clone()
            .expect("the valid copy stays in force");
        assert_eq!((kept.id.as_str(), &kept.policy), ("id1", &old));
        assert_eq!(
            failed.last_fetch,
            Some(FetchAttempt {
                id: "id2".into(),
                at: at(100),
                result: Err(FetchFailure::Status(404))
            })
        );
        assert!(!failed.last_fetch_ok());
        let new = policy(Mode::Testing, 600, "new.example.test");
        let refetched = look_up(
            &cache,
            "id2",
            at(200),
            fetcher.serve(Ok(new.clone()), QUICK),
        )
        .await;
        assert_eq!(fetcher.count(), 3);
        let current = refetched.policy.expect("new copy");
        assert_eq!((current.id.as_str(), &current.policy), ("id2", &new));
        assert_eq!(current.same_policy_as, None, "the policy changed");
        let lapsed = look_up(
            &cache,
            "id3",
            at(4000),
            fetcher.serve(Err(FetchFailure::Timeout), QUICK),
        )
        .await;
        assert_eq!(
            lapsed.policy, None,
            "an expired copy is not kept past a failed refetch"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_id_serving_the_same_policy_is_noted() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let same = policy(Mode::Enforce, 3600, "mx.example.test");
        look_up(&cache, "id1", at(0), fetcher.serve(Ok(same.clone()), QUICK)).await;
        let status = look_up(
            &cache,
            "id2",
            at(61),
            fetcher.serve(Ok(same.clone()), QUICK),
        )
        .await;
        let cached = status.policy.expect("fetched");
        assert_eq!(cached.id, "id2");
        assert_eq!(cached.same_policy_as.as_deref(), Some("id1"));
        let expired = look_up(
            &cache,
            "id2",
            at(61 + 3600),
            fetcher.serve(Ok(same.clone()), QUICK),
        )
        .await;
        assert_eq!(
            expired.policy.expect("refetched").same_policy_as.as_deref(),
            Some("id1"),
            "still the policy of id1"
        );
        let changed = policy(Mode::Enforce, 3600, "new.example.test");
        let mended = look_up(
            &cache,
            "id2",
            at(61 + 7200),
            fetcher.serve(Ok(changed), QUICK),
        )
        .await;
        assert_eq!(mended.policy.expect("refetched").same_policy_as, None);
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_are_paced_whatever_happened_to_the_last_one() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let failing = || fetcher.serve(Err(FetchFailure::Connect), QUICK);
        cache
            .policy(&domain(), "id1", at(0), soon(), failing())
            .await;
        for t in [1, 30, 59] {
            let status = cache
                .policy(&domain(), "id1", at(t), soon(), failing())
                .await;
            assert_eq!(status.last_fetch.expect("attempted").at, at(0));
        }
        let status = cache
            .policy(&domain(), "id2", at(59), soon(), failing())
            .await;
        assert_eq!(
            fetcher.count(),
            1,
            "a failing host is not asked once per probe, new id or not"
        );
        assert_eq!(status.last_fetch.expect("attempted").id, "id1");
        cache
            .policy(&domain(), "id2", at(60), soon(), failing())
            .await;
        assert_eq!(fetcher.count(), 2, "asked again after the interval");
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_max_age_is_kept_for_the_fetch_interval() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let brief = policy(Mode::Enforce, 0, "mx.example.test");
        let first = look_up(
            &cache,
            "id1",
            at(0),
            fetcher.serve(Ok(brief.clone()), QUICK),
        )
        .await;
        assert_eq!(first.policy.expect("fetched").expires_at, at(0));
        let later = look_up(
            &cache,
            "id1",
            at(59),
            fetcher.serve(Ok(brief.clone()), QUICK),
        )
        .await;
        assert!(later.policy.is_some(), "kept for the fetch interval");
        assert_eq!(fetcher.count(), 1);
        look_up(&cache, "id1", at(60), fetcher.serve(Ok(brief), QUICK)).await;
        assert_eq!(fetcher.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_fetch() {
        let cache = Arc::new(PolicyCache::default());
        let fetcher = Fetcher::default();
        let enforce = policy(Mode::Enforce, 3600, "mx.example.test");
        let probes: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let fetch = fetcher.serve(Ok(enforce.clone()), Duration::from_secs(2));
                tokio::spawn(
                    async move { cache.policy(&domain(), "id1", at(0), soon(), fetch).await },
                )
            })
            .collect();
        for probe in probes {
            let status = probe.await.expect("probe task");
            assert_eq!(status.policy.expect("shared fetch").policy, enforce);
        }
        assert_eq!(fetcher.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_stops_waiting_at_its_deadline_and_the_fetch_still_fills_the_cache() {
        let cache = PolicyCache::default();
        let fetcher = Fetcher::default();
        let enforce = policy(Mode::Enforce, 3600, "mx.example.test");
        let started = Instant::now();
        let impatient = cache
            .policy(
                &domain(),
                "id1",
                at(0),
                started + Duration::from_secs(1),
                fetcher.serve(Ok(enforce.clone()), Duration::from_secs(5)),
            )
            .await;
        assert_eq!(
            Instant::now() - started,
            Duration::from_secs(1),
            "waited until its deadline only"
        );
        assert_eq!(impatient.policy, None);
        assert!(impatient.fetching);
        assert!(!impatient.last_fetch_ok(), "no fetch has succeeded yet");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let later = cache.cached(&domain(), at(10));
        assert_eq!(
            later.policy.expect("filled in the background").policy,
            enforce
        );
        assert!(!later.fetching);
        assert_eq!(fetcher.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_dies_does_not_block_the_domain() {
        let cache = PolicyCache::default();
        let dying = || async { panic!("a fetch that dies") };
        let first = cache.policy(&domain(), "id1", at(0), soon(), dying).await;
        assert_eq!(
            first,
            PolicyStatus::default(),
            "nothing recorded, nothing running"
        );
        let fetcher = Fetcher::default();
        let enforce = policy(Mode::Enforce, 3600, "mx.example.test");
        let next = look_up(
            &cache,
            "id1",
            at(60),
            fetcher.serve(Ok(enforce.clone()), QUICK),
        )
        .await;
        assert_eq!(fetcher.count(), 1, "a new fetch started");
        assert_eq!(next.policy.expect("fetched").policy, enforce);
    }

    #[tokio::test(start_paused = true)]
    async fn cached_reads_without_fetching_and_retain_forgets_domains() {
        let cache = PolicyCache::new(CacheSettings {
            min_fetch_interval: Duration::from_secs(5),
        });
        assert_eq!(cache.cached(&domain(), at(0)), PolicyStatus::default());
        assert!(cache.is_empty());
        let fetcher = Fetcher::default();
        look_up(
            &cache,
            "id1",
            at(0),
            fetcher.serve(Ok(policy(Mode::None, 100, "a.test")), QUICK),
        )
        .await;
        assert!(cache.cached(&domain(), at(99)).policy.is_some());
        assert_eq!(cache.cached(&domain(), at(100)).policy, None, "expired");
        assert_eq!(cache.len(), 1);
        cache.retain(|d| d.as_str() != "example.test");
        assert!(cache.is_empty());
        assert_eq!(cache.cached(&domain(), at(1)), PolicyStatus::default());
    }
}
