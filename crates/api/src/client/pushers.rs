//! Pushers (`pusher.yaml`).

use axum::{Json, extract::State};
use myelin_core::push::pushers;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
};

/// # `GET /_matrix/client/v3/pushers`
pub async fn get_pushers(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(pushers::list(&state.0, &requester).await?))
}

/// # `POST /_matrix/client/v3/pushers/set`
///
/// Adds or replaces a pusher, or deletes it with `kind: null` (PG-02..08).
pub async fn set_pusher(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    pushers::set(&state.0, &requester, body.object()?).await?;
    Ok(Json(json!({})))
}
