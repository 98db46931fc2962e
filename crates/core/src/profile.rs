//! Profiles (`profile.yaml`): display name, avatar and the custom fields of the current spec.
//!
//! A profile belongs to its user: only they change it (403 for anyone else). A change of
//! `displayname` or `avatar_url` reaches every room the user has joined as a new member
//! event, and a join takes both from the profile unless the request gives them (MB-03).
//! Every user's profile is readable by anyone, or with `profile.require_shared_room` only by
//! users sharing a room with its owner.

use std::collections::BTreeMap;

use myelin_store::ProfileWrite;
use regex::Regex;
use ruma_common::{OwnedRoomId, OwnedUserId};
use serde_json::{Map, Value};

use crate::{
    Error, Services,
    auth::Requester,
    error::{Result, bad_json, forbidden, invalid_param, missing_param, not_found},
    events::Draft,
    rooms::{Planned, append},
};

/// The largest profile, field names and values together (the spec's 64 KiB).
const MAX_PROFILE_BYTES: u64 = 64 * 1024;
/// The longest field name (the spec's 255 bytes).
const MAX_KEY_BYTES: usize = 255;
/// The longest display name, in characters (as the reference server).
const MAX_DISPLAYNAME_CHARS: usize = 256;

/// The fields a member event carries.
const MEMBER_FIELDS: [&str; 2] = ["displayname", "avatar_url"];

fn key_pattern() -> &'static Regex {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$")
            .unwrap_or_else(|_| unreachable!("the pattern is valid"))
    })
}

async fn fields(services: &Services, user_id: &str) -> Result<BTreeMap<String, Value>> {
    let Some(fields) = services.store.profile(user_id).await? else {
        return Err(not_found("Profile not found"));
    };
    Ok(fields
        .into_iter()
        .filter_map(|(field, value)| Some((field, serde_json::from_str(&value).ok()?)))
        .collect())
}

/// Whether `viewer` may read the profile of `user_id` (`profile.require_shared_room`).
async fn check_readable(
    services: &Services,
    viewer: Option<&Requester>,
    user_id: &str,
) -> Result<()> {
    if !services.config.profile.require_shared_room {
        return Ok(());
    }
    let Some(viewer) = viewer else {
        return Err(Error::MissingToken);
    };
    if crate::rooms::membership::sees_user(services, &viewer.user_id, user_id).await? {
        return Ok(());
    }
    Err(forbidden("This profile is not available to you"))
}

/// `GET /profile/{userId}`.
pub async fn get(
    services: &Services,
    viewer: Option<&Requester>,
    user_id: &str,
) -> Result<Map<String, Value>> {
    check_readable(services, viewer, user_id).await?;
    Ok(fields(services, user_id).await?.into_iter().collect())
}

/// `GET /profile/{userId}/{keyName}`: `{keyName: value}`.
pub async fn get_field(
    services: &Services,
    viewer: Option<&Requester>,
    user_id: &str,
    key: &str,
) -> Result<Map<String, Value>> {
    check_readable(services, viewer, user_id).await?;
    let mut fields = fields(services, user_id).await?;
    let value = fields
        .remove(key)
        .ok_or_else(|| not_found("Profile field not found"))?;
    Ok(Map::from_iter([(key.to_owned(), value)]))
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLarge(
            format!("Profile keys are limited to {MAX_KEY_BYTES} bytes").into(),
        ));
    }
    if !key_pattern().is_match(key) {
        return Err(invalid_param("Invalid profile key"));
    }
    Ok(())
}

fn check_owner(requester: &Requester, user_id: &str) -> Result<()> {
    if requester.user_id != user_id {
        return Err(forbidden("You may only change your own profile"));
    }
    Ok(())
}

fn check_value(key: &str, value: &Value) -> Result<()> {
    match key {
        "displayname" => match value {
            Value::String(name) if name.chars().count() > MAX_DISPLAYNAME_CHARS => {
                Err(invalid_param(format!(
                    "displayname is limited to {MAX_DISPLAYNAME_CHARS} characters"
                )))
            }
            Value::String(name) if crate::ids::has_nul(name) => {
                Err(invalid_param("displayname must not contain NUL"))
            }
            Value::String(_) => Ok(()),
            _ => Err(bad_json("displayname must be a string")),
        },
        "avatar_url" => match value {
            Value::String(url) if url.is_empty() || is_mxc(url) => Ok(()),
            _ => Err(bad_json("avatar_url must be an mxc:// URI")),
        },
        _ => Ok(()),
    }
}

/// `mxc://<server-name>/<media-id>`.
fn is_mxc(url: &str) -> bool {
    url.strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(server, id)| {
            !server.is_empty()
                && !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `PUT /profile/{userId}/{keyName}`.
pub async fn set_field(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    key: &str,
    body: Map<String, Value>,
) -> Result<()> {
    check_key(key)?;
    check_owner(requester, user_id)?;
    requester.refuse_if_suspended()?;
    let value = body
        .get(key)
        .ok_or_else(|| missing_param(format!("Missing required field: {key}")))?;
    check_value(key, value)?;
    match services
        .store
        .set_profile_field(user_id, key, &value.to_string(), MAX_PROFILE_BYTES)
        .await?
    {
        ProfileWrite::Done => {}
        ProfileWrite::TooLarge => {
            return Err(Error::ProfileTooLarge(
                "The profile would exceed 64 KiB".into(),
            ));
        }
    }
    if MEMBER_FIELDS.contains(&key) {
        update_rooms(services, user_id).await?;
    }
    Ok(())
}

/// `DELETE /profile/{userId}/{keyName}`.
pub async fn delete_field(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    key: &str,
) -> Result<()> {
    check_key(key)?;
    check_owner(requester, user_id)?;
    requester.refuse_if_suspended()?;
    services.store.delete_profile_field(user_id, key).await?;
    if MEMBER_FIELDS.contains(&key) {
        update_rooms(services, user_id).await?;
    }
    Ok(())
}

/// The member-event fields from the user's profile, for a join (MB-03).
pub(crate) async fn member_fields(
    services: &Services,
    user_id: &str,
) -> Result<Map<String, Value>> {
    let Some(stored) = services.store.profile(user_id).await? else {
        return Ok(Map::new());
    };
    Ok(stored
        .into_iter()
        .filter(|(field, _)| MEMBER_FIELDS.contains(&field.as_str()))
        .filter_map(|(field, value)| Some((field, serde_json::from_str(&value).ok()?)))
        .collect())
}

/// Sends the profile into every room the user has joined as a new member event (MB-03).
/// A room whose member event already says the same is left alone.
async fn update_rooms(services: &Services, user_id: &str) -> Result<()> {
    let profile = member_fields(services, user_id).await?;
    let sender = OwnedUserId::try_from(user_id).map_err(|_| invalid_param("Invalid user ID"))?;
    for room in crate::rooms::membership::joined_room_ids(services, user_id).await? {
        let Ok(room_id) = OwnedRoomId::try_from(room.as_str()) else {
            continue;
        };
        let (profile, sender) = (profile.clone(), sender.clone());
        let outcome = append(services, &room_id, None, move |head| {
            let Some(current) = head.member_event(sender.as_str()) else {
                return Err(forbidden("Not in the room"));
            };
            let mut content: Map<String, Value> =
                serde_json::from_str(current.content.get()).unwrap_or_default();
            if content.get("membership").and_then(Value::as_str) != Some("join") {
                return Ok(Planned::Exists(current.event_id.clone()));
            }
            let before = content.clone();
            for field in MEMBER_FIELDS {
                content.remove(field);
            }
            content.remove("reason");
            content.remove("join_authorised_via_users_server");
            content.extend(profile.clone());
            if content == before {
                return Ok(Planned::Exists(current.event_id.clone()));
            }
            Ok(Planned::Draft(Draft::new(
                "m.room.member",
                Some(sender.as_str()),
                &sender,
                Value::Object(content),
            )?))
        })
        .await;
        // One room refusing (the user left it meanwhile) does not stop the others.
        if let Err(err) = outcome {
            tracing::debug!(%room_id, error = %err, "profile not sent into a room");
        }
    }
    Ok(())
}
