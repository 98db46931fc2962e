//! Reporting content to the operator (`report_content.yaml`).

use axum::{Json, extract::State};
use myelin_core::reports;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`
pub async fn report_event(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id)): Segments<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    reports::report_event(&state.0, &requester, &room_id, &event_id, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/report`
pub async fn report_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    reports::report_room(&state.0, &requester, &room_id, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/users/{userId}/report`
pub async fn report_user(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    reports::report_user(&state.0, &requester, &user_id, &body).await?;
    Ok(Json(json!({})))
}
