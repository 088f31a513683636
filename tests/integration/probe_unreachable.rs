//! TCP connect to unreachable addresses, inside a network namespace of the test's own whose
//! routes make connects fail with EHOSTUNREACH and ENETUNREACH (root).

use std::time::Duration;

use crate::common::exporter::{
    BIN, Exporter, combined_output, config, connector, run_with_timeout,
};
use crate::system::netns::Netns;

#[test]
fn unreachable_host_and_network_are_4_4_315_unreachable() {
    // Inside a namespace of our own: 127.0.0.66 has an `unreachable` route (EHOSTUNREACH),
    // 127.0.0.77 a `throw` route with nothing behind it (ENETUNREACH). No packet leaves it.
    let ns = Netns::new();
    ns.route("unreachable", "127.0.0.66");
    ns.route("throw", "127.0.0.77");
    let yaml = config(
        None,
        &[
            connector(
                "hostunreach",
                &[("smart_hosts", "[127.0.0.66]"), ("port", "25")],
            ),
            connector(
                "netunreach",
                &[("smart_hosts", "[127.0.0.77]"), ("port", "25")],
            ),
        ],
    );
    let e = Exporter::start_under(&ns.prefix(), &yaml);
    e.expect("hostunreach", "4.4.315", "connect", "unreachable");
    e.expect("netunreach", "4.4.315", "connect", "unreachable");

    // The probe subcommand, run in the namespace, says the same and exits 1.
    let out = run_with_timeout(
        ns.command(BIN)
            .args(["probe", "hostunreach", "--config.file"])
            .arg(e.config_file()),
        Duration::from_secs(30),
    );
    let text = combined_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("4.4.315") && text.contains("unreachable"),
        "{text}"
    );
}
