//! Graceful shutdown (issue 5): SIGTERM (and SIGINT) while a scrape of a hanging connector is
//! in flight. The scrape still gets its answer, with its code; the process exits 0 soon after;
//! and with `--state.file` the state is written at shutdown.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::eventually;
use crate::common::exporter::{Exporter, config, local};
use crate::common::metrics::Metrics;
use crate::common::smtp::Server;

/// The hanging connector's probe timeout.
const PROBE_TIMEOUT: &str = "2s";
/// How long after the signal the process may take to exit (the probe has under 2 s left).
const EXIT_WITHIN: Duration = Duration::from_secs(6);

/// Signal `signal` during a scrape of a hanging connector; assert the answer, the exit and the
/// state file.
fn shutdown_during_a_scrape(signal: &str) {
    let hanging = Server::start(|c| c.hang(Duration::from_secs(20)));
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let state_arg = state.display().to_string();
    let yaml = config(
        None,
        &[local("hang", hanging.port(), &[("timeout", PROBE_TIMEOUT)])],
    );
    let mut e = Exporter::start_with_args(&yaml, &["--state.file", &state_arg]);
    let addr = e.addr;

    let scrape = std::thread::spawn(move || {
        let begun = Instant::now();
        let r = crate::common::http::get(
            addr,
            "/probe?connector=hang",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "10")],
        );
        (r, begun.elapsed())
    });
    assert!(
        eventually(Duration::from_secs(5), || hanging.connections() >= 1),
        "SIG{signal}: the probe never connected:\n{}",
        e.logs()
    );
    // Nothing was probed to the end yet, so nothing was saved: a state file after this was
    // written at shutdown.
    assert!(
        !state.exists(),
        "SIG{signal}: a state file before any probe ended"
    );
    e.signal(signal);
    let signalled = Instant::now();

    let (answer, took) = scrape.join().expect("scrape thread");
    let r = answer.unwrap_or_else(|err| {
        panic!(
            "SIG{signal}: the scrape in flight got no answer: {err}\n{}",
            e.logs()
        )
    });
    assert_eq!(r.status, 200, "SIG{signal}: {}\n{}", r.body, e.logs());
    e.assert_outcome(
        &Metrics::parse(&r.body),
        "hang",
        "4.4.318",
        "greeting",
        "timeout",
    );
    assert!(
        took >= Duration::from_millis(1500),
        "SIG{signal}: the scrape should have waited for its probe, answered after {took:?}"
    );

    let status = e.wait_exit(EXIT_WITHIN).unwrap_or_else(|| {
        panic!(
            "SIG{signal}: still running {EXIT_WITHIN:?} after the signal:\n{}",
            e.logs()
        )
    });
    let exited_after = signalled.elapsed();
    assert!(
        status.success(),
        "SIG{signal}: exit status {status}:\n{}",
        e.logs()
    );

    let text = std::fs::read_to_string(&state).unwrap_or_else(|err| {
        panic!(
            "SIG{signal}: no state file after shutdown ({err}):\n{}",
            e.logs()
        )
    });
    let saved: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("SIG{signal}: the state file is not JSON ({err}): {text}"));
    let hang = &saved["connectors"]["hang"];
    assert_eq!(
        (
            hang["probes"].as_u64(),
            hang["failures"]["4.4.318"].as_u64()
        ),
        (Some(1), Some(1)),
        "SIG{signal}: the state file holds the probe that ended during shutdown: {text}"
    );
    eprintln!(
        "shutdown: SIG{signal}: scrape answered after {took:?}, exit 0 {exited_after:?} after the signal"
    );
}

#[test]
fn sigterm_lets_the_scrape_in_flight_finish_then_saves_state_and_exits_0() {
    shutdown_during_a_scrape("TERM");
}

#[test]
fn sigint_lets_the_scrape_in_flight_finish_then_saves_state_and_exits_0() {
    shutdown_during_a_scrape("INT");
}
