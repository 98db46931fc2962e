//! `/sync` and filters (`sync.yaml`, `filter.yaml`).

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use myelin_core::sync::{self, SyncParams};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiResult, invalid_param},
    extract::{Auth, QueryParams, RawBody},
    path::Segments,
};

/// # `GET /_matrix/client/v3/sync`
///
/// Initial sync (no `since`) returns the latest of every account-data type; incremental sync
/// returns what changed, waiting up to `timeout` ms for a change.
pub async fn sync_events(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<sync::SyncResponse>> {
    let timeout_ms = match query.get("timeout") {
        None => None,
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| invalid_param("timeout must be a non-negative integer"))?,
        ),
    };
    let full_state = match query.get("full_state").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid_param("full_state must be true or false")),
    };
    let params = SyncParams {
        since: query.get("since").cloned(),
        timeout_ms,
        filter: query.get("filter").cloned(),
        full_state,
        set_presence: query.get("set_presence").cloned(),
    };
    Ok(Json(sync::sync(&state.0, &requester, params).await?))
}

/// # `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create_filter(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let filter_id = sync::create_filter(&state.0, &requester, &user_id, &body).await?;
    Ok(Json(json!({ "filter_id": filter_id })))
}

/// # `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get_filter(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, filter_id)): Segments<(String, String)>,
) -> ApiResult<Response> {
    let filter = sync::get_filter(&state.0, &requester, &user_id, &filter_id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], filter).into_response())
}
