//! A room's `state` section in `/sync`: the full state or the delta by Synapse's rule, the
//! summary, and the state filter with lazy loading (see the parent module's docs).

use std::collections::{BTreeMap, HashMap, HashSet};

use myelin_store::{StateRow, StoredEvent};

use super::Room;
use crate::{
    error::Result,
    events::client,
    sync::{filter::EventFilter, response::Summary},
};

impl Room<'_> {
    pub(super) async fn full_state(
        &self,
        start: u64,
        end: u64,
        in_timeline: &HashSet<&str>,
    ) -> Result<Vec<StoredEvent>> {
        let store = &self.services.store;
        let at_start = store.state_at(self.room_id, Some(start), None).await?;
        let at_end = if start < end {
            store.state_at(self.room_id, Some(end), None).await?
        } else {
            at_start.clone()
        };
        let key = |e: &StoredEvent| {
            (
                e.event_type.clone(),
                e.state_key.clone().unwrap_or_default(),
            )
        };
        let start_by_key: HashMap<_, &StoredEvent> = at_start.iter().map(|e| (key(e), e)).collect();
        let mut chosen: BTreeMap<u64, StoredEvent> = BTreeMap::new();
        for event in &at_end {
            let candidate = if in_timeline.contains(event.event_id.as_str()) {
                start_by_key.get(&key(event)).copied()
            } else {
                Some(event)
            };
            if let Some(c) = candidate
                && !in_timeline.contains(c.event_id.as_str())
            {
                chosen.insert(c.pos, c.clone());
            }
        }
        Ok(chosen.into_values().collect())
    }

    pub(super) async fn state_delta(
        &self,
        since: u64,
        start: u64,
        end: u64,
        in_timeline: &HashSet<&str>,
    ) -> Result<Vec<StoredEvent>> {
        let rows = self
            .services
            .store
            .state_window(self.room_id, since, end)
            .await?;
        let mut by_key: HashMap<(&str, &str), Vec<&StateRow>> = HashMap::new();
        for row in &rows {
            by_key
                .entry((&row.event_type, &row.state_key))
                .or_default()
                .push(row);
        }
        fn valid<'r>(rows: &[&'r StateRow], at: u64) -> Option<&'r str> {
            rows.iter()
                .find(|r| r.valid_at(at))
                .map(|r| r.event_id.as_str())
        }
        let mut wanted: Vec<String> = Vec::new();
        for rows in by_key.values() {
            let previous = valid(rows, since);
            let at_end = valid(rows, end);
            let candidate = match at_end {
                Some(id) if in_timeline.contains(id) => valid(rows, start),
                other => other,
            };
            if let Some(id) = candidate
                && candidate != previous
                && !in_timeline.contains(id)
            {
                wanted.push(id.to_owned());
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut events = self.services.store.events_by_id(&wanted).await?;
        events.sort_by_key(|e| e.pos);
        Ok(events)
    }

    /// `summary` (RS-31, RS-32) from the state at `end`, and the heroes' IDs.
    pub(super) async fn summary(&self, user_id: &str, end: u64) -> Result<Summary> {
        let state = self
            .services
            .store
            .state_at(self.room_id, Some(end), None)
            .await?;
        let mut members: Vec<(u64, String, String)> = Vec::new();
        let mut named = false;
        for event in &state {
            let content = client::content_value(event, &self.rules.redaction)?;
            match event.event_type.as_str() {
                "m.room.member" => {
                    let membership = content["membership"].as_str().unwrap_or_default();
                    if let Some(user) = &event.state_key {
                        members.push((event.pos, user.clone(), membership.to_owned()));
                    }
                }
                "m.room.name" => {
                    named |= content["name"].as_str().is_some_and(|n| !n.is_empty());
                }
                "m.room.canonical_alias" => {
                    named |= content["alias"].as_str().is_some_and(|a| !a.is_empty());
                }
                _ => {}
            }
        }
        members.sort();
        let count = |m: &str| members.iter().filter(|(_, _, x)| x == m).count() as u64;
        let heroes = (!named).then(|| {
            let pick = |wanted: &[&str]| -> Vec<String> {
                members
                    .iter()
                    .filter(|(_, u, m)| u != user_id && wanted.contains(&m.as_str()))
                    .take(5)
                    .map(|(_, u, _)| u.clone())
                    .collect()
            };
            let heroes = pick(&["join", "invite"]);
            if heroes.is_empty() {
                pick(&["leave", "ban"])
            } else {
                heroes
            }
        });
        Ok(Summary {
            heroes,
            joined_member_count: Some(count("join")),
            invited_member_count: Some(count("invite")),
        })
    }

    /// Applies the state filter and lazy loading to the state section.
    pub(super) async fn filter_state(
        &self,
        state: Vec<StoredEvent>,
        timeline: &[StoredEvent],
        start: u64,
        full: bool,
        (user_id, heroes, already_sent): (&str, &[String], &HashSet<String>),
        filter: &EventFilter,
    ) -> Result<Vec<StoredEvent>> {
        let mut state: Vec<StoredEvent> = state
            .into_iter()
            .filter(|e| filter.allows_type(&e.event_type) && filter.allows_sender(&e.sender))
            .collect();
        if !filter.lazy_members() {
            return Ok(state);
        }
        let mut wanted: HashSet<&str> = timeline.iter().map(|e| e.sender.as_str()).collect();
        if full {
            wanted.insert(user_id);
            wanted.extend(heroes.iter().map(String::as_str));
            state.retain(|e| {
                e.event_type != "m.room.member"
                    || e.state_key.as_deref().is_some_and(|k| wanted.contains(k))
            });
            return Ok(state);
        }
        // Incremental: the gap's membership changes stay (RS-27); the senders' members are
        // added where the timeline does not carry them and the device does not have them
        // (RS-26).
        let have: HashSet<String> = state
            .iter()
            .filter(|e| e.event_type == "m.room.member")
            .filter_map(|e| e.state_key.clone())
            .chain(
                timeline
                    .iter()
                    .filter(|e| e.event_type == "m.room.member")
                    .filter_map(|e| e.state_key.clone()),
            )
            .collect();
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|u| !have.contains(*u) && !already_sent.contains(*u))
            .collect();
        if !missing.is_empty() {
            let members = self
                .services
                .store
                .state_at(self.room_id, Some(start), Some("m.room.member"))
                .await?;
            state.extend(
                members
                    .into_iter()
                    .filter(|m| m.state_key.as_deref().is_some_and(|k| missing.contains(&k))),
            );
        }
        state.sort_by_key(|e| e.pos);
        Ok(state)
    }
}
