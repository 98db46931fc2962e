//! Each joined room's `ephemeral` section: `m.receipt` (RC-*) and `m.typing` (TY-*), one
//! event of each per room, without a `room_id` (RC-04, TY-03).
//!
//! Receipts are deltas since the token (RC-06), all of them for a room joined in the window
//! or on an initial sync; typing is the room's whole current list whenever it changed, an
//! empty list included (TY-02), and the current typers on an initial sync (TY-04).

use std::collections::BTreeMap;

use myelin_store::{Receipt, Stream};
use serde_json::{Map, Value, json, value::RawValue};

use super::{
    filter::Filter,
    response::{Event, SyncResponse},
    rooms::RoomSets,
    token::SyncToken,
};
use crate::{Services, auth::Requester, error::Error, error::Result};

pub(super) async fn fill(
    services: &Services,
    requester: &Requester,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
    rooms: &RoomSets,
    response: &mut SyncResponse,
) -> Result<()> {
    let room_filter = filter.room.clone().unwrap_or_default();
    let ephemeral = room_filter.ephemeral.clone().unwrap_or_default();
    let joined: Vec<String> = rooms
        .joined
        .iter()
        .filter(|r| room_filter.allows_room(r) && ephemeral.allows_room(r))
        .cloned()
        .collect();
    if joined.is_empty() {
        return Ok(());
    }
    let (fresh, known): (Vec<String>, Vec<String>) = match from {
        None => (joined, Vec::new()),
        Some(_) => joined
            .into_iter()
            .partition(|r| rooms.newly_joined.contains(r)),
    };
    let moved = |stream: Stream| from.is_none_or(|f| upto.get(stream) > f.get(stream));
    let user = requester.user_id.as_str();
    let mut events: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    if ephemeral.allows_type("m.receipt") {
        let upto_pos = upto.get(Stream::Receipts);
        let mut receipts = Vec::new();
        if !fresh.is_empty() {
            receipts.extend(
                services
                    .store
                    .receipts(fresh.clone(), user, None, upto_pos)
                    .await?,
            );
        }
        if !known.is_empty() && moved(Stream::Receipts) {
            let after = from.map(|f| f.get(Stream::Receipts));
            receipts.extend(
                services
                    .store
                    .receipts(known.clone(), user, after, upto_pos)
                    .await?,
            );
        }
        // IG-10: nothing of ignored users, receipts and typing included.
        receipts.retain(|r| !filter.ignored.contains(&r.user_id));
        for (room, content) in receipt_contents(receipts) {
            events
                .entry(room)
                .or_default()
                .push(event("m.receipt", content)?);
        }
    }
    if ephemeral.allows_type("m.typing") {
        let upto_pos = upto.get(Stream::Typing);
        let now = crate::now_ms();
        let mut lists = Vec::new();
        if !fresh.is_empty() {
            lists.extend(services.store.typing(fresh, None, upto_pos, now).await?);
        }
        if !known.is_empty() && moved(Stream::Typing) {
            let after = from.map(|f| f.get(Stream::Typing));
            lists.extend(services.store.typing(known, after, upto_pos, now).await?);
        }
        for (room, mut users) in lists {
            users.retain(|u| !filter.ignored.contains(u));
            events
                .entry(room)
                .or_default()
                .push(event("m.typing", json!({ "user_ids": users }))?);
        }
    }
    for (room_id, room_events) in events {
        let room = response.rooms.join.entry(room_id).or_default();
        if room.timeline.prev_batch.is_empty() {
            room.timeline.prev_batch = super::room_token_at(&upto);
        }
        room.ephemeral.events.extend(room_events);
    }
    Ok(())
}

fn event(kind: &str, content: Value) -> Result<Event> {
    Ok(Event {
        event_type: kind.to_owned(),
        content: RawValue::from_string(content.to_string())
            .map_err(|e| Error::Internal(format!("ephemeral event: {e}").into()))?,
    })
}

/// One `m.receipt` content per room: `{event: {type: {user: {ts, thread_id?}}}}`. For the same
/// event, type and user, an unthreaded receipt wins over a threaded one (RC-14, MSC4102).
fn receipt_contents(receipts: Vec<Receipt>) -> BTreeMap<String, Value> {
    let mut rooms: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for receipt in receipts {
        let by_event = rooms.entry(receipt.room_id).or_default();
        let by_type = by_event
            .entry(receipt.event_id)
            .or_insert_with(|| json!({}));
        let Some(by_user) = by_type
            .as_object_mut()
            .map(|t| t.entry(receipt.receipt_type).or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut data = json!({ "ts": receipt.ts });
        if let Some(thread) = receipt.thread_id {
            if by_user.contains_key(&receipt.user_id) {
                continue;
            }
            data["thread_id"] = json!(thread);
        }
        by_user.insert(receipt.user_id, data);
    }
    rooms
        .into_iter()
        .map(|(room, content)| (room, Value::Object(content)))
        .collect()
}
