//! The standard `process_*` metrics of every Prometheus exporter, read from `/proc/self` at each
//! scrape of `/metrics`, as the Go client's process collector reads them: CPU time, resident and
//! virtual memory, open and maximum file descriptors, start time.

use std::path::Path;

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`): fixed at 100 in the kernel's ABI on
/// every architecture Linux exposes to user space, whatever `CONFIG_HZ` is (the Go client
/// assumes the same).
const USER_HZ: f64 = 100.0;

/// One reading of the process's resources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time spent, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: f64,
    /// Virtual memory, in bytes.
    pub virtual_memory_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// The soft limit on open file descriptors.
    pub max_fds: f64,
    /// When the process started, in Unix seconds.
    pub start_time_seconds: f64,
}

/// Why `/proc` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessReadError {
    /// A file of `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A file of `/proc` did not have the expected shape.
    #[error("unexpected content in {0}")]
    Malformed(&'static str),
}

impl ProcessSample {
    /// Reads the running process's resources from `/proc`.
    pub fn read() -> Result<Self, ProcessReadError> {
        let stat = read("/proc/self/stat")?;
        let stat = Stat::parse(&stat).ok_or(ProcessReadError::Malformed("/proc/self/stat"))?;
        let boot_time =
            boot_time(&read("/proc/stat")?).ok_or(ProcessReadError::Malformed("/proc/stat"))?;
        let resident_kib = resident_kib(&read("/proc/self/status")?)
            .ok_or(ProcessReadError::Malformed("/proc/self/status"))?;
        let open_fds = open_fds(Path::new("/proc/self/fd"))?;
        let (max_fds, _) =
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|source| ProcessReadError::Io {
                path: "RLIMIT_NOFILE",
                source,
            })?;
        Ok(ProcessSample {
            cpu_seconds: (stat.utime + stat.stime) as f64 / USER_HZ,
            resident_memory_bytes: resident_kib as f64 * 1024.0,
            virtual_memory_bytes: stat.vsize as f64,
            open_fds: open_fds as f64,
            max_fds: max_fds as f64,
            start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / USER_HZ,
        })
    }
}

/// The fields of `/proc/PID/stat` that the metrics need.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    /// User CPU time, in clock ticks (field 14).
    utime: u64,
    /// System CPU time, in clock ticks (field 15).
    stime: u64,
    /// Start time after boot, in clock ticks (field 22).
    start_ticks: u64,
    /// Virtual memory size, in bytes (field 23).
    vsize: u64,
}

impl Stat {
    /// Parses one line of `/proc/PID/stat`. The command name (field 2, in parentheses) may hold
    /// spaces and parentheses itself, so fields are counted from the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let (_, after_name) = text.rsplit_once(')')?;
        // After the name: field 3 (state) onwards.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// The boot time (`btime`) in Unix seconds, from `/proc/stat`.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The resident set size in KiB (`VmRSS`), from `/proc/PID/status`.
fn resident_kib(text: &str) -> Option<u64> {
    let value = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// How many descriptors are open: the entries of `/proc/self/fd` (counting the one that lists
/// them, as the Go client does).
fn open_fds(directory: &'static Path) -> Result<usize, ProcessReadError> {
    let io = |source| ProcessReadError::Io {
        path: "/proc/self/fd",
        source,
    };
    let mut count = 0;
    for entry in std::fs::read_dir(directory).map_err(io)? {
        entry.map_err(io)?;
        count += 1;
    }
    Ok(count)
}

fn read(path: &'static str) -> Result<String, ProcessReadError> {
    std::fs::read_to_string(path).map_err(|source| ProcessReadError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line = "4242 (odd) name (x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 \
                    9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 \
                    1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                start_ticks: 123456,
                vsize: 987654321,
            })
        );
        assert_eq!(Stat::parse("4242 (short) S 1 2 3"), None);
        assert_eq!(Stat::parse("no parenthesis"), None);
    }

    #[test]
    fn finds_boot_time_and_resident_memory() {
        assert_eq!(
            boot_time("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(boot_time("cpu 1\n"), None);
        assert_eq!(
            resident_kib("Name:\tx\nVmSize:\t  10000 kB\nVmRSS:\t    5120 kB\n"),
            Some(5120)
        );
        assert_eq!(resident_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let sample = ProcessSample::read().expect("/proc");
        assert!(sample.resident_memory_bytes > 1024.0 * 1024.0, "{sample:?}");
        assert!(sample.virtual_memory_bytes >= sample.resident_memory_bytes);
        assert!(sample.open_fds >= 3.0 && sample.open_fds <= sample.max_fds);
        let now = crate::state::unix_seconds(std::time::SystemTime::now());
        assert!(
            sample.start_time_seconds > now - 86_400.0 && sample.start_time_seconds <= now + 1.0,
            "{sample:?}"
        );
        assert!(sample.cpu_seconds >= 0.0);
    }
}
