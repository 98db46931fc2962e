//! What a room shows before one joins it (`room_summary.yaml`, SP-08), and the summaries
//! the directory keeps (see [`myelin_store::RoomDirectoryStore`]).

use serde_json::{Value, json};

use super::current_head;
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
        let head = current_head(services, &room_id).await?;
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

/// # `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`
///
/// A room is shown to its members, invitees and knockers, to anyone when it is public,
/// knockable or world-readable, and when restricted to those its allow list admits; to
/// everyone else it does not exist (404).
pub async fn room_summary(
    services: &Services,
    requester: Option<&Requester>,
    id_or_alias: &str,
) -> Result<Value> {
    let room_id = rooms::resolve_room(services, id_or_alias).await?;
    let unknown = || not_found("Room not found, or you may not see it");
    let head = match current_head(services, room_id.as_str()).await {
        Ok(head) => head,
        Err(Error::NotFound(_)) => return Err(unknown()),
        Err(err) => return Err(err),
    };
    let summary = head.summary();
    let membership = requester.and_then(|r| head.membership(&r.user_id));
    let restricted = matches!(
        summary.join_rule.as_str(),
        "restricted" | "knock_restricted"
    );
    let allowed = if restricted {
        allowed_room_ids(&head)
    } else {
        Vec::new()
    };
    let visible = matches!(membership, Some("join" | "invite" | "knock"))
        || matches!(
            summary.join_rule.as_str(),
            "public" | "knock" | "knock_restricted"
        )
        || summary.history_visibility == "world_readable"
        || match requester {
            Some(r) if restricted => {
                let joined = rooms::membership::joined_room_ids(services, &r.user_id).await?;
                allowed.iter().any(|room| joined.contains(room))
            }
            _ => false,
        };
    if !visible {
        return Err(unknown());
    }
    let mut response = json!({
        "room_id": room_id,
        "num_joined_members": summary.joined_members,
        "guest_can_join": summary.guest_can_join,
        "world_readable": summary.history_visibility == "world_readable",
        "join_rule": summary.join_rule,
        "room_version": head.version.as_str(),
    });
    for (key, value) in [
        ("name", &summary.name),
        ("topic", &summary.topic),
        ("avatar_url", &summary.avatar_url),
        ("canonical_alias", &summary.canonical_alias),
        ("room_type", &summary.room_type),
        ("encryption", &summary.encryption),
    ] {
        if let Some(value) = value {
            response[key] = json!(value);
        }
    }
    if requester.is_some() {
        response["membership"] = json!(membership.unwrap_or("leave"));
    }
    if restricted {
        response["allowed_room_ids"] = json!(allowed);
    }
    Ok(response)
}
