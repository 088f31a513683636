//! The `mailflow_exporter` binary: flags, subcommands, logging, and the server's life cycle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use mailflow_exporter::config::{self, ConfigError};
use mailflow_exporter::exporter::{Exporter, ExporterSettings};
use mailflow_exporter::probe::Engine;
use mailflow_exporter::probe::limits::{ConnectionCaps, Limiter};
use mailflow_exporter::probe::mta_sts::cache::{CacheSettings, PolicyCache};
use mailflow_exporter::probe::tls::TlsContext;
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
    /// Address to serve HTTP on, e.g. ":9925" or "127.0.0.1:9925".
    #[arg(long = "web.listen-address", default_value = ":9925", global = true)]
    listen_address: String,
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

impl Cli {
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
        Some(Command::Drill) => run_async(drill(&cli)),
        Some(Command::ImportConnectors { file, output }) => {
            import_connectors(file, output.as_deref())
        }
        None => run_async(serve(&cli, &cli.config_file)),
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
async fn drill(cli: &Cli) -> anyhow::Result<ExitCode> {
    let drill = mailflow_exporter::drill::start().await?;
    println!(
        "Fire drill: one loopback connector per code, configuration in {}",
        drill.config_path.display()
    );
    for (name, expect) in &drill.connectors {
        println!("  {name:<24} expect {expect}");
    }
    println!("Scrape /probe (or point Prometheus at config/prometheus.yml); stop with Ctrl-C.");
    serve(cli, &drill.config_path).await
}

/// Serves `config_file` until SIGTERM or SIGINT; SIGHUP reloads the configuration.
async fn serve(cli: &Cli, config_file: &Path) -> anyhow::Result<ExitCode> {
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
    let listener = bind(&cli.listen_address).await?;
    let address = listener.local_addr()?;
    tracing::info!(
        address = %address,
        config = %config_file.display(),
        connectors = exporter.loaded().config.connectors.len(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    let reloader = exporter.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reloader.reload();
        }
    });
    server::run(listener, exporter.clone(), shutdown).await;
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

/// Binds `address`; `:PORT` means every interface, IPv6 and IPv4.
async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .with_context(|| format!("invalid port in --web.listen-address {address:?}"))?;
        if let Ok(listener) = TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
            return Ok(listener);
        }
        return TcpListener::bind(SocketAddr::from(([0u8; 4], port)))
            .await
            .with_context(|| format!("cannot listen on {address}"));
    }
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}
