//! The `/sync` response body. Each section a stream fills is a field here; sections with
//! nothing to say are left out, as the reference server does.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

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
    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) fn is_empty(&self) -> bool {
        self.account_data.is_empty() && self.rooms.is_empty()
    }
}

impl SyncResponse {
    pub(super) fn empty(next_batch: String) -> Self {
        Self {
            next_batch,
            account_data: Events::default(),
            rooms: Rooms::default(),
        }
    }
}
