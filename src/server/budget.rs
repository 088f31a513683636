//! The open-files budget: how many HTTP connections and requests the server takes at once, so
//! that a flood of scrapers can never use up the descriptors that probes need (a probe that
//! cannot open a socket would report its destination as failing).
//!
//! At start the soft open-files limit is raised to the hard one, as Go exporters do. The limit
//! is then shared out: a fixed reserve for the exporter itself (runtime, listeners, state file,
//! Postfix pipes, connections being turned away), `--probe.max-connections` for the probes' SMTP
//! connections, and the rest for HTTP: one descriptor per connection, and
//! [`LOOKUP_SOCKETS_PER_REQUEST`] per request for the DNS lookups of the probe it may start.
//! When `--web.max-connections` and `--web.max-requests` do not fit, both are lowered in
//! proportion, and the exporter says so.

/// Descriptors kept for the exporter itself, whatever the caps.
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// Sockets the DNS lookups of one probe may hold at once (address records of both families).
pub const LOOKUP_SOCKETS_PER_REQUEST: u64 = 2;

/// How much the HTTP server takes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (`--web.max-connections`); past it new ones get a 503.
    pub max_connections: usize,
    /// Requests in progress at once, over all connections (`--web.max-requests`); past it a
    /// request gets a 503. Health checks are not counted.
    pub max_requests: usize,
}

impl Default for HttpLimits {
    /// Prometheus' own `--web.max-connections` default, and as many requests.
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_requests: 512,
        }
    }
}

/// The open-files limit leaves no room for HTTP beside the probes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-files limit {open_files} leaves no room for HTTP connections beside \
     --probe.max-connections {probe_connections} and the {RESERVED_DESCRIPTORS} descriptors the \
     exporter keeps for itself: raise the limit (ulimit -n, systemd's LimitNOFILE) or lower \
     --probe.max-connections"
)]
pub struct BudgetError {
    /// The soft open-files limit.
    pub open_files: u64,
    /// The probes' connection cap.
    pub probe_connections: usize,
}

impl HttpLimits {
    /// These limits, each at least 1, lowered in proportion where they do not fit in
    /// `open_files` descriptors beside `probe_connections`.
    pub fn fit(self, open_files: u64, probe_connections: usize) -> Result<HttpLimits, BudgetError> {
        let connections = self.max_connections.max(1) as u64;
        let requests = self.max_requests.max(1) as u64;
        let error = BudgetError {
            open_files,
            probe_connections,
        };
        let available = open_files
            .checked_sub(RESERVED_DESCRIPTORS + probe_connections as u64)
            .filter(|available| *available > LOOKUP_SOCKETS_PER_REQUEST)
            .ok_or(error)?;
        let needed = connections + LOOKUP_SOCKETS_PER_REQUEST * requests;
        if needed <= available {
            return Ok(HttpLimits {
                max_connections: connections as usize,
                max_requests: requests as usize,
            });
        }
        // In proportion, rounding down, so that the total stays within what is available.
        let scale = |cap: u64| (cap * available / needed).max(1);
        Ok(HttpLimits {
            max_connections: usize::try_from(scale(connections)).unwrap_or(usize::MAX),
            max_requests: usize::try_from(scale(requests)).unwrap_or(usize::MAX),
        })
    }
}

/// Raises the soft open-files limit to the hard limit, and returns the soft limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_under_a_high_limit() {
        assert_eq!(
            HttpLimits::default().fit(524_288, 512),
            Ok(HttpLimits::default())
        );
    }

    #[test]
    fn under_systemd_default_limit_http_shrinks_and_probes_keep_their_share() {
        let fitted = HttpLimits::default().fit(1024, 512).expect("fits");
        // 1024 - 128 reserved - 512 for probes = 384 for HTTP: 128 connections, 128 requests
        // with 2 lookup sockets each.
        assert_eq!(
            fitted,
            HttpLimits {
                max_connections: 128,
                max_requests: 128
            }
        );
        let used = RESERVED_DESCRIPTORS
            + 512
            + fitted.max_connections as u64
            + LOOKUP_SOCKETS_PER_REQUEST * fitted.max_requests as u64;
        assert!(used <= 1024, "{used}");
    }

    #[test]
    fn zero_caps_count_as_one_and_no_room_is_an_error() {
        let limits = HttpLimits {
            max_connections: 0,
            max_requests: 0,
        };
        assert_eq!(
            limits.fit(10_000, 16),
            Ok(HttpLimits {
                max_connections: 1,
                max_requests: 1
            })
        );
        let error = HttpLimits::default().fit(600, 512).expect_err("no room");
        assert_eq!(
            error.to_string(),
            "the open-files limit 600 leaves no room for HTTP connections beside \
             --probe.max-connections 512 and the 128 descriptors the exporter keeps for itself: \
             raise the limit (ulimit -n, systemd's LimitNOFILE) or lower --probe.max-connections"
        );
    }
}
