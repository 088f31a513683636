//! The `mailflow_exporter` binary: flags, subcommands, logging, and the server's life cycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use mailflow_exporter::config::{self, ConfigError};
use mailflow_exporter::exporter::{Exporter, ExporterSettings};
use mailflow_exporter::probe::Engine;
use mailflow_exporter::probe::limits::{ConnectionCaps, Limiter};
use mailflow_exporter::probe::mta_sts::cache::{CacheSettings, PolicyCache};
use mailflow_exporter::probe::tls::TlsContext;
use mailflow_exporter::server::budget::{self, HttpLimits};
use mailflow_exporter::server::listen;
use mailflow_exporter::{explain, server};

/// Probes mail connectors and classifies delivery failures into mail flow codes.
#[derive(Parser, Debug)]
#[command(name = "mailflow_exporter", version, about)]
struct Cli {
    /// Configuration file (connectors and settings).
    #[arg(
        long = "config.file",
        default_value = "config/mailflow.yml",
        global = true
    )]
    config_file: PathBuf,
    /// Address to serve HTTP on, e.g. ":9925" or "127.0.0.1:9925"; repeat the flag for several.
    #[arg(long = "web.listen-address", default_value = ":9925", global = true)]
    listen_addresses: Vec<String>,
    /// Serve on the sockets passed by systemd socket activation instead of listen addresses.
    #[arg(long = "web.systemd-socket", global = true)]
    systemd_socket: bool,
    /// Most HTTP connections open at once; past it new ones are answered 503. Lowered at start
    /// when the open-files limit cannot hold it beside the probes' connections.
    #[arg(long = "web.max-connections", default_value_t = HttpLimits::default().max_connections,
          value_parser = at_least_one, global = true)]
    max_http_connections: usize,
    /// Most HTTP requests in progress at once (health checks aside); past it requests are
    /// answered 503. Lowered with --web.max-connections when descriptors are short.
    #[arg(long = "web.max-requests", default_value_t = HttpLimits::default().max_requests,
          value_parser = at_least_one, global = true)]
    max_http_requests: usize,
    /// TLS and basic authentication for the exporter's own endpoint (exporter-toolkit format).
    #[arg(long = "web.config.file", global = true)]
    web_config_file: Option<PathBuf>,
    /// Where counters and failure streaks survive restarts (JSON, written atomically).
    #[arg(long = "state.file", global = true)]
    state_file: Option<PathBuf>,
    /// Most connections that probes hold open at once, in all.
    #[arg(long = "probe.max-connections", default_value_t = ConnectionCaps::default().total, global = true)]
    max_connections: usize,
    /// Most connections that probes hold open at once to one address and port.
    #[arg(long = "probe.max-connections-per-address", default_value_t = ConnectionCaps::default().per_address, global = true)]
    max_connections_per_address: usize,
    /// Shortest time between two fetches of one domain's MTA-STS policy (also the shortest
    /// time a fetched policy is kept), e.g. "60s".
    #[arg(long = "mta-sts.min-fetch-interval", default_value = "60s", value_parser = config::parse_duration, global = true)]
    mta_sts_min_fetch_interval: std::time::Duration,
    /// Log level.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    log_level: LogLevel,
    /// Log format.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// A count of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the server will listen: taken before the runtime starts, because taking systemd's
/// sockets edits the environment.
enum Listening {
    /// Bind `--web.listen-address`.
    Addresses(Vec<String>),
    /// The sockets systemd passed.
    Sockets(Vec<std::net::TcpListener>),
}

impl Cli {
    /// The listening plan; the sockets from systemd are taken now.
    fn listening(&self) -> Result<Listening, listen::ListenError> {
        if self.systemd_socket {
            return Ok(Listening::Sockets(listen::systemd_sockets()?));
        }
        Ok(Listening::Addresses(self.listen_addresses.clone()))
    }

    fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_http_connections,
            max_requests: self.max_http_requests,
        }
    }

    fn limits(&self) -> ConnectionCaps {
        ConnectionCaps {
            total: self.max_connections,
            per_address: self.max_connections_per_address,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the configuration file and exit.
    CheckConfig,
    /// Probe one connector now and explain the outcome.
    Probe {
        /// The connector's name.
        connector: String,
    },
    /// Start loopback targets that fail in every way of the code table, and serve the exporter
    /// on them: every code, dashboard panel and alert without a mail server.
    Drill,
    /// Write a configuration for the connectors in FILE, the JSON that
    /// `Get-OutboundConnector | ConvertTo-Json -Depth 5` writes in Exchange Online PowerShell.
    /// The YAML goes to standard output (or --output), what could not be mapped to standard error.
    ImportConnectors {
        /// The JSON file.
        file: PathBuf,
        /// Write the configuration here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level, cli.log_format);
    match &cli.command {
        Some(Command::CheckConfig) => check_config(&cli),
        Some(Command::Probe { connector }) => run_async(probe_once(&cli, connector)),
        Some(Command::ImportConnectors { file, output }) => {
            import_connectors(file, output.as_deref())
        }
        Some(Command::Drill) | None => {
            let listening = match cli.listening() {
                Ok(listening) => listening,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match &cli.command {
                Some(Command::Drill) => run_async(drill(&cli, listening)),
                _ => run_async(serve(&cli, &cli.config_file, listening)),
            }
        }
    }
}

fn run_async(work: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "exiting");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // Our own events at the chosen level; the libraries' chatter only from warnings up.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::WARN.min(level))
        .with_target("mailflow_exporter", level);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .with_span_name(false)
                    .with_span_path(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// `check-config`: every problem with file, line, column and key; exit 0 only when valid.
fn check_config(cli: &Cli) -> ExitCode {
    match config::load(&cli.config_file) {
        Ok(config) => {
            println!(
                "{}: valid, {} connector(s)",
                cli.config_file.display(),
                config.connectors.len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!(
                "{}: {} problem(s) found",
                cli.config_file.display(),
                problems.len()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `import-connectors FILE`: the configuration on standard output (or `output`), the notes on
/// standard error.
fn import_connectors(file: &Path, output: Option<&Path>) -> ExitCode {
    let imported = std::fs::read(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))
        .and_then(|bytes| {
            mailflow_exporter::import::import_bytes(&bytes)
                .map_err(|e| format!("{}: {e}", file.display()))
        });
    let imported = match imported {
        Ok(imported) => imported,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let written = match output {
        Some(path) => std::fs::write(path, &imported.yaml)
            .map_err(|e| format!("{}: cannot write: {e}", path.display())),
        None => {
            print!("{}", imported.yaml);
            Ok(())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// `probe CONNECTOR`: one probe now, explained; exit 0 on `ok`, 1 otherwise.
async fn probe_once(cli: &Cli, connector: &str) -> anyhow::Result<ExitCode> {
    let config = config::load(&cli.config_file)?;
    let tls = Arc::new(TlsContext::new()?);
    let limiter = Arc::new(Limiter::new(cli.limits()));
    let policies = PolicyCache::new(CacheSettings {
        min_fetch_interval: cli.mta_sts_min_fetch_interval,
    });
    let engine = Engine::new(&config, tls, limiter, Arc::new(policies))?;
    let Some(found) = config.connector(connector) else {
        let names: Vec<&str> = config.connectors.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "unknown connector {connector:?}; configured: {}",
            names.join(", ")
        );
    };
    let deadline = tokio::time::Instant::now() + found.timeout;
    let report = match engine
        .probe(connector, deadline)
        .await
        .context("the connector disappeared")?
    {
        Ok(report) => report,
        Err(throttled) => bail!(
            "the probe did not run: no connection slot for {} before the deadline \
             (see --probe.max-connections and --probe.max-connections-per-address)",
            throttled.no_slot.address
        ),
    };
    print!("{}", explain::render(&report, SystemTime::now()));
    Ok(if report.outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `drill`: starts the drill's targets, then serves the exporter on its configuration.
async fn drill(cli: &Cli, listening: Listening) -> anyhow::Result<ExitCode> {
    let drill = mailflow_exporter::drill::start().await?;
    println!(
        "Fire drill: one loopback connector per code, configuration in {}",
        drill.config_path.display()
    );
    for (name, expect) in &drill.connectors {
        println!("  {name:<24} expect {expect}");
    }
    println!("Scrape /probe (or point Prometheus at config/prometheus.yml); stop with Ctrl-C.");
    serve(cli, &drill.config_path, listening).await
}

/// Serves `config_file` until SIGTERM or SIGINT; SIGHUP reloads the configuration.
async fn serve(cli: &Cli, config_file: &Path, listening: Listening) -> anyhow::Result<ExitCode> {
    let http_limits = fit_to_open_files(cli)?;
    let shutdown = shutdown_signal()?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let tls = Arc::new(TlsContext::new()?);
    let exporter = Arc::new(Exporter::load(
        ExporterSettings {
            config_file: config_file.to_owned(),
            web_config_file: cli.web_config_file.clone(),
            state_file: cli.state_file.clone(),
            limits: cli.limits(),
            policy_cache: CacheSettings {
                min_fetch_interval: cli.mta_sts_min_fetch_interval,
            },
        },
        tls,
    )?);
    tokio::spawn(exporter.clone().keep_state_saved());
    let listeners = match listening {
        Listening::Addresses(addresses) => listen::bind_all(&addresses).await?,
        Listening::Sockets(sockets) => listen::into_tokio(sockets)?,
    };
    for listener in &listeners {
        tracing::info!(
            address = %listener.local_addr()?,
            config = %config_file.display(),
            connectors = exporter.loaded().config.connectors.len(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
    }
    let reloader = exporter.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reloader.reload();
        }
    });
    server::run(listeners, exporter.clone(), http_limits, shutdown).await;
    exporter.save_state().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes at the first SIGTERM or SIGINT. The handlers are installed before this returns, so
/// a signal that arrives right after start-up is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

/// Raises the soft open-files limit to the hard one and fits the HTTP caps under it beside the
/// probes' connections (see [`budget`]), saying so when they had to be lowered.
fn fit_to_open_files(cli: &Cli) -> anyhow::Result<HttpLimits> {
    let open_files =
        budget::raise_open_files_limit().context("cannot read the open-files limit")?;
    let asked = cli.http_limits();
    let fitted = asked.fit(open_files, cli.limits().total)?;
    if fitted != asked {
        tracing::warn!(
            open_files,
            probe_connections = cli.limits().total,
            max_connections = fitted.max_connections,
            max_requests = fitted.max_requests,
            "the open-files limit cannot hold the HTTP caps beside the probes' connections: lowered them"
        );
    }
    Ok(fitted)
}
