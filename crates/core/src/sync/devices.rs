//! The device's own sections of `/sync`: `to_device`, `device_lists` and its key counts.
//!
//! To-device messages follow the stream rules with one addition (TD-05, TD-06): a message is
//! deleted only once the device syncs with a token past it, so a response that never arrived
//! loses nothing. At most [`MAX_PER_SYNC`] go out at once; the token then stops at the last
//! one sent, and the next sync returns the rest at once (TD-07). Key counts are read when the
//! response is built, never when a long-poll began (DL-17).

use myelin_store::Stream;
use serde_json::value::RawValue;

use super::{
    SyncResponse,
    response::{DeviceLists, ToDeviceEvent},
    token::SyncToken,
};
use crate::{
    Services,
    auth::Requester,
    e2ee::{MAX_PER_SYNC, counts_json},
    error::Result,
};

/// Fills the device's sections and returns the token the response must carry (earlier than
/// `upto` for to-device messages when more were waiting than one response takes).
pub(super) async fn fill(
    services: &Services,
    requester: &Requester,
    from: Option<SyncToken>,
    upto: SyncToken,
    response: &mut SyncResponse,
) -> Result<SyncToken> {
    let mut next = upto;
    if let Some(device_id) = requester.device_id.as_deref() {
        let after = from.map_or(0, |f| f.get(Stream::ToDevice));
        let inbox = services
            .store
            .device_inbox(
                &requester.user_id,
                device_id,
                after,
                upto.get(Stream::ToDevice),
                MAX_PER_SYNC,
            )
            .await?;
        if inbox.messages.len() as u32 >= MAX_PER_SYNC
            && let Some(last) = inbox.messages.last()
        {
            next.set(Stream::ToDevice, last.pos);
        }
        if inbox.acknowledged_left && from.is_some() {
            acknowledge(services, &requester.user_id, device_id, after);
        }
        for message in inbox.messages {
            let Ok(content) = RawValue::from_string(message.content) else {
                continue;
            };
            response.to_device.events.push(ToDeviceEvent {
                sender: message.sender,
                event_type: message.event_type,
                content,
            });
        }
        set_counts(response, &inbox.counts);
    }
    // DL-11: device lists only say what changed since a token.
    if let Some(from) = from {
        // Room events change device lists only through memberships; most windows (a
        // long-poll woken by a message) have none and skip the delta's joins.
        let (after, end) = (from.get(Stream::RoomEvents), upto.get(Stream::RoomEvents));
        let moved = upto.get(Stream::DeviceLists) > from.get(Stream::DeviceLists)
            || (end > after && services.store.member_events_between(after, end).await?);
        if moved {
            let delta = services
                .store
                .device_list_delta(&requester.user_id, from.positions(), upto.positions())
                .await?;
            response.device_lists = DeviceLists {
                changed: delta.changed,
                left: delta.left,
            };
        }
    }
    Ok(next)
}

/// The counts alone, for a response with nothing else to say: no stream moved since `from`,
/// so no message is new, but those it acknowledges may still be stored.
pub(super) async fn fill_counts(
    services: &Services,
    requester: &Requester,
    from: Option<SyncToken>,
    response: &mut SyncResponse,
) -> Result<()> {
    let Some(device_id) = requester.device_id.as_deref() else {
        return Ok(());
    };
    let after = from.map_or(0, |f| f.get(Stream::ToDevice));
    let inbox = services
        .store
        .device_inbox(&requester.user_id, device_id, after, after, 0)
        .await?;
    if inbox.acknowledged_left {
        acknowledge(services, &requester.user_id, device_id, after);
    }
    set_counts(response, &inbox.counts);
    Ok(())
}

fn set_counts(response: &mut SyncResponse, counts: &myelin_store::KeyCounts) {
    response.device_one_time_keys_count = Some(counts_json(&counts.one_time));
    response.device_unused_fallback_key_types = Some(counts.unused_fallback.clone());
}

/// Deletes what the device acknowledged, off the response's path: until it is done the
/// window's lower bound already keeps those messages from being sent again.
fn acknowledge(services: &Services, user_id: &str, device_id: &str, upto: u64) {
    let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
    let Some(services) = services.me.upgrade() else {
        return;
    };
    tokio::spawn(async move {
        if let Err(err) = services
            .store
            .acknowledge_to_device(&user_id, &device_id, upto)
            .await
        {
            tracing::warn!(error = %err, "deleting acknowledged to-device messages failed");
        }
    });
}
