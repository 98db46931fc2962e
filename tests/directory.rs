//! Aliases, the public room directory and room summaries (behaviours DR-* and SP-08 of
//! `behaviours-rooms.md`; `directory.yaml`, `list_public_rooms.yaml`, `room_summary.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

fn alias_path(alias: &str) -> String {
    format!("/directory/room/{}", enc(alias))
}

async fn put_alias(server: &TestServer, user: &User, alias: &str, room: &str) -> common::Resp {
    server
        .put(&alias_path(alias), &user.token, json!({ "room_id": room }))
        .await
}

async fn delete_alias(server: &TestServer, user: &User, alias: &str) -> common::Resp {
    server
        .call(Method::DELETE, &alias_path(alias), Some(&user.token), None)
        .await
}

async fn canonical_alias(server: &TestServer, user: &User, room: &str) -> Value {
    server
        .get(
            &format!("/rooms/{}/state/m.room.canonical_alias/", enc(room)),
            &user.token,
        )
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn dr01_an_alias_resolves_to_its_room_without_a_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    put_alias(&server, &alice, "#lobby:localhost", &room)
        .await
        .assert_ok();
    let resolved = server
        .call(Method::GET, &alias_path("#lobby:localhost"), None, None)
        .await;
    assert_eq!(
        resolved.assert_ok(),
        &json!({ "room_id": room, "servers": ["localhost"] })
    );
    // DR-15: joining by alias goes through the same map.
    let bob = server.register("bob").await;
    let joined = server
        .post(
            &format!("/join/{}", enc("#lobby:localhost")),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.assert_ok()["room_id"], json!(room));
}

#[tokio::test]
async fn dr02_alias_errors_taken_bad_foreign_long_and_not_a_member() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    put_alias(&server, &alice, "#taken:localhost", &room)
        .await
        .assert_ok();
    put_alias(&server, &alice, "#taken:localhost", &room)
        .await
        .assert_error(409, "M_UNKNOWN");
    put_alias(&server, &alice, "no-hash:localhost", &room)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put_alias(&server, &alice, "#a:b:localhost", &room)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put_alias(&server, &alice, "#elsewhere:example.org", &room)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let long = format!("#{}:localhost", "x".repeat(250));
    put_alias(&server, &alice, &long, &room)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // Bob is not in the room.
    put_alias(&server, &bob, "#bobs:localhost", &room)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // A room that does not exist, and a body without a room.
    put_alias(&server, &alice, "#nowhere:localhost", "!nope:localhost")
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .put(&alias_path("#x:localhost"), &alice.token, json!({}))
        .await
        .assert_error(400, "M_BAD_JSON");
    // The taken alias still points where it did.
    let resolved = server
        .get(&alias_path("#taken:localhost"), &alice.token)
        .await;
    assert_eq!(resolved.assert_ok()["room_id"], json!(room));
}

#[tokio::test]
async fn dr03_unknown_aliases_are_404_for_get_and_delete() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    server
        .get(&alias_path("#nothing:localhost"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    delete_alias(&server, &alice, "#nothing:localhost")
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Another server's alias needs federation: unknown here.
    server
        .get(&alias_path("#room:example.org"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(&alias_path("not-an-alias"), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn dr04_aliases_hold_unicode_and_round_trip_percent_encoded() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let alias = "#☃ snow/man?:localhost";
    put_alias(&server, &alice, alias, &room).await.assert_ok();
    // NUL is the one character besides ':' an alias may not hold.
    put_alias(&server, &alice, "#nul\u{0}here:localhost", &room)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let resolved = server.get(&alias_path(alias), &alice.token).await;
    assert_eq!(resolved.assert_ok()["room_id"], json!(room));
    let listed = server
        .get(&format!("/rooms/{}/aliases", enc(&room)), &alice.token)
        .await;
    assert_eq!(listed.assert_ok()["aliases"], json!([alias]));
}

#[tokio::test]
async fn dr05_room_aliases_are_listed_for_members_and_world_readable_rooms() {
    let server = TestServer::start().await;
    let (alice, _bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let path = format!("/rooms/{}/aliases", enc(&room));
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok(),
        &json!({ "aliases": [] })
    );
    put_alias(&server, &alice, "#one:localhost", &room)
        .await
        .assert_ok();
    put_alias(&server, &alice, "#two:localhost", &room)
        .await
        .assert_ok();
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["aliases"],
        json!(["#one:localhost", "#two:localhost"])
    );
    server
        .get(&path, &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .put_state(
            &alice,
            &room,
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "world_readable" }),
        )
        .await
        .assert_ok();
    assert_eq!(
        server.get(&path, &carol.token).await.assert_ok()["aliases"],
        json!(["#one:localhost", "#two:localhost"])
    );
    server
        .get("/rooms/!unknown:localhost/aliases", &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get("/rooms/not-a-room/aliases", &carol.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn dr06_who_may_delete_an_alias() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    server.join(&carol, &room).await;
    // Regular members may add aliases in the default configuration.
    put_alias(&server, &bob, "#bobs:localhost", &room)
        .await
        .assert_ok();
    put_alias(&server, &carol, "#carols:localhost", &room)
        .await
        .assert_ok();
    // Users can't delete other's aliases...
    delete_alias(&server, &bob, "#carols:localhost")
        .await
        .assert_error(403, "M_FORBIDDEN");
    // ... their creators can with no power ...
    delete_alias(&server, &bob, "#bobs:localhost")
        .await
        .assert_ok();
    // ... and so can users with enough power.
    delete_alias(&server, &alice, "#carols:localhost")
        .await
        .assert_ok();
    for alias in ["#bobs:localhost", "#carols:localhost"] {
        server
            .get(&alias_path(alias), &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
    // Server admins may too.
    put_alias(&server, &bob, "#again:localhost", &room)
        .await
        .assert_ok();
    // Members still add aliases when m.room.aliases is restricted: aliases are not
    // state any more.
    let mut levels = server
        .get(
            &format!("/rooms/{}/state/m.room.power_levels/", enc(&room)),
            &alice.token,
        )
        .await
        .assert_ok()
        .clone();
    levels["events"]["m.room.aliases"] = json!(100);
    server
        .put_state(&alice, &room, "m.room.power_levels", "", levels)
        .await
        .assert_ok();
    put_alias(&server, &carol, "#restricted:localhost", &room)
        .await
        .assert_ok();
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    delete_alias(&server, &admin, "#again:localhost")
        .await
        .assert_ok();
}

#[tokio::test]
async fn dr07_deleting_the_canonical_alias_updates_the_canonical_alias_event() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    put_alias(&server, &alice, "#main:localhost", &room)
        .await
        .assert_ok();
    put_alias(&server, &alice, "#alt:localhost", &room)
        .await
        .assert_ok();
    server
        .put_state(
            &alice,
            &room,
            "m.room.canonical_alias",
            "",
            json!({ "alias": "#main:localhost", "alt_aliases": ["#alt:localhost"] }),
        )
        .await
        .assert_ok();
    delete_alias(&server, &alice, "#main:localhost")
        .await
        .assert_ok();
    assert_eq!(
        canonical_alias(&server, &alice, &room).await,
        json!({ "alt_aliases": ["#alt:localhost"] })
    );
    delete_alias(&server, &alice, "#alt:localhost")
        .await
        .assert_ok();
    assert_eq!(
        canonical_alias(&server, &alice, &room).await,
        json!({ "alt_aliases": [] })
    );
    // An alias creator without the power to change the canonical alias still deletes it.
    put_alias(&server, &bob, "#bobs:localhost", &room)
        .await
        .assert_ok();
    server
        .put_state(
            &alice,
            &room,
            "m.room.canonical_alias",
            "",
            json!({ "alias": "#bobs:localhost" }),
        )
        .await
        .assert_ok();
    delete_alias(&server, &bob, "#bobs:localhost")
        .await
        .assert_ok();
    server
        .get(&alias_path("#bobs:localhost"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // The event is Bob's to change and he may not, so it stays (as on the reference
    // server): nobody is impersonated to rewrite it.
    assert_eq!(
        canonical_alias(&server, &bob, &room).await,
        json!({ "alias": "#bobs:localhost" })
    );
}

#[tokio::test]
async fn dr08_dr09_room_visibility_in_the_directory() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let path = format!("/directory/list/room/{}", enc(&room));
    let anonymous = server.call(Method::GET, &path, None, None).await;
    assert_eq!(anonymous.assert_ok(), &json!({ "visibility": "private" }));
    // A missing visibility is public.
    server.put(&path, &alice.token, json!({})).await.assert_ok();
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["visibility"],
        json!("public")
    );
    // Bob is no moderator.
    server
        .put(&path, &bob.token, json!({ "visibility": "private" }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .put(&path, &alice.token, json!({ "visibility": "private" }))
        .await
        .assert_ok();
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["visibility"],
        json!("private")
    );
    server
        .put(&path, &alice.token, json!({ "visibility": "hidden" }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let unknown = "/directory/list/room/!unknown:localhost";
    server
        .get(unknown, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .put(unknown, &alice.token, json!({ "visibility": "public" }))
        .await
        .assert_error(404, "M_NOT_FOUND");
    // createRoom's visibility publishes.
    let listed = server
        .create_room(
            &alice,
            json!({ "visibility": "public", "preset": "public_chat" }),
        )
        .await;
    let listed_path = format!("/directory/list/room/{}", enc(&listed));
    assert_eq!(
        server.get(&listed_path, &bob.token).await.assert_ok()["visibility"],
        json!("public")
    );
}

#[tokio::test]
async fn dr09_who_may_publish_is_configurable() {
    let server = TestServer::with(|config, _| {
        config.rooms.publish_to_directory = "admins".into();
    })
    .await;
    let alice = server.register("alice").await;
    server
        .post(
            "/createRoom",
            &alice.token,
            json!({ "visibility": "public", "preset": "public_chat" }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let path = format!("/directory/list/room/{}", enc(&room));
    server
        .put(&path, &alice.token, json!({ "visibility": "public" }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    server
        .put(&path, &admin.token, json!({ "visibility": "public" }))
        .await
        .assert_ok();

    let members = TestServer::with(|config, _| {
        config.rooms.publish_to_directory = "members".into();
    })
    .await;
    let (_alice, bob, room) = members
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    members
        .put(
            &format!("/directory/list/room/{}", enc(&room)),
            &bob.token,
            json!({ "visibility": "public" }),
        )
        .await
        .assert_ok();
}

/// The public list's rooms, by room ID.
fn chunk_ids(page: &Value) -> Vec<String> {
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dr10_public_room_entries_have_the_keys_that_are_set() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bare = server
        .create_room(
            &alice,
            json!({ "visibility": "public", "preset": "public_chat" }),
        )
        .await;
    let full = server
        .create_room(
            &alice,
            json!({
                "visibility": "public",
                "preset": "public_chat",
                "name": "Full room",
                "topic": "Everything set",
                "room_alias_name": "full",
                "creation_content": { "type": "m.space" },
                "initial_state": [
                    { "type": "m.room.avatar", "state_key": "", "content": { "url": "mxc://localhost/a" } },
                    { "type": "m.room.guest_access", "state_key": "", "content": { "guest_access": "can_join" } },
                    { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "world_readable" } }
                ],
            }),
        )
        .await;
    let bob = server.register("bob").await;
    server.join(&bob, &full).await;
    // A private room, even if published, and an unpublished public one are not listed.
    server
        .create_room(
            &alice,
            json!({ "visibility": "public", "preset": "private_chat" }),
        )
        .await;
    server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let page = server
        .call(Method::GET, "/publicRooms", None, None)
        .await
        .assert_ok()
        .clone();
    assert_eq!(chunk_ids(&page), vec![full.clone(), bare.clone()]);
    assert_eq!(page["total_room_count_estimate"], json!(2));
    assert!(page.get("next_batch").is_none(), "{page}");
    assert!(page.get("prev_batch").is_none(), "{page}");
    assert_eq!(
        page["chunk"][0],
        json!({
            "room_id": full,
            "num_joined_members": 2,
            "world_readable": true,
            "guest_can_join": true,
            "join_rule": "public",
            "name": "Full room",
            "topic": "Everything set",
            "canonical_alias": "#full:localhost",
            "avatar_url": "mxc://localhost/a",
            "room_type": "m.space",
        })
    );
    assert_eq!(
        page["chunk"][1],
        json!({
            "room_id": bare,
            "num_joined_members": 1,
            "world_readable": false,
            "guest_can_join": false,
            "join_rule": "public",
        })
    );
    // A change of state shows at once; an unset name loses its key.
    server
        .put_state(
            &alice,
            &bare,
            "m.room.name",
            "",
            json!({ "name": "Now named" }),
        )
        .await
        .assert_ok();
    server
        .put_state(&alice, &full, "m.room.topic", "", json!({}))
        .await
        .assert_ok();
    let page = server.get("/publicRooms", &alice.token).await;
    let page = page.assert_ok();
    assert_eq!(page["chunk"][1]["name"], json!("Now named"));
    assert!(page["chunk"][0].get("topic").is_none(), "{page}");
    // Leaving and unpublishing are seen too.
    server
        .room_post(&bob, &full, "leave", json!({}))
        .await
        .assert_ok();
    let page = server.get("/publicRooms", &alice.token).await;
    assert_eq!(page.assert_ok()["chunk"][0]["num_joined_members"], json!(1));
    server
        .put(
            &format!("/directory/list/room/{}", enc(&full)),
            &alice.token,
            json!({ "visibility": "private" }),
        )
        .await
        .assert_ok();
    let page = server.get("/publicRooms", &alice.token).await;
    assert_eq!(chunk_ids(page.assert_ok()), vec![bare]);
}

#[tokio::test]
async fn dr11_search_by_name_topic_and_alias_and_by_room_type() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let public = json!({ "visibility": "public", "preset": "public_chat" });
    let with = |extra: Value| {
        let mut body = public.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let wombles = server
        .create_room(&alice, with(json!({ "topic": "Test Topic Wombles" })))
        .await;
    let named = server
        .create_room(&alice, with(json!({ "name": "ÉCOLE 100% réel" })))
        .await;
    let aliased = server
        .create_room(&alice, with(json!({ "room_alias_name": "snorkel" })))
        .await;
    let space = server
        .create_room(
            &alice,
            with(json!({ "name": "A space", "creation_content": { "type": "m.space" } })),
        )
        .await;
    let search = |body: Value| {
        let server = &server;
        let token = alice.token.clone();
        async move {
            let page = server.post("/publicRooms", &token, body).await;
            let mut ids = chunk_ids(page.assert_ok());
            ids.sort();
            (ids, page.body["total_room_count_estimate"].clone())
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        search(json!({ "filter": { "generic_search_term": "wombles" } })).await,
        (vec![wombles.clone()], json!(1))
    );
    assert_eq!(
        search(json!({ "filter": { "generic_search_term": "école" } }))
            .await
            .0,
        vec![named.clone()]
    );
    // % is text, not a wildcard.
    assert_eq!(
        search(json!({ "filter": { "generic_search_term": "100%" } }))
            .await
            .0,
        vec![named.clone()]
    );
    assert_eq!(
        search(json!({ "filter": { "generic_search_term": "0%r" } }))
            .await
            .0,
        Vec::<String>::new()
    );
    assert_eq!(
        search(json!({ "filter": { "generic_search_term": "SNORK" } }))
            .await
            .0,
        vec![aliased.clone()]
    );
    assert_eq!(
        search(json!({ "filter": { "room_types": ["m.space"] } }))
            .await
            .0,
        vec![space.clone()]
    );
    assert_eq!(
        search(json!({ "filter": { "room_types": [null] } }))
            .await
            .0,
        sorted(vec![wombles.clone(), named.clone(), aliased.clone()])
    );
    assert_eq!(
        search(json!({ "filter": { "room_types": [null, "m.space"] } }))
            .await
            .0,
        sorted(vec![wombles, named, aliased, space])
    );
    assert_eq!(
        search(json!({ "filter": { "room_types": [] } })).await.0,
        Vec::<String>::new()
    );
    server
        .post(
            "/publicRooms",
            &alice.token,
            json!({ "filter": { "room_types": "m.space" } }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .post("/publicRooms", &alice.token, json!({ "limit": "ten" }))
        .await
        .assert_error(400, "M_BAD_JSON");
    // POST needs a token.
    server
        .call(Method::POST, "/publicRooms", None, Some(json!({})))
        .await
        .assert_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn dr12_pages_do_not_overlap_and_go_both_ways() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut rooms = Vec::new();
    for i in 0..7 {
        let room = server
            .create_room(
                &alice,
                json!({ "visibility": "public", "preset": "public_chat" }),
            )
            .await;
        if i % 2 == 0 {
            server.join(&bob, &room).await;
        }
        rooms.push(room);
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut since: Option<String> = None;
    loop {
        let path = match &since {
            Some(token) => format!("/publicRooms?limit=3&since={}", enc(token)),
            None => "/publicRooms?limit=3".to_owned(),
        };
        let page = server.get(&path, &alice.token).await.assert_ok().clone();
        assert_eq!(page["total_room_count_estimate"], json!(7));
        seen.extend(chunk_ids(&page));
        pages.push(page.clone());
        match page["next_batch"].as_str() {
            Some(next) => since = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "{seen:?}");
    // The rooms Bob joined (two members) come first.
    let joined_first: Vec<bool> = seen
        .iter()
        .map(|id| rooms.iter().position(|r| r == id).unwrap() % 2 == 0)
        .collect();
    assert_eq!(joined_first, [true, true, true, true, false, false, false]);
    // The last page's prev_batch leads back to the middle page.
    let prev = pages[2]["prev_batch"].as_str().unwrap();
    let back = server
        .get(
            &format!("/publicRooms?limit=3&since={}", enc(prev)),
            &alice.token,
        )
        .await;
    assert_eq!(chunk_ids(back.assert_ok()), chunk_ids(&pages[1]));
    assert!(pages[0].get("prev_batch").is_none());
    server
        .get("/publicRooms?since=garbage", &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn dr13_dr14_own_server_name_lists_local_rooms_and_knock_rooms_show_their_rule() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let knock = server
        .create_room(
            &alice,
            json!({
                "visibility": "public",
                "preset": "private_chat",
                "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }],
            }),
        )
        .await;
    let page = server
        .get("/publicRooms?server=localhost", &alice.token)
        .await;
    let page = page.assert_ok();
    assert_eq!(chunk_ids(page), vec![knock]);
    assert_eq!(page["chunk"][0]["join_rule"], json!("knock"));
    server
        .get("/publicRooms?server=example.org", &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn sp08_room_summary_for_those_who_may_see_the_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let public = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "name": "Open", "room_alias_name": "open" }),
        )
        .await;
    let private = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "name": "Closed" }),
        )
        .await;
    let path = |room: &str| format!("/_matrix/client/v1/room_summary/{}", enc(room));
    let summary = server.get(&path("#open:localhost"), &bob.token).await;
    let summary = summary.assert_ok();
    assert_eq!(summary["room_id"], json!(public));
    assert_eq!(summary["name"], json!("Open"));
    assert_eq!(summary["canonical_alias"], json!("#open:localhost"));
    assert_eq!(summary["num_joined_members"], json!(1));
    assert_eq!(summary["join_rule"], json!("public"));
    assert_eq!(summary["membership"], json!("leave"));
    assert_eq!(summary["world_readable"], json!(false));
    assert_eq!(summary["guest_can_join"], json!(false));
    assert_eq!(summary["room_version"], json!("12"));
    assert!(summary.get("allowed_room_ids").is_none());
    // Unauthenticated: no membership.
    let anonymous = server.call(Method::GET, &path(&public), None, None).await;
    assert!(anonymous.assert_ok().get("membership").is_none());
    // The private room does not exist for Bob until he is invited.
    server
        .get(&path(&private), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .call(Method::GET, &path(&private), None, None)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server.invite(&alice, &private, &bob).await;
    let invited = server.get(&path(&private), &bob.token).await;
    assert_eq!(invited.assert_ok()["membership"], json!("invite"));
    // js-sdk asks the unstable path first.
    let unstable = server
        .get(
            &format!(
                "/_matrix/client/unstable/im.nheko.summary/summary/{}",
                enc(&public)
            ),
            &bob.token,
        )
        .await;
    assert_eq!(unstable.assert_ok()["room_id"], json!(public));
    server
        .get(&path("#nothing:localhost"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(&path("!nothing:localhost"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn sp08_restricted_rooms_list_their_allowed_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let parent = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &parent).await;
    let restricted = server
        .create_room(
            &alice,
            json!({
                "preset": "private_chat",
                "initial_state": [{
                    "type": "m.room.join_rules", "state_key": "",
                    "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": parent }] },
                }],
            }),
        )
        .await;
    let path = format!("/_matrix/client/v1/room_summary/{}", enc(&restricted));
    let summary = server.get(&path, &bob.token).await;
    let summary = summary.assert_ok();
    assert_eq!(summary["join_rule"], json!("restricted"));
    assert_eq!(summary["allowed_room_ids"], json!([parent]));
    // Carol is in none of the allowed rooms.
    server
        .get(&path, &carol.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn summaries_of_rooms_made_before_the_directory_are_filled_in_at_start() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "visibility": "public", "preset": "public_chat", "name": "Old room" }),
        )
        .await;
    let bob = server.register("bob").await;
    server.join(&bob, &room).await;
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    // As a database from before the summary table.
    common::run_sql(&config.database.url, "DELETE FROM room_summaries").await;
    let again = TestServer::start_in(dir, config).await;
    let page = again.get("/publicRooms", &alice.token).await;
    let entry = &page.assert_ok()["chunk"][0];
    assert_eq!(entry["room_id"], json!(room));
    assert_eq!(entry["name"], json!("Old room"));
    assert_eq!(entry["num_joined_members"], json!(2));
    // A summary written outside an append never replaces the one an append wrote.
    let store = again.services().store.clone();
    let mut stale = store.room_summary(&room).await.unwrap().unwrap();
    stale.name = Some("Stale".into());
    store.put_summary_if_absent(&room, &stale).await.unwrap();
    let page = again.get("/publicRooms", &alice.token).await;
    assert_eq!(page.assert_ok()["chunk"][0]["name"], json!("Old room"));
}
