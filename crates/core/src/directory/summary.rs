//! What a room shows before one joins it (`room_summary.yaml`, SP-08), and the summaries
//! the directory keeps (see [`myelin_store::RoomDirectoryStore`]).

use serde_json::{Map, Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, not_found},
    rooms::{self, Head},
};

/// Writes the summary of every room that has none (rooms created before the directory kept
/// them), before the server takes requests.
pub async fn backfill_summaries(services: &Services) -> Result<()> {
    let rooms = services.store.rooms_without_summary().await?;
    if rooms.is_empty() {
        return Ok(());
    }
    tracing::info!(rooms = rooms.len(), "summarising rooms for the directory");
    for room_id in rooms {
        let head = rooms::load_head(services, &room_id).await?;
        services
            .store
            .put_summary_if_absent(&room_id, &head.summary())
            .await?;
    }
    Ok(())
}

/// The rooms a restricted room's join rule lets the members of join it.
fn allowed_room_ids(head: &Head) -> Vec<String> {
    let Some(rules) = head.get("m.room.join_rules", "") else {
        return Vec::new();
    };
    rules
        .content_value()
        .get("allow")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|rule| rule.get("type").and_then(Value::as_str) == Some("m.room_membership"))
        .filter_map(|rule| {
            rule.get("room_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Whether a user (or anyone, without one) may see a room they are not in from outside:
/// members, invitees and knockers may; anyone may when it is public, knockable or
/// world-readable; for a restricted room, members of a room its allow list names.
pub(super) fn previewable(head: &Head, user_id: Option<&str>, joined: &[String]) -> bool {
    let summary = head.summary();
    let membership = user_id.and_then(|u| head.membership(u));
    matches!(membership, Some("join" | "invite" | "knock"))
        || matches!(
            summary.join_rule.as_str(),
            "public" | "knock" | "knock_restricted"
        )
        || summary.history_visibility == "world_readable"
        || (user_id.is_some()
            && matches!(
                summary.join_rule.as_str(),
                "restricted" | "knock_restricted"
            )
            && allowed_room_ids(head).iter().any(|r| joined.contains(r)))
}

/// What `room_summary` and `/hierarchy` show of a room (`room_summary.yaml`); unset fields
/// have no key.
pub(super) fn summary_fields(head: &Head) -> Map<String, Value> {
    let summary = head.summary();
    let mut fields = Map::new();
    fields.insert("room_id".into(), json!(head.room_id));
    fields.insert("num_joined_members".into(), json!(summary.joined_members));
    fields.insert("guest_can_join".into(), json!(summary.guest_can_join));
    fields.insert(
        "world_readable".into(),
        json!(summary.history_visibility == "world_readable"),
    );
    fields.insert("join_rule".into(), json!(summary.join_rule));
    fields.insert("room_version".into(), json!(head.version.as_str()));
    for (key, value) in [
        ("name", &summary.name),
        ("topic", &summary.topic),
        ("avatar_url", &summary.avatar_url),
        ("canonical_alias", &summary.canonical_alias),
        ("room_type", &summary.room_type),
        ("encryption", &summary.encryption),
    ] {
        if let Some(value) = value {
            fields.insert(key.into(), json!(value));
        }
    }
    if matches!(
        summary.join_rule.as_str(),
        "restricted" | "knock_restricted"
    ) {
        fields.insert("allowed_room_ids".into(), json!(allowed_room_ids(head)));
    }
    fields
}

/// # `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`
///
/// Shown to those [`previewable`] admits; to everyone else the room does not exist (404).
pub async fn room_summary(
    services: &Services,
    requester: Option<&Requester>,
    id_or_alias: &str,
) -> Result<Value> {
    let room_id = rooms::resolve_room(services, id_or_alias).await?;
    let unknown = || not_found("Room not found, or you may not see it");
    let head = match rooms::load_head(services, room_id.as_str()).await {
        Ok(head) => head,
        Err(Error::NotFound(_)) => return Err(unknown()),
        Err(err) => return Err(err),
    };
    let user_id = requester.map(|r| r.user_id.as_str());
    let joined = match user_id {
        Some(user) => rooms::membership::joined_room_ids(services, user).await?,
        None => Vec::new(),
    };
    if !previewable(&head, user_id, &joined) {
        return Err(unknown());
    }
    let mut response = summary_fields(&head);
    if let Some(user) = user_id {
        response.insert(
            "membership".into(),
            json!(head.membership(user).unwrap_or("leave")),
        );
    }
    Ok(Value::Object(response))
}
