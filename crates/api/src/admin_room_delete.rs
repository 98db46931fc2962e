//! The admin API's room deletion and blocking (`/_synapse/admin/v1|v2/rooms/...`).

use axum::{Json, extract::State};
use myelin_core::admin;
use serde_json::Value;

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

type Answer = ApiResult<Json<Value>>;

/// # `DELETE /_synapse/admin/v1/rooms/{roomId}` (also `POST .../delete`, its old name)
pub async fn delete_room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(
        admin::delete_room(&state.0, &requester, &room_id, &body).await?,
    ))
}

/// # `DELETE /_synapse/admin/v2/rooms/{roomId}`
pub async fn start_room_deletion(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(
        admin::start_room_deletion(&state.0, &requester, &room_id, &body).await?,
    ))
}

/// # `GET /_synapse/admin/v2/rooms/{roomId}/delete_status`
pub async fn room_deletion_status(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_deletion_status(&state.0, &requester, &room_id).await?,
    ))
}

/// # `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`
pub async fn deletion_status(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(delete_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::deletion_status(&state.0, &requester, &delete_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}/block`
pub async fn room_block(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_block(&state.0, &requester, &room_id).await?,
    ))
}

/// # `PUT /_synapse/admin/v1/rooms/{roomId}/block`
pub async fn set_room_block(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
    body: RawBody,
) -> Answer {
    Ok(Json(
        admin::set_room_block(&state.0, &requester, &room_id, &body.object()?).await?,
    ))
}
