//! The reference server's admin API (`/_synapse/admin`), which admin tools speak, and the
//! spec's `/admin/whois` (`admin.yaml`). Every handler but `server_version` and shared-secret
//! registration requires a server admin's token.

use axum::{Json, extract::State, http::StatusCode};
use myelin_core::admin;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, QueryParams, RawBody},
    path::Segments,
};

type Answer = ApiResult<Json<Value>>;

fn empty() -> Answer {
    Ok(Json(json!({})))
}

/// # `GET /_synapse/admin/v1/server_version` (no token: admin UIs probe it before login)
pub async fn server_version() -> Json<Value> {
    Json(json!({ "server_version": admin::server_version() }))
}

/// # `GET /_synapse/admin/v2/users`
pub async fn list_users_v2(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::list_users(&state.0, &requester, &params, false).await?,
    ))
}

/// # `GET /_synapse/admin/v3/users` (`deactivated` absent: no filter)
pub async fn list_users_v3(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::list_users(&state.0, &requester, &params, true).await?,
    ))
}

/// # `GET /_synapse/admin/v2/users/{userId}`
pub async fn get_user(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(admin::user(&state.0, &requester, &user_id).await?))
}

/// # `PUT /_synapse/admin/v2/users/{userId}`: 201 when it created the account.
pub async fn put_user(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (created, user) = admin::put_user(&state.0, &requester, &user_id, body.object()?).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(user)))
}

/// # `POST /_synapse/admin/v1/deactivate/{userId}` (an empty body is allowed)
pub async fn deactivate(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(
        admin::deactivate(&state.0, &requester, &user_id, body).await?,
    ))
}

/// # `POST /_synapse/admin/v1/reset_password/{userId}`
pub async fn reset_password(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    admin::reset_password(&state.0, &requester, &user_id, body.object()?).await?;
    empty()
}

/// # `GET /_synapse/admin/v1/whois/{userId}` and `GET /_matrix/client/v3/admin/whois/{userId}`
pub async fn whois(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(admin::whois(&state.0, &requester, &user_id).await?))
}

/// # `GET /_synapse/admin/v1/users/{userId}/admin`
pub async fn get_admin(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    let is_admin = admin::get_admin(&state.0, &requester, &user_id).await?;
    Ok(Json(json!({ "admin": is_admin })))
}

/// # `PUT /_synapse/admin/v1/users/{userId}/admin`
pub async fn set_admin(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    admin::set_admin(&state.0, &requester, &user_id, body.object()?).await?;
    empty()
}

/// # `PUT /_synapse/admin/v1/suspend/{userId}`
pub async fn suspend(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    Ok(Json(
        admin::suspend(&state.0, &requester, &user_id, body.object()?).await?,
    ))
}

/// # `GET /_synapse/admin/v1/username_available?username=`
pub async fn username_available(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    let username = params.get("username").map(String::as_str);
    Ok(Json(
        admin::username_available(&state.0, &requester, username).await?,
    ))
}

/// # `POST /_synapse/admin/v1/users/{userId}/login`
pub async fn login_as(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(
        admin::login_as(&state.0, &requester, &user_id, body).await?,
    ))
}

/// # `GET /_synapse/admin/v1/users/{userId}/accountdata`
pub async fn account_data(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::account_data(&state.0, &requester, &user_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/users/{userId}/joined_rooms`
pub async fn joined_rooms(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::joined_rooms(&state.0, &requester, &user_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/users/{userId}/memberships`
pub async fn memberships(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::memberships(&state.0, &requester, &user_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/users/{userId}/pushers`
pub async fn pushers(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(admin::pushers(&state.0, &requester, &user_id).await?))
}

/// # `GET /_synapse/admin/v1/users/{userId}/media`
pub async fn user_media(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::user_media(&state.0, &requester, &user_id, &params).await?,
    ))
}

/// # `DELETE /_synapse/admin/v1/users/{userId}/media`
pub async fn delete_user_media(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::delete_user_media(&state.0, &requester, &user_id).await?,
    ))
}

/// # `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`
pub async fn delete_media(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((server, media_id)): Segments<(String, String)>,
) -> Answer {
    Ok(Json(
        admin::delete_media(&state.0, &requester, &server, &media_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/rooms`
pub async fn list_rooms(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::list_rooms(&state.0, &requester, &params).await?,
    ))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}`
pub async fn room(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_details(&state.0, &requester, &room_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}/members`
pub async fn room_members(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_members(&state.0, &requester, &room_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}/state`
pub async fn room_state(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_state(&state.0, &requester, &room_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/room/{roomId}/media`
pub async fn room_media(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(room_id): Segments<String>,
) -> Answer {
    Ok(Json(
        admin::room_media(&state.0, &requester, &room_id).await?,
    ))
}

/// # `GET /_synapse/admin/v1/event_reports`
pub async fn event_reports(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::event_reports(&state.0, &requester, &params).await?,
    ))
}

/// # `GET /_synapse/admin/v1/event_reports/{reportId}`
pub async fn event_report(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(id): Segments<String>,
) -> Answer {
    Ok(Json(admin::event_report(&state.0, &requester, &id).await?))
}

/// # `DELETE /_synapse/admin/v1/event_reports/{reportId}`
pub async fn delete_event_report(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(id): Segments<String>,
) -> Answer {
    admin::delete_event_report(&state.0, &requester, &id).await?;
    Ok(Json(json!({})))
}

/// # `GET /_synapse/admin/v2/users/{userId}/devices`
pub async fn devices(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
) -> Answer {
    Ok(Json(admin::devices(&state.0, &requester, &user_id).await?))
}

/// # `POST /_synapse/admin/v2/users/{userId}/devices`: 201, as the reference server answers.
pub async fn create_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin::create_device(&state.0, &requester, &user_id, body.object()?).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// # `GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}`
pub async fn device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, device_id)): Segments<(String, String)>,
) -> Answer {
    Ok(Json(
        admin::device(&state.0, &requester, &user_id, &device_id).await?,
    ))
}

/// # `PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}`
pub async fn rename_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, device_id)): Segments<(String, String)>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    admin::rename_device(&state.0, &requester, &user_id, &device_id, body).await?;
    empty()
}

/// # `DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}`
pub async fn delete_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((user_id, device_id)): Segments<(String, String)>,
) -> Answer {
    admin::delete_device(&state.0, &requester, &user_id, &device_id).await?;
    empty()
}

/// # `POST /_synapse/admin/v2/users/{userId}/delete_devices`
pub async fn delete_devices(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(user_id): Segments<String>,
    body: RawBody,
) -> Answer {
    admin::delete_devices(&state.0, &requester, &user_id, body.object()?).await?;
    empty()
}

/// # `GET /_synapse/admin/v1/registration_tokens`
pub async fn list_tokens(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(params): QueryParams,
) -> Answer {
    Ok(Json(
        admin::list_tokens(&state.0, &requester, &params).await?,
    ))
}

/// # `POST /_synapse/admin/v1/registration_tokens/new`
pub async fn create_token(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(admin::create_token(&state.0, &requester, body).await?))
}

/// # `GET /_synapse/admin/v1/registration_tokens/{token}`
pub async fn get_token(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(token): Segments<String>,
) -> Answer {
    Ok(Json(admin::get_token(&state.0, &requester, &token).await?))
}

/// # `PUT /_synapse/admin/v1/registration_tokens/{token}`
pub async fn update_token(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(token): Segments<String>,
    body: RawBody,
) -> Answer {
    let body = body.object_or_empty()?;
    Ok(Json(
        admin::update_token(&state.0, &requester, &token, body).await?,
    ))
}

/// # `DELETE /_synapse/admin/v1/registration_tokens/{token}`
pub async fn delete_token(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(token): Segments<String>,
) -> Answer {
    admin::delete_token(&state.0, &requester, &token).await?;
    empty()
}

/// # `GET /_synapse/admin/v1/register`: a nonce for shared-secret registration.
pub async fn register_nonce(State(state): State<AppState>) -> Answer {
    Ok(Json(json!({ "nonce": admin::nonce(&state.0)? })))
}

/// # `POST /_synapse/admin/v1/register`
pub async fn register(
    State(state): State<AppState>,
    body: RawBody,
) -> ApiResult<Json<myelin_core::accounts::Session>> {
    Ok(Json(admin::register(&state.0, body.object()?).await?))
}
