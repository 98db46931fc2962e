//! Dehydrated devices (MSC3814, `/_matrix/client/unstable/org.matrix.msc3814.v1/`): a device
//! a client leaves on the server, with its keys and an encrypted pickle of itself, so that
//! room keys sent while all of a user's clients are offline still have somewhere to go. It is
//! a real device without an access token: its keys are queried and claimed, to-device
//! messages queue for it, and deleting it (here, or as any device) deletes all of that. A user
//! has at most one; a new one replaces the old in the same transaction (DH-01..13 of
//! `behaviours-e2ee.md`).

use myelin_store::{NewLogin, Stream};
use serde_json::{Map, Value, json};

use super::keys::{parse_upload, store_upload};
use crate::{
    Services,
    auth::Requester,
    devices::lifecycle,
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found},
    ids,
};

/// Messages per page of `…/events` (the reference server's default).
const PAGE: u32 = 100;

/// `PUT …/dehydrated_device`: the device, its keys and its data; answers its ID.
pub async fn put(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    let device_id = match body.get("device_id") {
        Some(Value::String(id)) if ids::could_be_device_id(id) => id.clone(),
        _ => return Err(bad_json("device_id must be a device ID")),
    };
    let data = match body.get("device_data") {
        Some(Value::Object(data)) if data.get("algorithm").is_some_and(Value::is_string) => {
            Value::Object(data.clone()).to_string()
        }
        _ => return Err(bad_json("device_data must be an object with an algorithm")),
    };
    if !body.get("device_keys").is_some_and(Value::is_object) {
        return Err(bad_json("device_keys is required"));
    }
    let display_name = match body.get("initial_device_display_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(bad_json("initial_device_display_name must be a string")),
    };
    let upload = parse_upload(requester, &device_id, &body)?;
    let user_id = requester.user_id.clone();
    let id = device_id.clone();
    services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user_id).await?;
            // DH-05: the one before goes first, with everything it owned.
            let old = tx.dehydrated_device_of().await?.map(|(old, _)| old);
            if let Some(old) = &old {
                lifecycle::purge(tx.as_mut(), std::slice::from_ref(old)).await?;
            }
            if !tx
                .existing_devices(std::slice::from_ref(&id))
                .await?
                .is_empty()
            {
                return Err(invalid_param(format!("The device {id} exists already")));
            }
            tx.create_device(&NewLogin {
                device_id: id.clone(),
                display_name,
                token_hash: [0; 32],
                ip: None,
                now_ms: crate::now_ms(),
                expires_ts: None,
                refresh: None,
            })
            .await?;
            store_upload(tx.as_mut(), &id, upload).await?;
            tx.set_dehydrated_device(&id, &data).await?;
            tx.commit().await?;
            if let Some(old) = &old {
                services
                    .tokens
                    .forget_devices(&user_id, std::slice::from_ref(old));
            }
            super::notify_device_change(&services, &user_id).await;
            Ok(())
        })
        .await?;
    Ok(json!({ "device_id": device_id }))
}

/// `GET …/dehydrated_device`: 404 `M_NOT_FOUND` when there is none, which tells clients the
/// server supports them (DH-02).
pub async fn get(services: &Services, requester: &Requester) -> Result<Value> {
    let (device_id, data) = services
        .store
        .dehydrated_device(&requester.user_id)
        .await?
        .ok_or_else(|| not_found("No dehydrated device available"))?;
    let data: Value = serde_json::from_str(&data)
        .map_err(|e| Error::Internal(format!("stored device data: {e}").into()))?;
    Ok(json!({ "device_id": device_id, "device_data": data }))
}

/// `DELETE …/dehydrated_device`: deletes it as any device is deleted (DH-12).
pub async fn delete(services: &Services, requester: &Requester) -> Result<Value> {
    let (device_id, _) = services
        .store
        .dehydrated_device(&requester.user_id)
        .await?
        .ok_or_else(|| not_found("No dehydrated device available"))?;
    crate::devices::remove(
        services,
        &requester.user_id,
        vec![device_id.clone()],
        "dehydrated",
    )
    .await?;
    Ok(json!({ "device_id": device_id }))
}

/// `GET …/dehydrated_device/{deviceId}/events?from=` and its `POST` form with
/// `{"next_batch"}` (DH-09, DH-10): the device's to-device messages after the token, oldest
/// first. Reading deletes nothing (the client deletes the device when it is done). The `GET`
/// form leaves `next_batch` out once nothing remains; the `POST` form always has it.
pub async fn events(
    services: &Services,
    requester: &Requester,
    device_id: &str,
    from: Option<&str>,
    always_next: bool,
) -> Result<Value> {
    let current = services.store.dehydrated_device(&requester.user_id).await?;
    if current.as_ref().is_none_or(|(id, _)| id != device_id) {
        return Err(forbidden("That is not your dehydrated device"));
    }
    let after = match from {
        None | Some("") => 0,
        Some(token) => token
            .parse::<u64>()
            .map_err(|_| invalid_param("Invalid from token"))?,
    };
    let upto = services.store.positions().await?.get(Stream::ToDevice);
    let inbox = services
        .store
        .device_inbox(&requester.user_id, device_id, after, upto, PAGE)
        .await?;
    let events: Vec<Value> = inbox
        .messages
        .iter()
        .map(|m| {
            let content: Value = serde_json::from_str(&m.content).unwrap_or_else(|_| json!({}));
            json!({ "sender": m.sender, "type": m.event_type, "content": content })
        })
        .collect();
    let mut answer = json!({ "events": events });
    match inbox.messages.last() {
        Some(last) => answer["next_batch"] = json!(last.pos.to_string()),
        None if always_next => answer["next_batch"] = json!(after.to_string()),
        None => {}
    }
    Ok(answer)
}
