//! Device management (`device_management.yaml`).
//!
//! Devices are serialised with all four keys, `null` for what is unknown. The spec says
//! `display_name` is absent when never set, but matrix-nio rejects a device list with a key
//! missing, the reference server sends `null`, and every other client reads `null` as absent.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use myelin_core::devices;
use myelin_store::Device;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, ClientIp, RawBody},
    path::Segments,
};

#[derive(Serialize)]
pub struct DeviceJson {
    device_id: String,
    display_name: Option<String>,
    last_seen_ip: Option<String>,
    last_seen_ts: Option<i64>,
}

impl From<Device> for DeviceJson {
    fn from(d: Device) -> Self {
        Self {
            device_id: d.device_id,
            display_name: d.display_name,
            last_seen_ip: d.last_seen_ip,
            last_seen_ts: d.last_seen_ts,
        }
    }
}

#[derive(Serialize)]
pub struct DeviceList {
    devices: Vec<DeviceJson>,
}

/// # `GET /_matrix/client/v3/devices`
pub async fn list_devices(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<DeviceList>> {
    let devices = devices::list(&state.0, &requester).await?;
    let devices = devices.into_iter().map(Into::into).collect();
    // Serialised straight from the structs: going through `json!` built a map per device
    // and cost a fifth of the time for users with many devices.
    Ok(Json(DeviceList { devices }))
}

/// # `GET /_matrix/client/v3/devices/{deviceId}`
///
/// 404 for unknown devices and other users' devices alike.
pub async fn get_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(device_id): Segments<String>,
) -> ApiResult<Json<DeviceJson>> {
    let device = devices::get(&state.0, &requester, &device_id).await?;
    Ok(Json(device.into()))
}

/// # `PUT /_matrix/client/v3/devices/{deviceId}`
///
/// Renames a device (no `display_name`: unchanged). An appservice may create the device
/// (MSC4190): 201 when created, 200 when updated.
pub async fn update_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(device_id): Segments<String>,
    body: RawBody,
) -> ApiResult<Response> {
    let body = body.object()?;
    let created = devices::update(&state.0, &requester, &device_id, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({}))).into_response())
}

/// # `DELETE /_matrix/client/v3/devices/{deviceId}`
///
/// Deletes a device after UIA (appservices: no UIA).
/// - Invalidates the device's access tokens, waking its waiting syncs with a 401.
/// - Deletes its MSC3890 local notification settings.
/// - An unknown or already deleted device is a success.
pub async fn delete_device(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments(device_id): Segments<String>,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    devices::delete(&state.0, &requester, &device_id, &body, ip.as_deref()).await?;
    Ok(Json(json!({})))
}

/// # `POST /_matrix/client/v3/delete_devices`
///
/// Deletes several devices after one UIA, in batches; `devices` is required (400
/// `M_MISSING_PARAM` without it, `M_BAD_JSON` when it is not a list of strings).
pub async fn delete_devices(
    State(state): State<AppState>,
    Auth(requester): Auth,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let body = body.object_or_empty()?;
    devices::delete_many(&state.0, &requester, &body, ip.as_deref()).await?;
    Ok(Json(json!({})))
}
