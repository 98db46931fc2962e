//! Rooms: creation (`create_room.yaml`), sending (`room_send.yaml`, `room_state.yaml`,
//! `redaction.yaml`) and reading (`rooms.yaml`, `message_pagination.yaml`,
//! `event_context.yaml`).

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use myelin_core::rooms::{create, read, send, timeline};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiResult, invalid_param},
    extract::{Auth, QueryParams, RawBody},
    path::Segments,
};

fn event_id(id: impl std::fmt::Display) -> Json<Value> {
    Json(json!({ "event_id": id.to_string() }))
}

/// # `POST /_matrix/client/v3/createRoom`
///
/// Creates the room with its first events in one transaction; the creator is joined and
/// the invitees invited.
pub async fn create_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let room_id = create::create_room(&state.0, &requester, &body).await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
///
/// Idempotent per device and transaction ID; wakes the members' syncs.
pub async fn send_message(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_type, txn_id)): Segments<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let id =
        send::send_message(&state.0, &requester, &room_id, &event_type, &txn_id, &body).await?;
    Ok(event_id(id))
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn put_state(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_type, state_key)): Segments<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let id = send::put_state(
        &state.0,
        &requester,
        &room_id,
        &event_type,
        &state_key,
        &body,
    )
    .await?;
    Ok(event_id(id))
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}` (empty state key, ST-05)
pub async fn put_state_empty_key(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_type)): Segments<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let id = send::put_state(&state.0, &requester, &room_id, &event_type, "", &body).await?;
    Ok(event_id(id))
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, target, txn_id)): Segments<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let id = send::redact(&state.0, &requester, &room_id, &target, &txn_id, &body).await?;
    Ok(event_id(id))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
pub async fn get_event(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id)): Segments<(String, String)>,
) -> ApiResult<Response> {
    let event = read::get_event(&state.0, &requester, &room_id, &event_id).await?;
    Ok(Json(event).into_response())
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/state`
pub async fn get_state(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> ApiResult<Response> {
    let events = read::get_state(&state.0, &requester, &room_id).await?;
    Ok(Json(events).into_response())
}

async fn state_event(
    state: &AppState,
    requester: &myelin_core::auth::Requester,
    (room_id, event_type, state_key): (&str, &str, &str),
    query: &QueryParams,
) -> ApiResult<Response> {
    let as_event = match query.0.get("format").map(String::as_str) {
        None | Some("content") => false,
        Some("event") => true,
        Some(_) => return Err(invalid_param("format must be content or event")),
    };
    let found = read::get_state_event(
        &state.0, requester, room_id, event_type, state_key, as_event,
    )
    .await?;
    Ok(match found {
        read::StateEvent::Content(content) => (
            [(header::CONTENT_TYPE, "application/json")],
            content.get().to_owned(),
        )
            .into_response(),
        read::StateEvent::Event(event) => Json(event).into_response(),
    })
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
///
/// The content, or the whole event with `?format=event`.
pub async fn get_state_event(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_type, state_key)): Segments<(String, String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    state_event(
        &state,
        &requester,
        (&room_id, &event_type, &state_key),
        &query,
    )
    .await
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}` (empty state key)
pub async fn get_state_event_empty_key(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_type)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    state_event(&state, &requester, (&room_id, &event_type, ""), &query).await
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/members`
pub async fn get_members(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    let q = &query.0;
    let chunk = read::members(
        &state.0,
        &requester,
        &room_id,
        q.get("at").map(String::as_str),
        q.get("membership").map(String::as_str),
        q.get("not_membership").map(String::as_str),
    )
    .await?;
    Ok(Json(json!({ "chunk": chunk })))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
pub async fn get_joined_members(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> ApiResult<Json<Value>> {
    let joined = read::joined_members(&state.0, &requester, &room_id).await?;
    Ok(Json(json!({ "joined": joined })))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/messages`
pub async fn get_messages(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    query: QueryParams,
) -> ApiResult<Response> {
    let q = &query.0;
    // `dir` is required by the spec; the reference server reads its absence as forwards.
    let backward = match q.get("dir").map(String::as_str) {
        Some("b") => true,
        Some("f") | None => false,
        Some(_) => return Err(invalid_param("dir must be b or f")),
    };
    let messages = timeline::messages(
        &state.0,
        &requester,
        &room_id,
        timeline::MessagesQuery {
            from: q.get("from").map(String::as_str),
            to: q.get("to").map(String::as_str),
            backward,
            limit: query.number("limit")?,
            filter: q.get("filter").map(String::as_str),
        },
    )
    .await?;
    Ok(Json(messages).into_response())
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
pub async fn get_context(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((room_id, event_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    let context = timeline::context(
        &state.0,
        &requester,
        &room_id,
        &event_id,
        query.number("limit")?,
        query.0.get("filter").map(String::as_str),
    )
    .await?;
    Ok(Json(context).into_response())
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
pub async fn timestamp_to_event(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    let ts = match query.0.get("ts") {
        None => return Err(crate::error::missing_param("ts is required")),
        Some(ts) => ts
            .parse::<i64>()
            .map_err(|_| invalid_param("ts must be a timestamp in milliseconds"))?,
    };
    let forward = match query.0.get("dir").map(String::as_str) {
        Some("f") => true,
        Some("b") => false,
        None => return Err(crate::error::missing_param("dir is required")),
        Some(_) => return Err(invalid_param("dir must be f or b")),
    };
    let (event_id, origin_server_ts) =
        timeline::timestamp_to_event(&state.0, &requester, &room_id, ts, forward).await?;
    Ok(Json(
        json!({ "event_id": event_id, "origin_server_ts": origin_server_ts }),
    ))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let replacement =
        myelin_core::rooms::upgrade::upgrade(&state.0, &requester, &room_id, &body).await?;
    Ok(Json(json!({ "replacement_room": replacement })))
}
