//! Account data, global and per room (`account-data.yaml`), and MSC3391 deletion.

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use myelin_core::account_data;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
    path::Segments,
};

fn raw_json(content: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], content).into_response()
}

/// # `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
///
/// Stores the content and wakes the user's waiting syncs. `{}` deletes (MSC3391).
pub async fn put_global_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, data_type)): Segments<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    account_data::put(&state.0, &requester, &user_id, None, &data_type, &body).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn get_global_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, data_type)): Segments<(String, String)>,
) -> ApiResult<Response> {
    let content = account_data::get(&state.0, &requester, &user_id, None, &data_type).await?;
    Ok(raw_json(content))
}

/// # `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn put_room_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id, data_type)): Segments<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    account_data::put(
        &state.0,
        &requester,
        &user_id,
        Some(&room_id),
        &data_type,
        &body,
    )
    .await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id, data_type)): Segments<(String, String, String)>,
) -> ApiResult<Response> {
    let content =
        account_data::get(&state.0, &requester, &user_id, Some(&room_id), &data_type).await?;
    Ok(raw_json(content))
}

/// # `DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}/account_data/{type}`
///
/// Deletes the entry: GET answers 404, incremental sync delivers `{}` once.
pub async fn delete_global_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, data_type)): Segments<(String, String)>,
) -> ApiResult<Json<Value>> {
    account_data::delete(&state.0, &requester, &user_id, None, &data_type).await?;
    Ok(Json(json!({})))
}

/// # `DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn delete_room_account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, room_id, data_type)): Segments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    account_data::delete(&state.0, &requester, &user_id, Some(&room_id), &data_type).await?;
    Ok(Json(json!({})))
}
