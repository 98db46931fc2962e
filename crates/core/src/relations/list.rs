//! `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` (`relations.yaml`)
//! and `GET /rooms/{roomId}/threads` (`threads_list.yaml`). Both page by room-stream
//! position, with the tokens `/messages` and `/sync` use.

use myelin_store::{RelationsQuery, StoredEvent};
use serde::Serialize;

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, invalid_param, not_found},
    events::client::ClientEvent,
    rooms::{
        parse_room_id,
        read::{access, parse_room_token, room_token, serve_all, serve_redacting},
    },
};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;
/// How many levels of relations `recurse=true` follows (the spec asks for at least 3).
const RECURSION_DEPTH: u8 = 3;
/// The most events whose children a recursive read follows.
const MAX_RECURSED_PARENTS: usize = 10_000;

/// What `/relations` is asked.
#[derive(Debug, Default)]
pub struct RelationsRequest<'a> {
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: Option<usize>,
    pub backward: bool,
    pub recurse: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Relations {
    pub chunk: Vec<ClientEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursion_depth: Option<u8>,
}

/// An unknown parent and one the reader may not see are both 404 (RL-03).
fn hidden() -> Error {
    not_found("Event not found")
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}...` (RL-01..03).
pub async fn relations(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_id: &str,
    request: RelationsRequest<'_>,
) -> Result<Relations> {
    let room = parse_room_id(room_id)?;
    crate::ids::check_event_id(event_id)?;
    let from = request.from.map(parse_room_token).transpose()?;
    let to = request.to.map(parse_room_token).transpose()?;
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let access = access(services, room.as_str(), &requester.user_id)
        .await
        .map_err(|e| match e {
            Error::Forbidden(_) => hidden(),
            other => other,
        })?;
    services
        .store
        .event(event_id)
        .await?
        .filter(|e| e.room_id == room.as_str() && e.pos <= access.cap)
        .filter(|e| access.visibility.can_see(e))
        .ok_or_else(hidden)?;
    let mut parents = vec![event_id.to_owned()];
    if request.recurse == Some(true) {
        let mut level = parents.clone();
        for _ in 1..RECURSION_DEPTH {
            let children = services
                .store
                .child_ids(room.as_str(), &level, access.cap)
                .await?;
            if children.is_empty() || parents.len() + children.len() > MAX_RECURSED_PARENTS {
                break;
            }
            parents.extend(children.iter().cloned());
            level = children;
        }
    }
    let mut found = services
        .store
        .relations(RelationsQuery {
            room_id: room.to_string(),
            parents,
            rel_type: request.rel_type.map(str::to_owned),
            event_type: request.event_type.map(str::to_owned),
            from,
            to,
            backward: request.backward,
            limit: limit + 1,
            upto: access.cap,
            ignored: crate::account_data::ignored_users(services, &requester.user_id)
                .await?
                .into_iter()
                .collect(),
        })
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next_batch = found.last().filter(|_| more).map(|last| {
        room_token(if request.backward {
            last.pos.saturating_sub(1)
        } else {
            last.pos
        })
    });
    let visible: Vec<&StoredEvent> = found
        .iter()
        .filter(|e| access.visibility.can_see(e))
        .collect();
    Ok(Relations {
        chunk: serve_all(services, requester, &access, &visible, true).await?,
        next_batch,
        prev_batch: request.from.map(str::to_owned),
        recursion_depth: request.recurse.map(|r| if r { RECURSION_DEPTH } else { 1 }),
    })
}

#[derive(Debug, Serialize)]
pub struct Threads {
    pub chunk: Vec<ClientEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_batch: Option<String>,
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads` (RL-07): thread roots, the one with the
/// latest reply first, each with its thread summary.
pub async fn threads(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    include: Option<&str>,
    limit: Option<usize>,
    from: Option<&str>,
) -> Result<Threads> {
    let room = parse_room_id(room_id)?;
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let participated = match include {
        None | Some("all") => false,
        Some("participated") => true,
        Some(_) => return Err(invalid_param("include must be all or participated")),
    };
    let before = from.map(parse_room_token).transpose()?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let access = access(services, room.as_str(), &requester.user_id).await?;
    // threads_list.yaml: a banned user is refused, where one who left reads up to the leave.
    if matches!(access.visibility.current(), Some((_, "ban"))) {
        return Err(forbidden("You are banned from this room"));
    }
    let mut roots = services
        .store
        .threads(
            room.as_str(),
            participated.then_some(requester.user_id.as_str()),
            before,
            access.cap,
            limit + 1,
        )
        .await?;
    let more = roots.len() > limit;
    roots.truncate(limit);
    let next_batch = roots
        .last()
        .filter(|_| more)
        .map(|(_, latest)| room_token(*latest));
    let ids: Vec<String> = roots.iter().map(|(id, _)| id.clone()).collect();
    let stored = services.store.events_by_id(&ids).await?;
    let ordered: Vec<&StoredEvent> = ids
        .iter()
        .filter_map(|id| stored.iter().find(|e| &e.event_id == id))
        .filter(|e| e.room_id == room.as_str() && e.pos <= access.cap)
        .filter(|e| access.visibility.can_see(e))
        .collect();
    // A root an ignored user sent is served redacted, as a client aggregating the thread
    // itself would show it (threads_list.yaml).
    let ignored = crate::account_data::ignored_users(services, &requester.user_id).await?;
    Ok(Threads {
        chunk: serve_redacting(services, requester, &access, &ordered, true, &ignored).await?,
        next_batch,
    })
}
