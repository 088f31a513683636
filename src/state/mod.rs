//! What the exporter remembers between probes: counters, the failure streak and the last
//! success of each connector. Time is always passed in, so the rules are testable without waiting.
//! [`file`](mod@file) keeps it in a file across restarts, and [`saver`] writes that file as it changes.

pub mod file;
pub mod recent;
pub mod saver;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::outcome::{Code, Failure, Outcome, code_of};

pub use recent::RecentCodes;

/// The remembered history of one connector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectorState {
    /// Probes run.
    pub probes: u64,
    /// Failed probes, by code (indexed like [`Code::ALL`]; the `ok` slot stays 0).
    pub failures: [u64; Code::ALL.len()],
    /// When the first failed probe of the current failure streak ran; `None` while delivering.
    pub streak_start: Option<SystemTime>,
    /// When the last probe with code `ok` ran.
    pub last_success: Option<SystemTime>,
    /// The outcome of the last probe.
    pub last_outcome: Option<Outcome>,
    /// The codes of the last few probes, oldest first (not kept across restarts).
    pub recent: RecentCodes,
}

impl ConnectorState {
    /// Failed probes with `code`.
    pub fn failures_with(&self, code: Code) -> u64 {
        Code::ALL
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.failures[i])
    }

    /// The age of the oldest message that would be queued: time since the failure streak began,
    /// zero while delivering.
    pub fn queue_age(&self, now: SystemTime) -> Duration {
        self.streak_start
            .and_then(|start| now.duration_since(start).ok())
            .unwrap_or_default()
    }

    /// Takes one probe's outcome into account.
    fn record(&mut self, outcome: &Outcome, now: SystemTime) {
        self.probes += 1;
        match outcome {
            Ok(()) => {
                self.streak_start = None;
                self.last_success = Some(now);
            }
            Err(failure) => {
                self.count_failure(failure);
                self.streak_start.get_or_insert(now);
            }
        }
        self.last_outcome = Some(*outcome);
        self.recent.push(code_of(outcome));
    }

    fn count_failure(&mut self, failure: &Failure) {
        let code = failure.code();
        if let Some(i) = Code::ALL.iter().position(|c| *c == code) {
            self.failures[i] += 1;
        }
    }
}

/// The history of every connector.
#[derive(Debug, Default)]
pub struct State {
    /// Each connector's history, by connector name; only connectors probed since they were
    /// configured (or restored from the state file).
    connectors: Mutex<HashMap<String, ConnectorState>>,
}

impl State {
    /// Records a probe of `connector` that ran at `now`, and returns the connector's new state.
    pub fn record(&self, connector: &str, outcome: &Outcome, now: SystemTime) -> ConnectorState {
        let mut connectors = self.lock();
        let state = connectors.entry(connector.to_owned()).or_default();
        state.record(outcome, now);
        state.clone()
    }

    /// The state of `connector`, if it was ever probed.
    pub fn get(&self, connector: &str) -> Option<ConnectorState> {
        self.lock().get(connector).cloned()
    }

    /// Every connector's state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ConnectorState> {
        self.lock()
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect()
    }

    /// Replaces every connector's state with `states` (read back from a state file).
    pub fn restore(&self, states: BTreeMap<String, ConnectorState>) {
        *self.lock() = states.into_iter().collect();
    }

    /// Forgets every connector not in `names` (after a configuration change).
    pub fn retain<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.into_iter().collect();
        self.lock().retain(|name, _| keep.contains(name.as_str()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnectorState>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters
        // more than losing metrics, so a poisoned lock is simply taken over.
        self.connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Seconds since the Unix epoch, as a float (0 before the epoch).
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ConnectFailure;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    #[test]
    fn the_streak_starts_at_the_first_failure_and_ends_at_a_success() {
        let state = State::default();
        let refused = Err(Failure::Connect(ConnectFailure::Refused));
        let timeout = Err(Failure::Connect(ConnectFailure::Timeout));
        assert_eq!(
            state.record("a", &Ok(()), at(0)).queue_age(at(0)),
            Duration::ZERO
        );
        state.record("a", &refused, at(60));
        let s = state.record("a", &timeout, at(120));
        assert_eq!(s.queue_age(at(3600)), Duration::from_secs(3540));
        assert_eq!(s.probes, 3);
        assert_eq!(s.failures_with(Code::ConnectionRefused), 1);
        assert_eq!(s.failures_with(Code::ConnectionTimedOut), 1);
        assert_eq!(s.last_success, Some(at(0)));
        let s = state.record("a", &Ok(()), at(4000));
        assert_eq!(s.queue_age(at(5000)), Duration::ZERO);
        assert_eq!(s.last_success, Some(at(4000)));
        assert_eq!(s.failures_with(Code::ConnectionRefused), 1);
        assert_eq!(
            s.recent.iter().collect::<Vec<_>>(),
            [
                Code::Ok,
                Code::ConnectionRefused,
                Code::ConnectionTimedOut,
                Code::Ok
            ]
        );
    }

    #[test]
    fn removed_connectors_are_forgotten() {
        let state = State::default();
        state.record("a", &Ok(()), at(0));
        state.record("b", &Ok(()), at(0));
        state.retain(["b"]);
        assert!(state.get("a").is_none());
        assert!(state.get("b").is_some());
    }
}
