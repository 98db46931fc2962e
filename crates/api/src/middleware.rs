//! Cross-cutting layers: CORS, request logging, metrics, panic containment.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Json,
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Counter, Gauge, Histogram, SharedString};
use serde_json::json;

use crate::error::internal;

/// Whether a metrics recorder is installed: without one, building labels is wasted work.
static METRICS: AtomicBool = AtomicBool::new(false);
/// Whether every request gets an access line at `info` (with `log.format = "json"`).
static ACCESS_LOG: AtomicBool = AtomicBool::new(false);
/// Numbers requests in access lines.
static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Records request metrics from now on (the binary calls this once it installed a recorder).
pub fn enable_metrics() {
    METRICS.store(true, Ordering::Relaxed);
}

/// Logs one line per request at `info`, target `myelin::access`.
pub fn enable_access_log() {
    ACCESS_LOG.store(true, Ordering::Relaxed);
}

/// Who made a request, filled in by the `Auth` extractor for the access line.
#[derive(Clone, Default)]
pub(crate) struct Identity(Arc<OnceLock<(String, Option<String>)>>);

impl Identity {
    pub(crate) fn set(&self, user_id: &str, device_id: Option<&str>) {
        let _ = self
            .0
            .set((user_id.to_owned(), device_id.map(str::to_owned)));
    }
}

/// The route template that served a request, handed from [`tag_route`] to [`around`].
#[derive(Clone)]
struct Route(MatchedPath);

/// Inside the router, where the matched route is known: remembers it on the response.
pub async fn tag_route(matched: MatchedPath, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Route(matched));
    response
}

/// Counts a request in flight for as long as it is (a client hanging up drops the future).
struct InFlight(&'static Gauge);

impl InFlight {
    fn start() -> Self {
        static GAUGE: OnceLock<Gauge> = OnceLock::new();
        let gauge = GAUGE.get_or_init(|| metrics::gauge!("myelin_http_requests_in_flight"));
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The counter and histogram of one (route, method, status), registered once: looking them
/// up in the recorder on every request (hashing three label strings, allocating them) cost
/// 15% of the throughput of the cheapest requests.
#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// Per route template, the series of each (method, status) seen, in a short list.
type RouteSeries = RwLock<Vec<((Method, StatusCode), Series)>>;

fn series(route: &str, method: &Method, status: StatusCode) -> Series {
    static ROUTES: OnceLock<RwLock<HashMap<Box<str>, Arc<RouteSeries>>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(RwLock::default);
    let known = routes.read().ok().and_then(|r| r.get(route).cloned());
    let per_route = match known {
        Some(per_route) => per_route,
        None => {
            let mut routes = routes.write().unwrap_or_else(PoisonError::into_inner);
            routes.entry(route.into()).or_default().clone()
        }
    };
    if let Ok(list) = per_route.read()
        && let Some((_, series)) = list.iter().find(|(k, _)| k.0 == *method && k.1 == status)
    {
        return series.clone();
    }
    let labels = [
        ("method", SharedString::from(method.as_str().to_owned())),
        ("route", SharedString::from(route.to_owned())),
        ("status", SharedString::from(status.as_u16().to_string())),
    ];
    // Long-polls wait up to their timeout by design: apart, so they leave the latency of
    // every other request readable.
    let name = if route.ends_with("/sync") {
        "myelin_http_sync_duration_seconds"
    } else {
        "myelin_http_request_duration_seconds"
    };
    let made = Series {
        requests: metrics::counter!("myelin_http_requests_total", &labels),
        duration: metrics::histogram!(name, &labels),
    };
    let mut list = per_route.write().unwrap_or_else(PoisonError::into_inner);
    list.push(((method.clone(), status), made.clone()));
    made
}

fn record(method: &Method, route: &str, status: StatusCode, seconds: f64) {
    let series = series(route, method, status);
    series.requests.increment(1);
    series.duration.record(seconds);
}

/// One layer for what every request gets:
/// - the spec's "Web Browser Clients": the CORS headers on every response, and `OPTIONS`
///   answered without running any endpoint logic (a generic CORS layer adds the headers only
///   to requests that carry an `Origin`);
/// - a log line with method, path, status and latency. The query string is never logged: it
///   may hold an access token.
pub async fn around(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // Cheap: a `Uri` shares its bytes with the request.
    let uri = request.uri().clone();
    let started = Instant::now();
    let metrics = METRICS.load(Ordering::Relaxed);
    let access = ACCESS_LOG.load(Ordering::Relaxed);
    let in_flight = metrics.then(InFlight::start);
    let identity = access.then(|| {
        let identity = Identity::default();
        request.extensions_mut().insert(identity.clone());
        identity
    });
    let mut response = if method == Method::OPTIONS {
        Json(json!({})).into_response()
    } else {
        next.run(request).await
    };
    drop(in_flight);
    if metrics || access {
        let route = response.extensions().get::<Route>();
        let route = route.map_or("unmatched", |r| r.0.as_str());
        let seconds = started.elapsed().as_secs_f64();
        if metrics {
            record(&method, route, response.status(), seconds);
        }
        if let Some(identity) = identity {
            let who = identity.0.get();
            tracing::info!(
                target: "myelin::access",
                request_id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed),
                %method,
                route,
                path = uri.path(),
                status = response.status().as_u16(),
                duration_ms = seconds * 1000.0,
                user_id = who.map(|w| w.0.as_str()),
                device_id = who.and_then(|w| w.1.as_deref()),
            );
        }
    }
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
