//! Typing notifications (`typing.yaml`).

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
pub async fn put_typing(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, user_id)): Segments<(String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    myelin_core::typing::set(&state.0, &requester, &room_id, &user_id, &body).await?;
    Ok(Json(json!({})))
}
