//! The rooms sections of `/sync`: which rooms go where (`join`, `invite`, `leave`, `knock`),
//! from the user's membership log.
//!
//! Invariants (on top of the module docs of `sync`):
//! - **The window is `(since, next_batch]` of the room stream**, for every room and for the
//!   membership log alike; nothing committed later is read, so the next sync delivers it.
//! - **Membership decides the section, as of `next_batch`.** A room whose latest membership
//!   is `join` is joined; one newly joined in the window (or left and rejoined, RS-22) gets
//!   its full state (RS-11). A room left in the window appears once in `leave`, with its
//!   timeline up to the leave (RS-17, RS-20); left before `since`, never again (RS-19).
//!   Initial syncs list left rooms only with `include_leave`, and never forgotten ones
//!   (RS-18, RS-24).
//! - **A room with nothing new is absent** from an incremental sync (RS-05).
//!
//! What a joined or left room carries (timeline, state, summary) is in [`super::room`].

use std::collections::{BTreeMap, HashMap, HashSet};

use myelin_store::{LazyMembers, MembershipChange, Stream};

use super::{
    filter::{Filter, RoomFilter},
    response::{InvitedRoom, KnockedRoom, StrippedState, SyncResponse},
    room::{self, StateMode, Window},
    token::SyncToken,
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result},
    events::{client, version_rules},
    rooms::visibility::joined_until,
};

/// Types kept in stripped state (`invite_state`, `knock_state`; MB-07).
const STRIPPED_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.encryption",
];

/// Up to this many joined rooms, an incremental sync reads each one's timeline rather than
/// first asking which have new events.
const FEW_ROOMS: usize = 2;

/// Which rooms went into the response, for the per-room account data.
#[derive(Debug, Default)]
pub(super) struct RoomSets {
    pub joined: HashSet<String>,
    /// Joined rooms that get all their account data, not only the changes.
    pub newly_joined: HashSet<String>,
    pub left: HashSet<String>,
    /// Lazy-loaded members the response sends, to record for the device.
    pub lazy: Vec<LazyMembers>,
}

pub(super) async fn fill(
    services: &Services,
    requester: &Requester,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
    full_state: bool,
    response: &mut SyncResponse,
) -> Result<RoomSets> {
    let user_id = requester.user_id.as_str();
    let end = upto.get(Stream::RoomEvents);
    let since = from.map(|f| f.get(Stream::RoomEvents));
    let log = services.store.memberships(user_id, end).await?;
    let mut by_room: BTreeMap<&str, Vec<&MembershipChange>> = BTreeMap::new();
    for change in &log {
        by_room.entry(&change.room_id).or_default().push(change);
    }
    let room_filter: RoomFilter = filter.room.clone().unwrap_or_default();
    let incremental = since.filter(|_| !full_state);
    // Which joined rooms have new events: one query over the window, unless the user is in
    // so few rooms that reading each one's timeline costs no more (the room then comes back
    // empty and is left out).
    let joined_rooms = by_room
        .values()
        .filter(|c| c.last().is_some_and(|m| m.membership == "join"))
        .count();
    let active: Option<HashSet<String>> = match incremental {
        Some(since) if end > since && joined_rooms > FEW_ROOMS => Some(
            services
                .store
                .rooms_with_events(since, end)
                .await?
                .into_iter()
                .map(|(room, _)| room)
                .collect(),
        ),
        Some(since) if end > since => None,
        _ => Some(HashSet::new()),
    };
    let forgotten: HashMap<String, u64> = if incremental.is_none() {
        services
            .store
            .forgotten_rooms(user_id)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let mut sets = RoomSets::default();
    for (room_id, changes) in by_room {
        if !room_filter.allows_room(room_id) {
            continue;
        }
        let Some(last) = changes.last() else {
            continue;
        };
        let in_window: Vec<&&MembershipChange> = changes
            .iter()
            .filter(|c| since.is_none_or(|s| c.pos > s))
            .collect();
        let changed = !in_window.is_empty();
        let at_since = since.and_then(|s| changes.iter().rev().find(|c| c.pos <= s));
        let joined_at_since = at_since.is_some_and(|c| c.membership == "join");
        let joined_in_window = in_window.iter().any(|c| c.membership == "join");
        let memberships: Vec<(u64, String)> = changes
            .iter()
            .map(|c| (c.pos, c.membership.clone()))
            .collect();
        match last.membership.as_str() {
            "join" => {
                let newly = since.is_none()
                    || !joined_at_since
                    || in_window.iter().any(|c| c.membership != "join");
                if incremental.is_some()
                    && !newly
                    && active.as_ref().is_some_and(|a| !a.contains(room_id))
                {
                    sets.joined.insert(room_id.to_owned());
                    continue;
                }
                let window = Window {
                    // A room left and joined again in the window gets its full state, but
                    // not again the events the last sync delivered (RS-22).
                    since: match incremental {
                        Some(since) if !newly || joined_at_since => Some(since),
                        _ => None,
                    },
                    end,
                    state: if newly || full_state {
                        StateMode::Full
                    } else {
                        StateMode::Delta
                    },
                };
                let joined = room::joined(
                    services,
                    requester,
                    room_id,
                    memberships,
                    window,
                    &room_filter,
                    filter,
                )
                .await;
                let (joined, lazy) = match joined {
                    // Purged since its memberships were read: the next sync says so.
                    Err(err @ Error::NotFound(_)) => {
                        vanished(services, room_id, err).await?;
                        continue;
                    }
                    other => other?,
                };
                sets.lazy.extend(lazy);
                sets.joined.insert(room_id.to_owned());
                if newly && since.is_some() {
                    sets.newly_joined.insert(room_id.to_owned());
                }
                if let Some(joined) = joined {
                    response.rooms.join.insert(room_id.to_owned(), joined);
                }
            }
            "invite" | "knock" if since.is_none() || changed || full_state => {
                let stripped = match stripped_state(services, room_id, last).await {
                    Err(err @ Error::NotFound(_)) => {
                        vanished(services, room_id, err).await?;
                        continue;
                    }
                    other => other?,
                };
                // IG-05 (MB-26): an invite from an ignored user is not delivered.
                let from_ignored = stripped.events.iter().any(|e| {
                    e.kind == "m.room.member"
                        && e.state_key == user_id
                        && filter.ignored.contains(&e.sender)
                });
                if last.membership == "invite" && (from_ignored || filter.invites_blocked) {
                    continue;
                }
                if last.membership == "invite" {
                    response.rooms.invite.insert(
                        room_id.to_owned(),
                        InvitedRoom {
                            invite_state: stripped,
                        },
                    );
                } else {
                    response.rooms.knock.insert(
                        room_id.to_owned(),
                        KnockedRoom {
                            knock_state: stripped,
                        },
                    );
                }
            }
            "leave" | "ban" => {
                let include = match incremental {
                    Some(_) => changed,
                    None => {
                        room_filter.include_leave == Some(true)
                            && forgotten.get(room_id).is_none_or(|at| *at < last.pos)
                    }
                };
                if !include {
                    continue;
                }
                let until = joined_until(&memberships);
                let window = match (incremental, until) {
                    // Left before `since`, and banned or re-invited-then-rejected since:
                    // only their own membership events, nothing of the room's state.
                    (Some(since), Some(until)) if until <= since => Window {
                        since: Some(since),
                        end: last.pos,
                        state: StateMode::None,
                    },
                    // Their stay ended in the window: up to its end, and nothing after it
                    // (RS-20), whatever their membership became later.
                    (_, Some(until)) => Window {
                        since: incremental.filter(|_| joined_at_since && !joined_in_window),
                        end: until,
                        state: if incremental.is_some() && joined_at_since && !joined_in_window {
                            StateMode::Delta
                        } else {
                            StateMode::Full
                        },
                    },
                    // Never joined (a rejected invite, a withdrawn knock): their own events.
                    (_, None) => Window {
                        since: incremental,
                        end: last.pos,
                        state: StateMode::None,
                    },
                };
                let left = match room::left(
                    services,
                    requester,
                    room_id,
                    memberships,
                    window,
                    &room_filter,
                    filter,
                )
                .await
                {
                    Err(err @ Error::NotFound(_)) => {
                        vanished(services, room_id, err).await?;
                        continue;
                    }
                    other => other?,
                };
                sets.left.insert(room_id.to_owned());
                response.rooms.leave.insert(room_id.to_owned(), left);
            }
            _ => {}
        }
    }
    // Rooms the operator purged while the user was in them: gone from the log, they are
    // left once, empty, so that clients drop them (initial syncs never list them).
    if let Some(since) = since {
        for purged in services.store.purged_rooms(user_id, since, end).await? {
            let room_id = purged.room_id;
            if !room_filter.allows_room(&room_id) || response.rooms.join.contains_key(&room_id) {
                continue;
            }
            sets.left.insert(room_id.clone());
            response.rooms.leave.entry(room_id).or_default();
        }
    }
    Ok(sets)
}

/// A room that was not found while its section was built: fine if it is gone (purged since
/// the memberships were read; the next sync says so), else the error stands.
async fn vanished(services: &Services, room_id: &str, err: Error) -> Result<()> {
    if services.store.room(room_id).await?.is_none() {
        Ok(())
    } else {
        Err(err)
    }
}

/// The stripped state an invitee or knocker sees (MB-07, RS-16): the room's description as
/// of their membership, with their own member event.
async fn stripped_state(
    services: &Services,
    room_id: &str,
    membership: &MembershipChange,
) -> Result<StrippedState> {
    let version = crate::rooms::room_version(services, room_id).await?;
    let Some((_, rules)) = version_rules(&version) else {
        return Ok(StrippedState::default());
    };
    let state = services
        .store
        .state_at(room_id, Some(membership.pos), None)
        .await?;
    let events = state
        .iter()
        .filter(|e| {
            STRIPPED_TYPES.contains(&e.event_type.as_str()) || e.event_id == membership.event_id
        })
        .map(|e| client::stripped(e, &rules.redaction, e.event_id == membership.event_id))
        .collect::<Result<_>>()?;
    Ok(StrippedState { events })
}
