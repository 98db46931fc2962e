//! A user's own settings for a room follow it to its successor (`room_upgrades.md`, UP-07,
//! UP-11): when they join the room an upgrade made (or make it, as the upgrader), its tags,
//! its room push rule and its place in `m.direct` are copied from the old room. Best effort:
//! a setting that cannot be copied is logged, and the join stands.

use ruma_common::push::RuleKind;
use serde_json::{Map, Value};

use crate::{Services, auth::Requester, error::Result};

/// The room an upgrade replaced with `room_id`, from its create event's `predecessor`.
pub(crate) async fn predecessor(services: &Services, room_id: &str) -> Result<Option<String>> {
    let create = services
        .store
        .state_at(room_id, None, Some("m.room.create"))
        .await?;
    Ok(create
        .first()
        .and_then(|e| serde_json::from_str::<Value>(&e.json).ok())
        .and_then(|e| {
            e["content"]["predecessor"]["room_id"]
                .as_str()
                .map(str::to_owned)
        }))
}

/// Copies the requester's settings for `old` to `new`; failures are logged.
pub(crate) async fn carry_over(services: &Services, requester: &Requester, old: &str, new: &str) {
    if let Err(err) = copy(services, requester, old, new).await {
        tracing::warn!(error = %err, "copying room settings to an upgraded room failed");
    }
}

async fn copy(services: &Services, requester: &Requester, old: &str, new: &str) -> Result<()> {
    let user = requester.user_id.as_str();
    // Tags, each one the user gave the old room and has not given the new one.
    let old_tags = crate::tags::get(services, requester, user, old).await?;
    let new_tags = crate::tags::get(services, requester, user, new).await?;
    for (tag, value) in old_tags["tags"].as_object().into_iter().flatten() {
        if new_tags["tags"].get(tag).is_none() {
            let value = value.as_object().cloned().unwrap_or_default();
            crate::tags::change(services, requester, user, new, tag, Some(value)).await?;
        }
    }
    // The room's push rule (its ID is the room's).
    let rules = crate::push::ruleset(services, user).await?;
    let room_rules = rules["room"].as_array().cloned().unwrap_or_default();
    let has_new = room_rules.iter().any(|r| r["rule_id"] == new);
    if let Some(rule) = room_rules.iter().find(|r| r["rule_id"] == old)
        && !has_new
    {
        let mut body = Map::new();
        body.insert("actions".into(), rule["actions"].clone());
        crate::push::edit::put_rule(services, requester, RuleKind::Room, new, None, None, body)
            .await?;
    }
    // m.direct: the new room joins each list that holds the old one.
    let direct = services
        .store
        .get_account_data(user, None, "m.direct")
        .await?
        .and_then(|c| serde_json::from_str::<Value>(&c).ok());
    if let Some(Value::Object(mut direct)) = direct {
        let mut changed = false;
        for rooms in direct.values_mut().filter_map(Value::as_array_mut) {
            if rooms.iter().any(|r| r == old) && !rooms.iter().any(|r| r == new) {
                rooms.push(Value::String(new.to_owned()));
                changed = true;
            }
        }
        if changed {
            let body = Value::Object(direct).to_string();
            crate::account_data::put(services, requester, user, None, "m.direct", body.as_bytes())
                .await?;
        }
    }
    Ok(())
}
