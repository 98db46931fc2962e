//! Stored PDUs as clients see them (`client_event.yaml`): never `hashes`, `signatures`,
//! `auth_events`, `prev_events` or `depth` (EV-11), with `unsigned` computed for the reader
//! (EV-12..15), and redacted by the room version's algorithm once a redaction applies (EV-19).

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
};

use myelin_store::StoredEvent;
use ruma_common::{CanonicalJsonObject, CanonicalJsonValue, room_version_rules::RedactionRules};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// An event in the client format.
#[derive(Debug, Clone, Serialize)]
pub struct ClientEvent {
    pub content: Box<RawValue>,
    pub event_id: String,
    pub origin_server_ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    pub sender: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacts: Option<String>,
    pub unsigned: Unsigned,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Unsigned {
    pub age: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_content: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted_because: Option<Box<ClientEvent>>,
    /// Bundled aggregations (see `relations::bundle`).
    #[serde(rename = "m.relations", skip_serializing_if = "Option::is_none")]
    pub relations: Option<serde_json::Value>,
}

/// A stripped state event (`invite_state`, `knock_state`).
#[derive(Debug, Clone, Serialize)]
pub struct StrippedEvent {
    pub content: Box<RawValue>,
    pub sender: String,
    pub state_key: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Only on the reader's own member event: clients date an invite by it (Cinny shows
    /// 1970 without it), and the reference server sends that event whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_server_ts: Option<i64>,
}

/// Who reads, and the events the ones being served refer to.
pub struct Reader<'a> {
    pub user_id: &'a str,
    pub device_id: Option<&'a str>,
    pub now_ms: i64,
    /// Include `room_id` (everywhere but inside `/sync` rooms).
    pub with_room_id: bool,
    /// Replaced state events and redaction events, by ID (see [`related_ids`]).
    pub related: &'a HashMap<String, StoredEvent>,
    pub redaction: &'a RedactionRules,
    /// The last position the reader may see: a redaction after it (made after they left)
    /// is not theirs to know of.
    pub visible_upto: u64,
    /// Senders whose events this reader is served redacted (erased users; see
    /// `rooms::erasure`).
    pub erased: &'a HashSet<String>,
}

impl Reader<'_> {
    pub(crate) fn is_redacted(&self, event: &StoredEvent) -> bool {
        self.erased.contains(&event.sender)
            || event.redacted_by.as_ref().is_some_and(|id| {
                self.related
                    .get(id)
                    .is_none_or(|redaction| redaction.pos <= self.visible_upto)
            })
    }
}

/// The IDs of events that serving `events` needs too: the state they replaced and the
/// redactions that apply to them.
pub fn related_ids<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for event in events {
        ids.extend(event.replaces.iter().cloned());
        ids.extend(event.redacted_by.iter().cloned());
    }
    ids.sort();
    ids.dedup();
    ids
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    content: &'a RawValue,
    #[serde(default)]
    origin_server_ts: i64,
    #[serde(default, borrow)]
    redacts: Option<Cow<'a, str>>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("stored event unreadable: {e}").into())
}

fn raw(value: &impl Serialize) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(internal)
}

/// The content as served: redacted if a redaction applies.
fn served_content(
    event: &StoredEvent,
    rules: &RedactionRules,
    redacted: bool,
) -> Result<(Box<RawValue>, i64)> {
    if !redacted {
        let fields: Fields<'_> = serde_json::from_str(&event.json).map_err(internal)?;
        return Ok((fields.content.to_owned(), fields.origin_server_ts));
    }
    let mut object: CanonicalJsonObject = serde_json::from_str(&event.json).map_err(internal)?;
    ruma_common::canonical_json::redact_in_place(&mut object, rules, None).map_err(internal)?;
    let ts = object
        .get("origin_server_ts")
        .and_then(CanonicalJsonValue::as_integer)
        .map_or(0, i64::from);
    let content = object
        .remove("content")
        .unwrap_or(CanonicalJsonValue::Object(CanonicalJsonObject::new()));
    Ok((raw(&content)?, ts))
}

/// `redacts` of a redaction event, wherever its room version keeps it, served both at the top
/// level and in the content in every version (EV-21).
fn with_redacts(content: &RawValue, redacts: &str) -> Result<Box<RawValue>> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(content.get()).map_err(internal)?;
    map.entry("redacts")
        .or_insert_with(|| serde_json::Value::String(redacts.to_owned()));
    raw(&map)
}

fn redacts_of(event: &StoredEvent) -> Result<Option<String>> {
    if event.event_type != "m.room.redaction" {
        return Ok(None);
    }
    let fields: Fields<'_> = serde_json::from_str(&event.json).map_err(internal)?;
    if let Some(r) = fields.redacts {
        return Ok(Some(r.into_owned()));
    }
    #[derive(Deserialize)]
    struct InContent {
        redacts: Option<String>,
    }
    Ok(serde_json::from_str::<InContent>(fields.content.get())
        .ok()
        .and_then(|c| c.redacts))
}

/// Serves one event. `membership` is the reader's membership at the event (EV-15), where
/// the caller knows it.
pub fn serve(
    event: &StoredEvent,
    reader: &Reader<'_>,
    membership: Option<&str>,
) -> Result<ClientEvent> {
    serve_at_depth(event, reader, membership, 0)
}

fn serve_at_depth(
    event: &StoredEvent,
    reader: &Reader<'_>,
    membership: Option<&str>,
    depth: u8,
) -> Result<ClientEvent> {
    let redacted = reader.is_redacted(event);
    let (mut content, ts) = served_content(event, reader.redaction, redacted)?;
    let redacts = redacts_of(event)?;
    if let Some(redacts) = &redacts
        && !redacted
    {
        content = with_redacts(&content, redacts)?;
    }
    let mut unsigned = Unsigned {
        age: (reader.now_ms - ts).max(0),
        membership: membership.map(str::to_owned),
        ..Unsigned::default()
    };
    // EV-13: the transaction ID only to the device that sent the event.
    if let Some((device, txn_id)) = &event.txn
        && event.sender == reader.user_id
        && reader.device_id == Some(device.as_str())
    {
        unsigned.transaction_id = Some(txn_id.clone());
    }
    if event.state_key.is_some()
        && let Some(replaced) = &event.replaces
    {
        unsigned.replaces_state = Some(replaced.clone());
        if let Some(previous) = reader.related.get(replaced) {
            let previous_redacted = reader.is_redacted(previous);
            unsigned.prev_content =
                Some(served_content(previous, reader.redaction, previous_redacted)?.0);
            unsigned.prev_sender = Some(previous.sender.clone());
        }
    }
    if let Some(redaction) = &event.redacted_by
        && redacted
        && depth == 0
        && let Some(redaction) = reader.related.get(redaction)
    {
        unsigned.redacted_because = Some(Box::new(serve_at_depth(
            redaction,
            reader,
            None,
            depth + 1,
        )?));
    }
    Ok(ClientEvent {
        content,
        event_id: event.event_id.clone(),
        origin_server_ts: ts,
        room_id: reader.with_room_id.then(|| event.room_id.clone()),
        sender: event.sender.clone(),
        state_key: event.state_key.clone(),
        kind: event.event_type.clone(),
        redacts,
        unsigned,
    })
}

/// The PDU as stored, for filters asking for `event_format: federation`.
/// The PDU as stored, redacted by its room version's rules when a redaction (or an erasure)
/// applies to the reader.
pub fn federation(event: &StoredEvent, reader: &Reader<'_>) -> Result<Box<RawValue>> {
    if !reader.is_redacted(event) {
        return RawValue::from_string(event.json.clone()).map_err(internal);
    }
    let mut object: CanonicalJsonObject = serde_json::from_str(&event.json).map_err(internal)?;
    ruma_common::canonical_json::redact_in_place(&mut object, reader.redaction, None)
        .map_err(internal)?;
    raw(&object)
}

/// An event as stripped state; `dated` adds its ID and timestamp (the reader's own member
/// event).
pub fn stripped(event: &StoredEvent, rules: &RedactionRules, dated: bool) -> Result<StrippedEvent> {
    let (content, ts) = served_content(event, rules, event.redacted_by.is_some())?;
    Ok(StrippedEvent {
        content,
        sender: event.sender.clone(),
        state_key: event.state_key.clone().unwrap_or_default(),
        kind: event.event_type.clone(),
        event_id: dated.then(|| event.event_id.clone()),
        origin_server_ts: dated.then_some(ts),
    })
}

/// The content of a stored event as JSON (after any redaction).
pub fn content_value(event: &StoredEvent, rules: &RedactionRules) -> Result<serde_json::Value> {
    let (content, _) = served_content(event, rules, event.redacted_by.is_some())?;
    serde_json::from_str(content.get()).map_err(internal)
}
