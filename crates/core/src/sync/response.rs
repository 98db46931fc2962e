//! The `/sync` response body. Top-level sections with nothing to say are left out, as the
//! reference server does; inside a room every key the test suites assert is present, even
//! `limited: false` and an empty `state` (RS-01), which ruma's own types would drop.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::events::client::{ClientEvent, StrippedEvent};

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

/// A room event in a sync response: client format, or the PDU when the filter asks for
/// `event_format: federation`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SyncEvent {
    Client(Box<ClientEvent>),
    Federation(Box<RawValue>),
}

#[derive(Debug, Default, Serialize)]
pub struct RoomEvents {
    pub events: Vec<SyncEvent>,
}

#[derive(Debug, Default, Serialize)]
pub struct Timeline {
    pub events: Vec<SyncEvent>,
    pub limited: bool,
    pub prev_batch: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    #[serde(rename = "m.heroes", skip_serializing_if = "Option::is_none")]
    pub heroes: Option<Vec<String>>,
    #[serde(
        rename = "m.joined_member_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub joined_member_count: Option<u64>,
    #[serde(
        rename = "m.invited_member_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub invited_member_count: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct UnreadNotifications {
    pub highlight_count: u64,
    pub notification_count: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct JoinedRoom {
    pub account_data: Events,
    pub ephemeral: Events,
    pub state: RoomEvents,
    pub summary: Summary,
    pub timeline: Timeline,
    pub unread_notifications: UnreadNotifications,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_thread_notifications: Option<BTreeMap<String, UnreadNotifications>>,
}

#[derive(Debug, Default, Serialize)]
pub struct LeftRoom {
    pub account_data: Events,
    pub state: RoomEvents,
    pub timeline: Timeline,
}

#[derive(Debug, Default, Serialize)]
pub struct StrippedState {
    pub events: Vec<StrippedEvent>,
}

#[derive(Debug, Default, Serialize)]
pub struct InvitedRoom {
    pub invite_state: StrippedState,
}

#[derive(Debug, Default, Serialize)]
pub struct KnockedRoom {
    pub knock_state: StrippedState,
}

#[derive(Debug, Default, Serialize)]
pub struct Rooms {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub join: BTreeMap<String, JoinedRoom>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub invite: BTreeMap<String, InvitedRoom>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub leave: BTreeMap<String, LeftRoom>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub knock: BTreeMap<String, KnockedRoom>,
}

impl Rooms {
    pub(super) fn is_empty(&self) -> bool {
        self.join.is_empty()
            && self.invite.is_empty()
            && self.leave.is_empty()
            && self.knock.is_empty()
    }
}

/// A to-device message as delivered: exactly these three keys (TD-02).
#[derive(Debug, Serialize)]
pub struct ToDeviceEvent {
    pub sender: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub content: Box<RawValue>,
}

#[derive(Debug, Default, Serialize)]
pub struct ToDevice {
    pub events: Vec<ToDeviceEvent>,
}

/// Events that name their sender and nothing else (`m.presence`).
#[derive(Debug, Default, Serialize)]
pub struct SenderEvents {
    pub events: Vec<ToDeviceEvent>,
}

impl SenderEvents {
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct DeviceLists {
    pub changed: Vec<String>,
    pub left: Vec<String>,
}

impl DeviceLists {
    pub(super) fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

/// The `/sync` response. Sections with nothing to say are left out, as the reference server
/// does; clients treat a missing section as empty. The device's key counts are the exception:
/// every response has them (DL-15, DL-16), so they do not make a response worth sending.
#[derive(Debug, Serialize)]
pub struct SyncResponse {
    pub next_batch: String,
    #[serde(skip_serializing_if = "Events::is_empty")]
    pub account_data: Events,
    #[serde(skip_serializing_if = "SenderEvents::is_empty")]
    pub presence: SenderEvents,
    #[serde(skip_serializing_if = "Rooms::is_empty")]
    pub rooms: Rooms,
    #[serde(skip_serializing_if = "ToDevice::is_empty")]
    pub to_device: ToDevice,
    #[serde(skip_serializing_if = "DeviceLists::is_empty")]
    pub device_lists: DeviceLists,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_one_time_keys_count: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_unused_fallback_key_types: Option<Vec<String>>,
}

impl ToDevice {
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl SyncResponse {
    pub(super) fn is_empty(&self) -> bool {
        self.account_data.is_empty()
            && self.presence.is_empty()
            && self.rooms.is_empty()
            && self.to_device.is_empty()
            && self.device_lists.is_empty()
    }
}

impl SyncResponse {
    pub(super) fn empty(next_batch: String) -> Self {
        Self {
            next_batch,
            account_data: Events::default(),
            presence: SenderEvents::default(),
            rooms: Rooms::default(),
            to_device: ToDevice::default(),
            device_lists: DeviceLists::default(),
            device_one_time_keys_count: None,
            device_unused_fallback_key_types: None,
        }
    }
}
