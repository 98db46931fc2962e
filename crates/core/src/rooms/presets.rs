//! What `createRoom`'s presets and power levels mean (RM-05, RM-06, RM-11).

use ruma_common::{OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use super::{Head, create::Body};
use crate::error::{Result, bad_json};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Preset {
    Private,
    TrustedPrivate,
    Public,
}

pub(super) fn preset(body: &Body) -> Result<Preset> {
    match body.preset.as_deref() {
        Some("private_chat") => Ok(Preset::Private),
        Some("trusted_private_chat") => Ok(Preset::TrustedPrivate),
        Some("public_chat") => Ok(Preset::Public),
        Some(other) => Err(bad_json(format!("Unknown preset {other}"))),
        None if body.visibility.as_deref() == Some("public") => Ok(Preset::Public),
        None => Ok(Preset::Private),
    }
}

/// The default power levels (RM-05): the reference server's values, which clients and test
/// suites read.
pub(super) fn power_levels(
    creator: &UserId,
    invitees: &[OwnedUserId],
    preset: Preset,
    creators_privileged: bool,
) -> Map<String, Value> {
    let mut users = Map::new();
    if !creators_privileged {
        users.insert(creator.to_string(), json!(100));
        if preset == Preset::TrustedPrivate {
            for invitee in invitees {
                users.insert(invitee.to_string(), json!(100));
            }
        }
    }
    let mut events = json!({
        "m.room.name": 50,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        // v12: above state_default, so only creators can upgrade unless raised (RM-05).
        "m.room.tombstone": if creators_privileged { 150 } else { 100 },
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
    });
    if preset == Preset::Public {
        events["m.call.invite"] = json!(50);
    }
    let invite = if preset == Preset::Public { 50 } else { 0 };
    let Value::Object(map) = json!({
        "users": users,
        "users_default": 0,
        "events": events,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": invite,
    }) else {
        return Map::new();
    };
    map
}

/// The creator's place in the power levels after an override (RM-06): before v12 they must
/// keep theirs; from v12 creators outrank levels and may not be given one.
pub(super) fn check_power_users(
    levels: &Map<String, Value>,
    creator: &UserId,
    head: &Head,
    privileged: bool,
) -> Result<()> {
    let users = levels.get("users").and_then(Value::as_object);
    if privileged {
        let creators = head.creators();
        if let Some(users) = users
            && users
                .keys()
                .any(|u| creators.iter().any(|c| c.as_str() == u) || u == creator.as_str())
        {
            return Err(bad_json(
                "Room creators cannot be given a power level in this room version",
            ));
        }
    } else if !users.is_some_and(|u| u.contains_key(creator.as_str())) {
        return Err(bad_json(
            "power_level_content_override.users must contain the room creator",
        ));
    }
    Ok(())
}
