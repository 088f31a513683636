//! The state file (`--state.file`): counters, failure streaks and last successes that survive a
//! restart.
//!
//! The file is JSON, written atomically: a temporary file in the same directory, fsync, rename
//! over the old file, fsync of the directory. A crash leaves either the old or the new file,
//! never a torn one. A file that cannot be read back is set aside under a new name, never
//! deleted, and the exporter starts fresh.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ConnectorState, RecentCodes, unix_seconds};
use crate::outcome::Code;

/// The format version written into the file.
const VERSION: u32 = 1;
/// The largest state file read; anything bigger is treated as damaged.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What loading a state file found.
#[derive(Debug)]
pub enum LoadedState {
    /// There was no file yet.
    Missing,
    /// The file was read.
    Read(BTreeMap<String, ConnectorState>),
    /// The file was damaged and moved to `set_aside`; the exporter starts fresh.
    SetAside {
        /// Where the damaged file now is.
        set_aside: PathBuf,
        /// What was wrong with it.
        problem: String,
    },
}

/// Reads the state file at `path`; a damaged one is renamed to `<path>.damaged-<unix time>`.
pub fn load(path: &Path, now: SystemTime) -> io::Result<LoadedState> {
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(LoadedState::Missing),
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            return set_aside(path, now, error.to_string());
        }
        Err(error) => return Err(error),
    };
    match parse(&text) {
        Ok(states) => Ok(LoadedState::Read(states)),
        Err(problem) => set_aside(path, now, problem),
    }
}

/// Writes `states` to `path` atomically.
pub fn save(path: &Path, states: &BTreeMap<String, ConnectorState>) -> io::Result<()> {
    let file = FileFormat {
        version: VERSION,
        connectors: states
            .iter()
            .map(|(name, state)| (name.clone(), StoredConnector::from(state)))
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the state file needs a file name",
        )
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".tmp-{}", std::process::id()));
    let temporary = dir.join(temporary_name);
    let written = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        out.write_all(&bytes)?;
        out.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// The file's shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    connectors: BTreeMap<String, StoredConnector>,
}

/// One connector's state as stored: times as Unix seconds, failures by code label.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredConnector {
    probes: u64,
    failures: BTreeMap<String, u64>,
    streak_start: Option<f64>,
    last_success: Option<f64>,
}

impl From<&ConnectorState> for StoredConnector {
    fn from(state: &ConnectorState) -> Self {
        StoredConnector {
            probes: state.probes,
            failures: Code::ALL
                .iter()
                .filter(|code| **code != Code::Ok)
                .map(|code| (code.as_str().to_owned(), state.failures_with(*code)))
                .collect(),
            streak_start: state.streak_start.map(unix_seconds),
            last_success: state.last_success.map(unix_seconds),
        }
    }
}

impl TryFrom<StoredConnector> for ConnectorState {
    type Error = String;

    fn try_from(stored: StoredConnector) -> Result<Self, String> {
        let mut failures = [0; Code::ALL.len()];
        for (label, count) in &stored.failures {
            let index = Code::ALL
                .iter()
                .position(|code| *code != Code::Ok && code.as_str() == label)
                .ok_or_else(|| format!("unknown code {label:?}"))?;
            failures[index] = *count;
        }
        Ok(ConnectorState {
            probes: stored.probes,
            failures,
            streak_start: stored.streak_start.map(time_from_unix).transpose()?,
            last_success: stored.last_success.map(time_from_unix).transpose()?,
            last_outcome: None,
            recent: RecentCodes::default(),
        })
    }
}

fn time_from_unix(seconds: f64) -> Result<SystemTime, String> {
    if !seconds.is_finite() || !(0.0..1e11).contains(&seconds) {
        return Err(format!("invalid time {seconds}"));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

fn parse(text: &str) -> Result<BTreeMap<String, ConnectorState>, String> {
    let file: FileFormat = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("unsupported version {}", file.version));
    }
    file.connectors
        .into_iter()
        .map(|(name, stored)| {
            let state =
                ConnectorState::try_from(stored).map_err(|e| format!("connector {name:?}: {e}"))?;
            Ok((name, state))
        })
        .collect()
}

fn read_bounded(path: &Path) -> io::Result<String> {
    let length = fs::metadata(path)?.len();
    if length > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{length} bytes, more than the {MAX_FILE_BYTES} a state file may have"),
        ));
    }
    let bytes = fs::read(path)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn set_aside(path: &Path, now: SystemTime, problem: String) -> io::Result<LoadedState> {
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut target = path.as_os_str().to_owned();
    target.push(format!(".damaged-{stamp}"));
    let mut set_aside = PathBuf::from(target);
    let mut attempt = 1;
    while set_aside.exists() && attempt < 100 {
        let mut next = path.as_os_str().to_owned();
        next.push(format!(".damaged-{stamp}-{attempt}"));
        set_aside = PathBuf::from(next);
        attempt += 1;
    }
    fs::rename(path, &set_aside)?;
    Ok(LoadedState::SetAside { set_aside, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn sample() -> BTreeMap<String, ConnectorState> {
        let mut failures = [0; Code::ALL.len()];
        failures[3] = 7;
        let mut states = BTreeMap::new();
        states.insert(
            "a".to_owned(),
            ConnectorState {
                probes: 12,
                failures,
                streak_start: Some(at(1_700_000_000)),
                last_success: Some(at(1_699_999_940)),
                last_outcome: None,
                recent: RecentCodes::default(),
            },
        );
        states.insert("b".to_owned(), ConnectorState::default());
        states
    }

    #[test]
    fn a_saved_state_reads_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        assert!(matches!(
            load(&path, at(0)).expect("load"),
            LoadedState::Missing
        ));
        save(&path, &sample()).expect("save");
        match load(&path, at(0)).expect("load") {
            LoadedState::Read(states) => assert_eq!(states, sample()),
            other => panic!("unexpected {other:?}"),
        }
        // Saving again replaces the file and leaves no temporary file behind.
        save(&path, &BTreeMap::new()).expect("save");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_damaged_file_is_set_aside_not_deleted() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"version\": 1, \"connectors\": {\"a\": tru").expect("write");
        match load(&path, at(1234)).expect("load") {
            LoadedState::SetAside { set_aside, problem } => {
                assert_eq!(set_aside, dir.path().join("state.json.damaged-1234"));
                assert!(problem.contains("EOF"), "{problem}");
                assert_eq!(
                    fs::read(&set_aside).expect("kept"),
                    b"{\"version\": 1, \"connectors\": {\"a\": tru"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!path.exists());
        // A second damaged file at the same second does not overwrite the first.
        fs::write(&path, b"\xff\xfe").expect("write");
        match load(&path, at(1234)).expect("load") {
            LoadedState::SetAside { set_aside, .. } => {
                assert_eq!(set_aside, dir.path().join("state.json.damaged-1234-1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_versions_and_codes_are_damage() {
        assert!(parse("{\"version\": 2, \"connectors\": {}}").is_err());
        assert!(
            parse("{\"version\": 1, \"connectors\": {\"a\": {\"probes\": 1, \"failures\": {\"9.9.9\": 1}, \"streak_start\": null, \"last_success\": null}}}")
                .is_err()
        );
        assert!(
            parse("{\"version\": 1, \"connectors\": {\"a\": {\"probes\": 1, \"failures\": {}, \"streak_start\": -5, \"last_success\": null}}}")
                .is_err()
        );
    }
}
