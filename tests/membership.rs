//! Membership: join, invite, leave, kick, ban, unban, forget, knock, restricted rooms and
//! power levels (behaviours MB-* of `behaviours-rooms.md`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use serde_json::{Value, json};

async fn membership(server: &TestServer, reader: &User, room: &str, user: &User) -> Value {
    let resp = server
        .get(
            &format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(room),
                enc(&user.user_id)
            ),
            &reader.token,
        )
        .await;
    resp.assert_ok()["membership"].clone()
}

async fn public_room(server: &TestServer, creator: &User) -> String {
    server
        .create_room(
            creator,
            json!({ "preset": "public_chat", "room_version": "11" }),
        )
        .await
}

#[tokio::test]
async fn mb01_mb02_join_by_id_or_alias_with_custom_content() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "room_alias_name": "hall" }),
        )
        .await;
    let by_alias = server
        .post(
            &format!("/join/{}", enc("#hall:localhost")),
            &bob.token,
            json!({ "foo": "bar", "reason": "hi" }),
        )
        .await;
    assert_eq!(by_alias.assert_ok()["room_id"], json!(room));
    let member = server
        .get(
            &format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(&bob.user_id)
            ),
            &alice.token,
        )
        .await;
    // MB-03: the profile's display name comes with the join, beside the body's keys.
    assert_eq!(
        member.assert_ok(),
        &json!({ "membership": "join", "foo": "bar", "reason": "hi", "displayname": "bob" })
    );
    let by_id = server
        .post(&format!("/join/{}", enc(&room)), &bob.token, json!({}))
        .await;
    assert_eq!(by_id.assert_ok()["room_id"], json!(room));
    let no_body = server
        .call(
            reqwest::Method::POST,
            &format!("/rooms/{}/join", enc(&room)),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(
        no_body.assert_ok()["room_id"],
        json!(room),
        "the body is optional"
    );
}

#[tokio::test]
async fn mb04_mb05_invite_only_rooms_and_unknown_rooms_refuse_joins() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let private = server.create_room(&alice, json!({})).await;
    let refused = server.room_post(&bob, &private, "join", json!({})).await;
    refused.assert_error(403, "M_FORBIDDEN");
    let unknown = server
        .room_post(&bob, "!nothing:localhost", "join", json!({}))
        .await;
    unknown.assert_error(404, "M_NOT_FOUND");
    let no_alias = server
        .post(
            &format!("/join/{}", enc("#none:localhost")),
            &bob.token,
            json!({}),
        )
        .await;
    no_alias.assert_error(404, "M_NOT_FOUND");
    let bad = server
        .room_post(&bob, "not-a-room", "join", json!({}))
        .await;
    bad.assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn mb06_joining_twice_makes_no_new_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let path = format!(
        "/rooms/{}/state/m.room.member/{}?format=event",
        enc(&room),
        enc(&bob.user_id)
    );
    let first = server.get(&path, &bob.token).await.assert_ok()["event_id"].clone();
    server.join(&bob, &room).await;
    let second = server.get(&path, &bob.token).await.assert_ok()["event_id"].clone();
    assert_eq!(first, second);
}

#[tokio::test]
async fn mb07_mb27_invitees_see_stripped_state_and_joined_rooms_lists_joins_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "name": "Secret", "topic": "t" }))
        .await;
    server.invite(&alice, &room, &bob).await;
    let sync = server.sync(&bob, &[]).await;
    let events = sync["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .unwrap()
        .clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for wanted in [
        "m.room.create",
        "m.room.name",
        "m.room.topic",
        "m.room.join_rules",
        "m.room.member",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing: {types:?}");
    }
    assert!(
        !types.contains(&"m.room.power_levels"),
        "stripped state only"
    );
    // Stripped: the four keys, except the invitee's own member event, which also carries
    // its ID and timestamp (clients date the invite by it; the reference server sends it
    // whole).
    for event in &events {
        let mut keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        keys.sort();
        if event["type"] == "m.room.member" {
            assert_eq!(
                keys,
                [
                    "content",
                    "event_id",
                    "origin_server_ts",
                    "sender",
                    "state_key",
                    "type"
                ],
                "{event}"
            );
            assert!(event["origin_server_ts"].as_i64().unwrap() > 1_700_000_000_000);
        } else {
            assert_eq!(keys, ["content", "sender", "state_key", "type"], "{event}");
        }
    }
    let own = events
        .iter()
        .find(|e| e["type"] == "m.room.member")
        .unwrap();
    assert_eq!(own["state_key"], json!(bob.user_id));
    assert_eq!(own["content"]["membership"], "invite");
    assert!(sync["rooms"]["join"].get(&room).is_none());
    let rooms = server.get("/joined_rooms", &bob.token).await;
    assert_eq!(rooms.assert_ok()["joined_rooms"], json!([]));
}

#[tokio::test]
async fn mb08_invite_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "room_version": "11" }))
        .await;
    let invite = |who: &User| json!({ "user_id": who.user_id });
    server
        .room_post(&alice, &room, "invite", invite(&alice))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&carol, &room, "invite", invite(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server.invite(&alice, &room, &bob).await;
    // Already invited: fine.
    server.invite(&alice, &room, &bob).await;
    server.join(&bob, &room).await;
    server
        .room_post(&alice, &room, "invite", invite(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "invite", json!({ "user_id": "nobody" }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .room_post(&alice, &room, "invite", json!({}))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    // Below the invite level (public rooms need 50).
    let public = public_room(&server, &alice).await;
    server.join(&bob, &public).await;
    server
        .room_post(&bob, &public, "invite", invite(&carol))
        .await
        .assert_error(403, "M_FORBIDDEN");
    // Banned users cannot be invited.
    server
        .room_post(&alice, &public, "ban", json!({ "user_id": carol.user_id }))
        .await
        .assert_ok();
    server
        .room_post(&alice, &public, "invite", invite(&carol))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn mb09_rejecting_an_invite_puts_the_room_in_leave() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    server.invite(&alice, &room, &bob).await;
    let first = server.sync(&bob, &[]).await;
    let next = first["next_batch"].as_str().unwrap().to_owned();
    assert!(first["rooms"]["invite"].get(&room).is_some());
    // The inviter leaves; the room is empty, yet the invite can be rejected.
    server
        .room_post(&alice, &room, "leave", json!({}))
        .await
        .assert_ok();
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let after = server.sync(&bob, &[("since", &next)]).await;
    let left = &after["rooms"]["leave"][&room];
    let timeline = left["timeline"]["events"].as_array().unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(last["type"], "m.room.member");
    assert_eq!(last["state_key"], json!(bob.user_id));
    assert_eq!(last["content"]["membership"], "leave");
    assert!(after["rooms"]["invite"].get(&room).is_none());
    assert_eq!(left["state"]["events"], json!([]), "never joined: no state");
}

#[tokio::test]
async fn mb10_mb11_leaving_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&bob, "!unknown:localhost", "leave", json!({}))
        .await
        .assert_error(404, "M_NOT_FOUND");
    server.join(&bob, &room).await;
    let next = server.sync(&bob, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .room_post(&bob, &room, "leave", json!({ "reason": "bye" }))
        .await
        .assert_ok();
    assert_eq!(membership(&server, &alice, &room, &bob).await, "leave");
    let after = server.sync(&bob, &[("since", &next)]).await;
    assert!(after["rooms"]["leave"].get(&room).is_some(), "{after}");
    assert!(after["rooms"]["join"].get(&room).is_none());
    let later = server
        .sync(&bob, &[("since", after["next_batch"].as_str().unwrap())])
        .await;
    assert!(later["rooms"]["leave"].get(&room).is_none(), "only once");
}

#[tokio::test]
async fn mb12_kicks() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let kick = |who: &User| json!({ "user_id": who.user_id, "reason": "out" });
    server
        .room_post(&bob, &room, "kick", kick(&alice))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "kick", kick(&carol))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&carol, &room, "kick", kick(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "kick", kick(&bob))
        .await
        .assert_ok();
    let event = server
        .get(
            &format!(
                "/rooms/{}/state/m.room.member/{}?format=event",
                enc(&room),
                enc(&bob.user_id)
            ),
            &alice.token,
        )
        .await;
    let event = event.assert_ok();
    assert_eq!(
        event["content"],
        json!({ "membership": "leave", "reason": "out" })
    );
    assert_eq!(event["sender"], json!(alice.user_id));
    server
        .room_post(&alice, &room, "kick", kick(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn mb13_mb14_bans_and_unbans() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let target = |who: &User| json!({ "user_id": who.user_id });
    server
        .room_post(&carol, &room, "ban", target(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&bob, &room, "ban", target(&alice))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "ban", target(&bob))
        .await
        .assert_ok();
    server
        .room_post(&alice, &room, "ban", target(&carol))
        .await
        .assert_ok();
    assert_eq!(membership(&server, &alice, &room, &carol).await, "ban");
    server
        .room_post(&bob, &room, "join", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "unban", target(&bob))
        .await
        .assert_ok();
    assert_eq!(membership(&server, &alice, &room, &bob).await, "leave");
    server
        .room_post(&alice, &room, "unban", target(&bob))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server.join(&bob, &room).await;
}

#[tokio::test]
async fn mb15_membership_through_the_state_api_follows_the_same_rules() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server
        .put_state(
            &bob,
            &room,
            "m.room.member",
            &alice.user_id,
            json!({ "membership": "ban" }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .put_state(
            &alice,
            &room,
            "m.room.member",
            &bob.user_id,
            json!({ "membership": "ban" }),
        )
        .await
        .assert_ok();
    assert_eq!(membership(&server, &alice, &room, &bob).await, "ban");
    server
        .put_state(&alice, &room, "m.room.member", &bob.user_id, json!({}))
        .await
        .assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn mb16_mb17_forgetting_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server.send_text(&alice, &room, "hello").await;
    server
        .room_post(&bob, &room, "forget", json!({}))
        .await
        .assert_error(400, "M_UNKNOWN");
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let messages = format!("/rooms/{}/messages?dir=b", enc(&room));
    server.get(&messages, &bob.token).await.assert_ok();
    server
        .room_post(&bob, &room, "forget", json!({}))
        .await
        .assert_ok();
    server
        .get(&messages, &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let filter = json!({ "room": { "include_leave": true } }).to_string();
    let sync = server.sync(&bob, &[("filter", &filter)]).await;
    assert!(sync["rooms"]["leave"].get(&room).is_none(), "{sync}");
    // Never a member at all: forgetting is fine too.
    let carol = server.register("carol").await;
    server
        .room_post(&carol, &room, "forget", json!({}))
        .await
        .assert_ok();
    // Re-joining brings the room and its history back.
    server.join(&bob, &room).await;
    server.get(&messages, &bob.token).await.assert_ok();
    let sync = server.sync(&bob, &[]).await;
    assert!(sync["rooms"]["join"].get(&room).is_some());
}

#[tokio::test]
async fn mb18_leave_and_forget_in_one_window_still_shows_the_leave() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    let next = server.sync(&bob, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server
        .room_post(&bob, &room, "forget", json!({}))
        .await
        .assert_ok();
    let after = server.sync(&bob, &[("since", &next)]).await;
    assert!(after["rooms"]["leave"].get(&room).is_some(), "{after}");
}

#[tokio::test]
async fn mb20_mb21_knocking() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "initial_state": [{ "type": "m.room.join_rules", "content": { "join_rule": "knock" } }] }),
        )
        .await;
    let other = server.create_room(&alice, json!({})).await;
    server
        .post(&format!("/knock/{}", enc(&other)), &bob.token, json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&bob, &room, "join", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    let knocked = server
        .post(
            &format!("/knock/{}", enc(&room)),
            &bob.token,
            json!({ "reason": "let me in" }),
        )
        .await;
    assert_eq!(knocked.assert_ok()["room_id"], json!(room));
    // Knocking again is fine.
    server
        .post(&format!("/knock/{}", enc(&room)), &bob.token, json!({}))
        .await
        .assert_ok();
    let sync = server.sync(&bob, &[]).await;
    let state = &sync["rooms"]["knock"][&room]["knock_state"]["events"];
    let types: Vec<&str> = state
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"m.room.create") && types.contains(&"m.room.member"),
        "{types:?}"
    );
    // Members see the knock; accepting it is an invite.
    let alice_sync = server.sync(&alice, &[]).await;
    let timeline = &alice_sync["rooms"]["join"][&room]["timeline"]["events"];
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["content"]["membership"] == "knock"),
        "{timeline}"
    );
    server.invite(&alice, &room, &bob).await;
    server.join(&bob, &room).await;
    server
        .post(&format!("/knock/{}", enc(&room)), &bob.token, json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn mb22_restricted_rooms_admit_members_of_allowed_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let space = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let room = server
        .create_room(
            &alice,
            json!({ "initial_state": [{ "type": "m.room.join_rules", "content": {
                "join_rule": "restricted",
                "allow": [{ "type": "m.room_membership", "room_id": space }],
            } }] }),
        )
        .await;
    server
        .room_post(&bob, &room, "join", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server.join(&bob, &space).await;
    server.join(&bob, &room).await;
    let member = server
        .get(
            &format!(
                "/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(&bob.user_id)
            ),
            &alice.token,
        )
        .await;
    assert_eq!(
        member.assert_ok()["join_authorised_via_users_server"],
        json!(alice.user_id)
    );
}

#[tokio::test]
async fn mb24_power_levels_cannot_exceed_your_own_and_v12_creators_outrank_all() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "power_level_content_override": { "users": { bob.user_id.clone(): 50 } } }),
        )
        .await;
    server.join(&bob, &room).await;
    let levels = server
        .get(
            &format!("/rooms/{}/state/m.room.power_levels/", enc(&room)),
            &alice.token,
        )
        .await
        .assert_ok()
        .clone();
    let mut raised = levels.clone();
    raised["users"][&bob.user_id] = json!(75);
    server
        .put_state(&bob, &room, "m.room.power_levels", "", raised)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // v12: the creator cannot be given a level, and no admin can kick them.
    let mut with_creator = levels.clone();
    with_creator["users"][&alice.user_id] = json!(100);
    server
        .put_state(&alice, &room, "m.room.power_levels", "", with_creator)
        .await
        .assert_error(400, "M_BAD_JSON");
    let mut admin = levels.clone();
    admin["users"][&bob.user_id] = json!(9_007_199_254_740_991_i64);
    server
        .put_state(&alice, &room, "m.room.power_levels", "", admin)
        .await
        .assert_ok();
    server
        .room_post(&bob, &room, "kick", json!({ "user_id": alice.user_id }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .room_post(&alice, &room, "kick", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
}

#[tokio::test]
async fn mb_remote_invites_need_federation() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .room_post(
            &alice,
            &room,
            "invite",
            json!({ "user_id": "@bob:elsewhere.example" }),
        )
        .await
        .assert_error(400, "M_UNKNOWN");
}

#[tokio::test]
async fn mb22_a_client_cannot_vouch_for_its_own_restricted_join() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let allowed = server.create_room(&alice, json!({})).await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "initial_state": [{ "type": "m.room.join_rules", "content": {
                "join_rule": "restricted",
                "allow": [{ "type": "m.room_membership", "room_id": allowed }],
            } }] }),
        )
        .await;
    server
        .room_post(
            &mallory,
            &room,
            "join",
            json!({ "join_authorised_via_users_server": alice.user_id }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .put_state(
            &mallory,
            &room,
            "m.room.member",
            &mallory.user_id,
            json!({ "membership": "join", "join_authorised_via_users_server": alice.user_id }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn mb08_mb12_mb13_acting_in_an_unknown_room_is_403() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    for action in ["invite", "kick", "ban", "unban"] {
        server
            .room_post(
                &alice,
                "!nowhere:localhost",
                action,
                json!({ "user_id": bob.user_id }),
            )
            .await
            .assert_error(403, "M_FORBIDDEN");
    }
}

#[tokio::test]
async fn membership_changes_are_rate_limited_per_user() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.room_membership_per_user = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 2,
        };
    })
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice).await;
    server.join(&bob, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let limited = server.room_post(&bob, &room, "join", json!({})).await;
    limited.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(limited.body["retry_after_ms"].as_u64().unwrap() > 0);
    // Another user's allowance is their own.
    let carol = server.register("carol").await;
    server.join(&carol, &room).await;
}

#[tokio::test]
async fn mb20_knocking_on_an_unknown_room_is_404() {
    let server = TestServer::start().await;
    let bob = server.register("bob").await;
    server
        .post(
            &format!("/knock/{}", enc("!nowhere:localhost")),
            &bob.token,
            json!({}),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .post(
            &format!("/knock/{}", enc("#nowhere:localhost")),
            &bob.token,
            json!({}),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
}
