//! The running exporter: the configuration in force and its probe engine (swapped whole on
//! reload), the web configuration, and probing under them. It gathers the parts that each do one
//! job: [`InFlight`] shares probes between scrapes, [`State`] remembers every connector's history
//! and [`StateSaver`] keeps it on disk, [`QueueCache`] reads the Postfix queue, and
//! [`OwnMetrics`] counts what happens.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::config::{self, Config, ConfigError};
use crate::inflight::InFlight;
use crate::metrics::{Format, OwnMetrics, ProbeActivity};
use crate::postfix::{QueueCache, QueueSummary};
use crate::probe::limits::{ConnectionCaps, Limiter};
use crate::probe::mta_sts::PolicyDomain;
use crate::probe::mta_sts::cache::{CacheSettings, PolicyCache};
use crate::probe::tls::TlsContext;
use crate::probe::{Engine, EngineError, Report, Throttled};
use crate::state::saver::StateSaver;
use crate::state::{ConnectorState, State};
use crate::web::{WebConfig, WebConfigError};

/// What the exporter is started with.
#[derive(Clone, Debug, Default)]
pub struct ExporterSettings {
    /// The configuration file (`--config.file`).
    pub config_file: PathBuf,
    /// The web configuration file (`--web.config.file`), if any.
    pub web_config_file: Option<PathBuf>,
    /// Where the state survives restarts (`--state.file`), if anywhere.
    pub state_file: Option<PathBuf>,
    /// The connection caps of probes (`--probe.max-connections*`).
    pub limits: ConnectionCaps,
    /// How MTA-STS policy fetches are paced (`--mta-sts.min-fetch-interval`).
    pub policy_cache: CacheSettings,
}

/// A configuration and the probe engine built from it.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Its probes.
    pub engine: Arc<Engine>,
}

/// A finished probe with the connector's state right after it.
#[derive(Debug)]
pub struct FinishedProbe {
    /// What the probe found.
    pub report: Report,
    /// The connector's state once the probe was recorded.
    pub state: ConnectorState,
    /// When the probe finished.
    pub at: SystemTime,
}

/// What a scrape gets for one connector: its finished probe, or word that the exporter's own
/// connection caps kept the probe from running (no finding about the connector, which keeps its
/// state; the scrape fails instead).
pub type Probed = Result<Arc<FinishedProbe>, Throttled>;

/// Why a configuration could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The probes could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The web configuration file is unreadable or invalid.
    #[error(transparent)]
    Web(#[from] WebConfigError),
    /// The state file could not be read or set aside.
    #[error("cannot read the state file {path}: {source}")]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The exporter's shared state, behind every request.
pub struct Exporter {
    /// Where the configuration is read from, at start and on every reload.
    config_path: PathBuf,
    /// Where the web configuration is read from, if anywhere.
    web_config_path: Option<PathBuf>,
    /// The web configuration in force: TLS and basic auth of the exporter's own endpoint.
    web: RwLock<Arc<WebConfig>>,
    /// The TLS client setup that every engine shares (root store loaded once).
    tls: Arc<TlsContext>,
    /// The connection caps that every engine shares, across reloads.
    limiter: Arc<Limiter>,
    /// MTA-STS policies by domain, kept across reloads (as a sending server keeps them).
    policies: Arc<PolicyCache>,
    /// The configuration in force and its engine; replaced whole by a successful reload.
    loaded: RwLock<Arc<LoadedConfig>>,
    /// Counters, streaks and last successes of every configured connector.
    state: State,
    /// Keeps `state` in the state file, when there is one.
    saver: Option<StateSaver>,
    /// The exporter's own metrics.
    metrics: OwnMetrics,
    /// Probes running now, shared by the scrapes that come meanwhile.
    in_flight: Arc<InFlight<Engine, Option<Probed>>>,
    /// The last finished probe of every configured connector probed since start, for the status
    /// page and the explanation (each one is kept anyway until its scrapes are answered).
    last_probes: Mutex<HashMap<String, Arc<FinishedProbe>>>,
    /// The last reading of the Postfix queue.
    queue: QueueCache,
}

impl Exporter {
    /// Loads the configuration and the web configuration and builds the engine; with a state
    /// file, restores the connectors' state from it (a damaged file is set aside with a warning).
    pub fn load(settings: ExporterSettings, tls: Arc<TlsContext>) -> Result<Self, LoadError> {
        let ExporterSettings {
            config_file: config_path,
            web_config_file: web_config_path,
            state_file,
            limits,
            policy_cache,
        } = settings;
        let limiter = Arc::new(Limiter::new(limits));
        let policies = Arc::new(PolicyCache::new(policy_cache));
        let loaded = build(&config_path, &tls, &limiter, &policies)?;
        let web = load_web(web_config_path.as_deref())?;
        let metrics = OwnMetrics::default();
        metrics.config_loaded(true, SystemTime::now());
        let state = State::default();
        let saver = state_file.map(StateSaver::new);
        if let Some(saver) = &saver {
            saver
                .restore(&state)
                .map_err(|source| LoadError::StateFile {
                    path: saver.path().to_owned(),
                    source,
                })?;
            state.retain(connector_names(&loaded.config));
        }
        Ok(Exporter {
            config_path,
            web_config_path,
            web: RwLock::new(Arc::new(web)),
            tls,
            limiter,
            policies,
            loaded: RwLock::new(Arc::new(loaded)),
            state,
            saver,
            metrics,
            in_flight: Arc::default(),
            last_probes: Mutex::default(),
            queue: QueueCache::default(),
        })
    }

    /// Saves the state soon after every change, off the scrape path (see
    /// [`StateSaver::keep_saved`]). Runs forever; returns at once without a state file.
    pub async fn keep_state_saved(self: Arc<Self>) {
        if let Some(saver) = &self.saver {
            saver.keep_saved(&self.state).await;
        }
    }

    /// Writes the state file now, if there is one, logging a failure.
    pub async fn save_state(&self) {
        if let Some(saver) = &self.saver {
            saver.save(&self.state).await;
        }
    }

    /// Reads the configuration and the web configuration again. On error both running ones
    /// stay in force.
    pub fn reload(&self) -> Result<(), LoadError> {
        let reloaded = build(&self.config_path, &self.tls, &self.limiter, &self.policies)
            .and_then(|loaded| load_web(self.web_config_path.as_deref()).map(|web| (loaded, web)));
        match reloaded {
            Ok((loaded, web)) => {
                *self.web.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(web);
                self.state.retain(connector_names(&loaded.config));
                self.metrics
                    .retain_connectors(connector_names(&loaded.config));
                self.state_changed();
                let domains: HashSet<&PolicyDomain> = loaded.engine.policy_domains().collect();
                self.policies.retain(|domain| domains.contains(domain));
                let names: HashSet<&str> = connector_names(&loaded.config).collect();
                self.lock_last_probes()
                    .retain(|name, _| names.contains(name.as_str()));
                *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                self.metrics.config_loaded(true, SystemTime::now());
                tracing::info!(file = %self.config_path.display(), "configuration reloaded");
                Ok(())
            }
            Err(error) => {
                self.metrics.config_loaded(false, SystemTime::now());
                tracing::error!(file = %self.config_path.display(), error = %error, "configuration reload failed; keeping the running configuration");
                Err(error)
            }
        }
    }

    /// The Postfix queue counted per connector: a reading younger than `max_age`, else a new
    /// one. `None` without `postfix_queue`, or when reading failed (logged and counted in the
    /// exporter's metrics: a failing queue never fails a scrape).
    pub async fn postfix_queue(&self, max_age: Duration) -> Option<Arc<QueueSummary>> {
        let loaded = self.loaded();
        self.queue
            .summary(&loaded.config, max_age, &self.metrics)
            .await
    }

    /// The web configuration in force.
    pub fn web(&self) -> Arc<WebConfig> {
        self.web
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The configuration in force.
    pub fn loaded(&self) -> Arc<LoadedConfig> {
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state of `connector`.
    pub fn state_of(&self, connector: &str) -> Option<ConnectorState> {
        self.state.get(connector)
    }

    /// The last finished probe of `connector`, if it was probed since start.
    pub fn last_probe(&self, connector: &str) -> Option<Arc<FinishedProbe>> {
        self.lock_last_probes().get(connector).cloned()
    }

    /// The exporter's own metrics.
    pub fn metrics(&self) -> &OwnMetrics {
        &self.metrics
    }

    /// The exposition of `/metrics` in `format`: the exporter's own metrics, with what its
    /// probes are doing now, and the Postfix queue (a reading younger than `queue_max_age`) when
    /// one is configured.
    pub async fn own_metrics(&self, format: Format, queue_max_age: Duration) -> String {
        self.metrics.observe_probes(ProbeActivity {
            in_flight: self.in_flight.running(),
            slot_waits: self.limiter.slot_waits(),
        });
        let queue = self.postfix_queue(queue_max_age).await;
        let loaded = self.loaded();
        self.metrics
            .encode(format, &loaded.config, queue.as_deref())
    }

    /// Probes `connector` by `deadline`, joining a probe of it already in flight when that one
    /// ends in time. `None` for an unknown connector (and then nothing is sent anywhere).
    pub async fn probe(self: &Arc<Self>, connector: &str, deadline: Instant) -> Option<Probed> {
        let loaded = self.loaded();
        if !loaded.engine.has(connector) {
            return None;
        }
        let start = || {
            self.clone()
                .run_probe(loaded.engine.clone(), connector.to_owned(), deadline)
        };
        self.in_flight
            .join_or_start(connector, &loaded.engine, deadline, start)
            .await
    }

    /// Probes every connector concurrently by `deadline`.
    /// At most as many connectors are in progress at once as probes may hold connections, so
    /// that a scrape of thousands of connectors does not keep thousands of waiting probes (each
    /// a few KiB) in memory; the results come back in configuration order.
    pub async fn probe_all(self: &Arc<Self>, deadline: Instant) -> Vec<Probed> {
        let loaded = self.loaded();
        let names: Vec<(usize, String)> = connector_names(&loaded.config)
            .map(str::to_owned)
            .enumerate()
            .collect();
        let mut probed: Vec<(usize, Probed)> = stream::iter(names)
            .map(|(index, name)| async move {
                self.probe(&name, deadline)
                    .await
                    .map(|probed| (index, probed))
            })
            .buffer_unordered(self.limiter.limits().total)
            .filter_map(std::future::ready)
            .collect()
            .await;
        probed.sort_unstable_by_key(|(index, _)| *index);
        probed.into_iter().map(|(_, probed)| probed).collect()
    }

    /// Probes `connector` with `engine` and records the outcome in its state; a probe that the
    /// connection caps kept from running is only counted, in the exporter's own metrics.
    async fn run_probe(
        self: Arc<Self>,
        engine: Arc<Engine>,
        connector: String,
        deadline: Instant,
    ) -> Option<Probed> {
        let report = match engine.probe(&connector, deadline).await? {
            Ok(report) => report,
            Err(throttled) => {
                self.metrics.probe_throttled(&connector);
                return Some(Err(throttled));
            }
        };
        let at = SystemTime::now();
        // A connector that a reload removed meanwhile keeps no state: it would come back.
        let configured = self.loaded().engine.has(&connector);
        let state = if configured {
            let state = self.state.record(&connector, &report.outcome, at);
            self.state_changed();
            state
        } else {
            ConnectorState::default()
        };
        if let Err(failure) = &report.outcome {
            tracing::debug!(connector = %connector, code = %failure.code(), phase = %failure.phase(), reason = %failure.reason(), "probe failed");
        }
        let finished = Arc::new(FinishedProbe { report, state, at });
        if configured {
            self.lock_last_probes().insert(connector, finished.clone());
        }
        Some(Ok(finished))
    }

    /// The last probes. A panic while holding the lock cannot leave the map half-updated, so a
    /// poisoned lock is taken over.
    fn lock_last_probes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<FinishedProbe>>> {
        self.last_probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The probes in flight, for the tests that watch them.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> &InFlight<Engine, Option<Probed>> {
        &self.in_flight
    }

    /// Tells the state file's saver, if any, that the state changed.
    fn state_changed(&self) {
        if let Some(saver) = &self.saver {
            saver.changed();
        }
    }
}

/// The names of `config`'s connectors, in order.
fn connector_names(config: &Config) -> impl Iterator<Item = &str> + Clone {
    config.connectors.iter().map(|c| c.name.as_str())
}

/// The web configuration at `path`, or plain HTTP without authentication when there is none.
fn load_web(path: Option<&Path>) -> Result<WebConfig, LoadError> {
    path.map_or_else(|| Ok(WebConfig::default()), |p| Ok(WebConfig::load(p)?))
}

/// Reads the configuration at `config_path` and builds its engine.
fn build(
    config_path: &Path,
    tls: &Arc<TlsContext>,
    limiter: &Arc<Limiter>,
    policies: &Arc<PolicyCache>,
) -> Result<LoadedConfig, LoadError> {
    let config = config::load(config_path)?;
    let engine = Engine::new(&config, tls.clone(), limiter.clone(), policies.clone())?;
    let engine = Arc::new(engine);
    Ok(LoadedConfig {
        config: Arc::new(config),
        engine,
    })
}
