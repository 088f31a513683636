//! The HTTP side: a hyper server on an already bound listener, serving `/probe`, `/metrics`,
//! `/sd`, the health and reload endpoints and a small landing page.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::exporter::Exporter;
use crate::metrics::{Format, ProbeMetrics};
use crate::web::{self, Authorization, WebConfig};

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
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `exporter` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (bounded). With a web configuration, connections speak TLS and requests need basic auth.
pub async fn run(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tokio::spawn(connection(stream, peer, exporter.clone(), graceful.watcher()));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time at shutdown");
    }
}

/// One accepted connection: the TLS handshake when configured, then HTTP/1.1.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    exporter: Arc<Exporter>,
    watcher: Watcher,
) {
    let Some(acceptor) = exporter.web().tls_acceptor() else {
        return serve_http(stream, peer, exporter, watcher).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(stream, peer, exporter, watcher).await,
        Ok(Err(error)) => {
            tracing::debug!(peer = %peer, error = %error, "TLS handshake with a client failed");
        }
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake with a client timed out"),
    }
}

async fn serve_http<S>(stream: S, peer: SocketAddr, exporter: Arc<Exporter>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let exporter = exporter.clone();
        async move { Ok::<_, Infallible>(respond_to(&exporter, peer, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(peer = %peer, error = %error, "HTTP connection ended with an error");
    }
}

/// Authorizes and routes one request, and adds the configured response headers.
async fn respond_to(
    exporter: &Arc<Exporter>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let web = exporter.web();
    let mut response = match authorize(&web, peer, &request).await {
        Some(refusal) => refusal,
        None => handle(exporter, request).await,
    };
    for (name, value) in web.response_headers() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// `None` when the request may proceed, else the 401 answer. Liveness and readiness need no
/// credentials: they reveal nothing, and orchestrators probe them without any.
async fn authorize(
    web: &Arc<WebConfig>,
    peer: SocketAddr,
    request: &Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    if matches!(request.uri().path(), "/-/healthy" | "/-/ready") {
        return None;
    }
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
            landing_page(exporter),
        ),
        (_, "/probe" | "/metrics" | "/sd" | "/-/healthy" | "/-/ready" | "/-/reload" | "/") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
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
            Some(probed) => vec![probed],
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown connector {name:?}: only configured connectors are probed\n"),
                );
            }
        },
        None => exporter.probe_all(deadline).await,
    };
    let queue = exporter.postfix_queue(PROBE_QUEUE_MAX_AGE).await;
    let format = format_of(request);
    let body = ProbeMetrics::new(&probed, queue.as_deref()).encode(format);
    respond(StatusCode::OK, format.content_type(), body)
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

/// `GET /sd`: one Prometheus HTTP SD target group per connector, pointing back at this exporter.
fn service_discovery(
    exporter: &Arc<Exporter>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let Some(target) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
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
            serde_json::json!({
                "targets": [target],
                "labels": { "connector": c.name },
            })
        })
        .collect();
    let body = serde_json::Value::Array(groups).to_string();
    respond(StatusCode::OK, "application/json", body)
}

/// `GET /`: the connectors, their last code and queue age, and links.
fn landing_page(exporter: &Arc<Exporter>) -> String {
    let now = SystemTime::now();
    let mut rows = String::new();
    for connector in &exporter.loaded().config.connectors {
        let name = &connector.name;
        let (code, reason, age) = match exporter.state_of(name) {
            Some(state) => match state.last_outcome {
                Some(Ok(())) => ("ok".to_owned(), String::new(), state.queue_age(now)),
                Some(Err(f)) => (
                    f.code().to_string(),
                    format!("{} / {}", f.phase(), f.reason()),
                    state.queue_age(now),
                ),
                None => ("not probed yet".to_owned(), String::new(), Duration::ZERO),
            },
            None => ("not probed yet".to_owned(), String::new(), Duration::ZERO),
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/probe?connector={name}\">{name}</a></td><td>{code}</td><td>{reason}</td><td>{}s</td></tr>\n",
            age.as_secs()
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mailflow_exporter</title></head>\n\
         <body><h1>mailflow_exporter</h1>\n<p>Probes mail connectors and classifies failures into mail flow codes.</p>\n\
         <table border=\"1\" cellpadding=\"4\"><tr><th>connector</th><th>last code</th><th>phase / reason</th><th>queue age</th></tr>\n{rows}</table>\n\
         <p><a href=\"/probe\">probe all</a> · <a href=\"/metrics\">metrics</a> · <a href=\"/sd\">service discovery</a></p>\n</body></html>\n"
    )
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
