//! Notifications (`notifications.yaml`).

use axum::{Json, extract::State};
use myelin_core::push::notifications::{self, Notifications};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, QueryParams},
};

/// # `GET /_matrix/client/v3/notifications?from=&limit=&only=`
///
/// The events that notified the requester, newest first (PE-32..34).
pub async fn get_notifications(
    State(state): State<AppState>,
    Auth(requester): Auth,
    query: QueryParams,
) -> ApiResult<Json<Notifications>> {
    let limit = query.number("limit")?;
    Ok(Json(
        notifications::list(
            &state.0,
            &requester,
            query.0.get("from").map(String::as_str),
            limit,
            query.0.get("only").map(String::as_str),
        )
        .await?,
    ))
}
