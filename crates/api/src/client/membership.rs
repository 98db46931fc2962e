//! Membership: `joining.yaml`, `leaving.yaml`, `inviting.yaml`, `kicking.yaml`,
//! `banning.yaml`, `knocking.yaml` and `list_joined_rooms.yaml`.

use axum::{Json, extract::State};
use myelin_core::rooms::membership;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

/// # `POST /_matrix/client/v3/join/{roomIdOrAlias}`
///
/// Joins by room ID or alias; the body's keys go into the member event (MB-02).
pub async fn join_by_id_or_alias(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let room_id = membership::join(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/join`
pub async fn join(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let room_id = membership::join(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// # `POST /_matrix/client/v3/knock/{roomIdOrAlias}`
pub async fn knock(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let room_id = membership::knock(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/invite`
pub async fn invite(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    membership::invite(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/leave`
///
/// Leaves, rejects an invite or withdraws a knock.
pub async fn leave(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    membership::leave(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/forget`
pub async fn forget(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
) -> ApiResult<Json<Value>> {
    membership::forget(&state.0, &requester, &room).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/kick`
pub async fn kick(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    membership::kick(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/ban`
pub async fn ban(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    membership::ban(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/unban`
pub async fn unban(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    membership::unban(&state.0, &requester, &room, &body).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/joined_rooms`
pub async fn joined_rooms(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    let rooms = membership::joined_rooms(&state.0, &requester).await?;
    Ok(Json(json!({ "joined_rooms": rooms })))
}

/// # `GET /_matrix/client/v1/user/mutual_rooms`
///
/// Also at MSC2666's unstable path.
pub async fn mutual_rooms(
    State(state): State<AppState>,
    Auth(requester): Auth,
    query: crate::extract::QueryParams,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        myelin_core::rooms::mutual::mutual_rooms(
            &state.0,
            &requester,
            query.0.get("user_id").map(String::as_str),
            query.0.get("from").map(String::as_str),
        )
        .await?,
    ))
}
