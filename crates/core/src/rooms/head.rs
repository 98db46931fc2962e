//! A room's head: what a writer builds the next event on. Its current state (for the
//! authorization rules and for the checks of the membership API), its forward extremities
//! and depth. Kept in memory per room while it is used, advanced as each event is submitted.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use myelin_store::{RoomSnapshot, RoomSummary};
use ruma_common::room_version_rules::RoomVersionRules;
use ruma_common::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomVersionId, UserId};
use ruma_state_res::events::{RoomCreateEvent, RoomPowerLevelsEvent, RoomPowerLevelsIntField};

use crate::{
    error::{Error, Result},
    events::{Pdu, Position, StateMap, version_rules},
};

pub struct Head {
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    pub rules: RoomVersionRules,
    pub state: StateMap,
    pub extremities: Vec<OwnedEventId>,
    pub depth: u64,
    /// Each user's membership, read once from their member event.
    memberships: HashMap<String, String>,
    /// Which load of the room this is: a writer whose append failed forgets the head only
    /// if it is still the one it built on (a newer one may carry good appends in flight).
    pub generation: u64,
    /// Transaction scopes of appends submitted on this head, with their events: a retry
    /// that arrives before the first attempt committed waits for it instead of writing.
    pub in_flight: HashMap<String, OwnedEventId>,
}

fn next_generation() -> u64 {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The power of a user: v12 creators outrank every level.
pub const CREATOR_POWER: i64 = i64::MAX;

impl Head {
    pub fn new(room_id: OwnedRoomId, version: RoomVersionId, rules: RoomVersionRules) -> Self {
        Self {
            room_id,
            version,
            rules,
            state: StateMap::new(),
            extremities: Vec::new(),
            depth: 0,
            memberships: HashMap::new(),
            generation: next_generation(),
            in_flight: HashMap::new(),
        }
    }

    pub fn from_snapshot(snapshot: RoomSnapshot) -> Result<Self> {
        let room_id = OwnedRoomId::try_from(snapshot.info.room_id.as_str())
            .map_err(|e| Error::Internal(format!("stored room ID: {e}").into()))?;
        let (version, rules) = version_rules(&snapshot.info.version).ok_or_else(|| {
            Error::Internal(format!("room version {} unsupported", snapshot.info.version).into())
        })?;
        let mut head = Head::new(room_id, version, rules);
        for event in snapshot.state {
            let pdu = Pdu::from_json(&event.event_id, &event.json)?;
            let pdu = if event.redacted_by.is_some() {
                redacted(&event.json, &event.event_id, &head.rules)?
            } else {
                pdu
            };
            head.set_state(Arc::new(pdu));
        }
        head.extremities = snapshot
            .extremities
            .iter()
            .map(|id| OwnedEventId::try_from(id.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Internal(format!("stored event ID: {e}").into()))?;
        head.depth = snapshot.depth.max(0) as u64;
        Ok(head)
    }

    /// Where the next event goes.
    pub fn position(&self) -> Position<'_> {
        Position {
            room_id: Some(&self.room_id),
            rules: &self.rules,
            state: &self.state,
            prev_events: &self.extremities,
            depth: self.depth + 1,
        }
    }

    fn set_state(&mut self, pdu: Arc<Pdu>) {
        if let Some(state_key) = &pdu.state_key {
            if pdu.kind == ruma_events::TimelineEventType::RoomMember {
                let membership = pdu.content_str("membership").unwrap_or_default();
                self.memberships.insert(state_key.clone(), membership);
            }
            self.state
                .insert((pdu.kind.to_string(), state_key.clone()), pdu);
        }
    }

    /// Moves the head past `pdu`, which was just submitted.
    pub fn advance(&mut self, pdu: Arc<Pdu>) {
        self.extremities = vec![pdu.event_id.clone()];
        self.depth = self.depth.max(pdu.depth);
        self.set_state(pdu);
    }

    /// Replaces a state event by its redacted form (EV-22: it still counts as state under
    /// the keys the redaction keeps).
    pub fn redact_state(&mut self, event_id: &EventId) -> Result<()> {
        let Some((key, pdu)) = self
            .state
            .iter()
            .find(|(_, p)| p.event_id == event_id)
            .map(|(k, p)| (k.clone(), p.clone()))
        else {
            return Ok(());
        };
        let mut content: ruma_common::CanonicalJsonObject = serde_json::from_str(pdu.content.get())
            .map_err(|e| Error::Internal(format!("state content: {e}").into()))?;
        ruma_common::canonical_json::redact_content_in_place(
            &mut content,
            &self.rules.redaction,
            pdu.kind.to_string(),
        );
        let mut redacted = (*pdu).clone();
        redacted.content = serde_json::value::to_raw_value(&content)
            .map_err(|e| Error::Internal(format!("state content: {e}").into()))?;
        self.state.remove(&key);
        self.set_state(Arc::new(redacted));
        Ok(())
    }

    pub fn get(&self, kind: &str, state_key: &str) -> Option<&Arc<Pdu>> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }

    pub fn member_event(&self, user_id: &str) -> Option<&Arc<Pdu>> {
        self.get("m.room.member", user_id)
    }

    /// The user's membership (`join`, `invite`, `leave`, `ban`, `knock`), `None` if never any.
    pub fn membership(&self, user_id: &str) -> Option<&str> {
        self.memberships.get(user_id).map(String::as_str)
    }

    pub fn join_rule(&self) -> String {
        self.get("m.room.join_rules", "")
            .and_then(|e| e.content_str("join_rule"))
            .unwrap_or_else(|| "invite".to_owned())
    }

    /// Users to wake when something happens in the room: its members and those invited or
    /// knocking.
    pub fn audience(&self) -> Vec<String> {
        self.memberships
            .iter()
            .filter(|(_, m)| matches!(m.as_str(), "join" | "invite" | "knock"))
            .map(|(user, _)| user.clone())
            .collect()
    }

    pub fn joined_members(&self) -> impl Iterator<Item = &str> {
        self.memberships
            .iter()
            .filter(|(_, m)| m.as_str() == "join")
            .map(|(user, _)| user.as_str())
    }

    /// What the room directory shows of the room (see [`myelin_store::RoomDirectoryStore`]).
    pub fn summary(&self) -> RoomSummary {
        let field = |kind: &str, field: &str| {
            self.get(kind, "")
                .and_then(|e| e.content_str(field))
                .filter(|v| !v.is_empty())
        };
        let count = |membership: &str| {
            self.memberships
                .values()
                .filter(|m| m.as_str() == membership)
                .count() as u64
        };
        RoomSummary {
            name: field("m.room.name", "name"),
            topic: field("m.room.topic", "topic"),
            avatar_url: field("m.room.avatar", "url"),
            canonical_alias: field("m.room.canonical_alias", "alias"),
            join_rule: self.join_rule(),
            history_visibility: field("m.room.history_visibility", "history_visibility")
                .unwrap_or_else(|| "shared".to_owned()),
            guest_can_join: field("m.room.guest_access", "guest_access").as_deref()
                == Some("can_join"),
            room_type: field("m.room.create", "type"),
            encryption: field("m.room.encryption", "algorithm"),
            joined_members: count("join"),
            invited_members: count("invite"),
        }
    }

    /// The room's creators: the create event's sender, and from v12 `additional_creators`.
    pub fn creators(&self) -> HashSet<OwnedUserId> {
        self.get("m.room.create", "")
            .and_then(|create| {
                RoomCreateEvent::new(create.as_ref())
                    .creators(&self.rules.authorization)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// The user's power level; v12 creators have [`CREATOR_POWER`].
    pub fn power(&self, user_id: &UserId) -> i64 {
        let creators = self.creators();
        if self.rules.authorization.explicitly_privilege_room_creators && creators.contains(user_id)
        {
            return CREATOR_POWER;
        }
        match self.get("m.room.power_levels", "") {
            Some(pl) => RoomPowerLevelsEvent::new(pl.as_ref())
                .user_power_level(user_id, &self.rules.authorization)
                .map(i64::from)
                .unwrap_or(0),
            // Without a power-levels event the creator has 100 and everyone else 0.
            None if creators.contains(user_id) => 100,
            None => 0,
        }
    }

    /// A level of the power-levels event (`ban`, `kick`, `redact`, `invite`, ...), with the
    /// spec's default.
    pub fn level(&self, field: RoomPowerLevelsIntField) -> i64 {
        match self.get("m.room.power_levels", "") {
            Some(pl) => RoomPowerLevelsEvent::new(pl.as_ref())
                .get_as_int_or_default(field, &self.rules.authorization)
                .map(i64::from)
                .unwrap_or_else(|_| i64::from(field.default_value())),
            None => i64::from(field.default_value()),
        }
    }

    /// The level needed to send an event of this type.
    pub fn level_for_event(&self, kind: &str, is_state: bool) -> i64 {
        let default_field = if is_state {
            RoomPowerLevelsIntField::StateDefault
        } else {
            RoomPowerLevelsIntField::EventsDefault
        };
        match self.get("m.room.power_levels", "") {
            Some(pl) => RoomPowerLevelsEvent::new(pl.as_ref())
                .event_power_level(
                    &kind.into(),
                    is_state.then_some(""),
                    &self.rules.authorization,
                )
                .map(i64::from)
                .unwrap_or(50),
            None if is_state => 0,
            None => i64::from(default_field.default_value()),
        }
    }
}

/// A stored PDU with the room version's redaction applied.
fn redacted(json: &str, event_id: &str, rules: &RoomVersionRules) -> Result<Pdu> {
    let mut object: ruma_common::CanonicalJsonObject = serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("stored event unreadable: {e}").into()))?;
    ruma_common::canonical_json::redact_in_place(&mut object, &rules.redaction, None)
        .map_err(|e| Error::Internal(format!("redacting: {e}").into()))?;
    let json = serde_json::to_string(&object)
        .map_err(|e| Error::Internal(format!("redacting: {e}").into()))?;
    Pdu::from_json(event_id, &json)
}
