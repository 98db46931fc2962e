//! VoIP (`voip.yaml`).

use axum::{Json, extract::State};
use serde_json::Value;

use crate::{AppState, error::ApiResult, extract::Auth};

/// # `GET /_matrix/client/v3/voip/turnServer`
///
/// Credentials for the configured TURN servers, `{}` when there are none.
pub async fn turn_server(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(myelin_core::voip::turn_server(&state.0, &requester)))
}
