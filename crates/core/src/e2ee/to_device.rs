//! `PUT /sendToDevice/{eventType}/{txnId}`: messages to devices, delivered by `/sync`.
//!
//! A send is stored for all its recipients at one position with its transaction ID, in one
//! transaction (TD-16); delivery and acknowledgement are in `sync::to_device`. One live sync
//! per device is assumed, as the spec does: two clients sharing a device race to
//! acknowledge, and one of them misses messages (TD-18).

use serde_json::{Map, Value};

use myelin_store::ToDeviceSend;

use crate::{
    Services,
    auth::Requester,
    error::{Result, bad_json, missing_param, too_large},
    ids,
};

/// Messages a sync delivers at most (the spec's recommendation, TD-07).
pub const MAX_PER_SYNC: u32 = 100;

/// Messages kept per device: an offline device's oldest are dropped beyond this, so a device
/// nobody uses cannot grow without bound.
pub const MAX_PENDING: u64 = 10_000;

/// The largest content of one message (TD-15, as the reference server).
const MAX_CONTENT_BYTES: usize = 65_536;

pub async fn send(
    services: &Services,
    requester: &Requester,
    event_type: &str,
    txn_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    ids::check_event_type(event_type)?;
    ids::check_txn_id(txn_id)?;
    let messages = match body.get("messages") {
        Some(Value::Object(messages)) => messages,
        None => return Err(missing_param("Missing required field: messages")),
        Some(_) => return Err(bad_json("messages must be an object")),
    };
    let mut resolved = Vec::new();
    for (user_id, devices) in messages {
        let Value::Object(devices) = devices else {
            return Err(bad_json("messages must map user IDs to objects of devices"));
        };
        for content in devices.values() {
            if !content.is_object() {
                return Err(bad_json("each message's content must be an object"));
            }
            if content.to_string().len() > MAX_CONTENT_BYTES {
                return Err(too_large(format!(
                    "a to-device message is limited to {MAX_CONTENT_BYTES} bytes"
                )));
            }
        }
        // TD-12: invalid IDs are skipped; remote users cannot be reached without federation.
        let local = ids::parse_user_id(user_id)
            .is_some_and(|u| u.server_name().as_str() == services.config.server_name);
        if !local {
            continue;
        }
        // TD-10: `*` means every device; naming devices besides it reaches each once.
        if let Some(content) = devices.get("*") {
            resolved.push((user_id.clone(), None, content.to_string()));
            continue;
        }
        for (device_id, content) in devices {
            resolved.push((
                user_id.clone(),
                Some(device_id.clone()),
                content.to_string(),
            ));
        }
    }
    let send = ToDeviceSend {
        sender: requester.user_id.clone(),
        sender_device: requester.device_id.clone().unwrap_or_default(),
        scope: format!("PUT /sendToDevice/{event_type}/{txn_id}"),
        event_type: event_type.to_owned(),
        messages: resolved,
        max_pending: MAX_PENDING,
        now_ms: crate::now_ms(),
    };
    services
        .detached(move |services| async move {
            // `None`: the transaction ID was used already, and that send was delivered.
            if let Some(reached) = services.store.send_to_device(send).await? {
                services.notifier.wake_many(&reached);
            }
            Ok(())
        })
        .await
}
