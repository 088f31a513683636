//! The HTTP side: a hyper server on already bound listeners, serving `/probe`, `/metrics`,
//! `/sd`, the health and reload endpoints and the status page.
//!
//! Every listener feeds one accept loop. A connection past `--web.max-connections` is answered
//! 503 and closed at once, without waiting for its request; a request past `--web.max-requests`
//! or the web configuration's `rate_limit` is answered 503 or 429. Health checks pass through
//! both, and need no credentials. [`budget`] shares the open-files limit between those caps and
//! the probes; [`listen`] binds the listeners or takes them from systemd; `status` renders the
//! status page.

pub mod budget;
pub mod listen;
mod status;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use futures_util::stream;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::explain;
use crate::exporter::Exporter;
use crate::metrics::{Format, HttpHandler, ProbeMetrics};
use crate::probe::Throttled;
use crate::web::{self, Authorization, WebConfig};

pub use budget::HttpLimits;

/// How much of Prometheus' scrape timeout is kept back for the answer to travel.
const SCRAPE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
/// The probe deadline when Prometheus does not say its scrape timeout.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How old a Postfix queue reading may be for `/metrics` (concurrent scrapes share one).
const METRICS_QUEUE_MAX_AGE: Duration = Duration::from_secs(1);
/// How old a Postfix queue reading may be for `/probe`, where each connector is its own scrape.
const PROBE_QUEUE_MAX_AGE: Duration = Duration::from_secs(30);
/// How long a client may take for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, also the next request's on a kept
/// alive connection: an idle connection is closed after this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections being turned away at once (each holds a descriptor for at most
/// [`REJECTION_TIME`]); past it, further ones are closed without an answer.
const REJECTING_MAX: usize = 64;
/// How long turning a connection away may take: writing the 503, then reading what the client
/// sent meanwhile so that closing does not reset the connection under the answer.
const REJECTION_TIME: Duration = Duration::from_secs(1);
/// How much of the client's request is read (and dropped) while turning it away.
const REJECTION_DRAIN_BYTES: usize = 16 * 1024;

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

/// Serves an accepted connection within the cap, or turns it away.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: &Arc<Exporter>,
    gate: &Arc<Gate>,
    graceful: &GracefulShutdown,
) {
    if let Ok(permit) = gate.connections.clone().try_acquire_owned() {
        let served = connection(
            stream,
            peer,
            exporter.clone(),
            gate.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            served.await;
            drop(permit);
        });
        return;
    }
    exporter.metrics().http_connection_rejected();
    tracing::debug!(peer = %peer, "connection cap reached: turning a connection away");
    // Over TLS a plain answer would be garbage, and a handshake is what a flood should not get.
    if exporter.web().tls_acceptor().is_some() {
        return;
    }
    let Ok(permit) = gate.rejecting.clone().try_acquire_owned() else {
        return;
    };
    let cap = gate.limits.max_connections;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REJECTION_TIME, turn_away(stream, cap)).await;
        drop(permit);
    });
}

/// Answers 503 on a connection past the cap, without reading its request first.
async fn turn_away(mut stream: TcpStream, cap: usize) -> std::io::Result<()> {
    let body =
        format!("too many open connections (--web.max-connections {cap}): try again later\n");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Read what the client sent, so that closing does not reset the connection before the
    // client has read the answer.
    let mut buffer = [0u8; 1024];
    let mut drained = 0;
    while drained < REJECTION_DRAIN_BYTES {
        match stream.read(&mut buffer).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// One accepted connection, counted while open: once its client has sent a first byte (within
/// the header timeout), the TLS handshake when configured, then HTTP/1.1, or HTTP/2 when the
/// client chose it during the handshake.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) {
    // The guard borrows its own handle on the exporter, so that `exporter` can move on below.
    let counted = exporter.clone();
    let _open = counted.metrics().http_connection_opened();
    // Nothing is allocated for a connection (buffers, TLS state) before its client sends
    // something: a flood of idle connections costs a socket and a small task each, and leaves
    // no scattered buffers behind in the allocator once it is over.
    // (`readable()` may wake at once on a new socket; a peek waits for a byte.)
    match tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut [0u8; 1])).await {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::debug!(peer = %peer, error = %error, "connection failed before a request");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "connection idle past the header timeout: closed");
            return;
        }
    }
    // Boxed: the idle task above stays small; the state of TLS and HTTP is allocated now.
    Box::pin(handshake_and_serve(stream, peer, exporter, gate, watcher)).await;
}

/// The TLS handshake when configured, then HTTP/1.1 or HTTP/2 as negotiated.
async fn handshake_and_serve(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) {
    let Some(acceptor) = exporter.web().tls_acceptor() else {
        return serve_http(stream, peer, false, &exporter, gate, watcher).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(stream, peer, http2, &exporter, gate, watcher).await;
        }
        Ok(Err(error)) => {
            tracing::debug!(peer = %peer, error = %error, "TLS handshake with a client failed");
        }
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake with a client timed out"),
    }
}

async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    http2: bool,
    exporter: &Arc<Exporter>,
    gate: Arc<Gate>,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let exporter = exporter.clone();
        hyper::service::service_fn(move |request| {
            let (exporter, gate) = (exporter.clone(), gate.clone());
            async move { Ok::<_, Infallible>(respond_to(&exporter, &gate, peer, request).await) }
        })
    };
    let io = TokioIo::new(stream);
    let served = if http2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        watcher.watch(connection).await
    } else {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(io, service);
        watcher.watch(connection).await
    };
    if let Err(error) = served {
        tracing::debug!(peer = %peer, error = %error, "HTTP connection ended with an error");
    }
}

/// Lets one request through the rate limit and the request cap, authorizes and routes it, adds
/// the configured response headers, and counts it by handler and status. Health checks skip
/// the limits and the credentials: they reveal nothing, cost nothing, and an orchestrator that
/// cannot reach them would restart a busy exporter.
async fn respond_to(
    exporter: &Arc<Exporter>,
    gate: &Gate,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let handler = HttpHandler::of(request.uri().path());
    let metrics = exporter.metrics();
    let _in_progress = metrics.http_request_started();
    let web = exporter.web();
    let mut response = if matches!(handler, HttpHandler::Healthy | HttpHandler::Ready) {
        handle(exporter, request).await
    } else if !web.admits_request() {
        text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests: over the rate_limit of the web configuration\n",
        )
    } else if let Ok(_permit) = gate.requests.try_acquire() {
        match authorize(&web, peer, &request).await {
            Some(refusal) => refusal,
            None => handle(exporter, request).await,
        }
    } else {
        let mut response = text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many requests in progress (--web.max-requests {}): try again later\n",
                gate.limits.max_requests
            ),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        response
    };
    for (name, value) in web.response_headers() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    metrics.http_request(handler, response.status());
    response
}

/// `None` when the request may proceed, else the 401 answer.
async fn authorize(
    web: &Arc<WebConfig>,
    peer: SocketAddr,
    request: &Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    // A header that is present but not text counts as wrong credentials, not as missing ones.
    let header = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let checker = web.clone();
    // bcrypt is slow on purpose: keep it off the async threads.
    let verdict = tokio::task::spawn_blocking(move || checker.authorize(header.as_deref()))
        .await
        .unwrap_or(Authorization::Denied);
    let message = match verdict {
        Authorization::Allowed => return None,
        Authorization::Missing => "credentials required\n",
        Authorization::Denied => {
            tracing::warn!(peer = %peer, path = request.uri().path(), "refused a request with wrong credentials");
            "wrong credentials\n"
        }
    };
    let mut response = text(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(web::WWW_AUTHENTICATE),
    );
    Some(response)
}

/// Routes one request.
async fn handle(exporter: &Arc<Exporter>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/probe") => probe(exporter, &request).await,
        (&Method::GET, "/metrics") => own_metrics(exporter, &request).await,
        (&Method::GET, "/sd") => service_discovery(exporter, &request),
        (&Method::GET | &Method::HEAD, "/-/healthy") => text(StatusCode::OK, "Healthy\n"),
        (&Method::GET | &Method::HEAD, "/-/ready") => text(StatusCode::OK, "Ready\n"),
        (&Method::POST | &Method::PUT, "/-/reload") => {
            // The body, if any, is not used; drain it so the connection stays usable.
            let _ = request.into_body().collect().await;
            match exporter.reload() {
                Ok(()) => text(StatusCode::OK, "configuration reloaded\n"),
                Err(error) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "failed to reload the configuration; the previous one stays in force:\n{error}\n"
                    ),
                ),
            }
        }
        (&Method::GET, "/") => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::page(exporter, SystemTime::now()),
        ),
        (&Method::GET, "/explain") => explanation(exporter, &request),
        (
            _,
            "/probe" | "/metrics" | "/sd" | "/-/healthy" | "/-/ready" | "/-/reload" | "/"
            | "/explain",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `GET /probe[?connector=NAME]`: probes one connector, or all, and returns their metrics.
async fn probe(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let deadline = deadline_of(request);
    let connector = query_param(request.uri().query().unwrap_or(""), "connector");
    let probed = match connector.as_deref() {
        Some("") => {
            return text(
                StatusCode::BAD_REQUEST,
                "the connector parameter is empty\n",
            );
        }
        Some(name) => match exporter.probe(name, deadline).await {
            Some(Ok(probed)) => vec![probed],
            Some(Err(throttled)) => return throttled_answer(&throttled),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown connector {name:?}: only configured connectors are probed\n"),
                );
            }
        },
        // A connector whose probe could not run is left out of the answer: the others' series
        // stand, and /metrics counts the one that did not run.
        None => exporter
            .probe_all(deadline)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect(),
    };
    let queue = exporter.postfix_queue(PROBE_QUEUE_MAX_AGE).await;
    let format = format_of(request);
    let body = ProbeMetrics::new(&probed, queue.as_deref()).encode(format);
    respond(StatusCode::OK, format.content_type(), body)
}

/// The answer to a scrape of one connector whose probe could not run: a failed scrape (503), so
/// that the target's `up` is 0 and the scrape alert fires, not a mail flow alert.
fn throttled_answer(throttled: &Throttled) -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "connector {:?} was not probed: the exporter had no free connection to {} before the \
             deadline (too many probes at once; see --probe.max-connections and \
             --probe.max-connections-per-address). This says nothing about the connector.\n",
            throttled.connector.name, throttled.no_slot.address
        ),
    )
}

/// `GET /metrics`: the exporter's own metrics and the Postfix queue.
async fn own_metrics(
    exporter: &Arc<Exporter>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let format = format_of(request);
    let body = exporter.own_metrics(format, METRICS_QUEUE_MAX_AGE).await;
    respond(StatusCode::OK, format.content_type(), body)
}

/// The exposition format the client asks for.
fn format_of(request: &Request<Incoming>) -> Format {
    let accept = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Format::negotiate(accept)
}

/// The probe deadline: Prometheus' scrape timeout less a margin.
fn deadline_of(request: &Request<Incoming>) -> Instant {
    let timeout = request
        .headers()
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(DEFAULT_SCRAPE_TIMEOUT, |seconds| {
            let timeout = Duration::from_secs_f64(seconds.min(86_400.0));
            // Keep a margin, but never less than half of the scrape timeout for the probe.
            timeout
                .saturating_sub(SCRAPE_TIMEOUT_MARGIN)
                .max(timeout / 2)
        });
    Instant::now() + timeout
}

/// `GET /sd`: one Prometheus HTTP SD target group per connector, pointing back at this exporter,
/// with the connector's name, its `connector_type` and its own `labels` as target labels.
fn service_discovery(
    exporter: &Arc<Exporter>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    // HTTP/1.1 names the host in its Host header, HTTP/2 in the request's authority.
    let Some(target) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty())
    else {
        return text(StatusCode::BAD_REQUEST, "a Host header is required\n");
    };
    let groups: Vec<serde_json::Value> = exporter
        .loaded()
        .config
        .connectors
        .iter()
        .map(|c| {
            // The connector's own labels, then the two the exporter sets (validation keeps
            // the own ones from taking those names).
            let mut labels: serde_json::Map<String, serde_json::Value> = c
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_str().into()))
                .collect();
            labels.insert("connector".to_owned(), c.name.as_str().into());
            labels.insert(
                "connector_type".to_owned(),
                c.connector_type.as_str().into(),
            );
            serde_json::json!({ "targets": [target], "labels": labels })
        })
        .collect();
    let body = serde_json::Value::Array(groups).to_string();
    respond(StatusCode::OK, "application/json", body)
}

/// `GET /explain?connector=NAME`: the last probe of a connector explained, as the `probe`
/// subcommand prints it. Sends nothing anywhere: it explains what the last scrape found.
fn explanation(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(name) = query_param(request.uri().query().unwrap_or(""), "connector") else {
        return text(
            StatusCode::BAD_REQUEST,
            "the connector parameter is missing\n",
        );
    };
    if exporter.loaded().config.connector(&name).is_none() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown connector {name:?}: only configured connectors are explained\n"),
        );
    }
    match exporter.last_probe(&name) {
        Some(last) => text(StatusCode::OK, explain::render(&last.report, last.at)),
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "connector {name:?} was not probed since the exporter started: scrape \
                 /probe?connector={name} first\n"
            ),
        ),
    }
}

/// The first value of `key` in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == key)
            .then(|| percent_decode(v))
            .flatten()
    })
}

/// Decodes `%XX` escapes and `+`; `None` for malformed escapes or non-UTF-8 results.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.into())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests;
