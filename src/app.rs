//! The running exporter: the loaded configuration and its probe engine (swapped whole on reload),
//! the connectors' state, and the probes in flight, shared by concurrent scrapes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use futures_util::stream::{self, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{self, Config, ConfigError};
use crate::metrics::ExporterMetrics;
use crate::postfix::{self, QueueSummary};
use crate::probe::limits::{ConnectionCaps, Limiter};
use crate::probe::tls::TlsContext;
use crate::probe::{Engine, EngineError, Report};
use crate::state::{ConnectorState, State};
use crate::state_file;
use crate::web::{WebConfig, WebConfigError};

/// How long after a change the state file is written, so a scrape round becomes one write.
const STATE_SAVE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// A configuration and the engine built from it.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Its probes.
    pub engine: Arc<Engine>,
}

/// A finished probe with the connector's state right after it.
#[derive(Debug)]
pub struct Probed {
    /// What the probe found.
    pub report: Report,
    /// The connector's state once the probe was recorded.
    pub state: ConnectorState,
    /// When the probe finished.
    pub at: SystemTime,
}

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

type SharedProbe = Shared<BoxFuture<'static, Option<Arc<Probed>>>>;

/// A probe in flight that later scrapes may join.
struct InFlight {
    id: u64,
    deadline: Instant,
    /// The engine (so the configuration) it runs under: after a reload, scrapes don't join it.
    engine: Arc<Engine>,
    probe: SharedProbe,
}

/// What the exporter is started with.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The configuration file (`--config.file`).
    pub config_file: PathBuf,
    /// The web configuration file (`--web.config.file`), if any.
    pub web_config_file: Option<PathBuf>,
    /// Where the state survives restarts (`--state.file`), if anywhere.
    pub state_file: Option<PathBuf>,
    /// The connection caps of probes.
    pub limits: ConnectionCaps,
}

/// The exporter's shared state.
pub struct App {
    /// Where the configuration is read from.
    config_path: PathBuf,
    /// Where the web configuration is read from, if anywhere.
    web_config_path: Option<PathBuf>,
    /// The web configuration in force: TLS and basic auth of the exporter's own endpoint.
    web: RwLock<Arc<WebConfig>>,
    /// The TLS client setup all engines share.
    tls: Arc<TlsContext>,
    /// The connection caps all engines share.
    limiter: Arc<Limiter>,
    /// The current configuration and engine.
    loaded: RwLock<Arc<Loaded>>,
    /// Counters, streaks and last successes of every connector.
    state: State,
    /// The exporter's own metrics.
    metrics: ExporterMetrics,
    /// Probes running now, by connector name.
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Source of in-flight probe ids.
    next_id: AtomicU64,
    /// Where the state survives restarts, if anywhere.
    state_file: Option<PathBuf>,
    /// Woken when the state changed and should be saved.
    state_changed: Notify,
    /// The last reading of the Postfix queue; the lock makes concurrent scrapes share a reading.
    queue: tokio::sync::Mutex<Option<QueueReading>>,
}

/// A reading of the Postfix queue, summarized for the configuration it was taken under.
struct QueueReading {
    summary: Arc<QueueSummary>,
    taken: Instant,
    under: Arc<Loaded>,
}

impl App {
    /// Loads the configuration and the web configuration and builds the engine; with a state
    /// file, restores the connectors' state from it (a damaged file is set aside with a warning).
    pub fn load(settings: Settings, tls: Arc<TlsContext>) -> Result<Self, LoadError> {
        let Settings {
            config_file: config_path,
            web_config_file: web_config_path,
            state_file,
            limits,
        } = settings;
        let limiter = Arc::new(Limiter::new(limits));
        let loaded = build(&config_path, &tls, &limiter)?;
        let web = load_web(web_config_path.as_deref())?;
        let metrics = ExporterMetrics::new();
        metrics.config_loaded(true, SystemTime::now());
        let state = State::default();
        if let Some(path) = &state_file {
            restore_state(&state, path)?;
            state.retain(loaded.config.connectors.iter().map(|c| c.name.as_str()));
        }
        Ok(App {
            config_path,
            web_config_path,
            web: RwLock::new(Arc::new(web)),
            tls,
            limiter,
            loaded: RwLock::new(Arc::new(loaded)),
            state,
            metrics,
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            state_file,
            state_changed: Notify::new(),
            queue: tokio::sync::Mutex::new(None),
        })
    }

    /// Saves the state whenever it changes, at most once per `STATE_SAVE_DELAY` (which gathers
    /// the probes of one scrape round into one write), off the scrape path. Runs forever.
    pub async fn keep_state_saved(self: Arc<Self>) {
        if self.state_file.is_none() {
            return;
        }
        loop {
            self.state_changed.notified().await;
            tokio::time::sleep(STATE_SAVE_DELAY).await;
            self.save_state().await;
        }
    }

    /// Writes the state file now (on a blocking thread), logging a failure.
    pub async fn save_state(&self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let snapshot = self.state.snapshot();
        let saved = tokio::task::spawn_blocking(move || {
            state_file::save(&path, &snapshot).map_err(|e| (path, e))
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err((path, error))) => {
                tracing::error!(file = %path.display(), error = %error, "cannot write the state file");
            }
            Err(error) => tracing::error!(error = %error, "the state file writer failed"),
        }
    }

    /// Reads the configuration and the web configuration again. On error both running ones
    /// stay in force.
    pub fn reload(&self) -> Result<(), LoadError> {
        let reloaded = build(&self.config_path, &self.tls, &self.limiter)
            .and_then(|loaded| load_web(self.web_config_path.as_deref()).map(|web| (loaded, web)));
        match reloaded {
            Ok((loaded, web)) => {
                *self.web.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(web);
                self.state
                    .retain(loaded.config.connectors.iter().map(|c| c.name.as_str()));
                self.state_changed.notify_one();
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
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
    pub async fn postfix_queue(&self, max_age: std::time::Duration) -> Option<Arc<QueueSummary>> {
        let loaded = self.loaded();
        let settings = loaded.config.postfix_queue.as_ref()?;
        let mut cached = self.queue.lock().await;
        if let Some(reading) = cached.as_ref() {
            if reading.taken.elapsed() <= max_age && Arc::ptr_eq(&reading.under, &loaded) {
                return Some(reading.summary.clone());
            }
        }
        match postfix::read_queue(&settings.command, settings.timeout).await {
            Ok(queue) => {
                if queue.truncated || queue.malformed > 0 {
                    tracing::warn!(
                        truncated = queue.truncated,
                        malformed_lines = queue.malformed,
                        "the Postfix queue was read only in part"
                    );
                }
                if !queue.stderr.is_empty() {
                    tracing::debug!(stderr = %queue.stderr, "the Postfix queue command wrote to standard error");
                }
                let summary = Arc::new(postfix::summarize(
                    &queue,
                    &loaded.config.connectors,
                    SystemTime::now(),
                ));
                self.metrics.queue_read(Ok(()));
                *cached = Some(QueueReading {
                    summary: summary.clone(),
                    taken: Instant::now(),
                    under: loaded.clone(),
                });
                Some(summary)
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the Postfix queue");
                self.metrics.queue_read(Err(error.kind()));
                *cached = None;
                None
            }
        }
    }

    /// The web configuration in force.
    pub fn web(&self) -> Arc<WebConfig> {
        self.web.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The configuration in force.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The state of `connector`.
    pub fn state_of(&self, connector: &str) -> Option<ConnectorState> {
        self.state.get(connector)
    }

    /// The exporter's own metrics.
    pub fn metrics(&self) -> &ExporterMetrics {
        &self.metrics
    }

    /// Probes `connector` by `deadline`, joining a probe of it already in flight when that one
    /// ends in time. `None` for an unknown connector.
    pub async fn probe(
        self: &Arc<Self>,
        connector: &str,
        deadline: Instant,
    ) -> Option<Arc<Probed>> {
        let loaded = self.loaded();
        if !loaded.engine.has(connector) {
            return None;
        }
        let shared = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(connector) {
                Some(running)
                    if running.deadline <= deadline
                        && Arc::ptr_eq(&running.engine, &loaded.engine) =>
                {
                    running.probe.clone()
                }
                _ => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let probe = self.start(loaded.engine.clone(), connector, id, deadline);
                    in_flight.insert(
                        connector.to_owned(),
                        InFlight {
                            id,
                            deadline,
                            engine: loaded.engine.clone(),
                            probe: probe.clone(),
                        },
                    );
                    probe
                }
            }
        };
        shared.await
    }

    /// Probes every connector concurrently by `deadline`.
    /// At most as many connectors are in progress at once as probes may hold connections, so
    /// that a scrape of thousands of connectors does not keep thousands of waiting probes (each
    /// a few KiB) in memory; the results come back in configuration order.
    pub async fn probe_all(self: &Arc<Self>, deadline: Instant) -> Vec<Arc<Probed>> {
        let loaded = self.loaded();
        let names: Vec<(usize, String)> = loaded
            .config
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .enumerate()
            .collect();
        let mut probed: Vec<(usize, Arc<Probed>)> = stream::iter(names)
            .map(|(index, name)| {
                let app = self.clone();
                async move { app.probe(&name, deadline).await.map(|p| (index, p)) }
            })
            .buffer_unordered(self.limiter.limits().total)
            .filter_map(std::future::ready)
            .collect()
            .await;
        probed.sort_unstable_by_key(|(index, _)| *index);
        probed.into_iter().map(|(_, p)| p).collect()
    }

    /// Spawns a probe of `connector` that records its outcome once, whoever waits for it.
    fn start(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        connector: &str,
        id: u64,
        deadline: Instant,
    ) -> SharedProbe {
        let app = self.clone();
        let name = connector.to_owned();
        let task = tokio::spawn(async move {
            let report = engine.probe(&name, deadline).await;
            app.finish(&name, id);
            // Not yet told apart from an unknown connector: the exporter's own limits are
            // reported once the runtime split lands.
            let report = report?.ok()?;
            let at = SystemTime::now();
            // A connector that a reload removed meanwhile keeps no state: it would come back.
            let state = if app.loaded().engine.has(&name) {
                let state = app.state.record(&name, &report.outcome, at);
                app.state_changed.notify_one();
                state
            } else {
                ConnectorState::default()
            };
            if let Err(failure) = &report.outcome {
                tracing::debug!(connector = %name, code = %failure.code(), phase = %failure.phase(), reason = %failure.reason(), "probe failed");
            }
            Some(Arc::new(Probed { report, state, at }))
        });
        async move { task.await.ok().flatten() }.boxed().shared()
    }

    /// Forgets the in-flight probe `id` of `connector`, unless a newer one replaced it.
    fn finish(&self, connector: &str, id: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(connector).is_some_and(|p| p.id == id) {
            in_flight.remove(connector);
        }
    }
}

/// Restores `state` from the file at `path`; a damaged file is set aside and the state starts
/// fresh.
fn restore_state(state: &State, path: &Path) -> Result<(), LoadError> {
    match state_file::load(path, SystemTime::now()) {
        Ok(state_file::Loaded::Missing) => {
            tracing::info!(file = %path.display(), "no state file yet; starting fresh");
        }
        Ok(state_file::Loaded::Read(states)) => {
            tracing::info!(file = %path.display(), connectors = states.len(), "state restored");
            state.restore(states);
        }
        Ok(state_file::Loaded::SetAside { set_aside, problem }) => {
            tracing::warn!(file = %path.display(), set_aside = %set_aside.display(), problem = %problem, "the state file is damaged; set it aside and starting fresh");
        }
        Err(source) => {
            return Err(LoadError::StateFile {
                path: path.to_owned(),
                source,
            });
        }
    }
    Ok(())
}

/// The web configuration at `path`, or plain HTTP without authentication when there is none.
fn load_web(path: Option<&Path>) -> Result<WebConfig, LoadError> {
    path.map_or_else(|| Ok(WebConfig::default()), |p| Ok(WebConfig::load(p)?))
}

fn build(
    config_path: &Path,
    tls: &Arc<TlsContext>,
    limiter: &Arc<Limiter>,
) -> Result<Loaded, LoadError> {
    let config = config::load(config_path)?;
    let engine = Arc::new(Engine::new(&config, tls.clone(), limiter.clone())?);
    Ok(Loaded { config, engine })
}
