//! `POST /rooms/{roomId}/upgrade` (`room_upgrades.yaml`, UP-01..10): a new room of the asked
//! version made like `createRoom` with the old room's transferable state, and in the old room
//! a tombstone, power levels closed to new events and invites, and no canonical alias. It is
//! one use case and one transaction: the new room's events, the aliases and directory
//! listing moving to it, and the old room's events are one chained append, written under
//! the old room's write turn, so no crash leaves a successor without its tombstone.

use std::sync::Arc;

use myelin_store::{Append, CONFLICT_EXTREMITIES, CONFLICT_ROOM_EXISTS, NewEvent, StoreError};
use ruma_common::room_version_rules::RoomVersionRules;
use ruma_common::{OwnedUserId, RoomId};
use serde_json::{Map, Value, json};

use super::{
    CREATOR_POWER, Head,
    append::{MAX_ATTEMPTS, Turn, loaded_head, new_event, take_turn},
    create::{self, Extras, Prepared},
    parse_room_id,
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden},
    events::{self, Draft, version_rules},
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

/// The tombstone's level in a new room whose creators outrank every level (RM-05: above
/// the room's administrators, so that only creators upgrade by default).
const PRIVILEGED_TOMBSTONE: i64 = 150;

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
    let upgrader = OwnedUserId::try_from(requester.user_id.as_str())
        .map_err(|e| Error::Internal(format!("requester: {e}").into()))?;
    let target = Target {
        version: new_version,
        rules: new_rules,
        additional,
    };
    let who = requester.clone();
    let old = room.clone();
    let new_room = services
        .detached(move |services| async move {
            let slot = services.rooms.slot(old.as_str());
            for attempt in 0..MAX_ATTEMPTS {
                let mut turn = take_turn(&services, &slot, old.as_str()).await?;
                let tried = try_upgrade(
                    &services,
                    &who,
                    &upgrader,
                    &old,
                    &target,
                    &mut turn,
                    attempt as i64,
                )
                .await;
                if tried.as_ref().map_or(true, Option::is_none) {
                    // Events may have been built on the head and not written.
                    *turn.guard = None;
                }
                if let Some(lock) = turn.lock.take() {
                    lock.release().await;
                }
                if let Some(new_room) = tried? {
                    return Ok(new_room);
                }
            }
            Err(Error::Internal(
                "the room kept changing while it was upgraded".into(),
            ))
        })
        .await?;
    super::successor::carry_over(services, requester, room.as_str(), &new_room).await;
    Ok(new_room)
}

/// The version asked for and its creators.
struct Target {
    version: String,
    rules: RoomVersionRules,
    additional: Vec<OwnedUserId>,
}

/// One attempt under the old room's turn: `None` when the room moved meanwhile (or the new
/// room's ID was taken) and the upgrade is built again.
async fn try_upgrade(
    services: &Services,
    requester: &Requester,
    upgrader: &OwnedUserId,
    room: &RoomId,
    target: &Target,
    turn: &mut Turn<'_>,
    attempt: i64,
) -> Result<Option<String>> {
    let published = services
        .store
        .room(room.as_str())
        .await?
        .is_some_and(|info| info.published);
    let locked = turn.lock.is_some();
    let old = loaded_head(services, room, &mut turn.guard, locked).await?;
    if old.membership(upgrader.as_str()) != Some("join")
        || old.power(upgrader) < old.level_for_event("m.room.tombstone", true)
    {
        return Err(forbidden("You may not upgrade this room"));
    }
    let (create_body, extras) = replacement(old, upgrader, target, published);
    let now = create::create_timestamp() + attempt * 7;
    let Prepared {
        room_id: new_room,
        mut append,
        made,
    } = create::prepare(services, requester, create_body, extras, now).await?;

    // The old room: tombstoned, closed to new events and invites (UP-05), its canonical
    // alias gone with the aliases. Only the tombstone is required; the upgrader may lack
    // the power for the rest.
    let before = old.summary();
    let extremities = old.extremities.iter().map(ToString::to_string).collect();
    let mut events = Vec::new();
    let tombstone = json!({ "body": "This room has been replaced", "replacement_room": new_room });
    events.extend(
        build_old_room_event(services, old, upgrader, "m.room.tombstone", tombstone, true).await?,
    );
    if let Some(mut restricted) = content(old, "m.room.power_levels") {
        let users_default = restricted
            .get("users_default")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let closed = (users_default + 1).max(50);
        restricted.insert("events_default".into(), json!(closed));
        restricted.insert("invite".into(), json!(closed));
        let kind = "m.room.power_levels";
        events.extend(
            build_old_room_event(
                services,
                old,
                upgrader,
                kind,
                Value::Object(restricted),
                false,
            )
            .await?,
        );
    }
    if content(old, "m.room.canonical_alias").is_some_and(|c| !c.is_empty()) {
        let kind = "m.room.canonical_alias";
        events.extend(build_old_room_event(services, old, upgrader, kind, json!({}), false).await?);
    }
    let after = old.summary();
    append.then = Some(Box::new(Append {
        room_id: room.to_string(),
        new_room: None,
        alias: None,
        aliases_from: None,
        summary: (before != after).then_some(after),
        extremities,
        events,
        then: None,
    }));
    let audience = old.audience();
    match services.store.append_events(append, turn.lock.take()).await {
        Ok(_) => {
            made.settle(services);
            services.directory_counts.clear();
            services.notifier.wake_many(&audience);
            Ok(Some(new_room.to_string()))
        }
        Err(StoreError::Conflict(CONFLICT_EXTREMITIES | CONFLICT_ROOM_EXISTS)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Builds one of the old room's events on its head and advances the head past it; a
/// refused event is an error if `required`, else left out.
async fn build_old_room_event(
    services: &Services,
    head: &mut Head,
    sender: &OwnedUserId,
    kind: &str,
    content: Value,
    required: bool,
) -> Result<Option<NewEvent>> {
    let draft = Draft::new(kind, Some(""), sender, content)?;
    let built = super::append::build_on(services, head, &draft)?;
    if let Err(refused) = events::authorize(&built.pdu, &head.rules.authorization, &head.state) {
        if required {
            return Err(refused);
        }
        tracing::info!(error = %refused, kind, "the old room of an upgrade kept its state");
        return Ok(None);
    }
    let mut event = new_event(&draft, &built, None);
    event.push = crate::push::eval::evaluate(services, head, &built.pdu, &built.json).await;
    head.advance(Arc::new(built.pdu));
    Ok(Some(event))
}

/// The `createRoom` body and extras of the replacement room.
fn replacement(
    old: &Head,
    upgrader: &OwnedUserId,
    target: &Target,
    published: bool,
) -> (Value, Extras) {
    // The create event: predecessor, the old type and federation flag, the new creators.
    let old_create = content(old, "m.room.create").unwrap_or_default();
    let mut creation = Map::new();
    let mut predecessor = json!({ "room_id": old.room_id });
    if !target.rules.authorization.room_create_event_id_as_room_id
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
    let privileged = target
        .rules
        .authorization
        .explicitly_privilege_room_creators;
    if privileged && !target.additional.is_empty() {
        creation.insert("additional_creators".into(), json!(target.additional));
    }

    // Power levels as they were (UP-03, UP-04): from v12 creators hold none; before it the
    // upgrader is lifted while the state is copied, then put back.
    let mut levels = content(old, "m.room.power_levels").unwrap_or_default();
    if privileged != old.rules.authorization.explicitly_privilege_room_creators {
        // UP-10: between versions with and without privileged creators the tombstone's
        // level means something else, so it takes the new version's default.
        let tombstone = if privileged {
            PRIVILEGED_TOMBSTONE
        } else {
            100
        };
        let events = levels.entry("events").or_insert_with(|| json!({}));
        if let Some(events) = events.as_object_mut() {
            events.insert("m.room.tombstone".into(), json!(tombstone));
        }
    }
    let old_power = old.power(upgrader);
    let mut users = levels
        .get("users")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut restore = None;
    if privileged {
        users.remove(upgrader.as_str());
        for creator in &target.additional {
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
        if let Some(content) = content(old, kind) {
            initial_state.push(json!({ "type": kind, "state_key": "", "content": content }));
        }
    }
    // A space keeps its children (as the reference server does); a removed child's event
    // has empty content and is not copied.
    let mut children: Vec<(&String, Value)> = old
        .state
        .iter()
        .filter(|((kind, key), _)| kind == "m.space.child" && !key.is_empty())
        .map(|((_, key), pdu)| (key, pdu.content_value()))
        .filter(|(_, content)| content.as_object().is_some_and(|c| !c.is_empty()))
        .collect();
    children.sort_by(|a, b| a.0.cmp(b.0));
    for (child, content) in children {
        initial_state.push(json!({
            "type": "m.space.child", "state_key": child, "content": content,
        }));
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
    if let Some(alias) = content(old, "m.room.canonical_alias").filter(|c| !c.is_empty()) {
        then.push((
            "m.room.canonical_alias".to_owned(),
            String::new(),
            Value::Object(alias),
        ));
    }
    let create_body = json!({
        "room_version": target.version,
        "creation_content": creation,
        "initial_state": initial_state,
    });
    let extras = Extras {
        no_preset_state: true,
        then,
        aliases_from: Some(old.room_id.to_string()),
        published: Some(published),
    };
    (create_body, extras)
}
