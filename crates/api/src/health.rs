//! Health checks for load balancers, container runtimes and `myelin healthcheck`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::json;

use crate::AppState;

/// # `GET /health`: 200 `OK` while the process serves HTTP, touching nothing else (the
/// reference server's liveness probe, which existing playbooks call).
pub async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK")
}

/// # `GET /_myelin/ready`: 200 when the database answers, 503 otherwise (the cause is
/// logged, not sent).
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match myelin_core::health::check_database(&state.0).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": { "database": "ok" } })),
        ),
        Err(cause) => {
            tracing::warn!(%cause, "readiness check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "checks": { "database": "unavailable" } })),
            )
        }
    }
}
