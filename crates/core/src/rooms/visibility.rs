//! History visibility (`history_visibility.md`, ST-16..18): which events of a room a user may
//! see, judged per event from the user's membership and the room's setting at that event.
//!
//! On one server the room's history is a line, so both are step functions of the stream
//! position: the user's membership changes and the setting's changes, each a short sorted
//! list, answer every event without touching storage again.

use myelin_store::StoredEvent;

use crate::{Services, error::Result};

/// A user's memberships in one room and the room's visibility settings, over positions.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    user_id: String,
    /// `(position, membership)`, oldest first.
    memberships: Vec<(u64, String)>,
    /// `(position, history_visibility)`, oldest first.
    settings: Vec<(u64, String)>,
}

fn content_field(event: &StoredEvent, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&event.json).ok()?;
    value
        .get("content")?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

/// The last value set strictly before `pos` (or at or before, with `inclusive`).
fn step(steps: &[(u64, String)], pos: u64, inclusive: bool) -> Option<&str> {
    let idx = steps.partition_point(|(p, _)| if inclusive { *p <= pos } else { *p < pos });
    idx.checked_sub(1).map(|i| steps[i].1.as_str())
}

impl Visibility {
    /// From what the caller has: the user's membership changes in the room and the room's
    /// `m.room.history_visibility` events.
    pub fn new(user_id: &str, memberships: Vec<(u64, String)>, settings: &[StoredEvent]) -> Self {
        let settings = settings
            .iter()
            .map(|e| {
                (
                    e.pos,
                    content_field(e, "history_visibility").unwrap_or_else(|| "shared".to_owned()),
                )
            })
            .collect();
        Self {
            user_id: user_id.to_owned(),
            memberships,
            settings,
        }
    }

    /// Without the room's settings yet: enough for every event seen while joined, which is
    /// what most syncs show. Call [`Visibility::needs_settings`] before judging an event and
    /// [`Visibility::set_settings`] when it says so.
    pub fn without_settings(user_id: &str, memberships: Vec<(u64, String)>) -> Self {
        Self::new(user_id, memberships, &[])
    }

    /// Whether judging `event` needs the room's history-visibility settings (it was not sent
    /// while the user was joined, and is not their own membership).
    pub fn needs_settings(&self, event: &StoredEvent) -> bool {
        let own = event.event_type == "m.room.member"
            && event.state_key.as_deref() == Some(self.user_id.as_str());
        !own && self.membership_before(event.pos) != "join"
    }

    pub fn set_settings(&mut self, settings: &[StoredEvent]) {
        let with = Self::new(&self.user_id, Vec::new(), settings);
        self.settings = with.settings;
    }

    /// Reads both histories up to `upto`.
    pub async fn load(
        services: &Services,
        room_id: &str,
        user_id: &str,
        upto: u64,
    ) -> Result<Self> {
        let members = services
            .store
            .state_key_history(room_id, "m.room.member", user_id, upto)
            .await?;
        let memberships = members
            .iter()
            .map(|e| {
                (
                    e.pos,
                    content_field(e, "membership").unwrap_or_else(|| "leave".to_owned()),
                )
            })
            .collect();
        let settings = Self::settings(services, room_id, upto).await?;
        Ok(Self::new(user_id, memberships, &settings))
    }

    pub async fn settings(
        services: &Services,
        room_id: &str,
        upto: u64,
    ) -> Result<Vec<StoredEvent>> {
        Ok(services
            .store
            .state_key_history(room_id, "m.room.history_visibility", "", upto)
            .await?)
    }

    /// The user's membership after the event at `pos` (its own effect counted; EV-15).
    pub fn membership_at(&self, pos: u64) -> &str {
        step(&self.memberships, pos, true).unwrap_or("leave")
    }

    fn membership_before(&self, pos: u64) -> &str {
        step(&self.memberships, pos, false).unwrap_or("leave")
    }

    /// The user's latest membership, and where it was set.
    pub fn current(&self) -> Option<(u64, &str)> {
        self.memberships.last().map(|(p, m)| (*p, m.as_str()))
    }

    /// Where the user first joined the room.
    pub fn first_join(&self) -> Option<u64> {
        self.memberships
            .iter()
            .find(|(_, m)| m == "join")
            .map(|(p, _)| *p)
    }

    pub fn ever_joined(&self) -> bool {
        self.memberships.iter().any(|(_, m)| m == "join")
    }

    /// Where the user's last stay in the room ended: the first membership after their last
    /// join that is not a join (their leave, kick or ban). `None` while they are joined, or
    /// if they never were. Nothing the room did after it is theirs to read, whatever their
    /// membership became later (a ban, a knock, a new invite).
    pub fn joined_until(&self) -> Option<u64> {
        joined_until(&self.memberships)
    }

    fn joined_after(&self, pos: u64) -> bool {
        self.memberships
            .iter()
            .any(|(p, m)| *p > pos && m == "join")
    }

    /// The setting in force for events at `pos`; unknown or missing counts as `shared`.
    pub fn setting_before(&self, pos: u64) -> &str {
        match step(&self.settings, pos, false) {
            Some(s @ ("world_readable" | "shared" | "invited" | "joined")) => s,
            _ => "shared",
        }
    }

    fn allowed_under(&self, setting: &str, pos: u64) -> bool {
        let membership = self.membership_before(pos);
        match setting {
            "world_readable" => true,
            _ if membership == "join" => true,
            "joined" => false,
            "invited" => membership == "invite",
            _ => self.joined_after(pos),
        }
    }

    /// Whether the user may see this event (ST-16, ST-17).
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        if event.event_type == "m.room.member"
            && event.state_key.as_deref() == Some(self.user_id.as_str())
        {
            return true;
        }
        if self.allowed_under(self.setting_before(event.pos), event.pos) {
            return true;
        }
        // A change of the setting is visible if either the old or the new one allows it.
        if event.event_type == "m.room.history_visibility" && event.state_key.as_deref() == Some("")
        {
            let new = content_field(event, "history_visibility").unwrap_or_default();
            return self.allowed_under(&new, event.pos);
        }
        false
    }

    /// Whether the user may see the room as it was at `pos` (`/members?at=`): as if an event
    /// came right after it.
    pub fn can_see_point(&self, pos: u64) -> bool {
        let membership = self.membership_at(pos);
        match step(&self.settings, pos, true).unwrap_or("shared") {
            "world_readable" => true,
            _ if membership == "join" => true,
            "joined" => false,
            "invited" => membership == "invite",
            _ => self.joined_after(pos),
        }
    }

    /// Whether the room was world-readable at `pos`.
    pub fn world_readable_at(&self, pos: u64) -> bool {
        step(&self.settings, pos, true) == Some("world_readable")
    }
}

/// See [`Visibility::joined_until`]; `memberships` oldest first.
pub fn joined_until(memberships: &[(u64, String)]) -> Option<u64> {
    let last_join = memberships.iter().rposition(|(_, m)| m == "join")?;
    memberships[last_join + 1..]
        .iter()
        .find(|(_, m)| m != "join")
        .map(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pos: u64, kind: &str, state_key: Option<&str>, content: &str) -> StoredEvent {
        StoredEvent {
            pos,
            event_id: format!("$e{pos}"),
            room_id: "!r:x".into(),
            event_type: kind.into(),
            state_key: state_key.map(str::to_owned),
            sender: "@a:x".into(),
            json: format!(r#"{{"content":{content}}}"#),
            replaces: None,
            redacted_by: None,
            txn: None,
        }
    }

    fn message(pos: u64) -> StoredEvent {
        event(pos, "m.room.message", None, "{}")
    }

    fn setting(pos: u64, value: &str) -> StoredEvent {
        event(
            pos,
            "m.room.history_visibility",
            Some(""),
            &format!(r#"{{"history_visibility":"{value}"}}"#),
        )
    }

    fn memberships(steps: &[(u64, &str)]) -> Vec<(u64, String)> {
        steps.iter().map(|(p, m)| (*p, (*m).to_owned())).collect()
    }

    #[test]
    fn st16_shared_history_is_seen_by_later_joiners_until_they_leave() {
        let v = Visibility::new(
            "@b:x",
            memberships(&[(10, "join"), (20, "leave")]),
            &[setting(1, "shared")],
        );
        assert!(v.can_see(&message(5)), "before the join, shared");
        assert!(v.can_see(&message(15)), "while joined");
        assert!(!v.can_see(&message(25)), "after the leave (ST-18)");
        assert!(
            v.can_see(&event(20, "m.room.member", Some("@b:x"), "{}")),
            "own leave (ST-17)"
        );
    }

    #[test]
    fn st16_joined_history_hides_what_came_before_the_join() {
        let v = Visibility::new(
            "@b:x",
            memberships(&[(10, "join")]),
            &[setting(1, "joined")],
        );
        assert!(!v.can_see(&message(5)));
        assert!(v.can_see(&message(11)));
    }

    #[test]
    fn st16_invited_history_starts_at_the_invite() {
        let v = Visibility::new(
            "@b:x",
            memberships(&[(8, "invite"), (10, "join")]),
            &[setting(1, "invited")],
        );
        assert!(!v.can_see(&message(5)));
        assert!(v.can_see(&message(9)), "invited at the event");
        assert!(v.can_see(&message(12)));
    }

    #[test]
    fn st16_world_readable_is_seen_by_anyone_and_missing_counts_as_shared() {
        let v = Visibility::new("@c:x", Vec::new(), &[setting(1, "world_readable")]);
        assert!(v.can_see(&message(5)));
        let none = Visibility::new("@c:x", memberships(&[(10, "join")]), &[]);
        assert!(none.can_see(&message(5)), "no setting: shared");
        let nobody = Visibility::new("@c:x", Vec::new(), &[]);
        assert!(!nobody.can_see(&message(5)));
    }

    #[test]
    fn st17_a_setting_change_is_visible_if_either_side_allows() {
        let v = Visibility::new(
            "@b:x",
            Vec::new(),
            &[setting(1, "joined"), setting(5, "world_readable")],
        );
        assert!(v.can_see(&setting(5, "world_readable")));
        assert!(v.can_see(&message(6)));
        assert!(!v.can_see(&message(3)));
    }

    #[test]
    fn st18_a_stay_ends_at_the_first_non_join_after_the_last_join() {
        let steps = memberships(&[
            (5, "invite"),
            (10, "join"),
            (12, "join"),
            (20, "leave"),
            (30, "ban"),
        ]);
        assert_eq!(
            joined_until(&steps),
            Some(20),
            "a later ban does not extend it"
        );
        assert_eq!(joined_until(&memberships(&[(10, "join")])), None);
        assert_eq!(
            joined_until(&memberships(&[(5, "invite"), (6, "leave")])),
            None
        );
    }

    #[test]
    fn ev15_membership_at_counts_the_events_own_effect() {
        let v = Visibility::new("@b:x", memberships(&[(10, "join"), (20, "leave")]), &[]);
        assert_eq!(v.membership_at(9), "leave");
        assert_eq!(v.membership_at(10), "join");
        assert_eq!(v.membership_at(19), "join");
        assert_eq!(v.membership_at(20), "leave");
    }
}
