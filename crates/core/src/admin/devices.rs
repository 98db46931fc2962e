//! A user's devices through the admin API. No UIA: the admin's token is the authority. Every
//! deletion is [`crate::devices::remove`], the one path a device ever disappears through.

use serde_json::{Map, Value, json};

use super::{existing_user, optional_string, require_admin};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, missing_param, not_found},
    ids,
};
use myelin_store::{Device, DeviceKeyState, DeviceUpsert};

const UNKNOWN_USER: &str = "Unknown user";

/// What the operator sees of the user's devices' keys: which device is the dehydrated one,
/// and what each holds.
struct KeyView {
    dehydrated: Option<String>,
    states: Vec<DeviceKeyState>,
}

impl KeyView {
    async fn of(services: &Services, user_id: &str) -> Result<Self> {
        Ok(Self {
            dehydrated: services
                .store
                .dehydrated_device(user_id)
                .await?
                .map(|(id, _)| id),
            states: services.store.key_states(user_id).await?,
        })
    }
}

/// The reference server's device shape, with `e2ee` added (Myelin's: what the device holds
/// for end-to-end encryption; tools that do not know it ignore it).
fn to_json(user_id: &str, d: &Device, keys: &KeyView) -> Value {
    let mut out = json!({
        "device_id": d.device_id,
        "last_seen_ip": d.last_seen_ip,
        "last_seen_ts": d.last_seen_ts,
        "last_seen_user_agent": d.last_seen_user_agent,
        "user_id": user_id,
        "dehydrated": keys.dehydrated.as_deref() == Some(d.device_id.as_str()),
    });
    if let Some(name) = &d.display_name {
        out["display_name"] = json!(name);
    }
    if let Some(state) = keys.states.iter().find(|s| s.device_id == d.device_id) {
        out["e2ee"] = json!({
            "device_keys": state.has_device_keys,
            "one_time_keys": state.counts.one_time,
            "unused_fallback_key_types": state.counts.unused_fallback,
        });
    }
    out
}

async fn target(services: &Services, requester: &Requester, user_id: &str) -> Result<String> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, UNKNOWN_USER).await?;
    // What clients see at once, the admin sees too.
    crate::devices::flush_last_seen(services).await;
    Ok(user_id)
}

/// `GET /_synapse/admin/v2/users/{userId}/devices`.
pub async fn devices(services: &Services, requester: &Requester, user_id: &str) -> Result<Value> {
    let user_id = target(services, requester, user_id).await?;
    let devices = services.store.list_devices(&user_id).await?;
    let keys = KeyView::of(services, &user_id).await?;
    let list: Vec<Value> = devices
        .iter()
        .map(|d| to_json(&user_id, d, &keys))
        .collect();
    Ok(json!({ "total": list.len(), "devices": list }))
}

/// `GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}`.
pub async fn device(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    device_id: &str,
) -> Result<Value> {
    let user_id = target(services, requester, user_id).await?;
    if !ids::could_be_device_id(device_id) {
        return Err(not_found("No device found"));
    }
    let device = services.store.get_device(&user_id, device_id).await?;
    let device = device.ok_or_else(|| not_found("No device found"))?;
    let keys = KeyView::of(services, &user_id).await?;
    Ok(to_json(&user_id, &device, &keys))
}

/// `POST /_synapse/admin/v2/users/{userId}/devices` (`{"device_id"}`): creates the device if
/// it does not exist; it has no token until its owner logs in with it.
pub async fn create_device(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    let user_id = target(services, requester, user_id).await?;
    let device_id =
        optional_string(&body, "device_id")?.ok_or_else(|| missing_param("Missing device_id"))?;
    ids::check_device_id(device_id)?;
    services
        .store
        .upsert_device(&user_id, device_id, None, true, crate::now_ms())
        .await?;
    crate::e2ee::notify_device_change(services, &user_id).await;
    Ok(())
}

/// `PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}` (`{"display_name"}`).
pub async fn rename_device(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    device_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    let user_id = target(services, requester, user_id).await?;
    let name = optional_string(&body, "display_name")?;
    crate::devices::check_display_name(services, name, "display_name")?;
    let Some(name) = name else {
        return Ok(());
    };
    if !ids::could_be_device_id(device_id) {
        return Err(not_found("No device found"));
    }
    match services
        .store
        .upsert_device(
            &user_id,
            device_id,
            Some(name.to_owned()),
            false,
            crate::now_ms(),
        )
        .await?
    {
        DeviceUpsert::NotFound => Err(not_found("No device found")),
        DeviceUpsert::Updated | DeviceUpsert::Created => {
            crate::e2ee::notify_device_change(services, &user_id).await;
            Ok(())
        }
    }
}

/// `DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}`: a device that does not
/// exist is already deleted.
pub async fn delete_device(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    device_id: &str,
) -> Result<()> {
    let user_id = target(services, requester, user_id).await?;
    crate::devices::remove(services, &user_id, vec![device_id.to_owned()], "admin").await?;
    tracing::info!(%user_id, %device_id, by = %requester.user_id, "admin deleted device");
    Ok(())
}

/// `POST /_synapse/admin/v2/users/{userId}/delete_devices` (`{"devices": [...]}`).
pub async fn delete_devices(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    let user_id = target(services, requester, user_id).await?;
    let devices = match body.get("devices") {
        None | Some(Value::Null) => return Err(missing_param("Missing required field: devices")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_json("devices must be a list of strings"))?,
        Some(_) => return Err(Error::BadJson("devices must be a list of strings".into())),
    };
    let count = devices.len();
    crate::devices::remove(services, &user_id, devices, "admin").await?;
    tracing::info!(%user_id, count, by = %requester.user_id, "admin deleted devices");
    Ok(())
}
