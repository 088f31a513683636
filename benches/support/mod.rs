//! Helpers of the benchmark harness.

pub(crate) mod client;
pub(crate) mod dane;
// The system tier's DNSSEC world (signed zones served by NSD, Unbound validating in front), with
// the DNS wire helpers and the exit-time cleanup it uses. Test fixtures: they panic with the
// daemons' logs when a daemon does not start (the harness runs them where a panic is an error).
#[path = "../../tests/integration/system/dns_wire.rs"]
#[allow(dead_code)]
pub(crate) mod dns_wire;
#[path = "../../tests/integration/system/dnssec_world.rs"]
#[allow(dead_code, clippy::expect_used, clippy::unwrap_used)]
pub(crate) mod dnssec_world;
pub(crate) mod http;
pub(crate) mod postfix;
#[path = "../../tests/integration/system/postfix_services.rs"]
pub(crate) mod postfix_services;
pub(crate) mod procs;
#[path = "../../tests/integration/system/reaper.rs"]
pub(crate) mod reaper;
pub(crate) mod smtpd;

use std::path::PathBuf;

/// A new directory that outlives the harness's own temporary directory: [`dnssec_world`] keeps
/// its keys, zones and daemon logs there, and the reaper removes it once the harness has exited
/// (by then the world's daemons are stopped). Panics when no directory can be made (called in a
/// blocking task, where a panic is an error the harness reports).
pub(crate) fn kept_dir(prefix: &str) -> PathBuf {
    let dir = match tempfile::Builder::new().prefix(prefix).tempdir() {
        Ok(dir) => dir.keep(),
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    reaper::on_exit(&format!("rm -rf '{}'", dir.display()));
    dir
}

/// The `q`-th percentile (0..=100, nearest rank) of `values`; NaN when empty.
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The share (percent) of `values` above `limit`.
pub(crate) fn share_above(values: &[f64], limit: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    100.0 * values.iter().filter(|&&v| v > limit).count() as f64 / values.len() as f64
}

/// The value of the first sample of metric `name` in a text exposition (any labels).
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    samples(text, name).next()
}

/// Every sample value of metric `name` (exactly that name, any labels).
pub(crate) fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        // The value follows the labels; labels here never hold "} ".
        let value_part = match rest.rfind('}') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        value_part.split_whitespace().next()?.parse().ok()
    })
}
