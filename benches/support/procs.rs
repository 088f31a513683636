//! The exporters under test as child processes (killed and reaped on drop), and what /proc says
//! about them: CPU time and peak memory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::http::Client;

/// A running exporter.
pub(crate) struct Exporter {
    /// Short name for tables ("mailflow", "blackbox").
    pub(crate) name: &'static str,
    /// Where it serves HTTP.
    pub(crate) addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Exporter {
    /// Starts `program args...` (which must listen on `addr`), logging to `log`, and waits until
    /// `GET /-/healthy` answers 200 (at most 15 s).
    pub(crate) async fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        addr: SocketAddr,
        log: PathBuf,
    ) -> Result<Self> {
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let mut exporter = Exporter {
            name,
            addr,
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = exporter.child.try_wait()? {
                bail!(
                    "{name} exited at start ({status}):\n{}",
                    exporter.log_text()
                );
            }
            let mut client = Client::new(addr)?;
            if let Ok(r) = client
                .get("/-/healthy", Duration::from_secs(5), Duration::from_secs(2))
                .await
                && r.status == 200
            {
                return Ok(exporter);
            }
            if Instant::now() > deadline {
                bail!("{name} not healthy within 15 s:\n{}", exporter.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds used so far.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    /// CPU seconds its live threads have used so far, to the nanosecond (the sum of
    /// `/proc/PID/task/*/schedstat`): for spans too short for the 10 ms ticks of
    /// [`Exporter::cpu_seconds`]; threads that have exited are not counted.
    pub(crate) fn thread_cpu_seconds(&self) -> Result<f64> {
        let mut nanoseconds = 0u64;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let path = task?.path().join("schedstat");
            // A thread may exit between the listing and the read.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let first = text.split_whitespace().next().unwrap_or_default();
            nanoseconds += first
                .parse::<u64>()
                .with_context(|| format!("odd {}", path.display()))?;
        }
        Ok(nanoseconds as f64 / 1e9)
    }

    /// Peak resident set size so far (VmHWM), MiB.
    pub(crate) fn peak_rss_mib(&self) -> Result<f64> {
        status_kib(self.pid(), "VmHWM").map(|k| k / 1024.0)
    }

    /// Current resident set size (VmRSS), MiB.
    pub(crate) fn rss_mib(&self) -> Result<f64> {
        status_kib(self.pid(), "VmRSS").map(|k| k / 1024.0)
    }

    /// Current anonymous and file-backed resident memory (RssAnon, RssFile), MiB.
    pub(crate) fn rss_parts_mib(&self) -> Result<(f64, f64)> {
        Ok((
            status_kib(self.pid(), "RssAnon")? / 1024.0,
            status_kib(self.pid(), "RssFile")? / 1024.0,
        ))
    }

    /// Its log so far (the tail).
    pub(crate) fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// Fails if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
        Ok(())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second for /proc/PID/stat.
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of /proc/PID/stat after the command name: `fields[0]` is field 3 (state).
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("odd /proc/PID/stat")?;
    Ok(after.split_whitespace().map(str::to_string).collect())
}

fn field(fields: &[String], number: usize) -> Result<f64> {
    Ok(fields
        .get(number - 3)
        .with_context(|| format!("no field {number} in /proc/PID/stat"))?
        .parse()?)
}

/// utime + stime of `pid` (fields 14 and 15), in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let f = stat_fields(pid)?;
    Ok((field(&f, 14)? + field(&f, 15)?) / ticks_per_second())
}

/// utime + stime of `pid` plus those of its reaped children (cutime, cstime), in seconds.
pub(crate) fn cpu_seconds_with_children(pid: u32) -> Result<f64> {
    let f = stat_fields(pid)?;
    let ticks = field(&f, 14)? + field(&f, 15)? + field(&f, 16)? + field(&f, 17)?;
    Ok(ticks / ticks_per_second())
}

/// The live children of `parent`.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| {
            stat_fields(pid)
                .ok()
                .and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                == Some(parent)
        })
        .collect()
}

/// A `kB` line of /proc/PID/status.
pub(crate) fn status_kib(pid: u32, key: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let value = rest.split_whitespace().next().unwrap_or_default();
            return Ok(value.parse()?);
        }
    }
    bail!("no {key} in /proc/{pid}/status")
}

/// A currently free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
