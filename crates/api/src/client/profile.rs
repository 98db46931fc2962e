//! Profiles (`profile.yaml`).

use axum::{Json, extract::State};
use myelin_core::profile;
use serde_json::{Map, Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, MaybeAuth, RawBody},
    path::Segments,
};

/// # `GET /_matrix/client/v3/profile/{userId}`
///
/// Every field of a user's profile; 404 `M_NOT_FOUND` for a user who does not exist. No
/// access token needed, as the spec says, unless `profile.require_shared_room` is set: then
/// only users sharing a room with this one may read it (403 `M_FORBIDDEN` for others).
pub async fn get_profile(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Segments(user_id): Segments<String>,
) -> ApiResult<Json<Map<String, Value>>> {
    Ok(Json(
        profile::get(&state.0, viewer.as_ref(), &user_id).await?,
    ))
}

/// # `GET /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn get_field(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Segments((user_id, key)): Segments<(String, String)>,
) -> ApiResult<Json<Map<String, Value>>> {
    Ok(Json(
        profile::get_field(&state.0, viewer.as_ref(), &user_id, &key).await?,
    ))
}

/// # `PUT /_matrix/client/v3/profile/{userId}/{keyName}`
///
/// A new `displayname` or `avatar_url` is sent into every joined room as a member event.
pub async fn set_field(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, key)): Segments<(String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    profile::set_field(&state.0, &requester, &user_id, &key, body).await?;
    Ok(Json(json!({})))
}

/// # `DELETE /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn delete_field(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, key)): Segments<(String, String)>,
) -> ApiResult<Json<Value>> {
    profile::delete_field(&state.0, &requester, &user_id, &key).await?;
    Ok(Json(json!({})))
}
