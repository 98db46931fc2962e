//! Events as PDUs of their room version: building, hashing, signing and authorising them, and
//! reading stored ones back.
//!
//! Every event Myelin stores, whether a client sent it or the server built it, goes through
//! [`build`] and [`authorize`]: the content hash, the signature by this server's key and the
//! reference-hash event ID come from ruma's `signatures`, and the authorization rules of the
//! room's version from ruma's `state-res`. What federation will need (`auth_events`,
//! `prev_events`, `depth`, `hashes`, `signatures`) is therefore there from the first event.

pub mod client;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, sync::Arc};

use ruma_common::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId,
    room_version_rules::{AuthorizationRules, RoomVersionRules},
};
use ruma_events::{StateEventType, TimelineEventType};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    error::{Error, Result, bad_json, forbidden, too_large},
    keys::SigningKey,
};

/// The largest PDU the spec allows, in bytes of canonical JSON (`Size limits`).
pub const MAX_PDU_BYTES: usize = 65_536;

/// Room versions this server creates rooms in.
pub const SUPPORTED_VERSIONS: &[&str] = &["10", "11", "12"];

/// The rules of a version this server supports, or `None`.
pub fn version_rules(version: &str) -> Option<(RoomVersionId, RoomVersionRules)> {
    if !SUPPORTED_VERSIONS.contains(&version) {
        return None;
    }
    let id = RoomVersionId::try_from(version).ok()?;
    let rules = id.rules()?;
    Some((id, rules))
}

/// A stored or newly built event, with the fields the authorization rules read. The content
/// stays raw JSON: a field the rules never look at can never make an event unreadable.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: Option<OwnedRoomId>,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
}

#[derive(Deserialize)]
struct PduJson {
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<OwnedEventId>,
    #[serde(default)]
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    #[serde(default)]
    depth: u64,
}

#[derive(Deserialize)]
struct RedactsInContent {
    redacts: Option<OwnedEventId>,
}

impl Pdu {
    /// Reads a stored PDU back.
    pub fn from_json(event_id: &str, json: &str) -> Result<Self> {
        let parsed: PduJson = serde_json::from_str(json).map_err(|e| {
            Error::Internal(format!("stored event {event_id} unreadable: {e}").into())
        })?;
        let event_id = EventId::parse(event_id)
            .map_err(|e| Error::Internal(format!("stored event ID {event_id}: {e}").into()))?;
        // From room version 11 `redacts` lives in the content.
        let redacts = match parsed.redacts {
            Some(r) => Some(r),
            None if parsed.kind == TimelineEventType::RoomRedaction => {
                serde_json::from_str::<RedactsInContent>(parsed.content.get())
                    .ok()
                    .and_then(|c| c.redacts)
            }
            None => None,
        };
        Ok(Self {
            event_id,
            room_id: parsed.room_id,
            sender: parsed.sender,
            origin_server_ts: parsed.origin_server_ts,
            kind: parsed.kind,
            content: parsed.content,
            state_key: parsed.state_key,
            prev_events: parsed.prev_events,
            auth_events: parsed.auth_events,
            redacts,
            depth: parsed.depth,
        })
    }

    /// The content as JSON, for reading fields the rules do not cover.
    pub fn content_value(&self) -> serde_json::Value {
        serde_json::from_str(self.content.get()).unwrap_or(serde_json::Value::Null)
    }

    /// A string field of the content.
    pub fn content_str(&self, field: &str) -> Option<String> {
        self.content_value()
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }
}

impl ruma_state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}

/// State keyed by `(type, state_key)`.
pub type StateMap = HashMap<(String, String), Arc<Pdu>>;

/// Where a new event goes: the room, its rules, the state it is authorised against and the
/// events it follows.
pub struct Position<'a> {
    /// `None` only for the create event of a room version 12 room, whose ID is its hash.
    pub room_id: Option<&'a RoomId>,
    pub rules: &'a RoomVersionRules,
    pub state: &'a StateMap,
    pub prev_events: &'a [OwnedEventId],
    pub depth: u64,
}

/// What a new event says; the server adds where it goes.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: OwnedUserId,
    pub content: CanonicalJsonObject,
    /// For a redaction: the event it redacts.
    pub redacts: Option<OwnedEventId>,
}

impl Draft {
    pub fn new(
        kind: &str,
        state_key: Option<&str>,
        sender: &UserId,
        content: serde_json::Value,
    ) -> Result<Self> {
        Ok(Self {
            kind: kind.to_owned(),
            state_key: state_key.map(str::to_owned),
            sender: sender.to_owned(),
            content: canonical_object(content)?,
            redacts: None,
        })
    }
}

/// Client content as canonical JSON: an object whose numbers are integers within ±(2^53−1)
/// (EV-09).
pub fn canonical_object(content: serde_json::Value) -> Result<CanonicalJsonObject> {
    let serde_json::Value::Object(map) = content else {
        return Err(bad_json("Content must be a JSON object"));
    };
    ruma_common::canonical_json::try_from_json_map(map).map_err(|e| {
        bad_json(format!(
            "Content is not canonical JSON (integers only, within ±2^53): {e}"
        ))
    })
}

fn string(s: impl Into<String>) -> CanonicalJsonValue {
    CanonicalJsonValue::String(s.into())
}

fn ids(ids: impl IntoIterator<Item = impl AsRef<str>>) -> CanonicalJsonValue {
    CanonicalJsonValue::Array(ids.into_iter().map(|id| string(id.as_ref())).collect())
}

/// A built event: its PDU (for the rules and the state) and the signed JSON to store.
pub struct Built {
    pub pdu: Pdu,
    pub json: String,
}

/// Builds, hashes and signs an event at `at`. Its `auth_events` are chosen from the state
/// as the spec's selection algorithm says (EV-06).
pub fn build(
    draft: &Draft,
    at: &Position<'_>,
    key: &SigningKey,
    server_name: &str,
    now_ms: i64,
) -> Result<Built> {
    let kind = TimelineEventType::from(draft.kind.as_str());
    let content_raw = serde_json::value::to_raw_value(&draft.content)
        .map_err(|e| Error::Internal(format!("content: {e}").into()))?;
    let auth_types = ruma_state_res::auth_types_for_event(
        &kind,
        &draft.sender,
        draft.state_key.as_deref(),
        &content_raw,
        &at.rules.authorization,
    )
    .map_err(bad_json)?;
    let mut auth_events: Vec<OwnedEventId> = Vec::new();
    for (event_type, state_key) in auth_types {
        if let Some(pdu) = at.state.get(&(event_type.to_string(), state_key))
            && !auth_events.contains(&pdu.event_id)
        {
            auth_events.push(pdu.event_id.clone());
        }
    }
    let ts = now_ms.max(0) as u64;
    let mut object = CanonicalJsonObject::new();
    object.insert("auth_events".into(), ids(&auth_events));
    object.insert(
        "content".into(),
        CanonicalJsonValue::Object(draft.content.clone()),
    );
    object.insert("depth".into(), CanonicalJsonValue::Integer(int(at.depth)?));
    object.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(int(ts)?),
    );
    object.insert("prev_events".into(), ids(at.prev_events));
    if let Some(room_id) = at.room_id {
        object.insert("room_id".into(), string(room_id.as_str()));
    }
    object.insert("sender".into(), string(draft.sender.as_str()));
    if let Some(state_key) = &draft.state_key {
        object.insert("state_key".into(), string(state_key.as_str()));
    }
    object.insert("type".into(), string(draft.kind.as_str()));
    // Before room version 11 `redacts` is a top-level key (and stays in the content where a
    // client put it).
    if let Some(redacts) = &draft.redacts
        && !at.rules.redaction.keep_room_redaction_redacts
    {
        object.insert("redacts".into(), string(redacts.as_str()));
    }
    let too_big = || too_large(format!("The event is larger than {MAX_PDU_BYTES} bytes"));
    // Hashes and signatures add a few hundred bytes; refuse early what cannot fit anyway.
    let unsigned_len = serde_json::to_string(&object).map_or(usize::MAX, |j| j.len());
    if unsigned_len > MAX_PDU_BYTES {
        return Err(too_big());
    }
    ruma_signatures::hash_and_sign_event(server_name, key.pair(), &mut object, &at.rules.redaction)
        .map_err(|e| match e {
            ruma_signatures::JsonError::PduTooLarge => too_big(),
            other => Error::Internal(format!("signing an event: {other}").into()),
        })?;
    let json = serde_json::to_string(&object)
        .map_err(|e| Error::Internal(format!("serialising an event: {e}").into()))?;
    if json.len() > MAX_PDU_BYTES {
        return Err(too_big());
    }
    let hash = ruma_signatures::reference_hash(&object, at.rules).map_err(|e| match e {
        ruma_signatures::JsonError::PduTooLarge => too_big(),
        other => Error::Internal(format!("hashing an event: {other}").into()),
    })?;
    let event_id = EventId::parse(format!("${hash}"))
        .map_err(|e| Error::Internal(format!("event ID: {e}").into()))?;
    let pdu = Pdu {
        event_id,
        room_id: at.room_id.map(ToOwned::to_owned),
        sender: draft.sender.clone(),
        origin_server_ts: MilliSecondsSinceUnixEpoch(js_int::UInt::new_saturating(ts)),
        kind,
        content: content_raw,
        state_key: draft.state_key.clone(),
        prev_events: at.prev_events.to_vec(),
        auth_events,
        redacts: draft.redacts.clone(),
        depth: at.depth,
    };
    Ok(Built { pdu, json })
}

fn int(n: u64) -> Result<js_int::Int> {
    js_int::Int::try_from(n).map_err(|_| Error::Internal("integer out of range".into()))
}

/// Checks the room version's authorization rules against the state the event was built on
/// (EV-08); a refusal is 403 `M_FORBIDDEN` with the rule's reason.
pub fn authorize(pdu: &Pdu, rules: &AuthorizationRules, state: &StateMap) -> Result<()> {
    let by_id = |id: &EventId| -> Option<&Pdu> {
        state
            .values()
            .find(|p| p.event_id == id)
            .map(|p| p.as_ref())
    };
    ruma_state_res::check_state_independent_auth_rules(rules, pdu, by_id)
        .map_err(|reason| forbidden(format!("Event refused by the room's rules: {reason}")))?;
    let fetch_state = |kind: &StateEventType, state_key: &str| -> Option<&Pdu> {
        state
            .get(&(kind.to_string(), state_key.to_owned()))
            .map(|p| p.as_ref())
    };
    ruma_state_res::check_state_dependent_auth_rules(rules, pdu, fetch_state)
        .map_err(|reason| forbidden(format!("Event refused by the room's rules: {reason}")))
}
