//! End-to-end encryption keys (`keys.yaml`) and send-to-device (`to_device.yaml`).

use axum::{Json, extract::State};
use myelin_core::e2ee;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, ClientIp, QueryParams, RawBody},
    path::Segments,
};

/// # `POST /_matrix/client/v3/keys/upload`
///
/// Device keys, one-time keys and fallback keys of the requesting device; answers its
/// one-time key counts (`signed_curve25519` always present).
pub async fn upload_keys(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    Ok(Json(e2ee::upload(&state.0, &requester, body).await?))
}

/// # `POST /_matrix/client/v3/keys/query`
pub async fn query_keys(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    Ok(Json(e2ee::query(&state.0, &requester, body).await?))
}

/// # `POST /_matrix/client/v3/keys/device_signing/upload`
///
/// The user's cross-signing keys; UIA once a master key is stored and a key changes.
pub async fn upload_signing_keys(
    State(state): State<AppState>,
    Auth(requester): Auth,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    e2ee::cross_signing::upload(&state.0, &requester, body, ip.as_deref()).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/keys/signatures/upload`
///
/// Signatures of keys; `failures` says which were refused (XS-13).
pub async fn upload_signatures(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    Ok(Json(
        e2ee::signatures::upload(&state.0, &requester, body).await?,
    ))
}

/// # `POST /_matrix/client/v3/keys/claim`
pub async fn claim_keys(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    Ok(Json(e2ee::claim(&state.0, body).await?))
}

/// # `GET /_matrix/client/v3/keys/changes`
pub async fn key_changes(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let (from, to) = (query.get("from"), query.get("to"));
    Ok(Json(
        e2ee::changes(
            &state.0,
            &requester,
            from.map(String::as_str),
            to.map(String::as_str),
        )
        .await?,
    ))
}

/// # `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
pub async fn send_to_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((event_type, txn_id)): Segments<(String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    e2ee::send(&state.0, &requester, &event_type, &txn_id, body).await?;
    Ok(Json(json!({})))
}

/// # `PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub async fn put_dehydrated_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    Ok(Json(
        e2ee::dehydrated::put(&state.0, &requester, body).await?,
    ))
}

/// # `GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub async fn get_dehydrated_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(e2ee::dehydrated::get(&state.0, &requester).await?))
}

/// # `DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub async fn delete_dehydrated_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(e2ee::dehydrated::delete(&state.0, &requester).await?))
}

/// # `GET …/dehydrated_device/{deviceId}/events?from=` (the js-sdk's form)
pub async fn dehydrated_events(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(device_id): Segments<String>,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let from = query.get("from").map(String::as_str);
    Ok(Json(
        e2ee::dehydrated::events(&state.0, &requester, &device_id, from, false).await?,
    ))
}

/// # `POST …/dehydrated_device/{deviceId}/events` with `{"next_batch"}` (ruma's form)
pub async fn dehydrated_events_post(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(device_id): Segments<String>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    let from = match body.get("next_batch") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token.clone()),
        Some(_) => return Err(myelin_core::error::bad_json("next_batch must be a string").into()),
    };
    Ok(Json(
        e2ee::dehydrated::events(&state.0, &requester, &device_id, from.as_deref(), true).await?,
    ))
}
