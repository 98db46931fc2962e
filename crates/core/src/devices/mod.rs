//! Device management: list, get, rename, create (appservices, MSC4190) and delete.
//!
//! Deletion is the one path through which a device ever disappears: [`remove`], in
//! [`lifecycle`], which also holds the device cap of logins. `last_seen` tracking is in
//! [`last_seen`].

mod last_seen;
pub(crate) mod lifecycle;

pub use last_seen::{LastSeenTracker, background, flush_last_seen};
pub(crate) use lifecycle::{change_password, deactivate, sign_in};
pub use lifecycle::{reap_stale, remove};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{
        Result, bad_json, field_too_long, invalid_param, limit_exceeded, missing_param, not_found,
    },
    ids, uia,
};
use myelin_store::{Device, DeviceUpsert};

pub async fn list(services: &Services, requester: &Requester) -> Result<Vec<Device>> {
    let mut devices = services.store.list_devices(&requester.user_id).await?;
    services.last_seen.overlay(&requester.user_id, &mut devices);
    Ok(devices)
}

pub async fn get(services: &Services, requester: &Requester, device_id: &str) -> Result<Device> {
    if !ids::could_be_device_id(device_id) {
        return Err(not_found("Device not found"));
    }
    let mut device = services
        .store
        .get_device(&requester.user_id, device_id)
        .await?
        .ok_or_else(|| not_found("Device not found"))?;
    services
        .last_seen
        .overlay(&requester.user_id, std::slice::from_mut(&mut device));
    Ok(device)
}

/// A device display name a client sent in `field` (a rename or a login's
/// `initial_device_display_name`): at most `limits.device_display_name_max_chars`
/// characters, and no NUL.
pub(crate) fn check_display_name(
    services: &Services,
    name: Option<&str>,
    field: &str,
) -> Result<()> {
    let max = services.config.limits.device_display_name_max_chars;
    match name {
        Some(name) if name.chars().count() > max => Err(field_too_long(format!(
            "Device display name is too long (max {max})"
        ))),
        Some(name) if ids::has_nul(name) => Err(invalid_param(format!(
            "{field} must not contain NUL characters"
        ))),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(default)]
    display_name: Option<String>,
}

/// `PUT /devices/{deviceId}`: `Ok(true)` when an appservice created the device.
pub async fn update(
    services: &Services,
    requester: &Requester,
    device_id: &str,
    body: Map<String, Value>,
) -> Result<bool> {
    let body: UpdateBody = serde_json::from_value(Value::Object(body))
        .map_err(|e| bad_json(format!("Invalid request body: {e}")))?;
    check_display_name(services, body.display_name.as_deref(), "display_name")?;
    let Some(service) = &requester.appservice else {
        if !ids::could_be_device_id(device_id) {
            return Err(not_found("Device not found"));
        }
        let renamed = body.display_name.is_some();
        return match services
            .store
            .upsert_device(&requester.user_id, device_id, body.display_name, false, 0)
            .await?
        {
            DeviceUpsert::NotFound => Err(not_found("Device not found")),
            _ => {
                // DD-05: a rename reaches room-mates through their device lists.
                if renamed {
                    crate::e2ee::notify_device_change(services, &requester.user_id).await;
                }
                Ok(false)
            }
        };
    };
    // MSC4190: an appservice may create devices for its users, rate-limited.
    ids::check_device_id(device_id)?;
    if services
        .store
        .get_device(&requester.user_id, device_id)
        .await?
        .is_none()
        && service.rate_limited
    {
        services
            .limiters
            .appservice_device_creation
            .check(&service.id)
            .map_err(limit_exceeded)?;
    }
    let outcome = services
        .store
        .upsert_device(
            &requester.user_id,
            device_id,
            body.display_name,
            true,
            crate::now_ms(),
        )
        .await?;
    crate::e2ee::notify_device_change(services, &requester.user_id).await;
    Ok(outcome == DeviceUpsert::Created)
}

/// `DELETE /devices/{deviceId}`: UIA, except for appservices (spec v1.17).
pub async fn delete(
    services: &Services,
    requester: &Requester,
    device_id: &str,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    authorise_deletion(
        services,
        requester,
        format!("DELETE /devices/{device_id}"),
        body,
        client_ip,
    )
    .await?;
    remove(
        services,
        &requester.user_id,
        vec![device_id.to_owned()],
        "user",
    )
    .await
}

/// `POST /delete_devices`. The body is checked before UIA, so a malformed request gets its 400
/// rather than a password prompt.
pub async fn delete_many(
    services: &Services,
    requester: &Requester,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    let devices = match body.get("devices") {
        None => return Err(missing_param("Missing required field: devices")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_json("devices must be a list of strings"))?,
        Some(_) => return Err(bad_json("devices must be a list of strings")),
    };
    let mut fingerprint = devices.clone();
    fingerprint.sort();
    fingerprint.dedup();
    let fingerprint = format!(
        "POST /delete_devices {}",
        serde_json::to_string(&fingerprint).unwrap_or_default()
    );
    authorise_deletion(services, requester, fingerprint, body, client_ip).await?;
    remove(services, &requester.user_id, devices, "user").await
}

async fn authorise_deletion(
    services: &Services,
    requester: &Requester,
    fingerprint: String,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    uia::confirm_with_password(services, requester, fingerprint, body, client_ip).await
}
