//! Membership (`joining.yaml`, `leaving.yaml`, `inviting.yaml`, `kicking.yaml`,
//! `banning.yaml`, `knocking.yaml`, `list_joined_rooms.yaml`). Each endpoint is a member event
//! through the one writer path; the room version's rules decide who may do what, and the
//! checks here only add what the rules allow but the API refuses (MB-08, MB-12, MB-14).

use std::collections::{BTreeMap, HashSet};

use ruma_common::{OwnedRoomId, OwnedUserId, RoomId};
use ruma_state_res::events::RoomPowerLevelsIntField;
use serde_json::{Map, Value, json};

use super::{Head, Planned, append, create::check_local_invitee, parse_room_id, resolve_room};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found},
    events::Draft,
};

fn user(user_id: &str) -> Result<OwnedUserId> {
    OwnedUserId::try_from(user_id)
        .map_err(|_| invalid_param(format!("{} is not a valid user ID", user_id.escape_debug())))
}

/// A body that may be empty (`{}` or nothing at all).
fn optional_object(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_json("Body must be a JSON object")),
        Err(_) => Err(Error::NotJson("Body is not JSON".into())),
    }
}

fn reason(body: &Map<String, Value>) -> Result<Option<String>> {
    match body.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) => Ok(Some(r.clone())),
        Some(_) => Err(bad_json("reason must be a string")),
    }
}

fn target(body: &Map<String, Value>) -> Result<OwnedUserId> {
    match body.get("user_id") {
        Some(Value::String(u)) => user(u),
        Some(_) => Err(bad_json("user_id must be a string")),
        None => Err(crate::error::missing_param("Missing user_id")),
    }
}

fn member(sender: &OwnedUserId, target: &str, content: Map<String, Value>) -> Result<Draft> {
    Draft::new(
        "m.room.member",
        Some(target),
        sender,
        Value::Object(content),
    )
}

fn content(membership: &str, reason: Option<String>) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("membership".into(), json!(membership));
    if let Some(reason) = reason {
        content.insert("reason".into(), json!(reason));
    }
    content
}

/// Membership changes count against the user's allowance (429 `M_LIMIT_EXCEEDED`): an
/// appservice acting for its users is limited only if its registration says so.
fn spend_allowance(services: &Services, requester: &Requester) -> Result<()> {
    if requester
        .appservice
        .as_ref()
        .is_some_and(|a| !a.rate_limited)
    {
        return Ok(());
    }
    services
        .limiters
        .room_membership_per_user
        .check(&requester.user_id)
        .map_err(crate::error::limit_exceeded)
}

/// Acting in a room that does not exist is acting in one the user is not in (the spec lists
/// only 403 for these), which does not tell strangers which rooms exist.
fn forbidden_if_unknown(err: Error) -> Error {
    match err {
        Error::NotFound(_) => forbidden("You are not in this room"),
        other => other,
    }
}

fn current_event(head: &Head, user_id: &str) -> Option<ruma_common::OwnedEventId> {
    head.member_event(user_id).map(|e| e.event_id.clone())
}

/// `POST /rooms/{roomId}/join` and `POST /join/{roomIdOrAlias}`: the joined room's ID.
pub async fn join(
    services: &Services,
    requester: &Requester,
    id_or_alias: &str,
    body: &[u8],
) -> Result<String> {
    requester.refuse_if_suspended()?;
    spend_allowance(services, requester)?;
    let body = optional_object(body)?;
    let room_id = resolve_room(services, id_or_alias).await?;
    super::purge::refuse_if_blocked(services, &room_id).await?;
    let sender = user(&requester.user_id)?;
    // MB-02: the body's keys go into the member event; the server sets the membership.
    let mut wanted = body.clone();
    wanted.remove("third_party_signed");
    // Only this server vouches for a restricted join (MB-22), after checking the allow list.
    wanted.remove("join_authorised_via_users_server");
    reason(&body)?;
    wanted.insert("membership".into(), json!("join"));
    // MB-03: the profile, unless the request says otherwise.
    for (field, value) in crate::profile::member_fields(services, &requester.user_id).await? {
        wanted.entry(field).or_insert(value);
    }
    let joined_elsewhere = joined_rooms_set(services, &requester.user_id).await?;
    let joined_before = joined_elsewhere.clone();
    append(services, &room_id, None, move |head| {
        let current = head.membership(sender.as_str());
        if current == Some("ban") {
            return Err(forbidden("You are banned from this room"));
        }
        if current == Some("join")
            && let Some(existing) = head.member_event(sender.as_str())
            && serde_json::from_str::<Value>(existing.content.get()).ok()
                == Some(Value::Object(wanted.clone()))
        {
            return Ok(Planned::Exists(existing.event_id.clone()));
        }
        let mut content = wanted.clone();
        if !matches!(current, Some("invite" | "join"))
            && let Some(via) = restricted_authoriser(head, &sender, &joined_elsewhere)
        {
            content.insert("join_authorised_via_users_server".into(), json!(via));
        }
        Ok(Planned::Draft(member(&sender, sender.as_str(), content)?))
    })
    .await?;
    if !joined_before.contains(room_id.as_str())
        && let Some(old) = super::successor::predecessor(services, room_id.as_str()).await?
    {
        super::successor::carry_over(services, requester, &old, room_id.as_str()).await;
    }
    Ok(room_id.to_string())
}

/// For a restricted room (MB-22): a member who may invite, to authorise a join by someone
/// in one of the allowed rooms; `None` if the room is not restricted or the user qualifies
/// through none of them (the rules then refuse the join).
fn restricted_authoriser(
    head: &Head,
    joiner: &OwnedUserId,
    joined_elsewhere: &HashSet<String>,
) -> Option<String> {
    if !matches!(head.join_rule().as_str(), "restricted" | "knock_restricted")
        || !head.rules.authorization.restricted_join_rule
    {
        return None;
    }
    let rules = head.get("m.room.join_rules", "")?.content_value();
    let allowed = rules.get("allow")?.as_array()?.iter().any(|rule| {
        rule.get("type").and_then(Value::as_str) == Some("m.room_membership")
            && rule
                .get("room_id")
                .and_then(Value::as_str)
                .is_some_and(|r| joined_elsewhere.contains(r))
    });
    if !allowed {
        return None;
    }
    let invite = head.level(RoomPowerLevelsIntField::Invite);
    let mut candidates: Vec<&str> = head
        .joined_members()
        .filter(|m| *m != joiner.as_str())
        .collect();
    candidates.sort();
    candidates.into_iter().find_map(|m| {
        let id = OwnedUserId::try_from(m).ok()?;
        (head.power(&id) >= invite).then(|| m.to_owned())
    })
}

/// `POST /rooms/{roomId}/invite`.
pub async fn invite(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    requester.refuse_if_suspended()?;
    spend_allowance(services, requester)?;
    let room_id = parse_room_id(room_id)?;
    super::purge::refuse_if_blocked(services, &room_id).await?;
    let body = optional_object(body)?;
    let invitee = target(&body)?;
    let reason = reason(&body)?;
    let sender = user(&requester.user_id)?;
    if invitee == sender {
        return Err(forbidden("You cannot invite yourself"));
    }
    check_local_invitee(services, &invitee).await?;
    append(services, &room_id, None, move |head| {
        match head.membership(invitee.as_str()) {
            Some("join") => return Err(forbidden("The user is already in the room")),
            Some("ban") => return Err(forbidden("The user is banned from the room")),
            // MB-08: inviting someone already invited succeeds.
            Some("invite") => {
                if let Some(existing) = current_event(head, invitee.as_str()) {
                    return Ok(Planned::Exists(existing));
                }
            }
            _ => {}
        }
        Ok(Planned::Draft(member(
            &sender,
            invitee.as_str(),
            content("invite", reason.clone()),
        )?))
    })
    .await
    .map_err(forbidden_if_unknown)?;
    Ok(())
}

/// `POST /rooms/{roomId}/leave`: leaving, rejecting an invite, or withdrawing a knock.
pub async fn leave(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    spend_allowance(services, requester)?;
    let room_id = parse_room_id(room_id)?;
    let body = optional_object(body)?;
    let reason = reason(&body)?;
    let sender = user(&requester.user_id)?;
    match leave_room(services, &sender, &room_id, reason).await {
        // A client that missed the purge may still show the room: let it go.
        Err(Error::NotFound(_))
            if super::purge::was_purged_for(services, sender.as_str(), &room_id).await? =>
        {
            Ok(())
        }
        done => done,
    }
}

/// The user leaves the room as themselves (rejecting an invite, withdrawing a knock), with
/// no allowance spent: also the admin API's shutdown of a room.
pub(crate) async fn leave_room(
    services: &Services,
    sender: &OwnedUserId,
    room_id: &OwnedRoomId,
    reason: Option<String>,
) -> Result<()> {
    let who = sender.clone();
    append(services, room_id, None, move |head| {
        if head.membership(who.as_str()).is_none() {
            return Err(forbidden("You are not in this room"));
        }
        Ok(Planned::Draft(member(
            &who,
            who.as_str(),
            content("leave", reason.clone()),
        )?))
    })
    .await?;
    // TY-10: leaving ends typing, wherever it was started.
    let now = crate::now_ms();
    if services
        .store
        .set_typing(room_id.as_str(), sender.as_str(), None, now)
        .await?
        .is_some()
    {
        super::wake_members(services, room_id.as_str()).await;
    }
    Ok(())
}

/// Whether `viewer` is `user_id` or shares a joined room with them: who may see another
/// user's presence, or (with `profile.require_shared_room`) their profile.
pub(crate) async fn sees_user(services: &Services, viewer: &str, user_id: &str) -> Result<bool> {
    Ok(viewer == user_id
        || services
            .store
            .room_mates(viewer)
            .await?
            .iter()
            .any(|mate| mate == user_id))
}

/// Deactivation: leaves every room the user is in, rejects every invite and withdraws every
/// knock. A room that refuses (the user was kicked meanwhile) does not stop the others.
pub(crate) async fn leave_everywhere(services: &Services, user_id: &str) -> Result<()> {
    let sender = user(user_id)?;
    for (room, (_, membership)) in current_memberships(services, user_id).await? {
        if !matches!(membership.as_str(), "join" | "invite" | "knock") {
            continue;
        }
        let Ok(room_id) = OwnedRoomId::try_from(room.as_str()) else {
            continue;
        };
        if let Err(err) = leave_room(services, &sender, &room_id, None).await {
            tracing::warn!(%room_id, error = %err, "deactivated user could not leave a room");
        }
    }
    Ok(())
}

/// What a moderator's action asks of the memberships before the rules decide.
#[derive(Clone, Copy)]
enum Moderation {
    /// MB-12: the target must be in the room (joined, invited or knocking).
    Kick,
    /// MB-13: anyone, even a user never in the room.
    Ban,
    /// MB-14: only a banned user.
    Unban,
}

/// A membership one user sets for another (`/kick`, `/ban`, `/unban`).
async fn moderate(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
    action: Moderation,
) -> Result<()> {
    spend_allowance(services, requester)?;
    let room_id = parse_room_id(room_id)?;
    let body = optional_object(body)?;
    let target = target(&body)?;
    let reason = reason(&body)?;
    let sender = user(&requester.user_id)?;
    append(services, &room_id, None, move |head| {
        let theirs = head.membership(target.as_str());
        let membership = match action {
            Moderation::Kick | Moderation::Ban
                if head.membership(sender.as_str()) != Some("join") =>
            {
                return Err(forbidden("You are not in this room"));
            }
            Moderation::Kick if !matches!(theirs, Some("join" | "invite" | "knock")) => {
                return Err(forbidden("The user is not in the room"));
            }
            Moderation::Unban if theirs != Some("ban") => {
                return Err(forbidden("The user is not banned"));
            }
            Moderation::Ban => "ban",
            Moderation::Kick | Moderation::Unban => "leave",
        };
        Ok(Planned::Draft(member(
            &sender,
            target.as_str(),
            content(membership, reason.clone()),
        )?))
    })
    .await
    .map_err(forbidden_if_unknown)?;
    Ok(())
}

/// `POST /rooms/{roomId}/kick`: the target leaves, by the sender's hand.
pub async fn kick(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    moderate(services, requester, room_id, body, Moderation::Kick).await
}

/// `POST /rooms/{roomId}/ban`.
pub async fn ban(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    moderate(services, requester, room_id, body, Moderation::Ban).await
}

/// `POST /rooms/{roomId}/unban`: the target's membership becomes `leave`.
pub async fn unban(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    moderate(services, requester, room_id, body, Moderation::Unban).await
}

/// `POST /knock/{roomIdOrAlias}` (MB-20): the room's ID.
pub async fn knock(
    services: &Services,
    requester: &Requester,
    id_or_alias: &str,
    body: &[u8],
) -> Result<String> {
    requester.refuse_if_suspended()?;
    spend_allowance(services, requester)?;
    let body = optional_object(body)?;
    let reason = reason(&body)?;
    let room_id = resolve_room(services, id_or_alias).await?;
    super::purge::refuse_if_blocked(services, &room_id).await?;
    let sender = user(&requester.user_id)?;
    append(services, &room_id, None, move |head| {
        match head.membership(sender.as_str()) {
            Some("join") => return Err(forbidden("You are already in the room")),
            Some("invite") => return Err(forbidden("You are already invited to the room")),
            Some("ban") => return Err(forbidden("You are banned from this room")),
            Some("knock") => {
                if let Some(existing) = current_event(head, sender.as_str()) {
                    return Ok(Planned::Exists(existing));
                }
            }
            _ => {}
        }
        Ok(Planned::Draft(member(
            &sender,
            sender.as_str(),
            content("knock", reason.clone()),
        )?))
    })
    .await?;
    Ok(room_id.to_string())
}

/// The user's latest membership in each room they ever had one in.
pub async fn current_memberships(
    services: &Services,
    user_id: &str,
) -> Result<BTreeMap<String, (u64, String)>> {
    let log = services.store.memberships(user_id, u64::MAX).await?;
    let mut latest = BTreeMap::new();
    for change in log {
        latest.insert(change.room_id, (change.pos, change.membership));
    }
    Ok(latest)
}

async fn joined_rooms_set(services: &Services, user_id: &str) -> Result<HashSet<String>> {
    Ok(current_memberships(services, user_id)
        .await?
        .into_iter()
        .filter(|(_, (_, m))| m == "join")
        .map(|(room, _)| room)
        .collect())
}

/// The rooms the user has joined, sorted.
pub(crate) async fn joined_room_ids(services: &Services, user_id: &str) -> Result<Vec<String>> {
    let mut rooms: Vec<String> = joined_rooms_set(services, user_id)
        .await?
        .into_iter()
        .collect();
    rooms.sort();
    Ok(rooms)
}

/// `GET /joined_rooms` (MB-27): joined rooms only.
pub async fn joined_rooms(services: &Services, requester: &Requester) -> Result<Vec<String>> {
    Ok(joined_rooms_set(services, &requester.user_id)
        .await?
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// `POST /rooms/{roomId}/forget` (MB-16): not while joined, invited or knocking.
pub async fn forget(services: &Services, requester: &Requester, room_id: &str) -> Result<()> {
    let room_id: OwnedRoomId = parse_room_id(room_id)?;
    let room: &RoomId = &room_id;
    if services.store.room(room.as_str()).await?.is_none() {
        if super::purge::was_purged_for(services, &requester.user_id, room).await? {
            return Ok(());
        }
        return Err(not_found("Unknown room"));
    }
    let current = current_memberships(services, &requester.user_id).await?;
    if let Some((_, membership)) = current.get(room.as_str())
        && matches!(membership.as_str(), "join" | "invite" | "knock")
    {
        return Err(Error::Unknown(
            "You must leave the room before forgetting it".into(),
        ));
    }
    services
        .store
        .forget_room(&requester.user_id, room.as_str())
        .await?;
    Ok(())
}
