//! Deleting and blocking rooms through the admin API (issue 14; `operator-anchors.md` §1.2,
//! the reference server's `DELETE /_synapse/admin/v1|v2/rooms/{roomId}` and `/block`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Resp, TestServer, User, enc, next_batch};
use reqwest::Method;
use serde_json::{Value, json};

const A: &str = "/_synapse/admin";

/// A server with `admin` (a server admin), and a room of Alice's that Bob joined, Carol is
/// invited to and `#old:localhost` names.
async fn setup() -> (TestServer, User, User, User, User, String) {
    let server = TestServer::start().await;
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    let (alice, bob, room) = server
        .alice_and_bob(json!({
            "preset": "public_chat", "visibility": "public", "room_alias_name": "old",
        }))
        .await;
    let carol = server.register("carol").await;
    server.invite(&alice, &room, &carol).await;
    (server, admin, alice, bob, carol, room)
}

fn room_path(version: &str, room: &str, rest: &str) -> String {
    format!("{A}/{version}/rooms/{}{rest}", enc(room))
}

async fn delete_v1(server: &TestServer, admin: &User, room: &str, body: Value) -> Resp {
    server
        .call(
            Method::DELETE,
            &room_path("v1", room, ""),
            Some(&admin.token),
            Some(body),
        )
        .await
}

fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn deleting_a_room_moves_its_people_and_aliases_blocks_it_and_purges_it() {
    let (server, admin, alice, bob, carol, room) = setup().await;
    server.send_text(&bob, &room, "illegal content").await;
    let bob_since = next_batch(&server.sync(&bob, &[]).await);
    let alice_since = next_batch(&server.sync(&alice, &[]).await);
    let done = delete_v1(
        &server,
        &admin,
        &room,
        json!({ "new_room_user_id": admin.user_id, "block": true, "message": "Moved." }),
    )
    .await;
    let done = done.assert_ok().clone();
    let mut everyone = vec![
        alice.user_id.clone(),
        bob.user_id.clone(),
        carol.user_id.clone(),
    ];
    everyone.sort();
    assert_eq!(sorted(&done["kicked_users"]), everyone);
    assert_eq!(done["failed_to_kick_users"], json!([]));
    assert_eq!(done["local_aliases"], json!(["#old:localhost"]));
    let new_room = done["new_room_id"].as_str().unwrap().to_owned();

    // The joined members are in the new room with the message; the invitee is not.
    for user in [&alice, &bob] {
        let joined = server.get("/joined_rooms", &user.token).await;
        assert_eq!(joined.assert_ok()["joined_rooms"], json!([new_room]));
    }
    let joined = server.get("/joined_rooms", &carol.token).await;
    assert_eq!(joined.assert_ok()["joined_rooms"], json!([]));
    let messages = server
        .get(
            &format!("/rooms/{}/messages?dir=b&limit=1", enc(&new_room)),
            &bob.token,
        )
        .await;
    assert_eq!(
        messages.assert_ok()["chunk"][0]["content"]["body"],
        json!("Moved.")
    );
    let alias = server
        .get(
            &format!("/directory/room/{}", enc("#old:localhost")),
            &bob.token,
        )
        .await;
    assert_eq!(alias.assert_ok()["room_id"], json!(new_room));

    // The old room is gone: for the admin API, its members, the directory and search.
    server
        .get(&room_path("v1", &room, ""), &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(
            &format!("/rooms/{}/messages?dir=b", enc(&room)),
            &alice.token,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    let listed = server.call(Method::GET, "/publicRooms", None, None).await;
    assert_eq!(listed.assert_ok()["chunk"], json!([]));
    let search = server
        .post(
            "/search",
            &bob.token,
            json!({ "search_categories": { "room_events": { "search_term": "illegal" } } }),
        )
        .await;
    assert_eq!(
        search.assert_ok()["search_categories"]["room_events"]["count"],
        json!(0)
    );

    // Blocked: nobody joins it again, not even by its ID.
    server
        .post(&format!("/join/{}", enc(&room)), &bob.token, json!({}))
        .await
        .assert_error(403, "M_UNKNOWN");
    let block = server
        .get(&room_path("v1", &room, "/block"), &admin.token)
        .await;
    assert_eq!(
        block.assert_ok(),
        &json!({ "block": true, "user_id": admin.user_id })
    );

    // Bob's next sync says the old room is gone, once; leaving and forgetting it succeed.
    let sync = server
        .sync(&bob, &[("since", bob_since.as_str()), ("timeout", "0")])
        .await;
    assert!(sync["rooms"]["leave"].get(&room).is_some(), "{sync}");
    assert!(sync["rooms"]["join"].get(&new_room).is_some(), "{sync}");
    let again = server
        .sync(&bob, &[("since", &next_batch(&sync)), ("timeout", "0")])
        .await;
    assert!(
        again["rooms"]["leave"].get(&room).is_none(),
        "{}",
        again["rooms"]
    );
    // A full-state sync from before says so too.
    let full = server
        .sync(
            &alice,
            &[
                ("since", alice_since.as_str()),
                ("timeout", "0"),
                ("full_state", "true"),
            ],
        )
        .await;
    assert!(full["rooms"]["leave"].get(&room).is_some(), "{full}");
    for action in ["leave", "forget"] {
        server
            .room_post(&bob, &room, action, json!({}))
            .await
            .assert_ok();
    }
    // Someone who was never in it still gets the usual answers.
    let dave = server.register("dave").await;
    server
        .room_post(&dave, &room, "forget", json!({}))
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_long_poll_of_a_member_is_answered_when_the_room_is_purged() {
    let (server, admin, _alice, bob, _carol, room) = setup().await;
    let since = next_batch(&server.sync(&bob, &[]).await);
    let poll = server.spawn_sync(&bob, &since, 10_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    delete_v1(&server, &admin, &room, json!({}))
        .await
        .assert_ok();
    let answered = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long-poll was answered")
        .unwrap();
    // It wakes at the first change of the shutdown; by the next sync the room has left.
    let rest = server
        .sync(&bob, &[("since", &next_batch(&answered)), ("timeout", "0")])
        .await;
    let left = |sync: &Value| sync["rooms"]["leave"].get(&room).is_some();
    assert!(left(&answered) || left(&rest), "{answered}\n{rest}");
    assert!(
        rest["rooms"]["join"].get(&room).is_none(),
        "{}",
        rest["rooms"]
    );
}

#[tokio::test]
async fn without_purge_the_room_stays_empty_and_unknown_rooms_can_be_blocked_first() {
    let (server, admin, alice, _bob, _carol, room) = setup().await;
    let done = delete_v1(&server, &admin, &room, json!({ "purge": false })).await;
    assert_eq!(done.assert_ok()["new_room_id"], Value::Null);
    assert_eq!(done.assert_ok()["local_aliases"], json!([]));
    let details = server.get(&room_path("v1", &room, ""), &admin.token).await;
    assert_eq!(details.assert_ok()["joined_members"], json!(0));
    // Not blocked: Alice may come back.
    server
        .post(&format!("/join/{}", enc(&room)), &alice.token, json!({}))
        .await
        .assert_ok();

    // An unknown room: 404, unless it is to be blocked.
    let unknown = "!unknown:localhost";
    delete_v1(&server, &admin, unknown, json!({}))
        .await
        .assert_error(404, "M_NOT_FOUND");
    let blocked = delete_v1(&server, &admin, unknown, json!({ "block": true })).await;
    assert_eq!(
        blocked.assert_ok(),
        &json!({ "kicked_users": [], "failed_to_kick_users": [], "local_aliases": [], "new_room_id": null })
    );
    let status = server
        .get(&room_path("v1", unknown, "/block"), &admin.token)
        .await;
    assert_eq!(status.assert_ok()["block"], json!(true));
}

#[tokio::test]
async fn v2_deletes_in_the_background_with_a_status_by_room_and_by_id() {
    let (server, admin, _alice, _bob, _carol, room) = setup().await;
    // Ketesa sends the room ID unencoded.
    let started = server
        .call(
            Method::DELETE,
            &format!("{A}/v2/rooms/{room}"),
            Some(&admin.token),
            Some(json!({ "block": false })),
        )
        .await;
    let delete_id = started.assert_ok()["delete_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id = format!("{A}/v2/rooms/delete_status/{}", enc(&delete_id));
    let mut status = Value::Null;
    for _ in 0..100 {
        status = server.get(&by_id, &admin.token).await.assert_ok().clone();
        if status["status"] == json!("complete") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], json!("complete"), "{status}");
    assert_eq!(status["room_id"], json!(room));
    assert_eq!(status["delete_id"], json!(delete_id));
    assert_eq!(
        status["shutdown_room"]["kicked_users"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let by_room = server
        .get(&room_path("v2", &room, "/delete_status"), &admin.token)
        .await;
    assert_eq!(by_room.assert_ok()["results"][0], status);
    server
        .get(&format!("{A}/v2/rooms/delete_status/nothing"), &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(
            &room_path("v2", "!other:localhost", "/delete_status"),
            &admin.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(&room_path("v1", &room, ""), &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn blocking_refuses_joins_invites_and_knocks_until_unblocked() {
    let (server, admin, alice, bob, carol, room) = setup().await;
    let block = |value: Value| {
        let server = &server;
        let admin = &admin;
        let room = room.clone();
        async move {
            server
                .put(&room_path("v1", &room, "/block"), &admin.token, value)
                .await
        }
    };
    assert_eq!(
        block(json!({ "block": true })).await.assert_ok(),
        &json!({ "block": true })
    );
    let dave = server.register("dave").await;
    server
        .post(&format!("/join/{}", enc(&room)), &dave.token, json!({}))
        .await
        .assert_error(403, "M_UNKNOWN");
    server
        .post(
            &format!("/join/{}", enc("#old:localhost")),
            &dave.token,
            json!({}),
        )
        .await
        .assert_error(403, "M_UNKNOWN");
    server
        .post(&format!("/knock/{}", enc(&room)), &dave.token, json!({}))
        .await
        .assert_error(403, "M_UNKNOWN");
    server
        .room_post(&alice, &room, "invite", json!({ "user_id": dave.user_id }))
        .await
        .assert_error(403, "M_UNKNOWN");
    // Carol's invite cannot be accepted; members still talk, and leave.
    server
        .room_post(&carol, &room, "join", json!({}))
        .await
        .assert_error(403, "M_UNKNOWN");
    server.send_text(&bob, &room, "still talking").await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    // Unblocked: back to normal.
    assert_eq!(
        block(json!({ "block": false })).await.assert_ok(),
        &json!({ "block": false })
    );
    let status = server
        .get(&room_path("v1", &room, "/block"), &admin.token)
        .await;
    assert_eq!(status.assert_ok(), &json!({ "block": false }));
    server
        .post(&format!("/join/{}", enc(&room)), &dave.token, json!({}))
        .await
        .assert_ok();
    // Bad bodies.
    block(json!({})).await.assert_error(400, "M_MISSING_PARAM");
    block(json!({ "block": "yes" }))
        .await
        .assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn only_admins_delete_or_block_and_bad_input_is_refused() {
    let (server, admin, alice, _bob, _carol, room) = setup().await;
    for (method, path, body) in [
        (Method::DELETE, room_path("v1", &room, ""), Some(json!({}))),
        (Method::DELETE, room_path("v2", &room, ""), Some(json!({}))),
        (Method::GET, room_path("v2", &room, "/delete_status"), None),
        (Method::GET, format!("{A}/v2/rooms/delete_status/x"), None),
        (Method::GET, room_path("v1", &room, "/block"), None),
        (
            Method::PUT,
            room_path("v1", &room, "/block"),
            Some(json!({ "block": true })),
        ),
    ] {
        server
            .call(method.clone(), &path, Some(&alice.token), body)
            .await
            .assert_error(403, "M_FORBIDDEN");
    }
    delete_v1(&server, &admin, "not-a-room", json!({}))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    delete_v1(
        &server,
        &admin,
        &room,
        json!({ "new_room_user_id": "@someone:elsewhere.example" }),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    delete_v1(&server, &admin, &room, json!({ "purge": "yes" }))
        .await
        .assert_error(400, "M_BAD_JSON");
    // Nothing happened to the room.
    let details = server.get(&room_path("v1", &room, ""), &admin.token).await;
    assert_eq!(details.assert_ok()["joined_members"], json!(2));
}
