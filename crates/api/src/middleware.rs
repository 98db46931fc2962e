//! Cross-cutting layers: CORS, request logging, panic containment.

use std::time::Instant;

use axum::{
    Json,
    extract::Request,
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::error::internal;

/// One layer for what every request gets:
/// - the spec's "Web Browser Clients": the CORS headers on every response, and `OPTIONS`
///   answered without running any endpoint logic (a generic CORS layer adds the headers only
///   to requests that carry an `Origin`);
/// - a log line with method, path, status and latency. The query string is never logged: it
///   may hold an access token.
pub async fn around(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // Cheap: a `Uri` shares its bytes with the request.
    let uri = request.uri().clone();
    let started = Instant::now();
    let mut response = if method == Method::OPTIONS {
        Json(json!({})).into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    let status = response.status();
    if status.is_server_error() {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let path = uri.path();
        tracing::warn!(%method, %path, status = status.as_u16(), elapsed_ms, "request failed");
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let path = uri.path();
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms, "request");
    }
    response
}

/// A panic in a handler becomes a 500 `M_UNKNOWN`, never a dropped connection.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    internal().into_response()
}
