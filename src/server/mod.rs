//! The HTTP side: a hyper server on already bound listeners, serving `/probe`, `/metrics`,
//! `/sd`, the health and reload endpoints and the status page.
//!
//! Every listener feeds one accept loop ([`run`]). A connection past `--web.max-connections` is
//! answered 503 and closed at once, without waiting for its request; a request past
//! `--web.max-requests` or the web configuration's `rate_limit` is answered 503 or 429. Health
//! checks pass through both, and need no credentials.
//!
//! - `connection`: an accepted connection, from the connection cap to HTTP/1.1 or HTTP/2;
//! - `request`: what every request passes before its handler (rate limit, request cap,
//!   credentials), and its counting;
//! - `routes`: which handler answers which method and path, and the handlers;
//! - `query`: query strings, percent-decoded;
//! - `status`: the status page;
//! - [`budget`] shares the open-files limit between those caps and the probes; [`listen`] binds
//!   the listeners or takes them from systemd.

pub mod budget;
mod connection;
pub mod listen;
mod query;
mod request;
mod routes;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::exporter::Exporter;
use connection::{REJECTING_MAX, admit};

pub use budget::HttpLimits;

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `exporter` on every listener until `shutdown` completes, then lets in-flight requests
/// finish (bounded). `limits` caps connections and requests (see [`budget`] for fitting them to
/// the open-files limit). With a web configuration, connections speak TLS (and HTTP/2 when the
/// client offers it) and requests need basic auth.
pub async fn run(
    listeners: Vec<TcpListener>,
    exporter: Arc<Exporter>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Arc::new(Gate::new(limits));
    exporter
        .metrics()
        .http_connections_max(gate.limits.max_connections);
    let graceful = GracefulShutdown::new();
    let mut accepted = stream::select_all(listeners.into_iter().map(|listener| {
        Box::pin(stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await;
            Some((accepted, listener))
        }))
    }));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(next) = accepted.next() => {
                let (stream, peer) = match next {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, most likely: let connections close meanwhile.
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                admit(stream, peer, &exporter, &gate, &graceful);
            }
            () = &mut shutdown => break,
        }
    }
    drop(accepted);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time at shutdown");
    }
}

/// The caps of connections and requests, as semaphores.
struct Gate {
    /// The caps.
    limits: HttpLimits,
    /// One permit per connection served.
    connections: Arc<Semaphore>,
    /// One permit per connection being turned away.
    rejecting: Arc<Semaphore>,
    /// One permit per request in progress (health checks aside).
    requests: Arc<Semaphore>,
}

impl Gate {
    fn new(limits: HttpLimits) -> Self {
        let limits = HttpLimits {
            max_connections: limits.max_connections.max(1),
            max_requests: limits.max_requests.max(1),
        };
        Gate {
            limits,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            rejecting: Arc::new(Semaphore::new(REJECTING_MAX)),
            requests: Arc::new(Semaphore::new(limits.max_requests)),
        }
    }
}

#[cfg(test)]
mod tests;
