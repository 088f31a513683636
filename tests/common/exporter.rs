//! The exporter under test, as a child process, for both tiers: the real binary, a YAML config
//! in a temporary directory, `--web.listen-address 127.0.0.1:0`, and the bound address read from
//! its log line `... listening ... address=IP:PORT` (logfmt). Its log is collected (bounded) in
//! the background; it is killed on drop.
//!
//! Also: config builders, and the `probe` / `check-config` subcommands.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{self, Response};
use super::metrics::Metrics;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mailflow_exporter");

/// The `helo_name` every test config sets.
pub const HELO: &str = "probe.mailflow.test";

/// The most log bytes kept of one exporter (a hostile server must not fill the test's memory).
const MAX_LOG: usize = 4 << 20;

/// How an exporter is started; kept for `restart`.
struct Launch {
    /// Its `--config.file`, if the test gave it a configuration.
    config_file: Option<PathBuf>,
    /// A command prefix it runs under (e.g. `ip netns exec NS`), also for `get`; empty: none.
    prefix: Vec<String>,
    /// Further arguments: a subcommand, flags.
    args: Vec<String>,
    /// Its standard output is left to the caller (`take_stdout`) rather than logged.
    own_stdout: bool,
}

/// What an exporter has logged, bounded by `MAX_LOG`.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    bytes: usize,
}

/// A running exporter.
pub struct Exporter {
    child: Child,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    launch: Launch,
    log: Arc<Mutex<Log>>,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// Start the exporter on `yaml`; panics (with its output) if it does not log its address
    /// within 30 s.
    pub fn start(yaml: &str) -> Exporter {
        Exporter::start_with_args(yaml, &[])
    }

    /// Start the exporter with extra command-line arguments (e.g. `["--state.file", F]`).
    pub fn start_with_args(yaml: &str, args: &[&str]) -> Exporter {
        Exporter::configured(yaml, Vec::new(), args)
    }

    /// Start the exporter under a command prefix, e.g. `["ip", "netns", "exec", NS]`; `get` then
    /// runs curl under the same prefix.
    pub fn start_under(prefix: &[String], yaml: &str) -> Exporter {
        Exporter::configured(yaml, prefix.to_vec(), &[])
    }

    /// Start the exporter under a command prefix (e.g. `prlimit --nofile=1024:1024 --`) with
    /// extra command-line arguments; `get` runs curl under the same prefix.
    pub fn start_under_with_args(prefix: &[String], yaml: &str, args: &[&str]) -> Exporter {
        Exporter::configured(yaml, prefix.to_vec(), args)
    }

    /// Start the exporter with `args` (a subcommand and flags, e.g. `["drill"]`) and no
    /// configuration of the test's; its standard output is left to `take_stdout`.
    pub fn start_command(args: &[&str]) -> Exporter {
        let dir = temp_dir();
        Exporter::spawn(
            dir,
            Launch {
                config_file: None,
                prefix: Vec::new(),
                args: args.iter().map(|a| a.to_string()).collect(),
                own_stdout: true,
            },
        )
    }

    fn configured(yaml: &str, prefix: Vec<String>, args: &[&str]) -> Exporter {
        let dir = temp_dir();
        let config_file = dir.path().join("mailflow.yml");
        std::fs::write(&config_file, yaml).expect("write config");
        Exporter::spawn(
            dir,
            Launch {
                config_file: Some(config_file),
                prefix,
                args: args.iter().map(|a| a.to_string()).collect(),
                own_stdout: false,
            },
        )
    }

    fn spawn(dir: tempfile::TempDir, launch: Launch) -> Exporter {
        let log = Arc::new(Mutex::new(Log::default()));
        let (child, rx) = spawn(&launch, &log);
        let mut exporter = Exporter {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            launch,
            log,
            _dir: dir,
        };
        exporter.wait_listening(&rx);
        exporter
    }

    /// Wait for the `listening` log line and take the address from it; panics after 30 s or
    /// when the process exits first.
    fn wait_listening(&mut self, rx: &mpsc::Receiver<SocketAddr>) {
        let config = || match &self.launch.config_file {
            Some(file) => std::fs::read_to_string(file).unwrap_or_default(),
            None => String::from("(none)"),
        };
        for _ in 0..300 {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    self.addr = addr;
                    return;
                }
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "the exporter exited ({status}) before listening; config:\n{}\noutput:\n{}",
                            config(),
                            self.logs()
                        );
                    }
                }
            }
        }
        panic!(
            "the exporter logged no `listening ... address=IP:PORT` line in 30 s; output:\n{}",
            self.logs()
        );
    }

    /// The configuration file it was started with; panics for `start_command`.
    pub fn config_file(&self) -> &Path {
        self.launch
            .config_file
            .as_deref()
            .expect("the exporter was started with a configuration")
    }

    /// Its standard output, once; only for `start_command` (otherwise it goes to the log).
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child
            .stdout
            .take()
            .expect("standard output is taken once, after start_command")
    }

    /// Kill the process with SIGKILL (no graceful shutdown, no final state write) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the binary again the way it was started (after `kill`, or it kills the running one
    /// first); it listens on a new port. Its log follows the old one's, after a
    /// `--- restarted ---` line.
    pub fn restart(&mut self) {
        self.kill();
        push_line(&self.log, "--- restarted ---".to_string());
        let (child, rx) = spawn(&self.launch, &self.log);
        self.child = child;
        self.wait_listening(&rx);
    }

    /// The process id of the running binary.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send it a signal with the shell's `kill -SIGNAL PID` (e.g. `"HUP"`, `"TERM"`; the shell's
    /// own, so that no procps is needed); panics if `kill` fails.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        let out = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .output()
            .unwrap_or_else(|e| panic!("run kill -{signal} {pid}: {e}"));
        assert!(
            out.status.success(),
            "kill -{signal} {pid} failed: {}",
            combined_output(&out)
        );
    }

    /// Wait (at most `max`) for the process to exit on its own and reap it; its exit status, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, max: Duration) -> Option<std::process::ExitStatus> {
        super::poll(max, || match self.child.try_wait() {
            Ok(Some(status)) => Ok(status),
            _ => Err(()),
        })
        .ok()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.log
            .lock()
            .map(|l| l.lines.join("\n"))
            .unwrap_or_default()
    }

    /// GET `path` with extra headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let result = if self.launch.prefix.is_empty() {
            http::get(self.addr, path, headers)
        } else {
            curl_under(&self.launch.prefix, self.addr, path, headers)
        };
        result.unwrap_or_else(|e| panic!("GET {path}: {e}\nexporter output:\n{}", self.logs()))
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    /// `GET /probe?connector=NAME`, expecting 200, parsed.
    pub fn probe(&self, connector: &str) -> Metrics {
        self.probe_path(&format!("/probe?connector={connector}"))
    }

    /// `GET /metrics`, expecting 200, parsed.
    pub fn metrics(&self) -> Metrics {
        self.probe_path("/metrics")
    }

    /// GET a path that answers with metrics (`/probe...`, `/metrics`), expecting 200, parsed.
    pub fn probe_path(&self, path: &str) -> Metrics {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "GET {path} answered {}: {}\nexporter output:\n{}",
            r.status,
            r.body,
            self.logs()
        );
        Metrics::parse(&r.body)
    }

    /// Assert the connector's outcome: code (from `mailflow_probe_status`), and, unless the code
    /// is `ok`, phase and reason (from `mailflow_probe_failure_info`). Returns the metrics.
    #[track_caller]
    pub fn assert_outcome(
        &self,
        m: &Metrics,
        connector: &str,
        code: &str,
        phase: &str,
        reason: &str,
    ) {
        let explain = || {
            format!(
                "connector {connector}: expected code={code} phase={phase} reason={reason}; got\n{}\
                 exporter output (last 30 lines):\n{}",
                m.summary(connector),
                tail(&self.logs(), 30)
            )
        };
        let set: Vec<String> = m
            .ones("mailflow_probe_status", &[("connector", connector)])
            .into_iter()
            .map(|s| s.label("code").unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            set.len(),
            1,
            "exactly one mailflow_probe_status must be 1; {}",
            explain()
        );
        assert_eq!(set[0], code, "{}", explain());
        let success = m.value("mailflow_probe_success", &[("connector", connector)]);
        assert_eq!(
            success,
            Some(if code == "ok" { 1.0 } else { 0.0 }),
            "{}",
            explain()
        );
        if code == "ok" {
            assert_eq!(m.failure(connector), None, "{}", explain());
            return;
        }
        let f = m
            .failure(connector)
            .unwrap_or_else(|| panic!("no failure_info: {}", explain()));
        assert_eq!(
            (f.code.as_str(), f.phase.as_str(), f.reason.as_str()),
            (code, phase, reason),
            "{}",
            explain()
        );
    }

    /// Probe a connector and assert its outcome; returns the metrics.
    #[track_caller]
    pub fn expect(&self, connector: &str, code: &str, phase: &str, reason: &str) -> Metrics {
        let m = self.probe(connector);
        self.assert_outcome(&m, connector, code, phase, reason);
        m
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory for one exporter's files.
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mailflow-exporter-")
        .tempdir()
        .expect("tempdir")
}

/// Adds a line to `log`, unless it is full.
fn push_line(log: &Mutex<Log>, line: String) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.bytes < MAX_LOG {
        log.bytes += line.len() + 1;
        log.lines.push(line);
    }
}

/// Spawn the binary as `launch` says; its output lines go to `log`, and the address of its
/// `listening` line to the receiver.
fn spawn(launch: &Launch, log: &Arc<Mutex<Log>>) -> (Child, mpsc::Receiver<SocketAddr>) {
    let mut cmd = match launch.prefix.split_first() {
        Some((program, prefix_args)) => {
            let mut c = Command::new(program);
            c.args(prefix_args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    if let Some(file) = &launch.config_file {
        cmd.arg("--config.file").arg(file);
    }
    cmd.args([
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "debug",
    ])
    .args(&launch.args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let (tx, rx) = mpsc::channel();
    let mut streams: Vec<Box<dyn Read + Send>> =
        vec![Box::new(child.stderr.take().expect("stderr"))];
    if !launch.own_stdout {
        streams.push(Box::new(child.stdout.take().expect("stdout")));
    }
    for stream in streams {
        let log = Arc::clone(log);
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(addr) = address_field(&line)
                {
                    let _ = tx.send(addr);
                }
                push_line(&log, line);
            }
        });
    }
    (child, rx)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The value of a logfmt `address=` field (or a JSON `"address":"..."`).
fn address_field(line: &str) -> Option<SocketAddr> {
    for key in ["address=", "\"address\":"] {
        if let Some(i) = line.find(key) {
            let rest = line[i + key.len()..].trim_start_matches('"');
            let end = rest.find(['"', ' ', ',', '}']).unwrap_or(rest.len());
            if let Ok(addr) = rest[..end].parse() {
                return Some(addr);
            }
        }
    }
    None
}

/// GET over curl run under `prefix` (where `http::get` cannot reach, e.g. inside a network
/// namespace).
fn curl_under(
    prefix: &[String],
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let (program, prefix_args) = prefix
        .split_first()
        .ok_or_else(|| std::io::Error::other("an empty command prefix"))?;
    let mut cmd = Command::new(program);
    cmd.args(prefix_args)
        .args(["curl", "-sS", "-i", "--raw", "-m", "60"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://{addr}{path}"));
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    // With --raw, curl -i prints the answer as received (a chunked body still chunked), which
    // is what http::parse reads.
    http::parse(&out.stdout)
}

/// A finished command's standard output followed by its standard error.
pub fn combined_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run a subcommand of the binary, e.g. `["probe", "c", "--config.file", F]`; at most 60 s.
pub fn run_cli(args: &[&str]) -> Output {
    run_with_timeout(Command::new(BIN).args(args), Duration::from_secs(60))
}

/// Run a command, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if !super::eventually(limit, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"))
}

/// Write `yaml` to `dir/name` and return the path.
pub fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// A config: `defaults` with short timeouts and the test HELO name (and, given one, a
/// nameserver `IP:PORT`), then the given connector entries.
pub fn config(nameserver: Option<&str>, connectors: &[String]) -> String {
    let mut y = format!("defaults:\n  timeout: 3s\n  helo_name: {HELO}\n  queue_expiry: 24h\n");
    if let Some(nameserver) = nameserver {
        y.push_str(&format!(
            "  dns:\n    nameservers: [\"{nameserver}\"]\n    timeout: 1s\n"
        ));
    }
    y.push_str("connectors:\n");
    for c in connectors {
        y.push_str(c);
    }
    y
}

/// One connector entry: `name` and `key: value` pairs (values are YAML as written).
pub fn connector(name: &str, fields: &[(&str, &str)]) -> String {
    let mut y = format!("  - name: {name}\n");
    for (k, v) in fields {
        y.push_str(&format!("    {k}: {v}\n"));
    }
    y
}

/// A connector to `127.0.0.1:port` with extra fields.
pub fn local(name: &str, port: u16, extra: &[(&str, &str)]) -> String {
    let port = port.to_string();
    let mut fields: Vec<(&str, &str)> = vec![("smart_hosts", "[127.0.0.1]"), ("port", &port)];
    fields.extend_from_slice(extra);
    connector(name, &fields)
}

/// Start an exporter with one connector (no DNS) and probe it, asserting the outcome.
#[track_caller]
pub fn probe_one(
    entry: String,
    name: &str,
    code: &str,
    phase: &str,
    reason: &str,
) -> (Exporter, Metrics) {
    let e = Exporter::start(&config(None, &[entry]));
    let m = e.expect(name, code, phase, reason);
    (e, m)
}

/// One connector entry, its name, and its expected code, phase and reason (`("ok", "", "")`).
pub type Case<'a> = (String, &'a str, (&'a str, &'a str, &'a str));

/// The case of a connector to `127.0.0.1:port` (see `local`).
pub fn local_case<'a>(
    name: &'a str,
    port: u16,
    extra: &[(&str, &str)],
    outcome: (&'a str, &'a str, &'a str),
) -> Case<'a> {
    (local(name, port, extra), name, outcome)
}

/// Start one exporter on all the entries (with `nameserver`, if any), probe them all at
/// once (`GET /probe` runs the probes concurrently) and assert each outcome.
#[track_caller]
pub fn probe_all(nameserver: Option<&str>, cases: &[Case<'_>]) -> (Exporter, Metrics) {
    let entries: Vec<String> = cases.iter().map(|(entry, _, _)| entry.clone()).collect();
    let e = Exporter::start(&config(nameserver, &entries));
    let m = e.probe_path("/probe");
    for (_, name, (code, phase, reason)) in cases {
        e.assert_outcome(&m, name, code, phase, reason);
    }
    (e, m)
}
