//! Configuration reloads (issue 5), by `POST /-/reload` and by SIGHUP: a valid file applies a
//! changed connector set and keeps the state of unchanged connectors; an invalid one keeps the old
//! configuration running, answers 500 with the problem's file, line and column, and sets
//! `mailflow_config_last_reload_successful` to 0; and a reload does not drop scrapes in flight.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::eventually;
use crate::common::exporter::{Exporter, config, local};
use crate::common::http::{self, Response};
use crate::common::metrics::Metrics;
use crate::common::net::closed_port;
use crate::common::smtp::{Dialogue, Server};

const NONE: [(&str, &str); 1] = [("tls_settings", "none")];

/// `mailflow_config_last_reload_successful` and `..._success_timestamp_seconds` from /metrics.
fn reload_state(e: &Exporter) -> (f64, f64) {
    let m = Metrics::parse(&e.get("/metrics").body);
    (
        m.expect("mailflow_config_last_reload_successful", &[]),
        m.expect("mailflow_config_last_reload_success_timestamp_seconds", &[]),
    )
}

/// Probe `connector` (expecting code `ok`) and return its `mailflow_probes_total`.
fn probes_total(e: &Exporter, connector: &str) -> f64 {
    let m = e.expect(connector, "ok", "", "");
    m.expect("mailflow_probes_total", &[("connector", connector)])
}

fn post_reload(e: &Exporter) -> Response {
    http::request(e.addr, "POST", "/-/reload", &[]).expect("POST /-/reload")
}

/// Assert that `connector` is unknown: 400 naming it.
#[track_caller]
fn assert_unknown(e: &Exporter, connector: &str) {
    let r = e.get(&format!("/probe?connector={connector}"));
    assert_eq!(
        (r.status, r.body.contains(connector)),
        (400, true),
        "{connector} should be unknown now: {} {}",
        r.status,
        r.body
    );
}

/// The connectors `/sd` lists.
fn discovered(e: &Exporter) -> BTreeSet<String> {
    let r = e.get("/sd");
    assert_eq!(r.status, 200, "{}", r.body);
    let groups: serde_json::Value = serde_json::from_str(&r.body).expect("/sd is JSON");
    groups
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            g["labels"]["connector"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn valid_reload_applies_the_new_connectors_and_keeps_unchanged_state() {
    let s = Server::dialogue(Dialogue::default());
    let entry = |name: &str| local(name, s.port(), &NONE);
    let mut e = Exporter::start(&config(None, &[entry("keep"), entry("gone")]));
    assert_eq!(probes_total(&e, "keep"), 1.0);
    assert_eq!(probes_total(&e, "keep"), 2.0);
    assert_eq!(probes_total(&e, "gone"), 1.0);
    let (ok0, at0) = reload_state(&e);
    assert_eq!(ok0, 1.0, "the configuration loaded at start");

    // By POST /-/reload: `gone` goes, `added` comes, `keep` stays as it was.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(
        e.config_file(),
        config(None, &[entry("keep"), entry("added")]),
    )
    .expect("write config");
    let r = post_reload(&e);
    assert_eq!(r.status, 200, "POST /-/reload: {}", r.body);
    assert_eq!(
        probes_total(&e, "added"),
        1.0,
        "a new connector starts at 1"
    );
    assert_unknown(&e, "gone");
    assert_eq!(
        probes_total(&e, "keep"),
        3.0,
        "an unchanged connector keeps its counters across a reload"
    );
    assert_eq!(discovered(&e), set(&["keep", "added"]), "/sd follows");
    let (ok1, at1) = reload_state(&e);
    assert_eq!(ok1, 1.0);
    assert!(at1 > at0, "the success timestamp advances: {at0} -> {at1}");

    // By SIGHUP: `added` goes, `hup-added` comes.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(
        e.config_file(),
        config(None, &[entry("keep"), entry("hup-added")]),
    )
    .expect("write config");
    e.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || {
            e.get("/probe?connector=hup-added").status == 200
        }),
        "SIGHUP did not apply the new configuration within 10 s:\n{}",
        e.logs()
    );
    assert_unknown(&e, "added");
    assert_eq!(probes_total(&e, "keep"), 4.0, "still counting after SIGHUP");
    assert_eq!(discovered(&e), set(&["keep", "hup-added"]));
    let (ok2, at2) = reload_state(&e);
    assert_eq!(ok2, 1.0);
    assert!(at2 > at1, "the success timestamp advances: {at1} -> {at2}");
    // The exporter is still the one that was started: a reload is not a restart.
    assert!(e.wait_exit(Duration::ZERO).is_none(), "{}", e.logs());
}

/// An invalid variant of a one-connector file: (what is wrong, the file, the text at the
/// position the error must name).
fn invalid_files(port: u16) -> Vec<(&'static str, String, &'static str)> {
    let base = config(None, &[local("keep", port, &NONE)]);
    vec![
        (
            "an unknown key",
            base.clone() + "    tls_settingz: none\n",
            "tls_settingz",
        ),
        (
            "an invalid duration",
            base.clone() + "    timeout: soonish\n",
            "soonish",
        ),
        (
            "a duplicate name, with a new connector",
            base.clone()
                + &local("newbie", port, &NONE)
                + &local("keep", port, &NONE).replace("name: keep", "name: keep   # twice"),
            "keep   # twice",
        ),
    ]
}

/// `line:column` (1-based) of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> String {
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"));
    format!("{}:{}", n + 1, line.find(needle).expect("found") + 1)
}

#[test]
fn invalid_reload_keeps_the_old_configuration() {
    let s = Server::dialogue(Dialogue::default());
    let good = config(None, &[local("keep", s.port(), &NONE)]);
    let mut e = Exporter::start(&good);
    assert_eq!(probes_total(&e, "keep"), 1.0);
    let (_, at0) = reload_state(&e);
    let file = e.config_file().display().to_string();
    let mut probes = 1.0;

    for (i, (what, text, at)) in invalid_files(s.port()).into_iter().enumerate() {
        std::fs::write(e.config_file(), &text).expect("write config");
        if i == 0 {
            // SIGHUP first: nobody gets an answer, the metric says it.
            e.signal("HUP");
            assert!(
                eventually(Duration::from_secs(10), || reload_state(&e).0 == 0.0),
                "{what}: mailflow_config_last_reload_successful did not drop to 0 after SIGHUP:\n{}",
                e.logs()
            );
        }
        let r = post_reload(&e);
        let expected = format!("{file}:{}:", position(&text, at));
        assert_eq!(
            (r.status, r.body.contains(&expected)),
            (500, true),
            "{what}: POST /-/reload should answer 500 naming {expected}; got {}: {}",
            r.status,
            r.body
        );
        let (ok, at_now) = reload_state(&e);
        assert_eq!(ok, 0.0, "{what}: last reload unsuccessful");
        assert_eq!(
            at_now, at0,
            "{what}: the success timestamp stays at the last good load"
        );
        // The old configuration keeps running, counters and all.
        probes += 1.0;
        assert_eq!(probes_total(&e, "keep"), probes, "{what}");
        assert_unknown(&e, "newbie");
        assert_eq!(discovered(&e), set(&["keep"]), "{what}");
    }
    assert!(e.wait_exit(Duration::ZERO).is_none(), "{}", e.logs());

    // Fixed: the next reload succeeds.
    std::fs::write(
        e.config_file(),
        config(
            None,
            &[
                local("keep", s.port(), &NONE),
                local("newbie", s.port(), &NONE),
            ],
        ),
    )
    .expect("write config");
    let r = post_reload(&e);
    assert_eq!(r.status, 200, "{}", r.body);
    let (ok, at1) = reload_state(&e);
    assert_eq!(ok, 1.0);
    assert!(at1 > at0, "{at0} -> {at1}");
    assert_eq!(probes_total(&e, "newbie"), 1.0);
    assert_eq!(probes_total(&e, "keep"), probes + 1.0);
}

#[test]
fn reload_does_not_drop_scrapes_in_flight() {
    let hanging = Server::start(|c| c.hang(Duration::from_secs(20)));
    let healthy = Server::dialogue(Dialogue::default());
    let slow = [("timeout", "3s")];
    let e = Exporter::start(&config(
        None,
        &[
            local("hang-kept", hanging.port(), &slow),
            local("hang-removed", hanging.port(), &slow),
        ],
    ));
    std::thread::scope(|scope| {
        let scrapes: Vec<_> = ["hang-kept", "hang-removed"]
            .into_iter()
            .map(|name| {
                let e = &e;
                scope.spawn(move || {
                    let begun = Instant::now();
                    let r = e.get_with(
                        &format!("/probe?connector={name}"),
                        &[("X-Prometheus-Scrape-Timeout-Seconds", "10")],
                    );
                    (name, r, begun.elapsed())
                })
            })
            .collect();
        // Both probes are waiting for a greeting.
        assert!(
            eventually(Duration::from_secs(5), || hanging.connections() >= 2),
            "the probes never connected:\n{}",
            e.logs()
        );
        std::fs::write(
            e.config_file(),
            config(
                None,
                &[
                    local("hang-kept", hanging.port(), &slow),
                    local("fresh", healthy.port(), &NONE),
                ],
            ),
        )
        .expect("write config");
        let r = post_reload(&e);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            scrapes.iter().all(|s| !s.is_finished()),
            "the reload should answer without waiting for the probes in flight"
        );
        // The new configuration is in force while the old probes still run.
        e.expect("fresh", "ok", "", "");
        assert_unknown(&e, "hang-removed");

        for scrape in scrapes {
            let (name, r, took) = scrape.join().expect("scrape thread");
            assert_eq!(
                r.status,
                200,
                "{name}: the scrape in flight during the reload: {}\n{}",
                r.body,
                e.logs()
            );
            let m = Metrics::parse(&r.body);
            e.assert_outcome(&m, name, "4.4.318", "greeting", "timeout");
            assert!(
                took >= Duration::from_millis(2500) && took < Duration::from_secs(9),
                "{name}: a 3 s probe answered after {took:?}"
            );
        }
    });
    let m = e.probe_path("/probe?connector=hang-kept");
    assert_eq!(
        m.expect("mailflow_probes_total", &[("connector", "hang-kept")]),
        2.0,
        "the probe in flight during the reload counts for the kept connector"
    );
}

/// README: "A connector removed from the configuration loses its state". A probe that was in
/// flight when its connector was removed must not bring the state back: once re-added, the
/// connector starts anew.
#[test]
fn connector_removed_while_probed_starts_anew_when_re_added() {
    let hanging = Server::start(|c| c.hang(Duration::from_secs(20)));
    let slow = [("timeout", "2s")];
    let with_it = config(None, &[local("flaky", hanging.port(), &slow)]);
    let e = Exporter::start(&with_it);
    std::thread::scope(|scope| {
        let scrape = scope.spawn(|| e.get("/probe?connector=flaky"));
        assert!(
            eventually(Duration::from_secs(5), || hanging.connections() >= 1),
            "the probe never connected"
        );
        std::fs::write(
            e.config_file(),
            config(None, &[local("other", hanging.port(), &slow)]),
        )
        .expect("write config");
        let r = post_reload(&e);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(scrape.join().expect("scrape").status, 200);
    });
    std::fs::write(e.config_file(), &with_it).expect("write config");
    let r = post_reload(&e);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = e.probe_path("/probe?connector=flaky");
    assert_eq!(
        m.expect("mailflow_probes_total", &[("connector", "flaky")]),
        1.0,
        "a re-added connector starts anew:\n{}",
        m.lines_of("mailflow_probe")
    );
}

/// A scrape that arrives after a reload changed a connector does not join a probe that is still
/// running under the old configuration: it gets the new configuration's answer at once.
#[test]
fn scrapes_after_a_reload_do_not_join_probes_of_the_old_configuration() {
    let hanging = Server::start(|c| c.hang(Duration::from_secs(20)));
    let refused = closed_port("127.0.0.1");
    let slow = [("timeout", "3s")];
    let e = Exporter::start(&config(None, &[local("moving", hanging.port(), &slow)]));
    std::thread::scope(|scope| {
        let old = scope.spawn(|| e.get("/probe?connector=moving"));
        assert!(
            eventually(Duration::from_secs(5), || hanging.connections() >= 1),
            "the probe never connected"
        );
        std::fs::write(
            e.config_file(),
            config(None, &[local("moving", refused, &slow)]),
        )
        .expect("write config");
        let r = post_reload(&e);
        assert_eq!(r.status, 200, "{}", r.body);
        let started = Instant::now();
        let m = e.probe_path("/probe?connector=moving");
        assert_eq!(m.code("moving"), "4.4.316", "{}", m.summary("moving"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the new probe waited for the old one: {:?}",
            started.elapsed()
        );
        assert_eq!(old.join().expect("scrape").status, 200);
    });
}
