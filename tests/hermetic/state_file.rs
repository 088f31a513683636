//! `--state.file` (issue 3): counters and the failure streak survive a SIGKILL, and a damaged
//! file is set aside, not deleted.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::eventually;
use crate::common::exporter::{Exporter, config, local};
use crate::common::metrics::Metrics;
use crate::common::net::closed_port;

/// Unix time now, in seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// `mailflow_probes_total`, `mailflow_probe_failures_total{code}` and
/// `mailflow_queue_age_seconds` of `connector`.
fn counters(m: &Metrics, connector: &str, code: &str) -> (f64, f64, f64) {
    let c = [("connector", connector)];
    (
        m.expect("mailflow_probes_total", &c),
        m.expect(
            "mailflow_probe_failures_total",
            &[("connector", connector), ("code", code)],
        ),
        m.expect("mailflow_queue_age_seconds", &c),
    )
}

/// Wait (at most `max`) until `path` exists, modified at or after `since`.
fn wait_for_file(path: &Path, since: SystemTime, max: Duration) -> bool {
    eventually(max, || {
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        modified.is_ok_and(|t| t >= since)
    })
}

#[test]
fn counters_and_streak_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let state_arg = state.display().to_string();
    let yaml = config(None, &[local("persist", closed_port("127.0.0.1"), &[])]);
    let mut e = Exporter::start_with_args(&yaml, &["--state.file", &state_arg]);

    // The first failed probe of the streak happens within [before_first, after_first].
    let before_first = unix_now();
    let first = e.expect("persist", "4.4.316", "connect", "refused");
    let after_first = unix_now();
    assert_eq!(
        counters(&first, "persist", "4.4.316").0,
        1.0,
        "{}",
        first.lines_of("mailflow_probes_total")
    );
    std::thread::sleep(Duration::from_millis(300));
    e.probe("persist");
    std::thread::sleep(Duration::from_millis(300));
    let last = e.probe("persist");
    let last_scraped = SystemTime::now();
    let (probes, failures, age) = counters(&last, "persist", "4.4.316");
    assert_eq!((probes, failures), (3.0, 3.0), "{}", last.text);
    assert!(age >= 0.5, "the streak ages within the first run: {age}");

    // The file is written off the scrape path, about a second after a change. Wait for a write
    // that began at least half a second after the last scrape (its data is written, so its
    // mtime set, right after the snapshot; fsync and rename follow), so it holds all three
    // probes; then kill the exporter without a chance to save at shutdown.
    assert!(
        wait_for_file(
            &state,
            last_scraped + Duration::from_millis(500),
            Duration::from_secs(10)
        ),
        "no state file written after the last scrape within 10 s:\n{}",
        e.logs()
    );
    e.kill();
    e.restart();

    let before_scrape = unix_now();
    let m = e.expect("persist", "4.4.316", "connect", "refused");
    let after_scrape = unix_now();
    let (probes2, failures2, age2) = counters(&m, "persist", "4.4.316");
    assert_eq!(
        (probes2, failures2),
        (probes + 1.0, failures + 1.0),
        "the counters continue across the restart:\n{}\nexporter output:\n{}",
        m.lines_of("mailflow_probe"),
        e.logs()
    );
    // The oldest queued message dates from the first failure of the first run.
    assert!(
        age2 >= before_scrape - after_first && age2 <= after_scrape - before_first,
        "queue age {age2} after the restart should be the time since the first failure of the \
         first run ({:.2}..{:.2} s), not a new streak",
        before_scrape - after_first,
        after_scrape - before_first
    );
    assert!(age2 >= 2.0, "queue age {age2}");
    assert!(
        !e.logs().contains("damaged"),
        "a state file written by the exporter is not damaged:\n{}",
        e.logs()
    );
}

#[test]
fn damaged_state_file_is_set_aside_and_the_exporter_starts_fresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let garbage: Vec<u8> = b"{\"version\": 1, \"connectors\": {\"fresh\": \xff\xfe garbage\x00\n"
        .iter()
        .copied()
        .chain((0..=255u8).rev())
        .collect();
    std::fs::write(&state, &garbage).expect("write garbage");
    let state_arg = state.display().to_string();
    let yaml = config(None, &[local("fresh", closed_port("127.0.0.1"), &[])]);

    // Whole seconds, as the stamp of the set-aside file.
    let before = unix_now() as u64;
    let e = Exporter::start_with_args(&yaml, &["--state.file", &state_arg]);
    let after = unix_now() as u64;

    let logs = e.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("level=warn") && l.contains("state"))
        .unwrap_or_else(|| panic!("no warning about the state file:\n{logs}"));

    // Set aside as state.json.damaged-<unix time>, its bytes intact.
    let set_aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.json.damaged-"))
        .collect();
    assert_eq!(set_aside.len(), 1, "{set_aside:?}; log:\n{logs}");
    let stamp: u64 = set_aside[0]["state.json.damaged-".len()..]
        .parse()
        .unwrap_or_else(|e| panic!("{}: not a unix time ({e})", set_aside[0]));
    assert!(
        (before..=after).contains(&stamp),
        "{} is not stamped with the time of the start ({before}..={after})",
        set_aside[0]
    );
    assert!(
        warning.contains(&set_aside[0]),
        "the warning names where the file went: {warning}"
    );
    assert_eq!(
        std::fs::read(dir.path().join(&set_aside[0])).expect("read the set-aside file"),
        garbage,
        "the damaged file's bytes are kept"
    );

    // Fresh counters, and a new, good state file follows.
    let m = e.expect("fresh", "4.4.316", "connect", "refused");
    let (probes, failures, age) = counters(&m, "fresh", "4.4.316");
    assert_eq!((probes, failures), (1.0, 1.0), "{}", m.text);
    assert!(age < 1.0, "a fresh streak: {age}");
    assert!(
        wait_for_file(&state, SystemTime::UNIX_EPOCH, Duration::from_secs(10)),
        "no new state file after the probe:\n{}",
        e.logs()
    );
}
