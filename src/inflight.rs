//! Probes in flight, shared between concurrent scrapes: a scrape of a connector that is being
//! probed joins that probe, when the probe runs under the same configuration and ends by the
//! scrape's deadline, instead of starting another. Two Prometheus servers scraping the same
//! connector cost one probe, and the connector's counters count it once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

/// The probes running now, by connector name. A probe runs under a generation `G` (the probe
/// engine of a configuration: after a reload, scrapes don't join probes of the old one) and
/// resolves to `T`, or to `T::default()` when its task died (a panic, or the runtime shutting
/// down).
pub struct InFlight<G, T> {
    /// The probe running now for each connector being probed.
    running: Mutex<HashMap<String, Running<G, T>>>,
    /// Source of the ids that tell a probe from a later one of the same connector.
    next_id: AtomicU64,
    /// Probe tasks running now, also those that a later probe of their connector replaced.
    tasks: Arc<AtomicUsize>,
    /// Woken when a scrape joins a probe in flight, for the tests that wait for it.
    #[cfg(test)]
    pub(crate) joined: tokio::sync::Notify,
}

/// A probe in flight that later scrapes may join.
struct Running<G, T> {
    /// Tells this probe from a later one of the same connector.
    id: u64,
    /// When the probe gives up at the latest.
    deadline: Instant,
    /// The generation it runs under.
    under: Arc<G>,
    /// Its outcome, for every scrape that waits for it.
    probe: Shared<BoxFuture<'static, T>>,
}

impl<G, T> Default for InFlight<G, T> {
    fn default() -> Self {
        InFlight {
            running: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            tasks: Arc::default(),
            #[cfg(test)]
            joined: tokio::sync::Notify::new(),
        }
    }
}

impl<G, T> InFlight<G, T>
where
    G: Send + Sync + 'static,
    T: Clone + Default + Send + Sync + 'static,
{
    /// The outcome of a probe of `connector` under `under` that ends by `deadline`: the probe in
    /// flight when it runs under the same generation and ends by then, else a new one, `start()`.
    /// A new probe runs as its own task, so it ends (and records its outcome) even when every
    /// scrape waiting for it gave up.
    pub async fn join_or_start<F>(
        self: &Arc<Self>,
        connector: &str,
        under: &Arc<G>,
        deadline: Instant,
        start: impl FnOnce() -> F,
    ) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let probe = {
            let mut running = self.lock();
            match running.get(connector) {
                Some(probe) if probe.deadline <= deadline && Arc::ptr_eq(&probe.under, under) => {
                    #[cfg(test)]
                    self.joined.notify_one();
                    probe.probe.clone()
                }
                _ => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let probe = self.spawn(connector, id, start());
                    running.insert(
                        connector.to_owned(),
                        Running {
                            id,
                            deadline,
                            under: under.clone(),
                            probe: probe.clone(),
                        },
                    );
                    probe
                }
            }
        };
        probe.await
    }

    /// How many probes are running now.
    pub fn running(&self) -> usize {
        self.tasks.load(Ordering::Relaxed)
    }

    /// Runs `probe` as a task that forgets itself when done, and shares its outcome.
    fn spawn<F>(
        self: &Arc<Self>,
        connector: &str,
        id: u64,
        probe: F,
    ) -> Shared<BoxFuture<'static, T>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let in_flight = self.clone();
        let connector = connector.to_owned();
        let counted = TaskCount::new(self.tasks.clone());
        let task = tokio::spawn(async move {
            let _counted = counted;
            let outcome = probe.await;
            in_flight.finish(&connector, id);
            outcome
        });
        // A task that panicked or was cancelled at shutdown has nothing to share.
        async move { task.await.unwrap_or_default() }
            .boxed()
            .shared()
    }

    /// Forgets the probe `id` of `connector`, unless a later one replaced it.
    fn finish(&self, connector: &str, id: u64) {
        let mut running = self.lock();
        if running.get(connector).is_some_and(|p| p.id == id) {
            running.remove(connector);
        }
    }

    /// The probes in flight. A panic while holding the lock cannot leave the map half-updated,
    /// so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running<G, T>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts one probe task for as long as it lives, also when it panics or is dropped.
struct TaskCount(Arc<AtomicUsize>);

impl TaskCount {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        TaskCount(count)
    }
}

impl Drop for TaskCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// Probes started, and the switch that ends the probe started last with its value.
    #[derive(Default)]
    struct Probes {
        started: AtomicUsize,
        finish: Mutex<Option<oneshot::Sender<u32>>>,
    }

    impl Probes {
        /// A probe that ends when `end` is called.
        fn start(&self) -> impl Future<Output = u32> + Send + 'static {
            self.started.fetch_add(1, Ordering::SeqCst);
            let (finish, finished) = oneshot::channel();
            *self.finish.lock().expect("lock") = Some(finish);
            async move { finished.await.unwrap_or(0) }
        }

        fn end(&self, value: u32) {
            let finish = self.finish.lock().expect("lock").take().expect("a probe");
            finish.send(value).expect("someone waits");
        }

        fn started(&self) -> usize {
            self.started.load(Ordering::SeqCst)
        }
    }

    /// Lets the other tasks run until `done` (a bounded number of times).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened");
    }

    fn later(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test]
    async fn a_scrape_joins_a_probe_that_ends_in_time_under_the_same_generation() {
        let in_flight = Arc::new(InFlight::<u8, u32>::default());
        let probes = Arc::new(Probes::default());
        let generation = Arc::new(1);
        let deadline = later(10);
        let first = tokio::spawn({
            let (in_flight, probes, generation) =
                (in_flight.clone(), probes.clone(), generation.clone());
            async move {
                in_flight
                    .join_or_start("a", &generation, deadline, || probes.start())
                    .await
            }
        });
        until(|| probes.started() == 1).await;
        // Same deadline, and a later one: both join; an earlier deadline would not.
        let second = in_flight.join_or_start("a", &generation, deadline, || probes.start());
        let third = in_flight.join_or_start("a", &generation, later(20), || probes.start());
        let (second, third, ()) = tokio::join!(second, third, async { probes.end(7) });
        assert_eq!((first.await.expect("task"), second, third), (7, 7, 7));
        assert_eq!(probes.started(), 1);
    }

    #[tokio::test]
    async fn an_earlier_deadline_or_another_generation_starts_a_new_probe() {
        let in_flight = Arc::new(InFlight::<u8, u32>::default());
        let probes = Probes::default();
        let (old, new) = (Arc::new(1), Arc::new(2));
        let long = in_flight.join_or_start("a", &old, later(20), || probes.start());
        tokio::pin!(long);
        // Poll it once so that it is in flight.
        assert!(long.as_mut().now_or_never().is_none());
        let early = in_flight.join_or_start("a", &old, later(10), || probes.start());
        let (early, ()) = tokio::join!(early, async { probes.end(1) });
        assert_eq!(early, 1);
        assert_eq!(probes.started(), 2);
        let reloaded = in_flight.join_or_start("a", &new, later(30), || probes.start());
        let (reloaded, ()) = tokio::join!(reloaded, async { probes.end(2) });
        assert_eq!(reloaded, 2);
        assert_eq!(probes.started(), 3);
        // The first probe's switch was replaced, so its outcome is the default.
        assert_eq!(long.await, 0);
    }

    #[tokio::test]
    async fn a_probe_ends_even_when_nobody_waits_and_is_then_forgotten() {
        let in_flight = Arc::new(InFlight::<u8, u32>::default());
        let probes = Probes::default();
        let generation = Arc::new(1);
        let mut abandoned =
            Box::pin(in_flight.join_or_start("a", &generation, later(10), || probes.start()));
        assert!(abandoned.as_mut().now_or_never().is_none());
        drop(abandoned);
        probes.end(5);
        until(|| in_flight.lock().is_empty()).await;
        let next = in_flight.join_or_start("a", &generation, later(10), || probes.start());
        let (next, ()) = tokio::join!(next, async { probes.end(6) });
        assert_eq!(next, 6);
        assert_eq!(probes.started(), 2);
    }
}
