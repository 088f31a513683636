//! Which handler answers which method and path, and the handlers of the endpoints: `/probe`,
//! `/metrics`, `/sd`, the health checks, `/-/reload`, the status page and `/explain`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::time::Instant;

use super::query::query_param;
use super::status;
use crate::explain;
use crate::exporter::Exporter;
use crate::metrics::Format;
use crate::metrics::probe::ProbeBody;
use crate::probe::Throttled;

/// How much of Prometheus' scrape timeout is kept back for the answer to travel.
const SCRAPE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
/// The probe deadline when Prometheus does not say its scrape timeout.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(120);
/// How old a Postfix queue reading may be for `/metrics` (concurrent scrapes share one).
const METRICS_QUEUE_MAX_AGE: Duration = Duration::from_secs(1);
/// How old a Postfix queue reading may be for `/probe`, where each connector is its own scrape.
const PROBE_QUEUE_MAX_AGE: Duration = Duration::from_secs(30);

/// An answer: its text whole, or the series of a `/probe` scrape written as they are sent.
pub(super) type Answer = Response<Either<Full<Bytes>, ProbeBody>>;

/// Routes one request.
pub(super) async fn handle(exporter: &Arc<Exporter>, request: Request<Incoming>) -> Answer {
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
async fn probe(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Answer {
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
    let body = ProbeBody::new(probed, queue, format);
    with_body(StatusCode::OK, format.content_type(), Either::Right(body))
}

/// The answer to a scrape of one connector whose probe could not run: a failed scrape (503), so
/// that the target's `up` is 0 and the scrape alert fires, not a mail flow alert.
fn throttled_answer(throttled: &Throttled) -> Answer {
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
async fn own_metrics(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Answer {
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
fn service_discovery(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Answer {
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
fn explanation(exporter: &Arc<Exporter>, request: &Request<Incoming>) -> Answer {
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

/// A plain text answer.
pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    respond(status, "text/plain; charset=utf-8", body.into())
}

/// An answer of `content_type`.
fn respond(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    with_body(
        status,
        content_type,
        Either::Left(Full::new(Bytes::from(body))),
    )
}

/// An answer of `content_type` with `body`.
fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Either<Full<Bytes>, ProbeBody>,
) -> Answer {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
