//! Presence (`presence.yaml`).

use axum::{Json, extract::State};
use myelin_core::presence;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `PUT /_matrix/client/v3/presence/{userId}/status`
///
/// Sets the requester's own presence and status message (403 for anyone else's).
pub async fn put_presence(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    presence::set(&state.0, &requester, &user_id, &body.object()?).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/presence/{userId}/status`
///
/// For the user and those sharing a room with them (403 otherwise); 404 for an unknown user.
pub async fn get_presence(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(presence::get(&state.0, &requester, &user_id).await?))
}
