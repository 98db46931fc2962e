//! Finding rooms: `directory.yaml` (aliases), `list_public_rooms.yaml` (the public room
//! list and who is in it) and `room_summary.yaml`.

use axum::{Json, extract::State};
use myelin_core::directory::{self, HierarchyRequest, PublicRoomsRequest};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiResult, invalid_param},
    extract::{Auth, MaybeAuth, QueryParams, RawBody},
    path::Segments,
};

/// # `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn put_alias(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(alias): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    directory::create_alias(&state.0, &requester, &alias, &body).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/directory/room/{roomAlias}`
///
/// The spec asks for no access token here.
pub async fn get_alias(
    State(state): State<AppState>,
    Segments(alias): Segments<String>,
) -> ApiResult<Json<Value>> {
    let (room_id, servers) = directory::resolve_alias(&state.0, &alias).await?;
    Ok(Json(json!({ "room_id": room_id, "servers": servers })))
}

/// # `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn delete_alias(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(alias): Segments<String>,
) -> ApiResult<Json<Value>> {
    directory::delete_alias(&state.0, &requester, &alias).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn room_aliases(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> ApiResult<Json<Value>> {
    let aliases = directory::room_aliases(&state.0, &requester, &room_id).await?;
    Ok(Json(json!({ "aliases": aliases })))
}

/// # `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_visibility(
    State(state): State<AppState>,
    Segments(room_id): Segments<String>,
) -> ApiResult<Json<Value>> {
    let visibility = directory::visibility(&state.0, &room_id).await?;
    Ok(Json(json!({ "visibility": visibility })))
}

/// # `PUT /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn set_visibility(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    directory::set_visibility(&state.0, &requester, &room_id, &body).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/publicRooms`
///
/// The spec asks for no access token here; one that is sent is still checked.
pub async fn get_public_rooms(
    State(state): State<AppState>,
    MaybeAuth(_requester): MaybeAuth,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    let request = PublicRoomsRequest {
        limit: query.number("limit")?,
        since: query.0.get("since").cloned(),
        server: query.0.get("server").cloned(),
        ..PublicRoomsRequest::default()
    };
    Ok(Json(directory::public_rooms(&state.0, request).await?))
}

/// # `POST /_matrix/client/v3/publicRooms`
pub async fn post_public_rooms(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    query: QueryParams,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let request =
        PublicRoomsRequest::from_body(&body.object_or_empty()?, query.0.get("server").cloned())?;
    Ok(Json(directory::public_rooms(&state.0, request).await?))
}

/// # `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`
///
/// Also served at MSC3266's unstable path, which matrix-js-sdk asks first (SP-08).
pub async fn room_summary(
    State(state): State<AppState>,
    MaybeAuth(requester): MaybeAuth,
    Segments(room): Segments<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        directory::room_summary(&state.0, requester.as_ref(), &room).await?,
    ))
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
pub async fn hierarchy(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    let suggested_only = match query.0.get("suggested_only").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid_param("suggested_only must be true or false")),
    };
    let request = HierarchyRequest {
        suggested_only,
        limit: query.number("limit")?,
        max_depth: query.number("max_depth")?,
        from: query.0.get("from").map(String::as_str),
    };
    Ok(Json(
        directory::hierarchy(&state.0, &requester, &room_id, request).await?,
    ))
}
