//! What every request passes before its handler: the rate limit, the request cap and the
//! credentials; then the configured response headers, and the count by handler and status.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Request, StatusCode};

use super::Gate;
use super::routes::{Answer, handle, text};
use crate::exporter::Exporter;
use crate::metrics::HttpHandler;
use crate::web::{self, Authorization, WebConfig};

/// Lets one request through the rate limit and the request cap, authorizes and routes it, adds
/// the configured response headers, and counts it by handler and status. Health checks skip
/// the limits and the credentials: they reveal nothing, cost nothing, and an orchestrator that
/// cannot reach them would restart a busy exporter.
pub(super) async fn respond_to(
    exporter: &Arc<Exporter>,
    gate: &Gate,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Answer {
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
) -> Option<Answer> {
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
