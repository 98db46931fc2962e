//! The user directory (`users.yaml`).

use axum::{Json, extract::State};
use myelin_core::user_directory::{self, SearchResults};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, RawBody},
};

/// # `POST /_matrix/client/v3/user_directory/search`
///
/// Users sharing a room with the requester or in a public room (every user with
/// `user_directory.search_all_users`) whose localpart or display name contains the term.
pub async fn search(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<SearchResults>> {
    Ok(Json(
        user_directory::search(&state.0, &requester, &body.object()?).await?,
    ))
}
