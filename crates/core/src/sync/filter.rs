//! Sync filters (`definitions/sync_filter.yaml`): parsing, matching, and the filter API
//! (`POST/GET /user/{userId}/filter`).

use serde::{Deserialize, Serialize};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found},
};

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
    /// The reader's ignored users, for invites and ephemeral events (IG-05, IG-10).
    #[serde(skip)]
    pub(crate) ignored: std::sync::Arc<std::collections::HashSet<String>>,
    /// Whether the reader blocks invites (`m.invite_permission_config`): then none is served.
    #[serde(skip)]
    pub(crate) invites_blocked: bool,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains_url: Option<bool>,
    /// Strictly boolean (RS-28): `"true"` is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_load_members: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_redundant_members: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_thread_notifications: Option<bool>,
    /// The reader's ignored users (`m.ignored_user_list`), whose non-state events are left
    /// out (IG-02, IG-03). Never part of a stored filter.
    #[serde(skip)]
    pub(crate) ignored: Option<std::sync::Arc<std::collections::HashSet<String>>>,
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
    /// Parses a `RoomEventFilter` given as a query parameter (`/messages`, `/context`).
    pub fn parse_room_event_filter(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|_| Error::NotJson("Filter is not JSON".into()))?;
        if !value.is_object() {
            return Err(bad_json("Filter must be a JSON object"));
        }
        serde_json::from_value(value).map_err(|e| bad_json(format!("Invalid filter: {e}")))
    }

    pub(crate) fn allows_sender(&self, sender: &str) -> bool {
        !self.not_senders.iter().flatten().any(|s| s == sender)
            && self
                .senders
                .as_ref()
                .is_none_or(|senders| senders.iter().any(|s| s == sender))
    }

    /// Type, sender and `contains_url` together, for timeline events.
    pub(crate) fn allows_event(&self, event: &myelin_store::StoredEvent) -> bool {
        if !self.allows_type(&event.event_type) || !self.allows_sender(&event.sender) {
            return false;
        }
        if event.state_key.is_none()
            && self
                .ignored
                .as_ref()
                .is_some_and(|ignored| ignored.contains(&event.sender))
        {
            return false;
        }
        match self.contains_url {
            None => true,
            Some(wanted) => {
                let has_url = serde_json::from_str::<serde_json::Value>(&event.json)
                    .ok()
                    .is_some_and(|v| v["content"]["url"].is_string());
                has_url == wanted
            }
        }
    }

    pub(crate) fn lazy_members(&self) -> bool {
        self.lazy_load_members == Some(true)
    }

    pub(crate) fn allows_type(&self, event_type: &str) -> bool {
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

    pub(crate) fn allows_room(&self, room_id: &str) -> bool {
        room_allowed(self.rooms.as_deref(), self.not_rooms.as_deref(), room_id)
    }
}

impl Filter {
    /// Whether threads' notification counts come apart from the room's (PE-24).
    pub(crate) fn unread_thread_notifications(&self) -> bool {
        self.room
            .as_ref()
            .and_then(|r| r.timeline.as_ref())
            .and_then(|t| t.unread_thread_notifications)
            == Some(true)
    }

    /// Applies the reader's ignore list to every part of the filter that needs it.
    pub(crate) fn ignoring(mut self, ignored: std::collections::HashSet<String>) -> Self {
        if ignored.is_empty() {
            return self;
        }
        let ignored = std::sync::Arc::new(ignored);
        self.room
            .get_or_insert_with(RoomFilter::default)
            .timeline
            .get_or_insert_with(EventFilter::default)
            .ignored = Some(ignored.clone());
        self.ignored = ignored;
        self
    }
}

impl RoomFilter {
    pub(crate) fn allows_room(&self, room_id: &str) -> bool {
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

/// The `filter` parameter of `/sync`: an inline definition or the ID of a stored one. An ID
/// that names no filter makes the parameter invalid (400, as the reference server answers).
pub(super) async fn resolve_filter(
    services: &Services,
    requester: &Requester,
    filter: &str,
) -> Result<Filter> {
    if filter.trim_start().starts_with('{') {
        return Filter::parse(filter);
    }
    let stored = match get_filter(services, requester, &requester.user_id.clone(), filter).await {
        Err(Error::NotFound(_)) => {
            return Err(invalid_param(format!("No filter with ID {filter}")));
        }
        other => other?,
    };
    Filter::parse(&stored)
}

#[cfg(test)]
mod tests {
    use super::*;

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
