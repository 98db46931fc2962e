//! Account management: password (`password_management.yaml`), deactivation
//! (`account_deactivation.yaml`) and third-party identifiers (`administrative_contact.yaml`).
//!
//! This server has no identity server and sends no email or SMS, so no account ever has a
//! third-party identifier: the list is empty, validation requests say the medium is not
//! supported, and the calls that would bind or remove one are refused.

use axum::{Json, extract::State};
use myelin_core::{Error, accounts};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, ClientIp, RawBody},
};

/// # `POST /_matrix/client/v3/account/password`
///
/// Changes the password after a password UIA stage.
/// - `logout_devices` (default `true`) deletes every other device; the caller's stays.
/// - Without an access token: 401 `M_MISSING_TOKEN` (there is no email reset).
pub async fn change_password(
    State(state): State<AppState>,
    Auth(requester): Auth,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    accounts::change_password(&state.0, &requester, body.object()?, ip.as_deref()).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/account/deactivate`
///
/// Deactivates the account after a password UIA stage: every device is deleted, every room
/// left, the profile removed; the user ID stays reserved.
pub async fn deactivate(
    State(state): State<AppState>,
    Auth(requester): Auth,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    accounts::deactivate(&state.0, &requester, body.object_or_empty()?, ip.as_deref()).await?;
    // Nothing was bound, so nothing failed to unbind: the spec's `success`.
    Ok(Json(json!({ "id_server_unbind_result": "success" })))
}

/// # `GET /_matrix/client/v3/account/3pid`
pub async fn get_threepids(Auth(_requester): Auth) -> Json<Value> {
    Json(json!({ "threepids": [] }))
}

/// # `POST /_matrix/client/v3/account/3pid`, `/3pid/add`, `/3pid/bind`, `/3pid/delete`, `/3pid/unbind`
///
/// 403 `M_FORBIDDEN`: without an identity server or a way to validate an address, no
/// third-party identifier can be added, bound or removed.
pub async fn change_threepid(Auth(_requester): Auth) -> ApiResult<Json<Value>> {
    Err(
        myelin_core::error::forbidden("This server does not support third-party identifiers")
            .into(),
    )
}

/// # `POST /_matrix/client/v3/account/3pid/{medium}/requestToken` and `/register/{medium}/requestToken`
///
/// 400 `M_THREEPID_MEDIUM_NOT_SUPPORTED`: this server sends no email or SMS.
pub async fn request_token() -> ApiResult<Json<Value>> {
    Err(Error::ThreepidMediumNotSupported(
        "This server does not validate email addresses or phone numbers".into(),
    )
    .into())
}

/// # `POST /_matrix/client/v3/account/password/{medium}/requestToken`
///
/// 400 `M_THREEPID_NOT_FOUND`: no account has a third-party identifier to reset a password
/// with.
pub async fn request_password_token() -> ApiResult<Json<Value>> {
    Err(Error::ThreepidNotFound.into())
}
