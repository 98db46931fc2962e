//! Sending events: messages (`room_send.yaml`), state (`room_state.yaml`) and redactions
//! (`redaction.yaml`), each idempotent per device and transaction ID where the API has one.

use ruma_common::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomAliasId};
use ruma_state_res::events::RoomPowerLevelsIntField;
use serde_json::{Map, Value};

use super::{ClientTxn, Planned, append, parse_room_id};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param},
    events::{Draft, canonical_object},
    ids,
};

fn body_object(body: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_json("Content must be a JSON object")),
        Err(_) => Err(Error::NotJson("Content is not JSON".into())),
    }
}

fn sender(requester: &Requester) -> Result<OwnedUserId> {
    OwnedUserId::try_from(requester.user_id.as_str())
        .map_err(|e| Error::Internal(format!("requester: {e}").into()))
}

/// A room that does not exist is one the user is not in (ST-04).
fn not_in_unknown_room(err: Error) -> Error {
    match err {
        Error::NotFound(_) => forbidden("You are not in this room"),
        other => other,
    }
}

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`.
pub async fn send_message(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_type: &str,
    txn_id: &str,
    body: &[u8],
) -> Result<OwnedEventId> {
    let room = parse_room_id(room_id)?;
    ids::check_event_type(event_type)?;
    ids::check_txn_id(txn_id)?;
    let content = body_object(body)?;
    if event_type != "m.room.redaction" {
        requester.refuse_if_suspended()?;
    }
    let txn = ClientTxn::new(
        &requester.user_id,
        requester.device_id.as_deref(),
        format!("PUT /rooms/{room}/send/{event_type}/{txn_id}"),
        txn_id,
    );
    // v1.18: a redaction may be sent like any event; `content.redacts` names the target.
    if event_type == "m.room.redaction" {
        let target = match content.get("redacts") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(bad_json("A redaction needs content.redacts")),
        };
        return redact_with(services, requester, room, &target, txn, content).await;
    }
    // A retry of a request that was stored answers with its event, unchecked.
    if append::earlier_txn_event(services, &txn).await?.is_none() {
        crate::relations::check_new(
            services,
            room.as_str(),
            &requester.user_id,
            event_type,
            &content,
        )
        .await?;
    }
    let draft = Draft {
        kind: event_type.to_owned(),
        state_key: None,
        sender: sender(requester)?,
        content: canonical_object(Value::Object(content))?,
        redacts: None,
    };
    let sent = append(services, &room, Some(txn), move |_head| {
        Ok(Planned::Draft(draft.clone()))
    })
    .await
    .map_err(not_in_unknown_room)?;
    // A message ends its sender's typing, and is a pro-active event for presence.
    crate::typing::stop(services, room.as_str(), &requester.user_id).await;
    crate::presence::active(services, &requester.user_id);
    Ok(sent)
}

/// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn put_state(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    body: &[u8],
) -> Result<OwnedEventId> {
    requester.refuse_if_suspended()?;
    let room = parse_room_id(room_id)?;
    ids::check_event_type(event_type)?;
    ids::check_state_key(state_key)?;
    let content = body_object(body)?;
    match event_type {
        // RM-20: a room is created once.
        "m.room.create" => return Err(bad_json("A room's create event cannot be replaced")),
        "m.room.power_levels" => check_power_levels(&content)?,
        "m.room.member" => {
            if !content.get("membership").is_some_and(Value::is_string) {
                return Err(bad_json("A member event needs a membership"));
            }
            if OwnedUserId::try_from(state_key).is_err() {
                return Err(bad_json("The state key of a member event is a user ID"));
            }
            // Only this server vouches for a restricted join, through /join (MB-22).
            if content.contains_key("join_authorised_via_users_server") {
                return Err(forbidden(
                    "join_authorised_via_users_server is set by the server, through /join",
                ));
            }
            if content.get("membership").and_then(Value::as_str) == Some("invite")
                && crate::account_data::invites_blocked(services, state_key).await?
            {
                return Err(Error::InviteBlocked);
            }
        }
        "m.room.canonical_alias" => check_canonical_alias(services, &room, &content).await?,
        // UP-08: a room cannot be replaced by itself.
        "m.room.tombstone"
            if content.get("replacement_room").and_then(Value::as_str) == Some(room.as_str()) =>
        {
            return Err(bad_json("A tombstone cannot name the room it is sent in"));
        }
        _ => {}
    }
    let draft = Draft {
        kind: event_type.to_owned(),
        state_key: Some(state_key.to_owned()),
        sender: sender(requester)?,
        content: canonical_object(Value::Object(content))?,
        redacts: None,
    };
    append(services, &room, None, move |head| {
        // MB-24: from v12 creators outrank every level and cannot be given one.
        if draft.kind == "m.room.power_levels"
            && head.rules.authorization.explicitly_privilege_room_creators
            && let Some(users) = draft.content.get("users").and_then(|u| u.as_object())
            && head
                .creators()
                .iter()
                .any(|c| users.contains_key(c.as_str()))
        {
            return Err(bad_json(
                "Room creators cannot be given a power level in this room version",
            ));
        }
        // ST-06: the same state again is no new event.
        if let Some(current) = head.get(&draft.kind, state_key_of(&draft))
            && current.sender == draft.sender
            && serde_json::from_str::<Value>(current.content.get()).ok()
                == serde_json::to_value(&draft.content).ok()
        {
            return Ok(Planned::Exists(current.event_id.clone()));
        }
        Ok(Planned::Draft(draft.clone()))
    })
    .await
    .map_err(not_in_unknown_room)
}

fn state_key_of(draft: &Draft) -> &str {
    draft.state_key.as_deref().unwrap_or_default()
}

/// EV-24: from room version 10 power levels are integers; anything else is refused at the
/// API (400), before the rules would refuse it as unauthorised.
fn check_power_levels(content: &Map<String, Value>) -> Result<()> {
    let int = |v: &Value| v.as_i64().is_some() || v.as_u64().is_some();
    for field in [
        "ban",
        "events_default",
        "invite",
        "kick",
        "redact",
        "state_default",
        "users_default",
    ] {
        if let Some(v) = content.get(field)
            && !int(v)
        {
            return Err(bad_json(format!("Power level {field} must be an integer")));
        }
    }
    for map in ["events", "users", "notifications"] {
        match content.get(map) {
            None => {}
            Some(Value::Object(entries)) => {
                if let Some((key, _)) = entries.iter().find(|(_, v)| !int(v)) {
                    return Err(bad_json(format!(
                        "Power level {map}.{key} must be an integer"
                    )));
                }
            }
            Some(_) => return Err(bad_json(format!("Power levels {map} must be an object"))),
        }
    }
    if let Some(Value::Object(users)) = content.get("users")
        && let Some(bad) = users
            .keys()
            .find(|u| OwnedUserId::try_from(u.as_str()).is_err())
    {
        return Err(bad_json(format!("{bad} in users is not a user ID")));
    }
    Ok(())
}

/// ST-08: every alias the event newly names must be a valid alias that points to this room.
async fn check_canonical_alias(
    services: &Services,
    room: &OwnedRoomId,
    content: &Map<String, Value>,
) -> Result<()> {
    let mut named: Vec<&str> = Vec::new();
    match content.get("alias") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) => named.push(a),
        Some(_) => return Err(invalid_param("alias must be a string")),
    }
    match content.get("alt_aliases") {
        None => {}
        Some(Value::Array(list)) => {
            for a in list {
                named.push(
                    a.as_str()
                        .ok_or_else(|| invalid_param("alt_aliases must be strings"))?,
                );
            }
        }
        Some(_) => return Err(invalid_param("alt_aliases must be a list")),
    }
    let current = services
        .store
        .state_at(room.as_str(), None, Some("m.room.canonical_alias"))
        .await?;
    let already: Vec<String> = current
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.json).ok())
        .flat_map(|v| {
            let c = &v["content"];
            let mut all: Vec<String> = c["alias"].as_str().map(str::to_owned).into_iter().collect();
            all.extend(
                c["alt_aliases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned)),
            );
            all
        })
        .collect();
    for alias in named {
        let parsed = <&RoomAliasId>::try_from(alias)
            .map_err(|_| invalid_param(format!("{alias} is not a room alias")))?;
        if already.iter().any(|a| a == alias) {
            continue;
        }
        match services.store.resolve_alias(parsed.as_str()).await? {
            Some(target) if target == room.as_str() => {}
            _ => {
                return Err(Error::BadAlias(
                    format!("{alias} does not point to this room").into(),
                ));
            }
        }
    }
    Ok(())
}

/// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.
pub async fn redact(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_id: &str,
    txn_id: &str,
    body: &[u8],
) -> Result<OwnedEventId> {
    let room = parse_room_id(room_id)?;
    ids::check_txn_id(txn_id)?;
    let content = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        body_object(body)?
    };
    let txn = ClientTxn::new(
        &requester.user_id,
        requester.device_id.as_deref(),
        format!("PUT /rooms/{room}/redact/{event_id}/{txn_id}"),
        txn_id,
    );
    redact_with(services, requester, room, event_id, txn, content).await
}

async fn redact_with(
    services: &Services,
    requester: &Requester,
    room: OwnedRoomId,
    target: &str,
    txn: ClientTxn,
    mut content: Map<String, Value>,
) -> Result<OwnedEventId> {
    ids::check_event_id(target)?;
    let target = OwnedEventId::try_from(target)
        .map_err(|_| invalid_param(format!("{} is not an event ID", target.escape_debug())))?;
    if let Some(reason) = content.get("reason")
        && !reason.is_string()
    {
        return Err(bad_json("reason must be a string"));
    }
    let original = services.store.event(target.as_str()).await?;
    if let Some(original) = &original
        && original.room_id != room.as_str()
    {
        return Err(invalid_param("The event belongs to another room"));
    }
    let original_sender = original.map(|e| e.sender);
    if original_sender.as_deref() != Some(requester.user_id.as_str()) {
        requester.refuse_if_suspended()?;
    }
    let sender = sender(requester)?;
    content.remove("redacts");
    append(services, &room, Some(txn), move |head| {
        // EV-17: one's own events, or anyone's at the redact level.
        let own = original_sender.as_deref() == Some(sender.as_str());
        if !own && head.power(&sender) < head.level(RoomPowerLevelsIntField::Redact) {
            return Err(forbidden("You may not redact other users' events"));
        }
        let mut content = content.clone();
        if head.rules.redaction.keep_room_redaction_redacts {
            content.insert("redacts".into(), Value::String(target.to_string()));
        }
        Ok(Planned::Draft(Draft {
            kind: "m.room.redaction".to_owned(),
            state_key: None,
            sender: sender.clone(),
            content: canonical_object(Value::Object(content))?,
            redacts: Some(target.clone()),
        }))
    })
    .await
    .map_err(not_in_unknown_room)
}
