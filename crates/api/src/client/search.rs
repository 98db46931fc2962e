//! Server-side search (`search.yaml`).

use axum::{Json, extract::State};
use serde_json::Value;

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, QueryParams, RawBody},
};

/// # `POST /_matrix/client/v3/search`
pub async fn search(
    State(state): State<AppState>,
    Auth(requester): Auth,
    query: QueryParams,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let next_batch = query.0.get("next_batch").map(String::as_str);
    Ok(Json(
        myelin_core::search::search(&state.0, &requester, &body, next_batch).await?,
    ))
}
