//! Login, logout and whoami (`login.yaml`, `logout.yaml`, `whoami.yaml`).

use axum::{Json, extract::State};
use myelin_core::accounts;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, ClientIp, QueryParams, RawBody, access_token},
};

/// # `GET /_matrix/client/v3/login`
pub async fn get_login_flows() -> Json<Value> {
    Json(json!({
        "flows": [
            { "type": "m.login.password" },
            { "type": "m.login.application_service" }
        ]
    }))
}

/// # `POST /_matrix/client/v3/login`
///
/// Logs in with a password (or as an appservice user), creating or reusing a device.
/// - Reusing a `device_id` revokes that device's earlier tokens.
/// - Failed password checks are rate-limited per account and per address.
pub async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    QueryParams(query): QueryParams,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    let token = access_token(&headers, &query);
    let session = accounts::login(&state.0, body, token, ip.as_deref()).await?;
    let mut response = serde_json::to_value(session).unwrap_or_default();
    response["well_known"] = json!({ "m.homeserver": { "base_url": &*state.1 } });
    Ok(Json(response))
}

/// # `POST /_matrix/client/v3/refresh`
///
/// Trades a refresh token for a new access token and refresh token (no access token needed).
/// - An unknown, superseded or expired refresh token: 401 `M_UNKNOWN_TOKEN`, `soft_logout`.
pub async fn refresh(State(state): State<AppState>, body: RawBody) -> ApiResult<Json<Value>> {
    Ok(Json(accounts::refresh(&state.0, &body.object()?).await?))
}

/// # `POST /_matrix/client/v3/logout`
///
/// Deletes the requester's device; its token stops working at once.
pub async fn logout(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    accounts::logout(&state.0, &requester).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/logout/all`
///
/// Deletes every device of the user, and so every token, the caller's included.
pub async fn logout_all(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    accounts::logout_all(&state.0, &requester).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/account/whoami`
pub async fn whoami(Auth(requester): Auth) -> Json<Value> {
    let mut body = json!({ "user_id": requester.user_id, "is_guest": false });
    if let Some(device_id) = requester.device_id {
        body["device_id"] = Value::String(device_id);
    }
    Json(body)
}
