//! The real server, in-process: [`run`] on a listener bound to `127.0.0.1:0`, probing a scripted
//! SMTP server on `127.0.0.1:0`, driven by a small HTTP client. Needs no privileges and no
//! system servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::JoinHandle;

use super::{HttpLimits, run};
use crate::exporter::{Exporter, ExporterSettings};
use crate::probe::limits::ConnectionCaps;
use crate::probe::tls::TlsContext;

/// How long a test waits for something that should happen at once, before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// A scripted SMTP server that greets, answers EHLO without STARTTLS and says goodbye, counting
/// connections and recording the commands it gets.
struct SmtpFixture {
    /// Where it listens.
    port: u16,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
    /// Woken at each accepted connection.
    connected: Arc<Notify>,
    /// One permit per greeting it may send: connections wait for one before greeting.
    greetings: Arc<Semaphore>,
    /// Every command received, in order.
    commands: Arc<Mutex<Vec<String>>>,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl SmtpFixture {
    /// A fixture that greets every connection at once.
    async fn start() -> Self {
        Self::start_with(Semaphore::MAX_PERMITS).await
    }

    /// A fixture that greets only as many connections as it is given permits for.
    async fn start_with(greetings: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(Notify::new());
        let greetings = Arc::new(Semaphore::new(greetings));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (connections, connected, greetings, commands) = (
                connections.clone(),
                connected.clone(),
                greetings.clone(),
                commands.clone(),
            );
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    connected.notify_one();
                    let (greetings, commands) = (greetings.clone(), commands.clone());
                    tokio::spawn(async move {
                        if let Ok(permit) = greetings.acquire().await {
                            permit.forget();
                            let _ = converse(stream, &commands).await;
                        }
                    });
                }
            }
        });
        SmtpFixture {
            port,
            connections,
            connected,
            greetings,
            commands,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().expect("lock").clone()
    }
}

impl Drop for SmtpFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fixture's side of one SMTP session (at most 20 commands).
async fn converse(stream: TcpStream, commands: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    writer.write_all(b"220 fixture.test ESMTP\r\n").await?;
    for _ in 0..20 {
        let Some(line) = lines.next_line().await? else {
            return Ok(());
        };
        commands.lock().expect("lock").push(line.clone());
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fixture.test\r\n250 8BITMIME\r\n",
            "QUIT" => b"221 2.0.0 bye\r\n",
            _ => b"502 5.5.2 not here\r\n",
        };
        writer.write_all(reply).await?;
        if verb == "QUIT" {
            return Ok(());
        }
    }
    Ok(())
}

/// The exporter served on `127.0.0.1:0` by [`run`], with its configuration in a temporary
/// directory.
struct Served {
    /// Where it listens (its first listener).
    address: SocketAddr,
    /// Every listener's address.
    addresses: Vec<SocketAddr>,
    /// The exporter it serves.
    exporter: Arc<Exporter>,
    /// The configuration file.
    config_file: PathBuf,
    /// Ends the server.
    stop: Option<oneshot::Sender<()>>,
    /// The server.
    task: JoinHandle<()>,
    /// Holds the configuration file.
    _dir: tempfile::TempDir,
}

/// How a test serves the exporter.
struct Setup<'a> {
    /// The configuration.
    yaml: &'a str,
    /// The web configuration, if any (written beside the configuration as `web.yml`).
    web_yaml: Option<&'a str>,
    /// The server's caps.
    limits: HttpLimits,
    /// The caps on the probes' connections.
    probe_limits: ConnectionCaps,
    /// How many listeners to serve on.
    listeners: usize,
}

impl<'a> Setup<'a> {
    fn new(yaml: &'a str) -> Self {
        Setup {
            yaml,
            web_yaml: None,
            limits: HttpLimits::default(),
            probe_limits: ConnectionCaps::default(),
            listeners: 1,
        }
    }
}

impl Served {
    /// Serves the configuration `yaml`.
    async fn start(yaml: &str) -> Self {
        Self::start_with(Setup::new(yaml)).await
    }

    /// Serves as `setup` says; `address` is the first listener's, `addresses` all of them.
    async fn start_with(setup: Setup<'_>) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let config_file = dir.path().join("mailflow.yml");
        std::fs::write(&config_file, setup.yaml).expect("write");
        let web_config_file = setup.web_yaml.map(|web| {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, web).expect("write");
            path
        });
        let settings = ExporterSettings {
            config_file: config_file.clone(),
            web_config_file,
            limits: setup.probe_limits,
            ..ExporterSettings::default()
        };
        let tls = Arc::new(TlsContext::new().expect("TLS"));
        let exporter = Arc::new(Exporter::load(settings, tls).expect("load"));
        let mut listeners = Vec::new();
        for _ in 0..setup.listeners {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addresses: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("address"))
            .collect();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listeners, exporter.clone(), setup.limits, async {
            let _ = stopped.await;
        }));
        Served {
            address: addresses[0],
            addresses,
            exporter,
            config_file,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Sends `method path` with `headers`, and reads the whole answer.
    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request_to(self.address, method, path, headers).await
    }

    /// Sends `method path` with `headers` to the listener at `address`, and reads the answer.
    async fn request_to(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let exchange = async {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            let mut request =
                format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("Content-Length: 0\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await.expect("read");
            Answer::parse(&String::from_utf8(bytes).expect("UTF-8"))
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .expect("an answer in time")
    }

    async fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[]).await
    }

    /// Stops the server and waits for it.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("stops in time")
            .expect("server task");
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    /// Whether the body came in chunks (`Transfer-Encoding: chunked`), decoded below.
    chunked: bool,
    body: String,
}

impl Answer {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(": ")).collect();
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| *value)
        };
        let content_type = header("content-type").unwrap_or_default().to_owned();
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        Answer {
            status,
            content_type,
            chunked,
            body: if chunked {
                dechunk(body)
            } else {
                body.to_owned()
            },
        }
    }

    /// The value of the sample written exactly as `series` (name and labels).
    fn sample(&self, series: &str) -> Option<f64> {
        self.body.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
    }
}

/// The data of a chunked body: size lines in hex, each followed by that many bytes, up to the
/// chunk of size 0.
fn dechunk(mut rest: &str) -> String {
    let mut data = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return data;
        }
        data.push_str(&after[..size]);
        rest = after[size..]
            .strip_prefix("\r\n")
            .expect("CRLF after a chunk");
    }
}

/// One connector on the fixture, with a generous timeout.
fn config(connector: &str, port: u16) -> String {
    format!(
        "defaults:\n  helo_name: probe.test\n  timeout: 1h\nconnectors:\n  - name: {connector}\n    smart_hosts: [127.0.0.1]\n    port: {port}\n"
    )
}

#[tokio::test]
async fn probes_a_configured_connector() {
    let smtp = SmtpFixture::start().await;
    let served = Served::start(&config("fixture", smtp.port)).await;
    let answer = served.get("/probe?connector=fixture").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = &answer.body;
    assert_eq!(
        answer.sample("mailflow_probe_success{connector=\"fixture\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        answer.sample("mailflow_probe_status{connector=\"fixture\",code=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        answer.sample("mailflow_probe_status{connector=\"fixture\",code=\"4.4.316\"}"),
        Some(0.0)
    );
    assert_eq!(
        answer.sample(
            "mailflow_target_success{connector=\"fixture\",host=\"127.0.0.1\",address=\"127.0.0.1\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        answer.sample("mailflow_probes_total{connector=\"fixture\"}"),
        Some(1.0)
    );
    assert!(!body.contains("mailflow_probe_failure_info{"), "{body}");
    assert_eq!(smtp.connections(), 1);
    assert_eq!(smtp.commands(), ["EHLO probe.test", "QUIT"]);
    // OpenMetrics when asked for it.
    let accept = [("Accept", "application/openmetrics-text; version=1.0.0")];
    let answer = served
        .request("GET", "/probe?connector=fixture", &accept)
        .await;
    assert_eq!(
        answer.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(answer.body.ends_with("# EOF\n"));
    assert!(answer.body.contains(
        "# TYPE mailflow_probes counter\nmailflow_probes_total{connector=\"fixture\"} 2\n"
    ));
    // The answer is written as it is sent, so its length is not known ahead.
    assert!(answer.chunked);
    served.stop().await;
}

#[tokio::test]
async fn an_unknown_connector_is_refused_without_any_connection() {
    let smtp = SmtpFixture::start().await;
    let served = Served::start(&config("fixture", smtp.port)).await;
    for path in ["/probe?connector=elsewhere", "/probe?connector=127.0.0.1"] {
        let answer = served.get(path).await;
        assert_eq!(answer.status, 400);
        assert!(
            answer.body.starts_with("unknown connector "),
            "{}",
            answer.body
        );
    }
    assert_eq!(served.get("/probe?connector=").await.status, 400);
    assert_eq!(smtp.connections(), 0);
    assert_eq!(served.exporter.state_of("fixture"), None);
    served.stop().await;
}

#[tokio::test]
async fn serves_its_own_metrics_discovery_and_health() {
    let smtp = SmtpFixture::start().await;
    let served = Served::start(&config("fixture", smtp.port)).await;
    let metrics = served.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.sample("mailflow_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(
        metrics
            .sample("mailflow_config_last_reload_success_timestamp_seconds")
            .is_some_and(|t| t > 1e9)
    );
    assert!(
        metrics
            .body
            .contains("\nmailflow_exporter_build_info{version=\"")
    );
    // No probing, and no Postfix queue without `postfix_queue`.
    assert!(!metrics.body.contains("mailflow_probe"));
    assert!(!metrics.body.contains("mailflow_postfix_queue_messages"));
    assert_eq!(smtp.connections(), 0);

    let sd = served.get("/sd").await;
    assert_eq!(
        (sd.status, sd.content_type.as_str()),
        (200, "application/json")
    );
    let groups: serde_json::Value = serde_json::from_str(&sd.body).expect("JSON");
    assert_eq!(
        groups,
        serde_json::json!([{
            "targets": [served.address.to_string()],
            "labels": { "connector": "fixture", "connector_type": "on_premises" },
        }])
    );

    for (path, body) in [("/-/healthy", "Healthy\n"), ("/-/ready", "Ready\n")] {
        let answer = served.get(path).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, body));
    }
    assert_eq!(served.get("/nowhere").await.status, 404);
    assert_eq!(served.request("POST", "/metrics", &[]).await.status, 405);
    served.stop().await;
}

#[tokio::test]
async fn a_broken_reload_keeps_the_running_configuration() {
    let smtp = SmtpFixture::start().await;
    let served = Served::start(&config("fixture", smtp.port)).await;
    std::fs::write(&served.config_file, "connectors:\n  - name: [broken\n").expect("write");
    let reload = served.request("POST", "/-/reload", &[]).await;
    assert_eq!(reload.status, 500);
    assert!(
        reload
            .body
            .starts_with("failed to reload the configuration; the previous one stays in force:\n"),
        "{}",
        reload.body
    );
    let metrics = served.get("/metrics").await;
    assert_eq!(
        metrics.sample("mailflow_config_last_reload_successful"),
        Some(0.0)
    );
    // The old configuration still probes.
    let probe = served.get("/probe?connector=fixture").await;
    assert_eq!(
        probe.sample("mailflow_probe_success{connector=\"fixture\"}"),
        Some(1.0)
    );
    // A good file then takes over.
    std::fs::write(&served.config_file, config("renamed", smtp.port)).expect("write");
    assert_eq!(served.request("POST", "/-/reload", &[]).await.status, 200);
    let metrics = served.get("/metrics").await;
    assert_eq!(
        metrics.sample("mailflow_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(served.get("/sd").await.body.contains("\"renamed\""));
    assert_eq!(served.get("/probe?connector=fixture").await.status, 400);
    assert_eq!(served.get("/probe?connector=renamed").await.status, 200);
    served.stop().await;
}

#[tokio::test]
async fn concurrent_scrapes_share_one_probe() {
    let smtp = SmtpFixture::start_with(0).await;
    let served = Arc::new(Served::start(&config("fixture", smtp.port)).await);
    let scrape = |served: Arc<Served>| {
        tokio::spawn(async move { served.get("/probe?connector=fixture").await })
    };
    // The first scrape's probe connects and waits for the greeting...
    let first = scrape(served.clone());
    tokio::time::timeout(PATIENCE, smtp.connected.notified())
        .await
        .expect("the probe connects");
    // ...while the second scrape joins it.
    let joined = served.exporter.in_flight().joined.notified();
    let second = scrape(served.clone());
    tokio::time::timeout(PATIENCE, joined)
        .await
        .expect("the second scrape joins");
    smtp.greetings.add_permits(1);
    let (first, second) = (first.await.expect("first"), second.await.expect("second"));
    for answer in [&first, &second] {
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.sample("mailflow_probe_success{connector=\"fixture\"}"),
            Some(1.0)
        );
        // Counted once.
        assert_eq!(
            answer.sample("mailflow_probes_total{connector=\"fixture\"}"),
            Some(1.0)
        );
    }
    assert_eq!(smtp.connections(), 1);
    // Once it is over, the next scrape probes again.
    smtp.greetings.add_permits(1);
    let third = served.get("/probe?connector=fixture").await;
    assert_eq!(
        third.sample("mailflow_probes_total{connector=\"fixture\"}"),
        Some(2.0)
    );
    assert_eq!(smtp.connections(), 2);
    if let Ok(served) = Arc::try_unwrap(served) {
        served.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_server_costs_the_scrape_its_deadline_and_no_more() {
    // Never greets.
    let smtp = SmtpFixture::start_with(0).await;
    let served = Served::start(&config("fixture", smtp.port)).await;
    let started = tokio::time::Instant::now();
    let timeout = [("X-Prometheus-Scrape-Timeout-Seconds", "10")];
    let answer = served
        .request("GET", "/probe?connector=fixture", &timeout)
        .await;
    // The probe gave up at the deadline, the scrape timeout less the margin, in paused time:
    // the test took no such time.
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(9_500)..Duration::from_secs(10)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(
        answer.sample(
            "mailflow_probe_failure_info{connector=\"fixture\",code=\"4.4.318\",phase=\"greeting\",reason=\"timeout\",reply=\"\"}"
        ),
        Some(1.0),
        "{}",
        answer.body
    );
    assert_eq!(smtp.connections(), 1);
    served.stop().await;
}

#[tokio::test]
async fn a_probe_without_a_connection_slot_fails_the_scrape_not_the_connector() {
    // Never greets: a probe of it holds its connection until the deadline.
    let smtp = SmtpFixture::start_with(0).await;
    let yaml = format!(
        "{}  - name: second\n    smart_hosts: [127.0.0.1]\n    port: {}\n",
        config("first", smtp.port),
        smtp.port
    );
    let one_per_address = ConnectionCaps {
        total: 8,
        per_address: 1,
    };
    let served = Arc::new(
        Served::start_with(Setup {
            probe_limits: one_per_address,
            ..Setup::new(&yaml)
        })
        .await,
    );
    // The first connector's probe takes the one connection to the server...
    let first = tokio::spawn({
        let served = served.clone();
        async move { served.get("/probe?connector=first").await }
    });
    tokio::time::timeout(PATIENCE, smtp.connected.notified())
        .await
        .expect("the first probe connects");
    // ...so the second one's cannot run: its scrape fails, with a clear message.
    let short = [("X-Prometheus-Scrape-Timeout-Seconds", "1")];
    let answer = served
        .request("GET", "/probe?connector=second", &short)
        .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer.body.contains("\"second\" was not probed")
            && answer.body.contains("--probe.max-connections-per-address"),
        "{}",
        answer.body
    );
    // Scraping every connector leaves out the ones that could not run.
    let all = served.request("GET", "/probe", &short).await;
    assert_eq!(all.status, 200, "{all:?}");
    assert!(!all.body.contains("connector=\"second\""), "{}", all.body);
    assert!(!all.body.contains("connector=\"first\""), "{}", all.body);
    // Nothing of it is the connectors' own history...
    assert_eq!(served.exporter.state_of("second"), None);
    // ...but the exporter counts it.
    let metrics = served.get("/metrics").await;
    let slot_timeouts = |connector: &str| {
        metrics.sample(&format!(
            "mailflow_exporter_probe_slot_timeouts_total{{connector=\"{connector}\"}}"
        ))
    };
    assert_eq!(slot_timeouts("second"), Some(2.0), "{}", metrics.body);
    assert_eq!(slot_timeouts("first"), Some(1.0), "{}", metrics.body);
    assert_eq!(smtp.connections(), 1);
    // The first probe, once greeted, delivers and is the only one counted.
    smtp.greetings.add_permits(1);
    let first = first.await.expect("first");
    assert_eq!(
        first.sample("mailflow_probe_success{connector=\"first\"}"),
        Some(1.0),
        "{}",
        first.body
    );
    assert_eq!(served.exporter.state_of("first").map(|s| s.probes), Some(1));
    if let Ok(served) = Arc::try_unwrap(served) {
        served.stop().await;
    }
}

mod surface;
