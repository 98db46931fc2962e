//! The authorization rules Myelin relies on, through ruma's state-res, one test each: events
//! are built and signed as the server builds them, and checked against the state they
//! would follow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ruma_common::{OwnedRoomId, OwnedUserId, RoomVersionId};
use serde_json::{Value, json};

use super::{Draft, Position, StateMap, authorize, build, version_rules};
use crate::{keys::SigningKey, rooms::Head};

const CREATOR: &str = "@creator:localhost";

fn user(id: &str) -> OwnedUserId {
    OwnedUserId::try_from(id).unwrap()
}

struct Room {
    head: Head,
    key: SigningKey,
}

impl Room {
    /// A room of `version` made by [`CREATOR`], joined, with `levels` as its power levels and
    /// `join_rule` as its join rule.
    fn new(version: &str, levels: Value, join_rule: &str) -> Self {
        let (id, rules) = version_rules(version).unwrap();
        let key = SigningKey::ephemeral();
        let room_id: OwnedRoomId = "!room:localhost".try_into().unwrap();
        let mut content = json!({ "room_version": version });
        if version == "10" {
            content["creator"] = json!(CREATOR);
        }
        let create = Draft::new("m.room.create", Some(""), &user(CREATOR), content).unwrap();
        let empty = StateMap::new();
        let hashed = rules.authorization.room_create_event_id_as_room_id;
        let built = build(
            &create,
            &Position {
                room_id: (!hashed).then_some(room_id.as_ref()),
                rules: &rules,
                state: &empty,
                prev_events: &[],
                depth: 1,
            },
            &key,
            "localhost",
            1,
        )
        .unwrap();
        authorize(&built.pdu, &rules.authorization, &empty).expect("a create event passes");
        let room_id = if hashed {
            OwnedRoomId::try_from(format!("!{}", &built.pdu.event_id.as_str()[1..])).unwrap()
        } else {
            room_id
        };
        let mut head = Head::new(room_id, id, rules);
        head.advance(Arc::new(built.pdu));
        let mut room = Self { head, key };
        room.accept(
            CREATOR,
            "m.room.member",
            Some(CREATOR),
            json!({ "membership": "join" }),
        );
        room.accept(CREATOR, "m.room.power_levels", Some(""), levels);
        room.accept(
            CREATOR,
            "m.room.join_rules",
            Some(""),
            json!({ "join_rule": join_rule }),
        );
        room
    }

    fn check(
        &self,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<Arc<super::Pdu>, String> {
        let draft = Draft::new(kind, state_key, &user(sender), content).unwrap();
        let built = build(&draft, &self.head.position(), &self.key, "localhost", 2).unwrap();
        authorize(&built.pdu, &self.head.rules.authorization, &self.head.state)
            .map(|()| Arc::new(built.pdu))
            .map_err(|e| e.to_string())
    }

    fn accept(&mut self, sender: &str, kind: &str, state_key: Option<&str>, content: Value) {
        let pdu = self
            .check(sender, kind, state_key, content)
            .unwrap_or_else(|e| panic!("{kind} from {sender} refused: {e}"));
        self.head.advance(pdu);
    }

    fn refused(&self, sender: &str, kind: &str, state_key: Option<&str>, content: Value) -> bool {
        self.check(sender, kind, state_key, content).is_err()
    }

    fn join(&mut self, who: &str) {
        self.accept(
            who,
            "m.room.member",
            Some(who),
            json!({ "membership": "join" }),
        );
    }
}

fn levels(extra: Value) -> Value {
    let mut base = json!({
        "users": { CREATOR: 100 }, "users_default": 0, "events_default": 0, "state_default": 50,
        "ban": 50, "kick": 50, "redact": 50, "invite": 0, "events": {},
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn a_create_event_with_previous_events_is_refused() {
    let (_, rules) = version_rules("11").unwrap();
    let key = SigningKey::ephemeral();
    let room_id: OwnedRoomId = "!r:localhost".try_into().unwrap();
    let prev = vec![ruma_common::OwnedEventId::try_from("$abc").unwrap()];
    let draft = Draft::new(
        "m.room.create",
        Some(""),
        &user(CREATOR),
        json!({ "room_version": "11" }),
    )
    .unwrap();
    let empty = StateMap::new();
    let built = build(
        &draft,
        &Position {
            room_id: Some(&room_id),
            rules: &rules,
            state: &empty,
            prev_events: &prev,
            depth: 2,
        },
        &key,
        "localhost",
        1,
    )
    .unwrap();
    assert!(authorize(&built.pdu, &rules.authorization, &empty).is_err());
}

#[test]
fn joins_follow_the_join_rule() {
    let public = Room::new("11", levels(json!({})), "public");
    assert!(!public.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@bob:localhost"),
        json!({ "membership": "join" })
    ));
    let mut private = Room::new("11", levels(json!({})), "invite");
    assert!(private.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@bob:localhost"),
        json!({ "membership": "join" })
    ));
    private.accept(
        CREATOR,
        "m.room.member",
        Some("@bob:localhost"),
        json!({ "membership": "invite" }),
    );
    assert!(!private.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@bob:localhost"),
        json!({ "membership": "join" })
    ));
    // Nobody joins for someone else.
    assert!(private.refused(
        CREATOR,
        "m.room.member",
        Some("@carol:localhost"),
        json!({ "membership": "join" })
    ));
}

#[test]
fn banned_users_cannot_join_and_bans_need_the_ban_level() {
    let mut room = Room::new("11", levels(json!({})), "public");
    room.join("@bob:localhost");
    assert!(room.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@carol:localhost"),
        json!({ "membership": "ban" })
    ));
    room.accept(
        CREATOR,
        "m.room.member",
        Some("@carol:localhost"),
        json!({ "membership": "ban" }),
    );
    assert!(room.refused(
        "@carol:localhost",
        "m.room.member",
        Some("@carol:localhost"),
        json!({ "membership": "join" })
    ));
}

#[test]
fn only_members_send_events() {
    let room = Room::new("11", levels(json!({})), "public");
    assert!(room.refused(
        "@bob:localhost",
        "m.room.message",
        None,
        json!({ "body": "x" })
    ));
    assert!(!room.refused(CREATOR, "m.room.message", None, json!({ "body": "x" })));
}

#[test]
fn state_needs_the_state_level_and_events_their_own() {
    let mut room = Room::new(
        "11",
        levels(json!({ "events": { "com.example.loud": 20 } })),
        "public",
    );
    room.join("@bob:localhost");
    assert!(room.refused(
        "@bob:localhost",
        "m.room.topic",
        Some(""),
        json!({ "topic": "t" })
    ));
    assert!(room.refused("@bob:localhost", "com.example.loud", None, json!({})));
    assert!(!room.refused("@bob:localhost", "com.example.quiet", None, json!({})));
    assert!(!room.refused(CREATOR, "m.room.topic", Some(""), json!({ "topic": "t" })));
}

#[test]
fn state_keys_naming_another_user_are_refused() {
    let mut room = Room::new("11", levels(json!({ "state_default": 0 })), "public");
    room.join("@bob:localhost");
    assert!(room.refused("@bob:localhost", "com.example", Some(CREATOR), json!({})));
    assert!(!room.refused(
        "@bob:localhost",
        "com.example",
        Some("@bob:localhost"),
        json!({})
    ));
}

#[test]
fn nobody_grants_more_than_their_own_level() {
    let mut room = Room::new(
        "11",
        levels(
            json!({ "users": { CREATOR: 100, "@bob:localhost": 50 }, "events": { "m.room.power_levels": 50 } }),
        ),
        "public",
    );
    room.join("@bob:localhost");
    let raise = levels(
        json!({ "users": { CREATOR: 100, "@bob:localhost": 60 }, "events": { "m.room.power_levels": 50 } }),
    );
    assert!(room.refused("@bob:localhost", "m.room.power_levels", Some(""), raise));
    let demote_creator = levels(
        json!({ "users": { CREATOR: 0, "@bob:localhost": 50 }, "events": { "m.room.power_levels": 50 } }),
    );
    assert!(room.refused(
        "@bob:localhost",
        "m.room.power_levels",
        Some(""),
        demote_creator
    ));
    let lower_self = levels(
        json!({ "users": { CREATOR: 100, "@bob:localhost": 10 }, "events": { "m.room.power_levels": 50 } }),
    );
    assert!(!room.refused(
        "@bob:localhost",
        "m.room.power_levels",
        Some(""),
        lower_self
    ));
}

#[test]
fn kicks_need_the_kick_level_and_more_power_than_the_target() {
    let mut room = Room::new(
        "11",
        levels(json!({ "users": { CREATOR: 100, "@mod:localhost": 50, "@peer:localhost": 50 } })),
        "public",
    );
    for who in ["@mod:localhost", "@peer:localhost", "@bob:localhost"] {
        room.join(who);
    }
    let leave = json!({ "membership": "leave" });
    assert!(room.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@peer:localhost"),
        leave.clone()
    ));
    assert!(room.refused(
        "@mod:localhost",
        "m.room.member",
        Some("@peer:localhost"),
        leave.clone()
    ));
    assert!(!room.refused(
        "@mod:localhost",
        "m.room.member",
        Some("@bob:localhost"),
        leave
    ));
}

#[test]
fn invites_need_the_invite_level() {
    let mut room = Room::new("11", levels(json!({ "invite": 50 })), "invite");
    room.accept(
        CREATOR,
        "m.room.member",
        Some("@bob:localhost"),
        json!({ "membership": "invite" }),
    );
    room.join("@bob:localhost");
    assert!(room.refused(
        "@bob:localhost",
        "m.room.member",
        Some("@carol:localhost"),
        json!({ "membership": "invite" })
    ));
}

#[test]
fn v12_creators_outrank_every_level() {
    let mut room = Room::new(
        "12",
        json!({ "users": { "@admin:localhost": 9_007_199_254_740_991_i64 }, "kick": 50, "ban": 50 }),
        "public",
    );
    room.join("@admin:localhost");
    assert!(room.refused(
        "@admin:localhost",
        "m.room.member",
        Some(CREATOR),
        json!({ "membership": "leave" })
    ));
    assert!(!room.refused(
        CREATOR,
        "m.room.member",
        Some("@admin:localhost"),
        json!({ "membership": "leave" })
    ));
    assert_eq!(room.head.power(&user(CREATOR)), crate::rooms::CREATOR_POWER);
    assert_eq!(RoomVersionId::V12, room.head.version);
}

#[test]
fn v10_needs_integer_power_levels() {
    let room = Room::new("10", levels(json!({})), "public");
    assert!(room.refused(
        CREATOR,
        "m.room.power_levels",
        Some(""),
        levels(json!({ "ban": "50" }))
    ));
}
