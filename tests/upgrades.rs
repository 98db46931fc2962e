//! Room upgrades (behaviours UP-* of `behaviours-rooms.md`; `room_upgrades.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

async fn upgrade(server: &TestServer, user: &User, room: &str, body: Value) -> common::Resp {
    server
        .post(&format!("/rooms/{}/upgrade", enc(room)), &user.token, body)
        .await
}

async fn upgraded(server: &TestServer, user: &User, room: &str, version: &str) -> String {
    upgrade(server, user, room, json!({ "new_version": version }))
        .await
        .assert_ok()["replacement_room"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn state(
    server: &TestServer,
    user: &User,
    room: &str,
    kind: &str,
    key: &str,
) -> common::Resp {
    server
        .get(
            &format!("/rooms/{}/state/{}/{}", enc(room), enc(kind), enc(key)),
            &user.token,
        )
        .await
}

async fn state_event(server: &TestServer, user: &User, room: &str, kind: &str) -> Value {
    let all = server
        .get(&format!("/rooms/{}/state", enc(room)), &user.token)
        .await;
    all.assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == json!(kind))
        .unwrap_or_else(|| panic!("no {kind} in {room}"))
        .clone()
}

#[tokio::test]
async fn up01_upgrade_makes_a_successor_and_tombstones_the_old_room() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "room_version": "11", "creation_content": { "type": "m.space" } }))
        .await;
    let new_room = upgraded(&server, &alice, &room, "12").await;
    assert_ne!(new_room, room);
    let create = state_event(&server, &alice, &new_room, "m.room.create").await;
    assert_eq!(create["content"]["room_version"], json!("12"));
    assert_eq!(create["content"]["type"], json!("m.space"));
    // v12 leaves out predecessor.event_id.
    assert_eq!(create["content"]["predecessor"], json!({ "room_id": room }));
    assert_eq!(create["sender"], json!(alice.user_id));
    let tombstone = state_event(&server, &bob, &room, "m.room.tombstone").await;
    assert_eq!(tombstone["sender"], json!(alice.user_id));
    assert_eq!(tombstone["content"]["replacement_room"], json!(new_room));
    assert!(tombstone["content"]["body"].is_string());
    // Only the upgrader is in the new room; Bob joins it through the tombstone.
    let members = server
        .get(
            &format!("/rooms/{}/joined_members", enc(&new_room)),
            &alice.token,
        )
        .await;
    assert_eq!(members.assert_ok()["joined"].as_object().unwrap().len(), 1);
    let via = tombstone["content"]["replacement_room"].as_str().unwrap();
    let joined = server
        .post(
            &format!("/join/{}?via=localhost", enc(via)),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.assert_ok()["room_id"], json!(new_room));
    // Before v12 the predecessor names the old room's last event.
    let older = server
        .create_room(&alice, json!({ "room_version": "10" }))
        .await;
    let newer = upgraded(&server, &alice, &older, "11").await;
    let create = state_event(&server, &alice, &newer, "m.room.create").await;
    assert_eq!(create["content"]["predecessor"]["room_id"], json!(older));
    assert!(
        create["content"]["predecessor"]["event_id"]
            .as_str()
            .unwrap()
            .starts_with('$')
    );
}

#[tokio::test]
async fn up02_unknown_versions_rooms_and_users_without_power_are_refused() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    upgrade(
        &server,
        &alice,
        &room,
        json!({ "new_version": "my-version" }),
    )
    .await
    .assert_error(400, "M_UNSUPPORTED_ROOM_VERSION");
    upgrade(
        &server,
        &alice,
        "!unknown:localhost",
        json!({ "new_version": "12" }),
    )
    .await
    .assert_error(404, "M_NOT_FOUND");
    upgrade(&server, &bob, &room, json!({ "new_version": "12" }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    upgrade(&server, &alice, &room, json!({}))
        .await
        .assert_error(400, "M_BAD_JSON");
    // Nothing happened to the room.
    state(&server, &alice, &room, "m.room.tombstone", "")
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn up03_up04_state_levels_and_bans_carry_over() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = server
        .create_room(
            &alice,
            json!({
                "preset": "public_chat", "room_version": "11",
                "name": "Old name", "topic": "Old topic",
                "initial_state": [
                    { "type": "m.room.encryption", "state_key": "", "content": { "algorithm": "m.megolm.v1.aes-sha2" } },
                    { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "joined" } },
                    { "type": "com.example.custom", "state_key": "", "content": { "kept": false } }
                ],
            }),
        )
        .await;
    server.join(&bob, &room).await;
    server.join(&carol, &room).await;
    // Bob may upgrade with 90; Carol is banned.
    let mut levels = state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .assert_ok()
        .clone();
    levels["users"][&bob.user_id] = json!(90);
    levels["events"]["m.room.tombstone"] = json!(90);
    levels["events"]["m.room.power_levels"] = json!(90);
    server
        .put_state(&alice, &room, "m.room.power_levels", "", levels.clone())
        .await
        .assert_ok();
    server
        .room_post(&alice, &room, "ban", json!({ "user_id": carol.user_id }))
        .await
        .assert_ok();
    let new_room = upgraded(&server, &bob, &room, "11").await;
    let get = |kind: &'static str| state(&server, &bob, &new_room, kind, "");
    assert_eq!(
        get("m.room.name").await.assert_ok(),
        &json!({ "name": "Old name" })
    );
    assert_eq!(
        get("m.room.topic").await.assert_ok()["topic"],
        json!("Old topic")
    );
    assert_eq!(
        get("m.room.encryption").await.assert_ok(),
        &json!({ "algorithm": "m.megolm.v1.aes-sha2" })
    );
    assert_eq!(
        get("m.room.history_visibility").await.assert_ok(),
        &json!({ "history_visibility": "joined" })
    );
    assert_eq!(
        get("m.room.join_rules").await.assert_ok(),
        &json!({ "join_rule": "public" })
    );
    get("com.example.custom")
        .await
        .assert_error(404, "M_NOT_FOUND");
    // No guest access appears where there was none.
    get("m.room.guest_access")
        .await
        .assert_error(404, "M_NOT_FOUND");
    // The levels are the old room's: Bob keeps 90 in both rooms, Alice keeps 100.
    let new_levels = get("m.room.power_levels").await.assert_ok().clone();
    assert_eq!(new_levels["users"][&bob.user_id], json!(90));
    assert_eq!(new_levels["users"][&alice.user_id], json!(100));
    assert_eq!(new_levels["events"]["m.room.tombstone"], json!(90));
    let old_levels = state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .assert_ok()
        .clone();
    assert_eq!(old_levels["users"][&bob.user_id], json!(90));
    // UP-05: the old room is closed to new events and invites.
    assert_eq!(old_levels["events_default"], json!(50));
    assert_eq!(old_levels["invite"], json!(50));
    // Carol stays banned.
    let ban = state(&server, &bob, &new_room, "m.room.member", &carol.user_id).await;
    assert_eq!(ban.assert_ok()["membership"], json!("ban"));
    server
        .room_post(&carol, &new_room, "join", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn up05_unusual_levels_close_the_old_room_above_users_default() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "room_version": "11", "power_level_content_override": { "users_default": 80 } }),
        )
        .await;
    upgraded(&server, &alice, &room, "12").await;
    let levels = state(&server, &alice, &room, "m.room.power_levels", "").await;
    let levels = levels.assert_ok();
    assert_eq!(levels["events_default"], json!(81));
    assert_eq!(levels["invite"], json!(81));
}

#[tokio::test]
async fn up06_aliases_and_the_directory_listing_move_to_the_new_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "visibility": "public", "room_alias_name": "main" }),
        )
        .await;
    server
        .put(
            &format!("/directory/room/{}", enc("#other:localhost")),
            &alice.token,
            json!({ "room_id": room }),
        )
        .await
        .assert_ok();
    let new_room = upgraded(&server, &alice, &room, "12").await;
    for alias in ["#main:localhost", "#other:localhost"] {
        let resolved = server
            .get(&format!("/directory/room/{}", enc(alias)), &alice.token)
            .await;
        assert_eq!(resolved.assert_ok()["room_id"], json!(new_room), "{alias}");
    }
    let canonical = state(&server, &alice, &new_room, "m.room.canonical_alias", "").await;
    assert_eq!(canonical.assert_ok()["alias"], json!("#main:localhost"));
    let old_canonical = state(&server, &alice, &room, "m.room.canonical_alias", "").await;
    assert_eq!(old_canonical.assert_ok(), &json!({}));
    let list = server.call(Method::GET, "/publicRooms", None, None).await;
    let listed: Vec<&Value> = list.assert_ok()["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["room_id"], json!(new_room));
    assert_eq!(listed[0]["canonical_alias"], json!("#main:localhost"));
    // Joining by the alias lands in the new room (DR-15).
    let bob = server.register("bob").await;
    let joined = server
        .post(
            &format!("/join/{}", enc("#main:localhost")),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.assert_ok()["room_id"], json!(new_room));
    // A private room stays private.
    let private = server.create_room(&alice, json!({})).await;
    let successor = upgraded(&server, &alice, &private, "12").await;
    let visibility = server
        .get(
            &format!("/directory/list/room/{}", enc(&successor)),
            &alice.token,
        )
        .await;
    assert_eq!(visibility.assert_ok()["visibility"], json!("private"));
}

#[tokio::test]
async fn up08_a_tombstone_cannot_point_to_its_own_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .put_state(
            &alice,
            &room,
            "m.room.tombstone",
            "",
            json!({ "body": "x", "replacement_room": room }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn up09_v12_creators_are_the_upgrader_and_the_named_ones_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "creation_content": { "additional_creators": [bob.user_id] } }),
        )
        .await;
    server.join(&bob, &room).await;
    server.join(&carol, &room).await;
    let mut levels = state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .assert_ok()
        .clone();
    levels["users"][&carol.user_id] = json!(50);
    server
        .put_state(&alice, &room, "m.room.power_levels", "", levels)
        .await
        .assert_ok();
    let new_room = upgrade(
        &server,
        &alice,
        &room,
        json!({ "new_version": "12", "additional_creators": [carol.user_id] }),
    )
    .await
    .assert_ok()["replacement_room"]
        .as_str()
        .unwrap()
        .to_owned();
    let create = state_event(&server, &alice, &new_room, "m.room.create").await;
    assert_eq!(
        create["content"]["additional_creators"],
        json!([carol.user_id])
    );
    let levels = state(&server, &alice, &new_room, "m.room.power_levels", "").await;
    let users = levels.assert_ok()["users"].as_object().unwrap().clone();
    assert!(!users.contains_key(&carol.user_id), "{users:?}");
    assert!(!users.contains_key(&alice.user_id), "{users:?}");
    upgrade(
        &server,
        &alice,
        &room,
        json!({ "new_version": "12", "additional_creators": ["not a user"] }),
    )
    .await
    .assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn up07_up11_tags_room_push_rules_and_direct_chats_follow_the_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "trusted_private_chat", "is_direct": true, "invite": [bob.user_id] }),
        )
        .await;
    server.join(&bob, &room).await;
    for user in [&alice, &bob] {
        server
            .put(
                &format!(
                    "/user/{}/rooms/{}/tags/m.favourite",
                    enc(&user.user_id),
                    enc(&room)
                ),
                &user.token,
                json!({ "order": 0.5 }),
            )
            .await
            .assert_ok();
    }
    server
        .put(
            &format!("/user/{}/account_data/m.direct", enc(&alice.user_id)),
            &alice.token,
            json!({ bob.user_id.clone(): [room] }),
        )
        .await
        .assert_ok();
    server
        .put(
            &format!("/pushrules/global/room/{}", enc(&room)),
            &alice.token,
            json!({ "actions": [] }),
        )
        .await
        .assert_ok();
    let new_room = upgraded(&server, &alice, &room, "12").await;
    let tags = |user: &User| {
        let (path, token) = (
            format!("/user/{}/rooms/{}/tags", enc(&user.user_id), enc(&new_room)),
            user.token.clone(),
        );
        let server = &server;
        async move { server.get(&path, &token).await }
    };
    assert_eq!(
        tags(&alice).await.assert_ok(),
        &json!({ "tags": { "m.favourite": { "order": 0.5 } } })
    );
    let direct = server
        .get(
            &format!("/user/{}/account_data/m.direct", enc(&alice.user_id)),
            &alice.token,
        )
        .await;
    assert_eq!(
        direct.assert_ok(),
        &json!({ bob.user_id.clone(): [room, new_room] })
    );
    let rule = server
        .get(
            &format!("/pushrules/global/room/{}", enc(&new_room)),
            &alice.token,
        )
        .await;
    assert_eq!(rule.assert_ok()["actions"], json!([]));
    // Bob's tag follows when he joins.
    assert_eq!(tags(&bob).await.assert_ok(), &json!({ "tags": {} }));
    server.invite(&alice, &new_room, &bob).await;
    server.join(&bob, &new_room).await;
    assert_eq!(
        tags(&bob).await.assert_ok(),
        &json!({ "tags": { "m.favourite": { "order": 0.5 } } })
    );
}

#[tokio::test]
async fn up10_the_tombstone_level_follows_the_new_version() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let tombstone_level = |levels: &Value| levels["events"]["m.room.tombstone"].clone();
    // v11 → v12: 100 (admins) becomes 150 (creators only).
    let v11 = server
        .create_room(&alice, json!({ "room_version": "11" }))
        .await;
    let old_levels = state(&server, &alice, &v11, "m.room.power_levels", "").await;
    assert_eq!(tombstone_level(old_levels.assert_ok()), json!(100));
    let v12 = upgraded(&server, &alice, &v11, "12").await;
    let levels = state(&server, &alice, &v12, "m.room.power_levels", "").await;
    assert_eq!(tombstone_level(levels.assert_ok()), json!(150));
    // v12 → v12 keeps the room's own choice.
    let mut custom = levels.assert_ok().clone();
    custom["events"]["m.room.tombstone"] = json!(120);
    server
        .put_state(&alice, &v12, "m.room.power_levels", "", custom)
        .await
        .assert_ok();
    let again = upgraded(&server, &alice, &v12, "12").await;
    let levels = state(&server, &alice, &again, "m.room.power_levels", "").await;
    assert_eq!(tombstone_level(levels.assert_ok()), json!(120));
    // v12 → v11: back to 100, which the upgrader (kept at 100) can still send.
    let back = upgraded(&server, &alice, &again, "11").await;
    let levels = state(&server, &alice, &back, "m.room.power_levels", "").await;
    assert_eq!(tombstone_level(levels.assert_ok()), json!(100));
    upgraded(&server, &alice, &back, "12").await;
}

#[tokio::test]
async fn an_upgraded_space_keeps_its_children() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let space = server
        .create_room(&alice, json!({ "creation_content": { "type": "m.space" } }))
        .await;
    let kept = server.create_room(&alice, json!({})).await;
    let removed = server.create_room(&alice, json!({})).await;
    for child in [&kept, &removed] {
        server
            .put_state(
                &alice,
                &space,
                "m.space.child",
                child,
                json!({ "via": ["localhost"], "suggested": true }),
            )
            .await
            .assert_ok();
    }
    server
        .put_state(&alice, &space, "m.space.child", &removed, json!({}))
        .await
        .assert_ok();
    let new_space = upgraded(&server, &alice, &space, "12").await;
    let child = state(&server, &alice, &new_space, "m.space.child", &kept).await;
    assert_eq!(
        child.assert_ok(),
        &json!({ "via": ["localhost"], "suggested": true })
    );
    state(&server, &alice, &new_space, "m.space.child", &removed)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let hierarchy = server
        .get(
            &format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&new_space)),
            &alice.token,
        )
        .await;
    let rooms: Vec<&str> = hierarchy.assert_ok()["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec![new_space.as_str(), kept.as_str()]);
}

/// Makes every tombstone fail to store, as a crash between the two rooms' writes would.
async fn refuse_tombstones(server: &TestServer, refuse: bool) {
    let url = server.services().config.database.url.clone();
    let sql = match (url.starts_with("sqlite://"), refuse) {
        (true, true) => {
            "CREATE TRIGGER no_tombstones BEFORE INSERT ON events
             WHEN NEW.event_type = 'm.room.tombstone'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        (true, false) => "DROP TRIGGER no_tombstones;",
        (false, true) => {
            "CREATE FUNCTION no_tombstones() RETURNS trigger AS $$
             BEGIN
               IF NEW.event_type = 'm.room.tombstone' THEN RAISE EXCEPTION 'injected failure'; END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER no_tombstones BEFORE INSERT ON events
             FOR EACH ROW EXECUTE FUNCTION no_tombstones();"
        }
        (false, false) => "DROP TRIGGER no_tombstones ON events; DROP FUNCTION no_tombstones();",
    };
    common::run_sql(&url, sql).await;
}

#[tokio::test]
async fn an_upgrade_is_one_transaction_across_both_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "visibility": "public", "room_alias_name": "hall" }),
        )
        .await;
    refuse_tombstones(&server, true).await;
    upgrade(&server, &alice, &room, json!({ "new_version": "12" }))
        .await
        .assert_error(500, "M_UNKNOWN");
    // No successor was left behind, and the old room kept its alias and listing.
    let joined = server.get("/joined_rooms", &alice.token).await;
    assert_eq!(joined.assert_ok()["joined_rooms"], json!([room]));
    let resolved = server
        .get(
            &format!("/directory/room/{}", enc("#hall:localhost")),
            &alice.token,
        )
        .await;
    assert_eq!(resolved.assert_ok()["room_id"], json!(room));
    let list = server.call(Method::GET, "/publicRooms", None, None).await;
    assert_eq!(list.assert_ok()["chunk"][0]["room_id"], json!(room));
    state(&server, &alice, &room, "m.room.tombstone", "")
        .await
        .assert_error(404, "M_NOT_FOUND");
    // The room's head was not left past the events that were not written.
    server.send_text(&alice, &room, "still here").await;
    refuse_tombstones(&server, false).await;
    let new_room = upgraded(&server, &alice, &room, "12").await;
    let joined = server.get("/joined_rooms", &alice.token).await;
    let mut rooms: Vec<String> = joined.assert_ok()["joined_rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    rooms.sort();
    let mut expected = vec![room.clone(), new_room.clone()];
    expected.sort();
    assert_eq!(rooms, expected);
}

#[tokio::test]
async fn up03_up07_up11_up12_acl_avatar_guests_high_levels_federate_and_joining() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let acl = json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false });
    let avatar = json!({ "url": "mxc://localhost/avatar" });
    let room = server
        .create_room(
            &alice,
            json!({
                "preset": "public_chat", "room_version": "11",
                "creation_content": { "m.federate": false },
                "initial_state": [
                    { "type": "m.room.server_acl", "state_key": "", "content": acl },
                    { "type": "m.room.avatar", "state_key": "", "content": avatar },
                    { "type": "m.room.guest_access", "state_key": "", "content": { "guest_access": "can_join" } }
                ],
                "power_level_content_override": {
                    "users": { alice.user_id.clone(): 150, bob.user_id.clone(): 120 },
                    "events": { "m.room.tombstone": 150, "org.example.high": 140 }
                },
            }),
        )
        .await;
    server.join(&bob, &room).await;
    server
        .put(
            &format!("/pushrules/global/room/{}", enc(&room)),
            &bob.token,
            json!({ "actions": [] }),
        )
        .await
        .assert_ok();
    let new_room = upgraded(&server, &alice, &room, "11").await;
    let get = |kind: &'static str| state(&server, &alice, &new_room, kind, "");
    assert_eq!(get("m.room.server_acl").await.assert_ok(), &acl);
    assert_eq!(get("m.room.avatar").await.assert_ok(), &avatar);
    assert_eq!(
        get("m.room.guest_access").await.assert_ok(),
        &json!({ "guest_access": "can_join" })
    );
    // Levels above 100 survive, for the upgrader and for others.
    let levels = get("m.room.power_levels").await.assert_ok().clone();
    assert_eq!(levels["users"][&alice.user_id], json!(150));
    assert_eq!(levels["users"][&bob.user_id], json!(120));
    assert_eq!(levels["events"]["org.example.high"], json!(140));
    let create = state_event(&server, &alice, &new_room, "m.room.create").await;
    assert_eq!(create["content"]["m.federate"], json!(false));
    // UP-12: Bob joins with the server_name parameter (ignored for a local room), and his
    // room push rule follows him (UP-11).
    let joined = server
        .post(
            &format!("/join/{}?server_name=localhost", enc(&new_room)),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.assert_ok()["room_id"], json!(new_room));
    let rule = server
        .get(
            &format!("/pushrules/global/room/{}", enc(&new_room)),
            &bob.token,
        )
        .await;
    assert_eq!(rule.assert_ok()["actions"], json!([]));
}
