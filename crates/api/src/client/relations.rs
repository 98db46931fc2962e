//! Relations between events (`relations.yaml`) and thread lists (`threads_list.yaml`).

use axum::{Json, extract::State};
use myelin_core::relations::list::{self, Relations, RelationsRequest, Threads};

use crate::{
    AppState,
    error::{ApiResult, invalid_param},
    extract::{Auth, QueryParams},
    path::Segments,
};

async fn relations(
    state: &AppState,
    requester: &myelin_core::auth::Requester,
    (room_id, event_id): (&str, &str),
    (rel_type, event_type): (Option<&str>, Option<&str>),
    query: &QueryParams,
) -> ApiResult<Json<Relations>> {
    let q = &query.0;
    let backward = match q.get("dir").map(String::as_str) {
        Some("b") | None => true,
        Some("f") => false,
        Some(_) => return Err(invalid_param("dir must be b or f")),
    };
    let recurse = match q.get("recurse").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid_param("recurse must be true or false")),
    };
    let request = RelationsRequest {
        rel_type,
        event_type,
        from: q.get("from").map(String::as_str),
        to: q.get("to").map(String::as_str),
        limit: query.number("limit")?,
        backward,
        recurse,
    };
    Ok(Json(
        list::relations(&state.0, requester, room_id, event_id, request).await?,
    ))
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
pub async fn get_relations(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Json<Relations>> {
    relations(
        &state,
        &requester,
        (&room_id, &event_id),
        (None, None),
        &query,
    )
    .await
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
pub async fn get_relations_of_type(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id, rel_type)): Segments<(String, String, String)>,
    query: QueryParams,
) -> ApiResult<Json<Relations>> {
    relations(
        &state,
        &requester,
        (&room_id, &event_id),
        (Some(&rel_type), None),
        &query,
    )
    .await
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
pub async fn get_relations_of_type_and_event_type(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id, rel_type, event_type)): Segments<(String, String, String, String)>,
    query: QueryParams,
) -> ApiResult<Json<Relations>> {
    relations(
        &state,
        &requester,
        (&room_id, &event_id),
        (Some(&rel_type), Some(&event_type)),
        &query,
    )
    .await
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/threads`
pub async fn get_threads(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    query: QueryParams,
) -> ApiResult<Json<Threads>> {
    let threads = list::threads(
        &state.0,
        &requester,
        &room_id,
        query.0.get("include").map(String::as_str),
        query.number("limit")?,
        query.0.get("from").map(String::as_str),
    )
    .await?;
    Ok(Json(threads))
}
