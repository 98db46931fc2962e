//! Push rules (`pushrules.yaml`), read side.

use axum::{Json, extract::State};
use myelin_core::push;
use serde_json::{Value, json};

use crate::{AppState, error::ApiResult, extract::Auth};

/// # `GET /_matrix/client/v3/pushrules/`
///
/// The user's push rules in every scope (only `global` exists). matrix-js-sdk calls this,
/// with the trailing slash, before it starts its sync loop (PR-01).
pub async fn get_push_rules(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    let global = push::ruleset(&state.0, &requester.user_id).await?;
    Ok(Json(json!({ "global": global })))
}

/// # `GET /_matrix/client/v3/pushrules/global/`
///
/// The user's global ruleset itself (PR-03).
pub async fn get_global_push_rules(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(push::ruleset(&state.0, &requester.user_id).await?))
}
