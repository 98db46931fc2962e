//! Reading rooms: single events, state and members (`rooms.yaml`); the timeline reads
//! (`/messages`, `/context`) are in [`super::timeline`].
//!
//! Every read is bounded twice: by the committed watermark of the room stream, and by what
//! the reader may see. A member reads up to now; a user who left reads up to their leave
//! and nothing after (ST-10, ST-13, TL-11); anyone reads a world-readable room; everyone
//! else gets 403. Within that bound each event is judged by [`Visibility`].

use std::collections::{HashMap, HashSet};

use myelin_store::{StoredEvent, Stream};
use ruma_common::room_version_rules::RoomVersionRules;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{parse_room_id, visibility::Visibility};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, invalid_param, not_found},
    events::{
        client::{self, ClientEvent, Reader},
        version_rules,
    },
    sync::SyncToken,
};

/// Room-stream tokens (`/messages` `start`/`end`, `/sync` `prev_batch`): the position between
/// the events at or before it and those after. A `/sync` token names the same point.
pub fn room_token(pos: u64) -> String {
    format!("r{pos}")
}

pub fn parse_room_token(token: &str) -> Result<u64> {
    if let Some(pos) = token.strip_prefix('r')
        && !pos.is_empty()
        && pos.bytes().all(|b| b.is_ascii_digit())
    {
        return pos
            .parse()
            .map_err(|_| invalid_param("Invalid pagination token"));
    }
    SyncToken::parse(token)
        .map(|t| t.get(Stream::RoomEvents))
        .map_err(|_| invalid_param("Invalid pagination token"))
}

/// What a user may read of a room.
pub(crate) struct Access {
    /// The last position the reader may see (their leave, or now).
    pub cap: u64,
    /// Whether the reader is a member now (reads the current state).
    pub joined: bool,
    pub visibility: Visibility,
    pub rules: RoomVersionRules,
}

pub(crate) async fn access(services: &Services, room_id: &str, user_id: &str) -> Result<Access> {
    let now = services.store.positions().await?.get(Stream::RoomEvents);
    let version = super::room_version(services, room_id)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => forbidden("You are not in this room"),
            other => other,
        })?;
    let (_, rules) = version_rules(&version)
        .ok_or_else(|| Error::Internal(format!("room version {version}").into()))?;
    let visibility = Visibility::load(services, room_id, user_id, now).await?;
    let (cap, joined) = match visibility.current() {
        Some((_, "join")) => (now, true),
        current => {
            if let Some((pos, _)) = current {
                let forgotten = services
                    .store
                    .forgotten_rooms(user_id)
                    .await?
                    .into_iter()
                    .any(|(room, at)| room == room_id && at >= pos);
                if forgotten {
                    return Err(forbidden("You forgot this room"));
                }
            }
            if visibility.world_readable_at(now) {
                (now, false)
            } else if let Some(until) = visibility.joined_until() {
                // A user who left reads the room up to their leave, however their membership
                // changed since (ST-10, ST-18).
                (until, false)
            } else {
                return Err(forbidden("You are not allowed to see this room"));
            }
        }
    };
    Ok(Access {
        cap,
        joined,
        visibility,
        rules,
    })
}

/// A server admin reads the current state whatever their membership (the admin API's room
/// views). `NotFound` for a room this server does not know.
pub(crate) async fn admin_access(
    services: &Services,
    room_id: &str,
    user_id: &str,
) -> Result<Access> {
    let now = services.store.positions().await?.get(Stream::RoomEvents);
    let version = super::room_version(services, room_id).await?;
    let (_, rules) = version_rules(&version)
        .ok_or_else(|| Error::Internal(format!("room version {version}").into()))?;
    let visibility = Visibility::load(services, room_id, user_id, now).await?;
    Ok(Access {
        cap: now,
        joined: true,
        visibility,
        rules,
    })
}

/// The events serving `events` refers to (replaced state, redactions), by ID.
pub(crate) async fn related(
    services: &Services,
    events: &[&StoredEvent],
) -> Result<HashMap<String, StoredEvent>> {
    let ids = client::related_ids(events.iter().copied());
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(services
        .store
        .events_by_id(&ids)
        .await?
        .into_iter()
        .map(|e| (e.event_id.clone(), e))
        .collect())
}

/// Serves events for one reader of one room, in the order given.
pub(crate) async fn serve_all(
    services: &Services,
    requester: &Requester,
    access: &Access,
    events: &[&StoredEvent],
    with_room_id: bool,
) -> Result<Vec<ClientEvent>> {
    serve_redacting(
        services,
        requester,
        access,
        events,
        with_room_id,
        &HashSet::new(),
    )
    .await
}

/// [`serve_all`], with the events of `senders` served redacted as well as erased users'.
pub(crate) async fn serve_redacting(
    services: &Services,
    requester: &Requester,
    access: &Access,
    events: &[&StoredEvent],
    with_room_id: bool,
    senders: &HashSet<String>,
) -> Result<Vec<ClientEvent>> {
    let related = related(services, events).await?;
    let mut erased = super::erasure::for_reader(services, &access.visibility).await?;
    erased.extend(senders.iter().cloned());
    let reader = Reader {
        user_id: &requester.user_id,
        device_id: requester.device_id.as_deref(),
        now_ms: crate::now_ms(),
        with_room_id,
        related: &related,
        redaction: &access.rules.redaction,
        visible_upto: access.cap,
        erased: &erased,
    };
    let mut served = events
        .iter()
        .map(|e| client::serve(e, &reader, Some(access.visibility.membership_at(e.pos))))
        .collect::<Result<Vec<_>>>()?;
    crate::relations::bundle::attach(services, &reader, events, &mut served).await?;
    Ok(served)
}

/// `GET /rooms/{roomId}/event/{eventId}` (ST-12): unknown and invisible are both 404.
pub async fn get_event(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_id: &str,
) -> Result<ClientEvent> {
    let room = parse_room_id(room_id)?;
    crate::ids::check_event_id(event_id)?;
    let hidden = || not_found("Event not found");
    let access = access(services, room.as_str(), &requester.user_id)
        .await
        .map_err(|e| match e {
            Error::Forbidden(_) => hidden(),
            other => other,
        })?;
    let event = services
        .store
        .event(event_id)
        .await?
        .filter(|e| e.room_id == room.as_str() && e.pos <= access.cap)
        .filter(|e| access.visibility.can_see(e))
        .ok_or_else(hidden)?;
    serve_all(services, requester, &access, &[&event], true)
        .await?
        .pop()
        .ok_or_else(hidden)
}

/// The state the reader sees: the current state for members, the state at their leave for
/// those who left.
async fn readable_state(
    services: &Services,
    room_id: &str,
    access: &Access,
    event_type: Option<&str>,
) -> Result<Vec<StoredEvent>> {
    let at = (!access.joined).then_some(access.cap);
    Ok(services.store.state_at(room_id, at, event_type).await?)
}

/// `GET /rooms/{roomId}/state` (ST-11).
pub async fn get_state(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<Vec<ClientEvent>> {
    let room = parse_room_id(room_id)?;
    let access = access(services, room.as_str(), &requester.user_id).await?;
    let state = readable_state(services, room.as_str(), &access, None).await?;
    let refs: Vec<&StoredEvent> = state.iter().collect();
    serve_all(services, requester, &access, &refs, true).await
}

/// What `GET /rooms/{roomId}/state/{type}/{key}` answers: the content, or the whole event
/// with `format=event` (ST-09).
pub enum StateEvent {
    Content(Box<RawValue>),
    Event(Box<ClientEvent>),
}

pub async fn get_state_event(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    as_event: bool,
) -> Result<StateEvent> {
    let room = parse_room_id(room_id)?;
    crate::ids::check_event_type(event_type)?;
    crate::ids::check_state_key(state_key)?;
    let access = access(services, room.as_str(), &requester.user_id).await?;
    let state = readable_state(services, room.as_str(), &access, Some(event_type)).await?;
    let event = state
        .into_iter()
        .find(|e| e.state_key.as_deref() == Some(state_key))
        .ok_or_else(|| not_found("No such state event"))?;
    let mut served = serve_all(services, requester, &access, &[&event], true).await?;
    let served = served
        .pop()
        .ok_or_else(|| not_found("No such state event"))?;
    Ok(if as_event {
        StateEvent::Event(Box::new(served))
    } else {
        StateEvent::Content(served.content)
    })
}

/// `GET /rooms/{roomId}/members` (ST-13, ST-14).
pub async fn members(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    at: Option<&str>,
    membership: Option<&str>,
    not_membership: Option<&str>,
) -> Result<Vec<ClientEvent>> {
    let room = parse_room_id(room_id)?;
    let access = access(services, room.as_str(), &requester.user_id).await?;
    let at = at.map(parse_room_token).transpose()?;
    if let Some(at) = at
        && !access.visibility.can_see_point(at)
    {
        return Err(forbidden("You may not see the room at that point"));
    }
    let pos = match at {
        Some(at) => Some(at.min(access.cap)),
        None => (!access.joined).then_some(access.cap),
    };
    let members = services
        .store
        .state_at(room.as_str(), pos, Some("m.room.member"))
        .await?;
    let rules = &access.rules.redaction;
    let mut kept = Vec::new();
    for event in &members {
        let value = client::content_value(event, rules)?;
        let current = value["membership"].as_str().unwrap_or_default();
        let keep = match (membership, not_membership) {
            (None, None) => true,
            (Some(m), None) => current == m,
            (None, Some(n)) => current != n,
            // Given together, the two make an "or" (rooms.yaml).
            (Some(m), Some(n)) => current == m || current != n,
        };
        if keep {
            kept.push(event);
        }
    }
    serve_all(services, requester, &access, &kept, true).await
}

#[derive(Debug, Serialize)]
pub struct JoinedMember {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// `GET /rooms/{roomId}/joined_members` (ST-15): members only.
pub async fn joined_members(
    services: &Services,
    requester: &Requester,
    room_id: &str,
) -> Result<HashMap<String, JoinedMember>> {
    let room = parse_room_id(room_id)?;
    let access = access(services, room.as_str(), &requester.user_id).await?;
    if !access.joined {
        return Err(forbidden("You are not in this room"));
    }
    let members = services
        .store
        .state_at(room.as_str(), None, Some("m.room.member"))
        .await?;
    let mut joined = HashMap::new();
    for event in &members {
        let value = client::content_value(event, &access.rules.redaction)?;
        if value["membership"] == "join"
            && let Some(user) = &event.state_key
        {
            joined.insert(
                user.clone(),
                JoinedMember {
                    display_name: value["displayname"].as_str().map(str::to_owned),
                    avatar_url: value["avatar_url"].as_str().map(str::to_owned),
                },
            );
        }
    }
    Ok(joined)
}
