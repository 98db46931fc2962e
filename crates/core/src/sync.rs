//! `GET /sync`: account data delivery with long-poll.
//!
//! Invariants, each a bug the anchors shipped (rust-anchors §5, SY-09):
//! - **Subscribe before you sample.** The waiter registers with the [`Notifier`] *before* it
//!   reads the stream watermark, so a write committing between the read and the wait still
//!   wakes it.
//! - **Bound every read by the committed watermark.** `next_batch` is the watermark read from
//!   the store, which only moves after `COMMIT`; changes are read in `(since, next_batch]`. A
//!   write that commits while the response is built has a position above `next_batch` and is
//!   delivered by the next sync, never skipped and never delivered twice.
//! - **Writers notify after commit**, deletions included, and a wake-up re-checks the token,
//!   so a device deleted while its sync waits is refused at once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::{
    Services,
    auth::{self, Requester},
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found},
};
use myelin_store::{AccountDataChange, StreamPositions};

/// Per-user wake-ups. A `watch` channel per user with at least one waiter; a write bumps it.
pub struct Notifier {
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Set at shutdown so long-polls return at once instead of holding the server open.
    closing: watch::Sender<bool>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            users: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        }
    }
}

impl Notifier {
    /// Ends every long-poll (they answer with no changes) and every later one.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    pub fn subscribe(&self, user_id: &str) -> watch::Receiver<u64> {
        let Ok(mut users) = self.users.lock() else {
            // A poisoned map only loses wake-ups; the waiter still times out normally.
            return watch::channel(0).1;
        };
        users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn wake(&self, user_id: &str) {
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        if let Some(sender) = users.get(user_id) {
            if sender.receiver_count() == 0 {
                users.remove(user_id);
            } else {
                sender.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    fn release(&self, user_id: &str) {
        if let Ok(mut users) = self.users.lock()
            && users.get(user_id).is_some_and(|s| s.receiver_count() == 0)
        {
            users.remove(user_id);
        }
    }
}

/// The opaque `since`/`next_batch` token: one position per stream. Streams that do not exist
/// yet (device lists, to-device, room events) take their place here when they arrive; tokens
/// without them parse with position 0, so old tokens stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncToken {
    pub account_data: u64,
}

const TOKEN_PREFIX: &str = "m1.";

impl SyncToken {
    pub fn parse(token: &str) -> Result<Self> {
        let invalid = || invalid_param("Invalid since token");
        let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let mut parts = rest.split('.');
        let mut next = || -> Result<u64> {
            match parts.next() {
                None => Ok(0),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map_err(|_| invalid())
                }
                Some(_) => Err(invalid()),
            }
        };
        let token = Self {
            account_data: next()?,
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(token)
    }

    fn from_positions(p: StreamPositions) -> Self {
        Self {
            account_data: p.account_data,
        }
    }
}

impl std::fmt::Display for SyncToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}", self.account_data)
    }
}

// --- filters ------------------------------------------------------------------------

/// The parts of a sync filter (`definitions/sync_filter.yaml`) that apply to what Myelin
/// serves. Unknown keys are kept by clients' servers and ignored here; wrong types are errors.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_data: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_fields: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_format: Option<EventFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    Client,
    Federation,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct EventFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub senders: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_senders: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_rooms: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RoomFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_data: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_leave: Option<bool>,
}

impl Filter {
    /// Parses and validates a filter definition (SY-08: invalid shapes are a 400).
    pub fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|_| Error::NotJson("Filter is not JSON".into()))?;
        if !value.is_object() {
            return Err(bad_json("Filter must be a JSON object"));
        }
        let filter: Filter =
            serde_json::from_value(value).map_err(|e| bad_json(format!("Invalid filter: {e}")))?;
        let mut event_filters = vec![&filter.account_data, &filter.presence];
        if let Some(room) = &filter.room {
            event_filters.extend([
                &room.account_data,
                &room.timeline,
                &room.state,
                &room.ephemeral,
            ]);
        }
        if event_filters
            .into_iter()
            .flatten()
            .any(|f| f.limit == Some(0))
        {
            return Err(bad_json("Filter limit must be greater than 0"));
        }
        Ok(filter)
    }
}

/// `not_rooms` wins over `rooms`; no `rooms` list means every room.
fn room_allowed(rooms: Option<&[String]>, not_rooms: Option<&[String]>, room_id: &str) -> bool {
    !not_rooms.unwrap_or_default().iter().any(|r| r == room_id)
        && rooms.is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
}

/// Type patterns may use `*` as a wildcard for any sequence of characters.
fn glob_match(pattern: &str, value: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == value;
    };
    let Some(mut remaining) = value.strip_prefix(first) else {
        return false;
    };
    let mut pieces: Vec<&str> = rest.split('*').collect();
    let last = pieces.pop().unwrap_or("");
    for piece in pieces {
        match remaining.find(piece) {
            Some(i) => remaining = &remaining[i + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

impl EventFilter {
    fn allows_type(&self, event_type: &str) -> bool {
        if self
            .not_types
            .iter()
            .flatten()
            .any(|p| glob_match(p, event_type))
        {
            return false;
        }
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|p| glob_match(p, event_type)))
    }

    fn allows_room(&self, room_id: &str) -> bool {
        room_allowed(self.rooms.as_deref(), self.not_rooms.as_deref(), room_id)
    }
}

impl RoomFilter {
    fn allows_room(&self, room_id: &str) -> bool {
        room_allowed(self.rooms.as_deref(), self.not_rooms.as_deref(), room_id)
    }
}

/// `POST /user/{userId}/filter`.
pub async fn create_filter(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: &[u8],
) -> Result<String> {
    if requester.user_id != user_id {
        return Err(forbidden("Cannot create filters for other users"));
    }
    let text = std::str::from_utf8(body).map_err(|_| Error::NotJson("Body is not UTF-8".into()))?;
    Filter::parse(text)?;
    // Store the definition as uploaded (compacted), not as re-serialized from `Filter`: GET
    // must return fields this server does not use (`lazy_load_members`, ...) too, or clients
    // that compare their wanted filter with the stored one create a new filter on every start.
    let stored = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| bad_json(e.to_string()))?
        .to_string();
    let id = services.store.create_filter(user_id, &stored).await?;
    Ok(id.to_string())
}

/// `GET /user/{userId}/filter/{filterId}`.
pub async fn get_filter(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    filter_id: &str,
) -> Result<String> {
    if requester.user_id != user_id {
        return Err(forbidden("Cannot get filters of other users"));
    }
    let id: u64 = filter_id.parse().map_err(|_| not_found("No such filter"))?;
    services
        .store
        .get_filter(user_id, id)
        .await?
        .ok_or_else(|| not_found("No such filter"))
}

async fn resolve_filter(
    services: &Services,
    requester: &Requester,
    filter: &str,
) -> Result<Filter> {
    if filter.trim_start().starts_with('{') {
        return Filter::parse(filter);
    }
    let stored = get_filter(services, requester, &requester.user_id.clone(), filter).await?;
    Filter::parse(&stored)
}

// --- the response -------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: String,
    pub content: Box<RawValue>,
}

#[derive(Debug, Default, Serialize)]
pub struct Events {
    pub events: Vec<Event>,
}

impl Events {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct JoinedRoom {
    #[serde(skip_serializing_if = "Events::is_empty")]
    pub account_data: Events,
}

#[derive(Debug, Default, Serialize)]
pub struct Rooms {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub join: BTreeMap<String, JoinedRoom>,
}

impl Rooms {
    fn is_empty(&self) -> bool {
        self.join.is_empty()
    }
}

/// The `/sync` response. Sections with nothing to say are left out, as the reference server
/// does; clients treat a missing section as empty.
#[derive(Debug, Serialize)]
pub struct SyncResponse {
    pub next_batch: String,
    #[serde(skip_serializing_if = "Events::is_empty")]
    pub account_data: Events,
    #[serde(skip_serializing_if = "Rooms::is_empty")]
    pub rooms: Rooms,
}

impl SyncResponse {
    fn is_empty(&self) -> bool {
        self.account_data.is_empty() && self.rooms.is_empty()
    }
}

/// Query parameters of `GET /sync`.
#[derive(Debug, Default, Clone)]
pub struct SyncParams {
    pub since: Option<String>,
    pub timeout_ms: Option<u64>,
    pub filter: Option<String>,
    pub full_state: bool,
    pub set_presence: Option<String>,
}

/// The rooms the user has joined. Rooms do not exist yet in Myelin, so this is empty; the
/// rooms feature fills it, and per-room account data then reaches `rooms.join` unchanged.
fn joined_rooms(_services: &Services, _user_id: &str) -> std::collections::HashSet<String> {
    std::collections::HashSet::new()
}

pub async fn sync(
    services: &Services,
    requester: &Requester,
    params: SyncParams,
) -> Result<SyncResponse> {
    let since = params.since.as_deref().map(SyncToken::parse).transpose()?;
    match params.set_presence.as_deref() {
        None | Some("online" | "offline" | "unavailable") => {}
        Some(_) => {
            return Err(invalid_param(
                "set_presence must be one of online, offline, unavailable",
            ));
        }
    }
    let filter = match params.filter.as_deref() {
        Some(f) if !f.is_empty() => resolve_filter(services, requester, f).await?,
        _ => Filter::default(),
    };
    let timeout = Duration::from_millis(
        params
            .timeout_ms
            .unwrap_or(0)
            .min(services.config.sync.max_timeout_ms),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let from = if params.full_state { None } else { since };

    // Subscribe before reading the watermark (see the module docs).
    let mut wakeups = services.notifier.subscribe(&requester.user_id);
    let mut closing = services.notifier.closing.subscribe();
    let result = async {
        loop {
            let upto = SyncToken::from_positions(services.store.positions().await?);
            let nothing_new = from.is_some_and(|f| upto.account_data <= f.account_data);
            let response = if nothing_new {
                empty_response(upto)
            } else {
                build(services, &requester.user_id, from, upto, &filter).await?
            };
            if from.is_none() || !response.is_empty() || *closing.borrow() {
                return Ok(response);
            }
            let woken = tokio::select! {
                woken = tokio::time::timeout_at(deadline, wakeups.changed()) => woken.is_ok(),
                _ = closing.changed() => false,
            };
            if !woken {
                return Ok(response);
            }
            if !auth::still_valid(services, requester).await? {
                return Err(Error::UnknownToken);
            }
        }
    }
    .await;
    drop(wakeups);
    services.notifier.release(&requester.user_id);
    result
}

fn empty_response(upto: SyncToken) -> SyncResponse {
    SyncResponse {
        next_batch: upto.to_string(),
        account_data: Events::default(),
        rooms: Rooms::default(),
    }
}

async fn build(
    services: &Services,
    user_id: &str,
    from: Option<SyncToken>,
    upto: SyncToken,
    filter: &Filter,
) -> Result<SyncResponse> {
    let changes = services
        .store
        .account_data_changes(user_id, from.map(|f| f.account_data), upto.account_data)
        .await?;
    let joined = joined_rooms(services, user_id);
    let mut response = empty_response(upto);
    let global_filter = filter.account_data.clone().unwrap_or_default();
    let room_filter = filter.room.clone().unwrap_or_default();
    let room_data_filter = room_filter.account_data.clone().unwrap_or_default();
    for change in changes {
        // Initial sync: only what exists now. Incremental: tombstones too, so deletions
        // reach the user's other devices.
        if from.is_none() && change.content == crate::account_data::TOMBSTONE {
            continue;
        }
        let AccountDataChange {
            room_id,
            data_type,
            content,
            ..
        } = change;
        let content = RawValue::from_string(content)
            .map_err(|e| Error::Internal(format!("stored account data is not JSON: {e}").into()))?;
        let event = Event {
            event_type: data_type,
            content,
        };
        match room_id {
            None => {
                if global_filter.allows_type(&event.event_type) {
                    response.account_data.events.push(event);
                }
            }
            Some(room_id) => {
                if joined.contains(&room_id)
                    && room_filter.allows_room(&room_id)
                    && room_data_filter.allows_room(&room_id)
                    && room_data_filter.allows_type(&event.event_type)
                {
                    response
                        .rooms
                        .join
                        .entry(room_id)
                        .or_default()
                        .account_data
                        .events
                        .push(event);
                }
            }
        }
    }
    if let Some(limit) = global_filter.limit {
        response.account_data.events.truncate(limit as usize);
    }
    if let Some(limit) = room_data_filter.limit {
        for room in response.rooms.join.values_mut() {
            room.account_data.events.truncate(limit as usize);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = SyncToken { account_data: 42 };
        assert_eq!(SyncToken::parse(&token.to_string()).ok(), Some(token));
        assert_eq!(SyncToken::parse("m1.").ok(), None);
        assert_eq!(
            SyncToken::parse("m1.7").ok(),
            Some(SyncToken { account_data: 7 })
        );
        for bad in [
            "",
            "7",
            "m1.x",
            "m1.-1",
            "m1.1.2",
            "m1.99999999999999999999999",
            "s72_0",
        ] {
            assert!(SyncToken::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn globs_match_like_the_spec_says() {
        assert!(glob_match("m.*", "m.direct"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("m.*", "org.m.x"));
        assert!(glob_match("m.direct", "m.direct"));
        assert!(!glob_match("a*a", "a"));
    }

    #[test]
    fn filters_validate_shapes() {
        assert!(Filter::parse(r#"{"account_data":{"types":["m.*"]}}"#).is_ok());
        assert!(Filter::parse(r#"{"room":{"account_data":"nope"}}"#).is_err());
        assert!(Filter::parse(r#"{"account_data":{"limit":0}}"#).is_err());
        assert!(Filter::parse("[]").is_err());
        assert!(Filter::parse("{not json").is_err());
        let f = EventFilter {
            types: Some(vec!["m.*".into()]),
            not_types: Some(vec!["m.secret".into()]),
            ..EventFilter::default()
        };
        assert!(f.allows_type("m.direct"));
        assert!(!f.allows_type("m.secret"));
        assert!(!f.allows_type("org.x"));
    }
}
