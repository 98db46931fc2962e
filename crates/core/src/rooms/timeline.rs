//! Timeline reads: `/messages` (`message_pagination.yaml`) and `/context`
//! (`event_context.yaml`), bounded like every read (see [`super::read`]).

use myelin_store::StoredEvent;
use serde::Serialize;

use super::{
    parse_room_id,
    read::{Access, access, parse_room_token, room_token, serve_all},
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, forbidden, not_found},
    events::client::ClientEvent,
    sync::EventFilter,
};

/// Largest page of `/messages` (the reference server's `MAX_LIMIT`).
const MAX_LIMIT: usize = 1000;
/// Batches one page looks at before it answers with what it found and where it stopped
/// (an `end` to go on from), so a filter matching nothing never scans a whole room.
const MAX_ROUNDS: usize = 10;

/// Pages through a room's events in `(after, upto]`, keeping those the reader may see and
/// the filter allows, until `limit` are found or there are no more. Returns them (newest
/// first when `backward`) and whether the range has more events to page through.
pub(crate) async fn page(
    services: &Services,
    room_id: &str,
    access: &Access,
    filter: &EventFilter,
    (after, upto): (Option<u64>, u64),
    limit: usize,
    backward: bool,
) -> Result<(Vec<StoredEvent>, Option<u64>)> {
    let batch = (limit * 2).clamp(20, 500);
    let (mut after, mut upto) = (after, upto);
    let mut found = Vec::new();
    for _ in 0..MAX_ROUNDS {
        if after.is_some_and(|a| a >= upto) {
            return Ok((found, None));
        }
        let events = services
            .store
            .room_events(room_id, after, upto, batch, backward)
            .await?;
        let exhausted = events.len() < batch;
        for event in events {
            let pos = event.pos;
            if access.visibility.can_see(&event) && filter.allows_event(&event) {
                found.push(event);
            }
            if backward {
                upto = pos.saturating_sub(1);
            } else {
                after = Some(pos);
            }
            if found.len() == limit {
                // The point after the last event looked at: the next page starts there.
                let next = if backward { upto } else { pos };
                return Ok((found, Some(next)));
            }
        }
        if exhausted {
            return Ok((found, None));
        }
    }
    let next = if backward {
        upto
    } else {
        after.unwrap_or(upto)
    };
    Ok((found, Some(next)))
}

/// What `/messages` answers.
#[derive(Debug, Serialize)]
pub struct Messages {
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub chunk: Vec<ClientEvent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<ClientEvent>,
}

pub struct MessagesQuery<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub backward: bool,
    pub limit: Option<usize>,
    pub filter: Option<&'a str>,
}

/// The request's filter, with the reader's ignored users left out (IG-02).
async fn parse_filter(
    services: &Services,
    user_id: &str,
    filter: Option<&str>,
) -> Result<EventFilter> {
    let mut filter = match filter {
        None | Some("") => EventFilter::default(),
        Some(f) => EventFilter::parse_room_event_filter(f)?,
    };
    let ignored = crate::account_data::ignored_users(services, user_id).await?;
    if !ignored.is_empty() {
        filter.ignored = Some(std::sync::Arc::new(ignored));
    }
    Ok(filter)
}

/// `GET /rooms/{roomId}/messages` (TL-01..12).
pub async fn messages(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    query: MessagesQuery<'_>,
) -> Result<Messages> {
    let room = parse_room_id(room_id)?;
    let filter = parse_filter(services, &requester.user_id, query.filter).await?;
    let from = query.from.map(parse_room_token).transpose()?;
    let to = query.to.map(parse_room_token).transpose()?;
    let limit = query.limit.unwrap_or(10).clamp(1, MAX_LIMIT);
    let access = access(services, room.as_str(), &requester.user_id).await?;
    if !filter.allows_room(room.as_str()) {
        let start = room_token(from.unwrap_or(access.cap));
        return Ok(Messages {
            start,
            end: None,
            chunk: Vec::new(),
            state: Vec::new(),
        });
    }
    let (start, range) = if query.backward {
        let from = from.unwrap_or(access.cap);
        (from, (to, from.min(access.cap)))
    } else {
        let from = from.unwrap_or(0);
        let upto = to.unwrap_or(access.cap).min(access.cap);
        (from, (Some(from), upto))
    };
    let (events, next) = if range.0.is_some_and(|a| a >= range.1) {
        (Vec::new(), None)
    } else {
        page(
            services,
            room.as_str(),
            &access,
            &filter,
            range,
            limit,
            query.backward,
        )
        .await?
    };
    let refs: Vec<&StoredEvent> = events.iter().collect();
    let chunk = serve_all(services, requester, &access, &refs, true).await?;
    let state = if filter.lazy_members() {
        lazy_members(services, requester, room.as_str(), &access, &refs).await?
    } else {
        Vec::new()
    };
    Ok(Messages {
        start: room_token(start),
        end: next.map(room_token),
        chunk,
        state,
    })
}

/// The member events of the senders of `events`, as of the reader's bound (TL-09).
async fn lazy_members(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    access: &Access,
    events: &[&StoredEvent],
) -> Result<Vec<ClientEvent>> {
    let mut senders: Vec<&str> = events.iter().map(|e| e.sender.as_str()).collect();
    senders.sort();
    senders.dedup();
    if senders.is_empty() {
        return Ok(Vec::new());
    }
    let at = events.iter().map(|e| e.pos).max();
    let members = services
        .store
        .state_at(room_id, at.or(Some(access.cap)), Some("m.room.member"))
        .await?;
    let wanted: Vec<&StoredEvent> = members
        .iter()
        .filter(|m| m.state_key.as_deref().is_some_and(|k| senders.contains(&k)))
        .collect();
    serve_all(services, requester, access, &wanted, true).await
}

/// What `/context` answers.
#[derive(Debug, Serialize)]
pub struct Context {
    pub event: ClientEvent,
    pub events_before: Vec<ClientEvent>,
    pub events_after: Vec<ClientEvent>,
    pub state: Vec<ClientEvent>,
    pub start: String,
    pub end: String,
}

/// `GET /rooms/{roomId}/context/{eventId}` (TL-15..17): 403 when the reader may not see
/// the event, 404 when there is none (TL-16).
pub async fn context(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_id: &str,
    limit: Option<usize>,
    filter: Option<&str>,
) -> Result<Context> {
    let room = parse_room_id(room_id)?;
    crate::ids::check_event_id(event_id)?;
    let filter = parse_filter(services, &requester.user_id, filter).await?;
    let limit = limit.unwrap_or(10).min(MAX_LIMIT);
    let access = access(services, room.as_str(), &requester.user_id).await?;
    let event = services
        .store
        .event(event_id)
        .await?
        .filter(|e| e.room_id == room.as_str())
        .ok_or_else(|| not_found("Event not found"))?;
    if event.pos > access.cap || !access.visibility.can_see(&event) {
        return Err(forbidden("You may not see this event"));
    }
    let before_limit = limit / 2;
    let after_limit = limit - before_limit;
    let (before, _) = if before_limit == 0 || event.pos == 0 {
        (Vec::new(), None)
    } else {
        page(
            services,
            room.as_str(),
            &access,
            &filter,
            (None, event.pos - 1),
            before_limit,
            true,
        )
        .await?
    };
    let (after, _) = if after_limit == 0 || event.pos >= access.cap {
        (Vec::new(), None)
    } else {
        page(
            services,
            room.as_str(),
            &access,
            &filter,
            (Some(event.pos), access.cap),
            after_limit,
            false,
        )
        .await?
    };
    let start = before.last().map_or(event.pos - 1, |e| e.pos - 1);
    let end = after.last().map_or(event.pos, |e| e.pos);
    let last = after.last().unwrap_or(&event);
    let state_events = services
        .store
        .state_at(room.as_str(), Some(last.pos), None)
        .await?;
    let mut in_window: Vec<&StoredEvent> = before.iter().collect();
    in_window.push(&event);
    in_window.extend(after.iter());
    let state: Vec<&StoredEvent> = if filter.lazy_members() {
        let senders: Vec<&str> = in_window.iter().map(|e| e.sender.as_str()).collect();
        state_events
            .iter()
            .filter(|s| {
                s.event_type == "m.room.member"
                    && s.state_key.as_deref().is_some_and(|k| senders.contains(&k))
            })
            .collect()
    } else {
        state_events.iter().collect()
    };
    let mut all: Vec<&StoredEvent> = in_window.clone();
    all.extend(state.iter().copied());
    let mut served = serve_all(services, requester, &access, &all, true).await?;
    let state = served.split_off(in_window.len());
    let events_after = served.split_off(before.len() + 1);
    let event = served
        .pop()
        .ok_or_else(|| Error::Internal("context event lost".into()))?;
    Ok(Context {
        event,
        events_before: served,
        events_after,
        state,
        start: room_token(start),
        end: room_token(end),
    })
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: the visible event nearest to
/// `ts` at or after it (`forward`) or at or before it, as `(event_id, origin_server_ts)`.
pub async fn timestamp_to_event(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    ts: i64,
    forward: bool,
) -> Result<(String, i64)> {
    /// Candidates looked at before giving up on finding a visible one.
    const CANDIDATES: usize = 100;
    let room = parse_room_id(room_id)?;
    crate::ratelimit::per_user(&services.limiters.room_lookups_per_user, requester)?;
    let access = access(services, room.as_str(), &requester.user_id).await?;
    let candidates = services
        .store
        .events_near_time(room.as_str(), ts, forward, access.cap, CANDIDATES)
        .await?;
    let found = candidates
        .iter()
        .find(|e| access.visibility.can_see(e))
        .ok_or_else(|| not_found("No event found in that direction"))?;
    let served_ts = serde_json::from_str::<serde_json::Value>(&found.json)
        .ok()
        .and_then(|v| {
            v.get("origin_server_ts")
                .and_then(serde_json::Value::as_i64)
        })
        .unwrap_or_default();
    Ok((found.event_id.clone(), served_ts))
}
