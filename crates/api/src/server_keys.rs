//! `GET /_matrix/key/v2/server` (server-server API, "Retrieving server keys"): the key every
//! event this server builds is signed with, signed by itself (EV-05).

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{AppState, error::ApiResult};

/// # `GET /_matrix/key/v2/server`
pub async fn get_server_keys(State(state): State<AppState>) -> ApiResult<Response> {
    let services = &state.0;
    let body = services
        .key
        .server_keys(&services.config.server_name, myelin_core::now_ms())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
