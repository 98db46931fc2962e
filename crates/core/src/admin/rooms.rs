//! Rooms through the admin API: the list the admin UIs page through, one room's details, its
//! members and its state. Read-only; an admin sees every room whatever their membership.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Paging, require_admin};
use crate::{
    Services,
    auth::Requester,
    error::{Result, invalid_param, not_found},
    ids,
    rooms::read::{admin_access, serve_all},
};
use myelin_store::StoredEvent;

const UNKNOWN_ROOM: &str = "Room not found";

/// One room as the list shows it, with what its details add.
struct Room {
    summary: Value,
    details: Value,
}

/// A state event's content, by (type, state key).
fn contents(state: &[StoredEvent]) -> HashMap<(String, String), Value> {
    state
        .iter()
        .filter_map(|e| {
            let pdu: Value = serde_json::from_str(&e.json).ok()?;
            let key = e.state_key.clone().unwrap_or_default();
            let content = if e.redacted_by.is_some() {
                json!({})
            } else {
                pdu.get("content").cloned().unwrap_or_else(|| json!({}))
            };
            Some(((e.event_type.clone(), key), content))
        })
        .collect()
}

async fn room(services: &Services, room_id: &str) -> Result<Option<Room>> {
    let Some(info) = services.store.room(room_id).await? else {
        return Ok(None);
    };
    let state = services.store.state_at(room_id, None, None).await?;
    let content = contents(&state);
    let field = |kind: &str, name: &str| {
        content
            .get(&(kind.to_owned(), String::new()))
            .and_then(|c| c.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let joined = services.store.members_with(room_id, &["join"]).await?;
    let suffix = format!(":{}", services.config.server_name);
    let local = joined.iter().filter(|m| m.ends_with(&suffix)).count();
    let summary = json!({
        "room_id": room_id,
        "name": field("m.room.name", "name"),
        "canonical_alias": field("m.room.canonical_alias", "alias"),
        "joined_members": joined.len(),
        "joined_local_members": local,
        "version": info.version,
        "creator": info.creator,
        "encryption": field("m.room.encryption", "algorithm"),
        "federatable": field("m.room.create", "m.federate").as_bool().unwrap_or(true),
        "public": info.published,
        "join_rules": field("m.room.join_rules", "join_rule"),
        "guest_access": field("m.room.guest_access", "guest_access"),
        "history_visibility": field("m.room.history_visibility", "history_visibility"),
        "state_events": state.len(),
        "room_type": field("m.room.create", "type"),
    });
    let tombstone = field("m.room.tombstone", "replacement_room");
    let details = json!({
        "avatar": field("m.room.avatar", "url"),
        "topic": field("m.room.topic", "topic"),
        "forgotten": false,
        "tombstoned": !tombstone.is_null(),
        "replacement_room": tombstone,
    });
    Ok(Some(Room { summary, details }))
}

/// `GET /_synapse/admin/v1/rooms` (`from`, `limit`, `order_by`, `dir`, `search_term`),
/// answering `total_rooms` rather than `total`, as the reference server does.
pub async fn list_rooms(
    services: &Services,
    requester: &Requester,
    params: &HashMap<String, String>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let paging = Paging::parse(params)?;
    let order_by = params.get("order_by").map_or("name", String::as_str);
    // `size` is the reference server's older name for `state_events`.
    let order_by = if order_by == "size" {
        "state_events"
    } else {
        order_by
    };
    const ORDERS: &[&str] = &[
        "name",
        "canonical_alias",
        "joined_members",
        "joined_local_members",
        "version",
        "creator",
        "encryption",
        "federatable",
        "public",
        "join_rules",
        "guest_access",
        "history_visibility",
        "state_events",
    ];
    if !ORDERS.contains(&order_by) {
        return Err(invalid_param("Unknown value for order_by"));
    }
    let search = params.get("search_term").map(|s| s.to_lowercase());
    let mut rooms = Vec::new();
    for room_id in services.store.room_ids().await? {
        if let Some(room) = room(services, &room_id).await? {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_lowercase();
            let s = &room.summary;
            let found = search.as_ref().is_none_or(|term| {
                text(&s["name"]).contains(term)
                    || text(&s["canonical_alias"]).contains(term)
                    || room_id.to_lowercase().contains(term)
            });
            if found {
                rooms.push(room.summary);
            }
        }
    }
    // Numbers compare as numbers, the rest as text; ties fall back to the room ID.
    let key = |v: &Value| match &v[order_by] {
        Value::Number(n) => (n.as_f64().unwrap_or_default(), String::new()),
        Value::Bool(b) => (f64::from(u8::from(*b)), String::new()),
        other => (0.0, other.as_str().unwrap_or_default().to_lowercase()),
    };
    rooms.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0)
            .then_with(|| ka.1.cmp(&kb.1))
            .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
    });
    let (page, total, next) = paging.page(rooms);
    let from = paging.from;
    let mut out = json!({ "rooms": page, "offset": from, "total_rooms": total });
    if let Some(next) = next {
        out["next_batch"] = json!(next);
    }
    if from > 0 {
        out["prev_batch"] = json!(from.saturating_sub(paging.limit));
    }
    Ok(out)
}

fn checked_room(room_id: &str) -> Result<&str> {
    if ids::is_valid_room_id(room_id) {
        Ok(room_id)
    } else {
        Err(invalid_param(format!("{room_id} is not a room ID")))
    }
}

/// The target of a room view: asked by an admin, a valid room ID, a room this server knows.
async fn existing_room<'a>(
    services: &Services,
    requester: &Requester,
    room_id: &'a str,
) -> Result<&'a str> {
    require_admin(services, requester).await?;
    let room_id = checked_room(room_id)?;
    match services.store.room(room_id).await? {
        Some(_) => Ok(room_id),
        None => Err(not_found(UNKNOWN_ROOM)),
    }
}

/// `GET /_synapse/admin/v1/rooms/{roomId}`.
pub async fn room_details(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let room_id = checked_room(room_id)?;
    let room = room(services, room_id)
        .await?
        .ok_or_else(|| not_found(UNKNOWN_ROOM))?;
    let mut out = room.summary;
    if let (Some(out), Value::Object(details)) = (out.as_object_mut(), room.details) {
        out.extend(details);
    }
    Ok(out)
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/members`: the joined members.
pub async fn room_members(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Value> {
    let room_id = existing_room(services, requester, room_id).await?;
    let members = services.store.members_with(room_id, &["join"]).await?;
    Ok(json!({ "total": members.len(), "members": members }))
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/state`: the current state as clients see events.
pub async fn room_state(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Value> {
    let room_id = existing_room(services, requester, room_id).await?;
    let access = admin_access(services, room_id, &requester.user_id).await?;
    let state = services.store.state_at(room_id, None, None).await?;
    let refs: Vec<&StoredEvent> = state.iter().collect();
    let served = serve_all(services, requester, &access, &refs, true).await?;
    Ok(json!({ "state": served }))
}

/// Events read per step when scanning a room for media.
const SCAN_BATCH: usize = 500;

/// Every `mxc://` URI in a JSON value (message `url`, `info.thumbnail_url`, avatars...).
fn media_uris(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(s) if s.starts_with("mxc://") => found.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| media_uris(v, found)),
        Value::Object(map) => map.values().for_each(|v| media_uris(v, found)),
        _ => {}
    }
}

/// `GET /_synapse/admin/v1/room/{roomId}/media`: the media the room's events refer to, this
/// server's apart from other servers'. Reads the whole room, a batch at a time.
pub async fn room_media(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Value> {
    let room_id = existing_room(services, requester, room_id).await?;
    let upto = services
        .store
        .positions()
        .await?
        .get(myelin_store::Stream::RoomEvents);
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let batch = services
            .store
            .room_events(room_id, after, upto, SCAN_BATCH, false)
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.pos);
        for event in batch.iter().filter(|e| e.redacted_by.is_none()) {
            if let Ok(pdu) = serde_json::from_str::<Value>(&event.json) {
                media_uris(&pdu["content"], &mut found);
            }
        }
        if batch.len() < SCAN_BATCH {
            break;
        }
    }
    found.sort();
    found.dedup();
    let prefix = format!("mxc://{}/", services.config.server_name);
    let (local, remote): (Vec<String>, Vec<String>) =
        found.into_iter().partition(|uri| uri.starts_with(&prefix));
    Ok(json!({ "total": local.len() + remote.len(), "local": local, "remote": remote }))
}
