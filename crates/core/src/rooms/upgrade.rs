//! `POST /rooms/{roomId}/upgrade` (`room_upgrades.yaml`, UP-01..10): a new room of the asked
//! version made like `createRoom` with the old room's transferable state, the aliases moved
//! to it in the same transaction, then a tombstone and restricted power levels in the old
//! room.

use ruma_common::OwnedUserId;
use serde_json::{Map, Value, json};

use super::{
    CREATOR_POWER, Head,
    create::{Extras, create_with},
    parse_room_id,
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, not_found},
    events::version_rules,
};

/// State the new room gets from the old one (the spec's list; memberships and state that
/// depends on its sender are not copied).
const COPIED: &[&str] = &[
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
];

/// The level the upgrader needs while the new room is set up (before versions with
/// privileged creators): every level the power levels name, and at least 100.
fn setup_power(levels: &Map<String, Value>) -> i64 {
    let own = levels
        .iter()
        .filter(|(key, _)| key.as_str() != "users" && key.as_str() != "notifications")
        .flat_map(|(_, value)| match value {
            Value::Object(events) => events.values().filter_map(Value::as_i64).collect(),
            other => other.as_i64().into_iter().collect::<Vec<_>>(),
        })
        .max()
        .unwrap_or(0);
    own.max(100)
}

fn content(head: &Head, kind: &str) -> Option<Map<String, Value>> {
    match head.get(kind, "")?.content_value() {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn parse_users(list: Option<&Value>) -> Result<Vec<OwnedUserId>> {
    match list {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(|s| OwnedUserId::try_from(s).ok())
                    .ok_or_else(|| bad_json("additional_creators must be a list of user IDs"))
            })
            .collect(),
        Some(_) => Err(bad_json("additional_creators must be a list of user IDs")),
    }
}

/// The upgrade: the replacement room's ID.
pub async fn upgrade(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<String> {
    requester.refuse_if_suspended()?;
    let room = parse_room_id(room_id)?;
    let body: Value =
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?;
    let new_version = body
        .get("new_version")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_json("new_version is required"))?
        .to_owned();
    let (_, new_rules) = version_rules(&new_version).ok_or_else(|| {
        Error::UnsupportedRoomVersion(
            format!("This server does not support room version {new_version}").into(),
        )
    })?;
    let additional = parse_users(body.get("additional_creators"))?;
    let snapshot = services
        .store
        .room_snapshot(room.as_str())
        .await?
        .ok_or_else(|| not_found("Unknown room"))?;
    let published = snapshot.info.published;
    let old = Head::from_snapshot(snapshot)?;
    let upgrader = OwnedUserId::try_from(requester.user_id.as_str())
        .map_err(|e| Error::Internal(format!("requester: {e}").into()))?;
    if old.membership(upgrader.as_str()) != Some("join")
        || old.power(&upgrader) < old.level_for_event("m.room.tombstone", true)
    {
        return Err(forbidden("You may not upgrade this room"));
    }

    // The create event: predecessor, the old type and federation flag, the new creators.
    let old_create = content(&old, "m.room.create").unwrap_or_default();
    let mut creation = Map::new();
    let mut predecessor = json!({ "room_id": room });
    if !new_rules.authorization.room_create_event_id_as_room_id
        && let Some(last) = old.extremities.first()
    {
        predecessor["event_id"] = json!(last);
    }
    creation.insert("predecessor".into(), predecessor);
    for key in ["type", "m.federate"] {
        if let Some(value) = old_create.get(key) {
            creation.insert(key.into(), value.clone());
        }
    }
    let privileged = new_rules.authorization.explicitly_privilege_room_creators;
    if privileged && !additional.is_empty() {
        creation.insert("additional_creators".into(), json!(additional));
    }

    // Power levels as they were (UP-03, UP-04): from v12 creators hold none; before it the
    // upgrader is lifted while the state is copied, then put back.
    let mut levels = content(&old, "m.room.power_levels").unwrap_or_default();
    let old_power = old.power(&upgrader);
    let mut users = levels
        .get("users")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut restore = None;
    if privileged {
        users.remove(upgrader.as_str());
        for creator in &additional {
            users.remove(creator.as_str());
        }
        levels.insert("users".into(), json!(users));
    } else {
        // An old creator's power has no number; 100 stands for it.
        let kept = if old_power == CREATOR_POWER {
            100
        } else {
            old_power
        };
        users.insert(upgrader.to_string(), json!(kept));
        levels.insert("users".into(), json!(users.clone()));
        let needed = setup_power(&levels);
        if kept < needed {
            restore = Some(levels.clone());
            users.insert(upgrader.to_string(), json!(needed));
            levels.insert("users".into(), json!(users));
        }
    }
    let mut initial_state = vec![json!({
        "type": "m.room.power_levels", "state_key": "", "content": levels,
    })];
    for kind in COPIED {
        if let Some(content) = content(&old, kind) {
            initial_state.push(json!({ "type": kind, "state_key": "", "content": content }));
        }
    }
    // Bans carry over (UP-03), then the levels are put back, then the canonical alias,
    // which names aliases that move with the room.
    let mut banned: Vec<&String> = old
        .state
        .iter()
        .filter(|((kind, _), pdu)| {
            kind == "m.room.member" && pdu.content_str("membership").as_deref() == Some("ban")
        })
        .map(|((_, user), _)| user)
        .collect();
    banned.sort();
    let mut then = Vec::new();
    for user in banned {
        then.push((
            "m.room.member".to_owned(),
            user.clone(),
            json!({ "membership": "ban" }),
        ));
    }
    if let Some(levels) = restore {
        then.push((
            "m.room.power_levels".to_owned(),
            String::new(),
            Value::Object(levels),
        ));
    }
    let old_alias = content(&old, "m.room.canonical_alias").filter(|c| !c.is_empty());
    if let Some(alias) = &old_alias {
        then.push((
            "m.room.canonical_alias".to_owned(),
            String::new(),
            Value::Object(alias.clone()),
        ));
    }
    let create_body = json!({
        "room_version": new_version,
        "creation_content": creation,
        "initial_state": initial_state,
    });
    let new_room = create_with(
        services,
        requester,
        create_body,
        Extras {
            no_preset_state: true,
            then,
            aliases_from: Some(room.to_string()),
            published: Some(published),
        },
    )
    .await?;

    super::successor::carry_over(services, requester, room.as_str(), &new_room).await;

    // The old room: unlisted, tombstoned, closed to new events and invites (UP-05), its
    // canonical alias gone with the aliases.
    services.store.set_published(room.as_str(), false).await?;
    services.directory_counts.clear();
    let tombstone = json!({ "body": "This room has been replaced", "replacement_room": new_room });
    super::send::put_state(
        services,
        requester,
        room.as_str(),
        "m.room.tombstone",
        "",
        tombstone.to_string().as_bytes(),
    )
    .await?;
    if let Some(mut restricted) = content(&old, "m.room.power_levels") {
        let users_default = restricted
            .get("users_default")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let closed = (users_default + 1).max(50);
        restricted.insert("events_default".into(), json!(closed));
        restricted.insert("invite".into(), json!(closed));
        best_effort(
            services,
            requester,
            room.as_str(),
            "m.room.power_levels",
            Value::Object(restricted),
        )
        .await;
    }
    if old_alias.is_some() {
        best_effort(
            services,
            requester,
            room.as_str(),
            "m.room.canonical_alias",
            json!({}),
        )
        .await;
    }
    Ok(new_room)
}

/// Sends state the upgrade would like in the old room; the upgrader may lack the power.
async fn best_effort(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    kind: &str,
    content: Value,
) {
    let sent = super::send::put_state(
        services,
        requester,
        room_id,
        kind,
        "",
        content.to_string().as_bytes(),
    )
    .await;
    if let Err(err) = sent {
        tracing::info!(error = %err, kind, "the old room of an upgrade kept its state");
    }
}
