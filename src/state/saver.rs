//! Keeping the state file (`--state.file`) in step with the state: restored once at start, saved
//! shortly after each change (so that one scrape round becomes one write), off the scrape path,
//! and saved once more at shutdown.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::State;
use super::file::{self, LoadedState};

/// How long after a change the state file is written, so a scrape round becomes one write.
pub const SAVE_DELAY: Duration = Duration::from_secs(1);

/// Writes one state file as the state changes.
#[derive(Debug)]
pub struct StateSaver {
    /// The state file.
    path: PathBuf,
    /// Woken when the state changed and should be saved.
    changed: Notify,
}

impl StateSaver {
    /// A saver of the state file at `path`.
    pub fn new(path: PathBuf) -> Self {
        StateSaver {
            path,
            changed: Notify::new(),
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Restores `state` from the file; a missing file leaves it empty, a damaged one is set aside
    /// (with a warning) and the state starts fresh. `Err` only when the file can be neither read
    /// nor set aside.
    pub fn restore(&self, state: &State) -> io::Result<()> {
        let path = self.path.display();
        match file::load(&self.path, SystemTime::now())? {
            LoadedState::Missing => {
                tracing::info!(file = %path, "no state file yet; starting fresh");
            }
            LoadedState::Read(states) => {
                tracing::info!(file = %path, connectors = states.len(), "state restored");
                state.restore(states);
            }
            LoadedState::SetAside { set_aside, problem } => {
                tracing::warn!(file = %path, set_aside = %set_aside.display(), problem = %problem, "the state file is damaged; set it aside and starting fresh");
            }
        }
        Ok(())
    }

    /// Says that the state changed: it is saved within [`SAVE_DELAY`].
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Saves `state` after every change, at most once per [`SAVE_DELAY`]. Runs forever.
    pub async fn keep_saved(&self, state: &State) {
        loop {
            self.changed.notified().await;
            tokio::time::sleep(SAVE_DELAY).await;
            self.save(state).await;
        }
    }

    /// Writes `state` to the file now (on a blocking thread), logging a failure.
    pub async fn save(&self, state: &State) {
        let snapshot = state.snapshot();
        let path = self.path.clone();
        let saved = tokio::task::spawn_blocking(move || file::save(&path, &snapshot)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(file = %self.path.display(), error = %error, "cannot write the state file");
            }
            Err(error) => tracing::error!(error = %error, "the state file writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes_saved(path: &Path) -> Option<u64> {
        match file::load(path, SystemTime::now()).expect("load") {
            LoadedState::Read(states) => states.get("a").map(|s| s.probes),
            LoadedState::Missing => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_gathered_into_one_write_after_the_delay() {
        let dir = tempfile::tempdir().expect("dir");
        let saver = StateSaver::new(dir.path().join("state.json"));
        let state = State::default();
        let keeping = saver.keep_saved(&state);
        tokio::pin!(keeping);
        for _ in 0..3 {
            state.record("a", &Ok(()), SystemTime::now());
            saver.changed();
        }
        // Just before the delay is over, nothing is written yet.
        tokio::select! {
            () = &mut keeping => unreachable!("keeps saving forever"),
            () = tokio::time::sleep(SAVE_DELAY - Duration::from_millis(1)) => {}
        }
        assert_eq!(probes_saved(saver.path()), None);
        // Then all three probes land in one write.
        tokio::select! {
            () = &mut keeping => unreachable!("keeps saving forever"),
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
        assert_eq!(probes_saved(saver.path()), Some(3));
        // Without a change nothing is written again...
        std::fs::remove_file(saver.path()).expect("remove");
        tokio::select! {
            () = &mut keeping => unreachable!("keeps saving forever"),
            () = tokio::time::sleep(SAVE_DELAY * 10) => {}
        }
        assert_eq!(probes_saved(saver.path()), None);
        // ...and a later change is saved too.
        state.record("a", &Ok(()), SystemTime::now());
        saver.changed();
        tokio::select! {
            () = &mut keeping => unreachable!("keeps saving forever"),
            () = tokio::time::sleep(SAVE_DELAY * 10) => {}
        }
        assert_eq!(probes_saved(saver.path()), Some(4));
    }

    #[test]
    fn restores_what_was_saved_and_starts_fresh_without_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let saver = StateSaver::new(dir.path().join("state.json"));
        let state = State::default();
        saver.restore(&state).expect("missing is fine");
        assert!(state.snapshot().is_empty());
        state.record("a", &Ok(()), SystemTime::now());
        file::save(saver.path(), &state.snapshot()).expect("save");
        let restored = State::default();
        saver.restore(&restored).expect("restore");
        assert_eq!(restored.get("a").map(|s| s.probes), Some(1));
    }
}
