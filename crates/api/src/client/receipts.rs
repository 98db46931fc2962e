//! Receipts and read markers (`receipts.yaml`, `read_markers.yaml`).

use axum::{Json, extract::State};
use myelin_core::receipts;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn post_receipt(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, receipt_type, event_id)): Segments<(String, String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    receipts::receipt(
        &state.0,
        &requester,
        &room_id,
        &receipt_type,
        &event_id,
        &body,
    )
    .await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
pub async fn read_markers(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    receipts::read_markers(&state.0, &requester, &room_id, &body).await?;
    Ok(Json(json!({})))
}
