//! Server-side key backups (`key_backup.yaml`).

use axum::{Json, extract::State};
use myelin_core::e2ee::backup;
use myelin_store::BackupScope;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, QueryParams, RawBody},
    path::Segments,
};

/// # `POST /_matrix/client/v3/room_keys/version`
pub async fn create_version(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    Ok(Json(backup::create(&state.0, &requester, body).await?))
}

/// # `GET /_matrix/client/v3/room_keys/version`
///
/// The current backup; 404 `M_NOT_FOUND` when there is none.
pub async fn latest_version(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(backup::get_version(&state.0, &requester, None).await?))
}

/// # `GET /_matrix/client/v3/room_keys/version/{version}`
pub async fn get_version(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(version): Segments<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        backup::get_version(&state.0, &requester, Some(&version)).await?,
    ))
}

/// # `PUT /_matrix/client/v3/room_keys/version/{version}`
pub async fn update_version(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(version): Segments<String>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    backup::update_version(&state.0, &requester, &version, body).await?;
    Ok(Json(json!({})))
}

/// # `DELETE /_matrix/client/v3/room_keys/version/{version}`
pub async fn delete_version(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(version): Segments<String>,
) -> ApiResult<Json<Value>> {
    backup::delete_version(&state.0, &requester, &version).await?;
    Ok(Json(json!({})))
}

/// # `PUT /_matrix/client/v3/room_keys/keys`
pub async fn put_all(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    put(state, requester, query, BackupScope::All, body).await
}

/// # `PUT /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn put_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    QueryParams(query): QueryParams,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    put(state, requester, query, BackupScope::Room(room), body).await
}

/// # `PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn put_session(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room, session)): Segments<(String, String)>,
    QueryParams(query): QueryParams,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let scope = BackupScope::Session(room, session);
    put(state, requester, query, scope, body).await
}

async fn put(
    state: AppState,
    requester: myelin_core::auth::Requester,
    query: std::collections::HashMap<String, String>,
    scope: BackupScope,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    let version = query.get("version").map(String::as_str);
    Ok(Json(
        backup::put_keys(&state.0, &requester, version, scope, body).await?,
    ))
}

/// # `GET /_matrix/client/v3/room_keys/keys`
pub async fn get_all(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    Ok(Json(
        backup::get_keys(&state.0, &requester, version, BackupScope::All).await?,
    ))
}

/// # `GET /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn get_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    let scope = BackupScope::Room(room);
    Ok(Json(
        backup::get_keys(&state.0, &requester, version, scope).await?,
    ))
}

/// # `GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn get_session(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room, session)): Segments<(String, String)>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    let scope = BackupScope::Session(room, session);
    Ok(Json(
        backup::get_keys(&state.0, &requester, version, scope).await?,
    ))
}

/// # `DELETE /_matrix/client/v3/room_keys/keys`
pub async fn delete_all(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    Ok(Json(
        backup::delete_keys(&state.0, &requester, version, BackupScope::All).await?,
    ))
}

/// # `DELETE /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn delete_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room): Segments<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    let scope = BackupScope::Room(room);
    Ok(Json(
        backup::delete_keys(&state.0, &requester, version, scope).await?,
    ))
}

/// # `DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn delete_session(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room, session)): Segments<(String, String)>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let version = query.get("version").map(String::as_str);
    let scope = BackupScope::Session(room, session);
    Ok(Json(
        backup::delete_keys(&state.0, &requester, version, scope).await?,
    ))
}
