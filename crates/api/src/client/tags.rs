//! Room tags (`tags.yaml`), kept as the `m.tag` room account data.

use axum::{Json, extract::State};
use myelin_core::tags;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
pub async fn get_tags(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id)): Segments<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        tags::get(&state.0, &requester, &user_id, &room_id).await?,
    ))
}

/// # `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put_tag(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id, tag)): Segments<(String, String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    tags::change(&state.0, &requester, &user_id, &room_id, &tag, Some(body)).await?;
    Ok(Json(json!({})))
}

/// # `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_tag(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id, tag)): Segments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    tags::change(&state.0, &requester, &user_id, &room_id, &tag, None).await?;
    Ok(Json(json!({})))
}
