//! What one joined or left room carries in `/sync`: its timeline, its state and its summary.
//!
//! - **Timeline**: the newest `limit` events of the window the user may see and the filter
//!   allows, oldest first; `limited` iff more such events exist in the window (RS-03, RS-04),
//!   and `prev_batch` just before the first of them (RS-38).
//! - **State**: with `S_start` and `S_end` the state at the start and end of the timeline,
//!   `S_prev` the state at `since` (nothing for a full sync), and `T` the timeline, each key
//!   gets `S_end`'s event unless that is in `T`, else `S_start`'s; it is sent unless it is in
//!   `T` or equals `S_prev`'s (RS-09, Synapse's rule). No event is ever in both `state` and
//!   the timeline (RS-02), a gap's state changes arrive (RS-07), and a sync without a gap
//!   sends none (RS-08).
//! - **Lazy loading** (`room.state.lazy_load_members`, RS-25): member events only for the
//!   timeline's senders, the user and the heroes. An incremental sync leaves out those the
//!   device already has (RS-26): sent in a response whose token the client has synced from
//!   since, so a retry of the same `since` carries them again (RS-30). A gap's membership
//!   changes are always sent (RS-27), and `include_redundant_members` sends every sender's.

mod state;

use std::collections::{BTreeMap, HashSet};

use myelin_store::{LazyMembers, StoredEvent};
use ruma_common::room_version_rules::RoomVersionRules;

use super::{
    filter::{EventFilter, EventFormat, Filter, RoomFilter},
    response::{
        JoinedRoom, LeftRoom, RoomEvents, Summary, SyncEvent, Timeline, UnreadNotifications,
    },
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result},
    events::{
        client::{self, Reader},
        version_rules,
    },
    rooms::{read::room_token, visibility::Visibility},
};

/// Largest timeline a filter may ask for.
const MAX_TIMELINE: usize = 500;
/// Batches of events looked at before a timeline gives up filling and says `limited`.
const MAX_BATCHES: usize = 8;

/// A room's part of the sync window: its timeline is drawn from `(since, end]` (from the
/// room's start when `since` is `None`), its state as `state` says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub since: Option<u64>,
    pub end: u64,
    pub state: StateMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StateMode {
    /// The whole state at the timeline's start (new to the user, or `full_state`).
    Full,
    /// What changed since `since` that the timeline does not show.
    Delta,
    /// Nothing: the user was not in the room for this window.
    None,
}

struct Room<'a> {
    services: &'a Services,
    room_id: &'a str,
    rules: RoomVersionRules,
    visibility: Visibility,
    /// The room's history-visibility settings are read only when an event needs them.
    settings_read: bool,
    end: u64,
}

struct Content {
    timeline: Vec<StoredEvent>,
    limited: bool,
    /// The position just before the timeline.
    start: u64,
    state: Vec<StoredEvent>,
}

impl<'a> Room<'a> {
    async fn load(
        services: &'a Services,
        room_id: &'a str,
        user_id: &str,
        memberships: Vec<(u64, String)>,
        end: u64,
    ) -> Result<Self> {
        let version = crate::rooms::room_version(services, room_id).await?;
        let (_, rules) = version_rules(&version)
            .ok_or_else(|| Error::Internal(format!("room version {version}").into()))?;
        Ok(Self {
            services,
            room_id,
            rules,
            visibility: Visibility::without_settings(user_id, memberships),
            settings_read: false,
            end,
        })
    }

    async fn can_see(&mut self, event: &StoredEvent) -> Result<bool> {
        if !self.settings_read && self.visibility.needs_settings(event) {
            let settings = Visibility::settings(self.services, self.room_id, self.end).await?;
            self.visibility.set_settings(&settings);
            self.settings_read = true;
        }
        Ok(self.visibility.can_see(event))
    }

    /// The newest events of the window the user may see and the filter allows.
    async fn timeline(
        &mut self,
        window: Window,
        filter: &EventFilter,
    ) -> Result<(Vec<StoredEvent>, bool, bool)> {
        let limit = filter
            .limit
            .map_or(10, |l| l as usize)
            .clamp(1, MAX_TIMELINE);
        let batch = (limit + 1).max(20);
        let mut found = Vec::new();
        let mut skipped_state = false;
        let mut upto = window.end;
        let mut limited = false;
        for round in 0.. {
            if window.since.is_some_and(|s| s >= upto) {
                break;
            }
            if round == MAX_BATCHES {
                limited = true;
                break;
            }
            let events = self
                .services
                .store
                .room_events(self.room_id, window.since, upto, batch, true)
                .await?;
            let exhausted = events.len() < batch;
            for event in events {
                upto = event.pos.saturating_sub(1);
                if self.can_see(&event).await? && filter.allows_event(&event) {
                    found.push(event);
                } else if event.state_key.is_some() {
                    skipped_state = true;
                }
                if found.len() > limit {
                    found.pop();
                    limited = true;
                    break;
                }
            }
            if limited || exhausted {
                break;
            }
        }
        found.reverse();
        Ok((found, limited, skipped_state))
    }

    async fn content(&mut self, window: Window, room_filter: &RoomFilter) -> Result<Content> {
        let timeline_filter = room_filter.timeline.clone().unwrap_or_default();
        let (timeline, limited, skipped_state) = self.timeline(window, &timeline_filter).await?;
        let start = timeline
            .first()
            .map_or(window.end, |e| e.pos.saturating_sub(1));
        let in_timeline: HashSet<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
        let state = match (window.state, window.since) {
            (StateMode::None, _) => Vec::new(),
            (StateMode::Full, _) | (StateMode::Delta, None) => {
                self.full_state(start, window.end, &in_timeline).await?
            }
            (StateMode::Delta, Some(_)) if !limited && !skipped_state => Vec::new(),
            (StateMode::Delta, Some(since)) => {
                self.state_delta(since, start, window.end, &in_timeline)
                    .await?
            }
        };
        Ok(Content {
            timeline,
            limited,
            start,
            state,
        })
    }

    /// Serves the room's events for the user, `room_id` left out as inside `/sync` rooms.
    async fn serve(
        &self,
        requester: &Requester,
        groups: [&[StoredEvent]; 2],
        format: Option<EventFormat>,
        visible_upto: u64,
        bundle: bool,
    ) -> Result<[Vec<SyncEvent>; 2]> {
        let all: Vec<&StoredEvent> = groups.iter().flat_map(|g| g.iter()).collect();
        let related = crate::rooms::read::related(self.services, &all).await?;
        let erased = crate::rooms::erasure::for_reader(self.services, &self.visibility).await?;
        let reader = Reader {
            user_id: &requester.user_id,
            device_id: requester.device_id.as_deref(),
            now_ms: crate::now_ms(),
            with_room_id: false,
            related: &related,
            redaction: &self.rules.redaction,
            visible_upto,
            erased: &erased,
        };
        let one = |e: &StoredEvent| -> Result<SyncEvent> {
            Ok(match format {
                Some(EventFormat::Federation) => {
                    SyncEvent::Federation(client::federation(e, &reader)?)
                }
                _ => SyncEvent::Client(Box::new(client::serve(
                    e,
                    &reader,
                    Some(self.visibility.membership_at(e.pos)),
                )?)),
            })
        };
        let [first, second] = groups;
        let first = if bundle && !matches!(format, Some(EventFormat::Federation)) {
            // RS-43: aggregations only where the client may lack the children.
            let mut served = first
                .iter()
                .map(|e| client::serve(e, &reader, Some(self.visibility.membership_at(e.pos))))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&StoredEvent> = first.iter().collect();
            crate::relations::bundle::attach(self.services, &reader, &refs, &mut served).await?;
            served
                .into_iter()
                .map(|e| SyncEvent::Client(Box::new(e)))
                .collect()
        } else {
            first.iter().map(one).collect::<Result<_>>()?
        };
        Ok([first, second.iter().map(one).collect::<Result<_>>()?])
    }
}

/// What the device already has of the room's members (RS-26): sent in a response whose
/// token the client has since synced from. Nothing for a full-state answer, or when the
/// filter asks for redundant members.
async fn lazy_members_sent(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    window: Window,
    filter: &EventFilter,
) -> Result<HashSet<String>> {
    let wanted = filter.lazy_members()
        && filter.include_redundant_members != Some(true)
        && window.state != StateMode::Full;
    let Some(since) = window.since.filter(|_| wanted) else {
        return Ok(HashSet::new());
    };
    let device = requester.device_id.as_deref().unwrap_or_default();
    Ok(services
        .store
        .lazy_members_sent(&requester.user_id, device, room_id, since)
        .await?
        .into_iter()
        .collect())
}

/// The members this response carries in the room, to remember at the response's position
/// (RS-30: they count once the client syncs from it).
fn lazy_record(
    room_id: &str,
    window: Window,
    filter: &EventFilter,
    groups: [&[StoredEvent]; 2],
) -> Option<LazyMembers> {
    if !filter.lazy_members() {
        return None;
    }
    let members: Vec<String> = groups
        .iter()
        .flat_map(|g| g.iter())
        .filter(|e| e.event_type == "m.room.member")
        .filter_map(|e| e.state_key.clone())
        .collect();
    let replace = window.state == StateMode::Full;
    (replace || !members.is_empty()).then(|| LazyMembers {
        room_id: room_id.to_owned(),
        members,
        replace,
    })
}

/// A joined room's section; `None` when an incremental sync has nothing to show in it (its
/// new events were all hidden or filtered out).
pub(super) async fn joined(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    memberships: Vec<(u64, String)>,
    window: Window,
    room_filter: &RoomFilter,
    filter: &Filter,
) -> Result<(Option<JoinedRoom>, Option<LazyMembers>)> {
    let mut room = Room::load(
        services,
        room_id,
        &requester.user_id,
        memberships,
        window.end,
    )
    .await?;
    let content = room.content(window, room_filter).await?;
    let full = window.state == StateMode::Full;
    if !full && content.timeline.is_empty() && content.state.is_empty() {
        return Ok((None, None));
    }
    let members_changed = content
        .timeline
        .iter()
        .chain(content.state.iter())
        .any(|e| e.event_type == "m.room.member");
    let summary = if full || members_changed {
        room.summary(&requester.user_id, window.end).await?
    } else {
        Summary::default()
    };
    let state_filter = room_filter.state.clone().unwrap_or_default();
    let heroes = summary.heroes.clone().unwrap_or_default();
    let already_sent =
        lazy_members_sent(services, requester, room_id, window, &state_filter).await?;
    let state = room
        .filter_state(
            content.state,
            &content.timeline,
            content.start,
            full,
            (&requester.user_id, &heroes, &already_sent),
            &state_filter,
        )
        .await?;
    let lazy = lazy_record(room_id, window, &state_filter, [&content.timeline, &state]);
    let [timeline, state] = room
        .serve(
            requester,
            [&content.timeline, &state],
            filter.event_format,
            window.end,
            content.limited || window.state == StateMode::Full,
        )
        .await?;
    let threads = filter.unread_thread_notifications();
    Ok((
        Some(JoinedRoom {
            state: RoomEvents { events: state },
            summary,
            timeline: Timeline {
                events: timeline,
                limited: content.limited,
                prev_batch: room_token(content.start),
            },
            unread_notifications: UnreadNotifications::default(),
            unread_thread_notifications: threads.then(BTreeMap::new),
            ..JoinedRoom::default()
        }),
        lazy,
    ))
}

/// A left room's section: its history up to the leave (RS-17, RS-20, RS-21).
pub(super) async fn left(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    memberships: Vec<(u64, String)>,
    window: Window,
    room_filter: &RoomFilter,
    filter: &Filter,
) -> Result<LeftRoom> {
    let mut room = Room::load(
        services,
        room_id,
        &requester.user_id,
        memberships,
        window.end,
    )
    .await?;
    let content = room.content(window, room_filter).await?;
    let state_filter = room_filter.state.clone().unwrap_or_default();
    let state = if window.state == StateMode::None {
        Vec::new()
    } else {
        room.filter_state(
            content.state,
            &content.timeline,
            content.start,
            window.state == StateMode::Full,
            (&requester.user_id, &[], &HashSet::new()),
            &state_filter,
        )
        .await?
    };
    let [timeline, state] = room
        .serve(
            requester,
            [&content.timeline, &state],
            filter.event_format,
            window.end,
            content.limited,
        )
        .await?;
    Ok(LeftRoom {
        state: RoomEvents { events: state },
        timeline: Timeline {
            events: timeline,
            limited: content.limited,
            prev_batch: room_token(content.start),
        },
        ..LeftRoom::default()
    })
}
