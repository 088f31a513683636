//! Fixtures both test tiers share: the exporter process itself (the one launcher), a tiny HTTP
//! client, a parser for the metrics text, scripted SMTP servers, loopback network helpers
//! (closed ports, a full accept queue), and the one polling loop.
//!
//! Nothing here needs root or a program besides the exporter: the hermetic tier
//! (`tests/hermetic`) uses only these; the system tier (`tests/integration`) adds real Postfix,
//! dnsmasq, Prometheus and network namespaces in `tests/integration/system`.
//!
//! Every fixture talks only to loopback addresses.
#![allow(dead_code)]

pub mod exporter;
pub mod http;
pub mod metrics;
pub mod net;
pub mod smtp;

use std::time::{Duration, Instant};

/// The first pause between two attempts of [`poll`]; it doubles up to [`POLL_MAX_PAUSE`].
const POLL_FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two attempts of [`poll`] (spares a server that is asked over HTTP).
const POLL_MAX_PAUSE: Duration = Duration::from_millis(250);

/// Calls `attempt` until it returns `Ok` or `max` has passed, pausing 20 ms after the first
/// failure and twice as long after each further one (at most 250 ms); returns the first `Ok`, or
/// the last `Err` once time is up. `attempt` always runs at least once.
pub fn poll<T, E>(max: Duration, mut attempt: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let start = Instant::now();
    let mut pause = POLL_FIRST_PAUSE;
    loop {
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if start.elapsed() >= max {
            return Err(error);
        }
        std::thread::sleep(pause.min(max.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(POLL_MAX_PAUSE);
    }
}

/// Whether `check` becomes true within `max` (asked as often as [`poll`] asks).
pub fn eventually(max: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(max, || if check() { Ok(()) } else { Err(()) }).is_ok()
}
