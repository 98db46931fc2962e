//! Account registration (`registration.yaml`).

use axum::{Json, extract::State};
use myelin_core::accounts;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiResult, invalid_param},
    extract::{ClientIp, QueryParams, RawBody, access_token},
};

/// # `POST /_matrix/client/v3/register`
///
/// Registers an account through UIA (`m.login.dummy`, or `m.login.registration_token` when a
/// token is configured), or for an appservice with `m.login.application_service`.
/// - The first request's parameters are remembered by the UIA session.
/// - Creates the user, its first device and token in one transaction.
pub async fn register(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    QueryParams(query): QueryParams,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    let token = access_token(&headers, &query);
    let kind = query.get("kind").map(String::as_str);
    let session = accounts::register(&state.0, body, kind, token, ip.as_deref()).await?;
    Ok(Json(serde_json::to_value(session).unwrap_or_default()))
}

/// # `GET /_matrix/client/v3/register/available`
pub async fn get_username_available(
    State(state): State<AppState>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let username = query
        .get("username")
        .ok_or_else(|| invalid_param("username is required"))?;
    accounts::username_available(&state.0, username).await?;
    Ok(Json(json!({ "available": true })))
}

/// # `GET /_matrix/client/v1/register/m.login.registration_token/validity`
///
/// Whether a registration token would be accepted.
/// - Rate-limited per client address (`rate_limits.registration_token_validity_per_address`).
pub async fn get_registration_token_validity(
    State(state): State<AppState>,
    QueryParams(query): QueryParams,
    ClientIp(ip): ClientIp,
) -> ApiResult<Json<Value>> {
    let token = query
        .get("token")
        .ok_or_else(|| invalid_param("token is required"))?;
    let valid = accounts::registration_token_valid(&state.0, token, ip.as_deref()).await?;
    Ok(Json(json!({ "valid": valid })))
}
