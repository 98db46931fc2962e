//! Finding rooms: aliases (`directory.yaml`), the public room list and who may publish to it
//! (`list_public_rooms.yaml`), what a room shows before one joins it (`room_summary.yaml`),
//! and the space tree below a room (`space_hierarchy.yaml`).

mod hierarchy;
mod public;
mod summary;

pub use hierarchy::{HierarchyRequest, hierarchy};
pub use public::{CountCache, PublicRoomsRequest, public_rooms};
pub use summary::{backfill_summaries, room_summary};

use ruma_common::{OwnedRoomId, RoomAliasId};
use serde_json::{Value, json};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, invalid_param, not_found},
    rooms::{self, Head, parse_room_id},
};

/// Aliases are at most this long, `#` and server name included (the spec's limit).
const MAX_ALIAS_BYTES: usize = 255;

/// A local alias from a path: 400 `M_INVALID_PARAM` for a bad or foreign one (DR-02, DR-04).
fn local_alias(services: &Services, alias: &str) -> Result<String> {
    if alias.len() > MAX_ALIAS_BYTES {
        return Err(invalid_param("Room alias is too long"));
    }
    let parsed = <&RoomAliasId>::try_from(alias)
        .ok()
        .filter(|a| !a.alias().contains(':') && !crate::ids::has_nul(a.alias()))
        .filter(|a| !a.alias().is_empty())
        .ok_or_else(|| {
            invalid_param(format!(
                "{} is not a valid room alias",
                alias.escape_debug()
            ))
        })?;
    if parsed.server_name().as_str() != services.config.server_name {
        return Err(invalid_param("Room alias must be local"));
    }
    Ok(parsed.to_string())
}

async fn is_server_admin(services: &Services, user_id: &str) -> Result<bool> {
    Ok(services
        .store
        .user_flags(user_id)
        .await?
        .is_some_and(|f| f.admin))
}

/// Whether the user may change the room's canonical alias: the room's moderators.
fn may_set_canonical_alias(head: &Head, user_id: &str) -> bool {
    let Ok(user) = ruma_common::OwnedUserId::try_from(user_id) else {
        return false;
    };
    head.membership(user_id) == Some("join")
        && head.power(&user) >= head.level_for_event("m.room.canonical_alias", true)
}

/// # `PUT /directory/room/{roomAlias}`
///
/// Only a member of the room may point an alias at it (DR-02).
pub async fn create_alias(
    services: &Services,
    requester: &Requester,
    alias: &str,
    body: &[u8],
) -> Result<()> {
    requester.refuse_if_suspended()?;
    let alias = local_alias(services, alias)?;
    let body: Value =
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?;
    let room_id = body
        .get("room_id")
        .and_then(Value::as_str)
        .ok_or_else(|| crate::error::bad_json("room_id is required"))?;
    let room_id = parse_room_id(room_id)?;
    let head = rooms::load_head(services, room_id.as_str()).await?;
    if head.membership(&requester.user_id) != Some("join") {
        return Err(forbidden("You must be in the room to give it an alias"));
    }
    match services
        .store
        .put_alias(&alias, room_id.as_str(), &requester.user_id)
        .await
    {
        Err(myelin_store::StoreError::Conflict(_)) => Err(Error::AliasInUse),
        other => Ok(other?),
    }
}

/// # `GET /directory/room/{roomAlias}`
///
/// Without federation only this server's aliases resolve; another server's is unknown here.
pub async fn resolve_alias(services: &Services, alias: &str) -> Result<(String, Vec<String>)> {
    let parsed = <&RoomAliasId>::try_from(alias).map_err(|_| {
        invalid_param(format!(
            "{} is not a valid room alias",
            alias.escape_debug()
        ))
    })?;
    if parsed.server_name().as_str() != services.config.server_name {
        return Err(not_found(
            "Room alias not found: resolving another server's aliases needs federation",
        ));
    }
    let entry = services
        .store
        .alias(parsed.as_str())
        .await?
        .ok_or_else(|| not_found("Room alias not found"))?;
    Ok((entry.room_id, vec![services.config.server_name.clone()]))
}

/// # `DELETE /directory/room/{roomAlias}`
///
/// Its creator, the room's moderators and server admins may (DR-06). An alias the room's
/// canonical alias event names is taken out of it, as the requester, if they may (DR-07).
pub async fn delete_alias(services: &Services, requester: &Requester, alias: &str) -> Result<()> {
    let alias = local_alias(services, alias)?;
    let entry = services
        .store
        .alias(&alias)
        .await?
        .ok_or_else(|| not_found("Room alias not found"))?;
    let head = rooms::load_head(services, &entry.room_id).await.ok();
    let allowed = entry.creator == requester.user_id
        || head
            .as_ref()
            .is_some_and(|h| may_set_canonical_alias(h, &requester.user_id))
        || is_server_admin(services, &requester.user_id).await?;
    if !allowed {
        return Err(forbidden(
            "You may not delete this alias: only its creator and the room's moderators may",
        ));
    }
    if !services.store.delete_alias(&alias).await? {
        return Err(not_found("Room alias not found"));
    }
    if let Some(head) = head {
        drop_from_canonical_alias(services, requester, &head, &alias).await;
    }
    Ok(())
}

/// DR-07: the canonical alias event must not name an alias that is gone.
async fn drop_from_canonical_alias(
    services: &Services,
    requester: &Requester,
    head: &Head,
    alias: &str,
) {
    let Some(event) = head.get("m.room.canonical_alias", "") else {
        return;
    };
    let mut content = match event.content_value() {
        Value::Object(map) => map,
        _ => return,
    };
    let mut changed = false;
    if content.get("alias").and_then(Value::as_str) == Some(alias) {
        content.remove("alias");
        changed = true;
    }
    if let Some(Value::Array(alt)) = content.get_mut("alt_aliases") {
        let before = alt.len();
        alt.retain(|a| a.as_str() != Some(alias));
        changed |= alt.len() != before;
    }
    if !changed {
        return;
    }
    let body = Value::Object(content).to_string();
    let sent = rooms::send::put_state(
        services,
        requester,
        head.room_id.as_str(),
        "m.room.canonical_alias",
        "",
        body.as_bytes(),
    )
    .await;
    if let Err(err) = sent {
        // The alias is gone either way; a requester without the power leaves the event.
        tracing::info!(error = %err, "updating the canonical alias after deleting one failed");
    }
}

/// # `GET /rooms/{roomId}/aliases`
///
/// For members, and anyone when the room is world-readable (DR-05).
pub async fn room_aliases(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Vec<String>> {
    let room_id = parse_room_id(room_id)?;
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let head = rooms::load_head(services, room_id.as_str())
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => forbidden("You are not in this room"),
            other => other,
        })?;
    let world_readable = head.summary().history_visibility == "world_readable";
    if head.membership(&requester.user_id) != Some("join") && !world_readable {
        return Err(forbidden("You are not in this room"));
    }
    Ok(services.store.room_aliases(room_id.as_str()).await?)
}

/// # `GET /directory/list/room/{roomId}`
pub async fn visibility(services: &Services, room_id: &str) -> Result<&'static str> {
    let room_id = parse_room_id(room_id)?;
    let info = services
        .store
        .room(room_id.as_str())
        .await?
        .ok_or_else(|| not_found("Unknown room"))?;
    Ok(if info.published { "public" } else { "private" })
}

/// Whether the user may list the room in the public directory (`rooms.publish_to_directory`).
pub(crate) async fn may_publish(services: &Services, head: &Head, user_id: &str) -> Result<bool> {
    let by_rule = match services.config.rooms.publish_to_directory.as_str() {
        "members" => head.membership(user_id) == Some("join"),
        "admins" => false,
        _ => may_set_canonical_alias(head, user_id),
    };
    Ok(by_rule || is_server_admin(services, user_id).await?)
}

/// # `PUT /directory/list/room/{roomId}`
///
/// A missing `visibility` is `public` (DR-09).
pub async fn set_visibility(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    requester.refuse_if_suspended()?;
    let room_id: OwnedRoomId = parse_room_id(room_id)?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?
    };
    let published = match body.get("visibility") {
        None | Some(Value::Null) => true,
        Some(Value::String(v)) if v == "public" => true,
        Some(Value::String(v)) if v == "private" => false,
        Some(_) => return Err(invalid_param("visibility must be public or private")),
    };
    let head = rooms::load_head(services, room_id.as_str()).await?;
    if !may_publish(services, &head, &requester.user_id).await? {
        return Err(forbidden(
            "You may not change whether this room is in the public directory",
        ));
    }
    if !services
        .store
        .set_published(room_id.as_str(), published)
        .await?
    {
        return Err(not_found("Unknown room"));
    }
    services.directory_counts.clear();
    Ok(())
}
