//! The exporter binary as a child process for the standalone test binaries: started with
//! `--web.listen-address 127.0.0.1:0`, its address read from the `listening` log line, its log
//! collected (bounded) in the background, and the process killed when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most log bytes kept.
const MAX_LOG: usize = 1 << 20;

/// A running exporter.
pub struct Launched {
    /// The process.
    pub child: Child,
    /// Where it serves HTTP.
    pub address: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launched {
    /// Runs the exporter with `args` (a subcommand and flags) on a loopback port chosen by the
    /// system; panics with its log if it does not report its address within 30 s. Its standard
    /// output is piped and left to the caller (`child.stdout`).
    pub fn start<I, S>(args: I) -> Launched
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailflow_exporter"))
            .args(args)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the exporter");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    if let Some(address) = line
                        .split_whitespace()
                        .find_map(|f| f.strip_prefix("address=")?.parse::<SocketAddr>().ok())
                    {
                        let _ = found.send(address);
                    }
                }
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() < MAX_LOG {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let mut launched = Launched {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match address.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => launched.address = address,
            Err(_) => panic!(
                "the exporter did not report its address:\n{}",
                launched.log()
            ),
        }
        launched
    }

    /// What the exporter has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Its standard output, once (e.g. the drill's list of connectors).
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout is taken once")
    }
}
