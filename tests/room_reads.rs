//! Sending and reading room events: transaction IDs, the state API, single events, members,
//! history visibility, `/messages` and `/context` (behaviours ST-* and TL-*).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, ids_of, txn, types_of};
use serde_json::{Value, json};

fn messages_path(room: &str, query: &str) -> String {
    format!("/rooms/{}/messages?{query}", enc(room))
}

async fn messages(server: &TestServer, user: &User, room: &str, query: &str) -> Value {
    server
        .get(&messages_path(room, query), &user.token)
        .await
        .assert_ok()
        .clone()
}

fn bodies(chunk: &Value) -> Vec<String> {
    chunk
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn public_room(server: &TestServer, creator: &User, visibility: &str) -> String {
    server
        .create_room(
            creator,
            json!({ "preset": "public_chat", "initial_state": [{
                "type": "m.room.history_visibility", "content": { "history_visibility": visibility } }] }),
        )
        .await
}

#[tokio::test]
async fn st02_st03_transaction_ids_are_per_device_and_path_and_survive_restarts() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let one = server.create_room(&alice, json!({})).await;
    let two = server.create_room(&alice, json!({})).await;
    let path = |room: &str, kind: &str| format!("/rooms/{}/send/{kind}/same", enc(room));
    let first = server
        .put(
            &path(&one, "m.room.message"),
            &alice.token,
            json!({ "body": "a" }),
        )
        .await
        .assert_ok()["event_id"]
        .clone();
    let retry = server
        .put(
            &path(&one, "m.room.message"),
            &alice.token,
            json!({ "body": "different" }),
        )
        .await;
    assert_eq!(
        retry.assert_ok()["event_id"],
        first,
        "same request, same event"
    );
    let other_room = server
        .put(
            &path(&two, "m.room.message"),
            &alice.token,
            json!({ "body": "a" }),
        )
        .await;
    assert_ne!(other_room.assert_ok()["event_id"], first);
    let other_type = server
        .put(&path(&one, "com.example"), &alice.token, json!({}))
        .await;
    assert_ne!(other_type.assert_ok()["event_id"], first);
    let other_device = server.login(&alice, None).await;
    let theirs = server
        .put(
            &path(&one, "m.room.message"),
            &other_device.token,
            json!({ "body": "a" }),
        )
        .await;
    assert_ne!(
        theirs.assert_ok()["event_id"],
        first,
        "scoped to the device"
    );
    let same_device = server.login(&alice, Some(&alice.device_id)).await;
    let shared = server
        .put(
            &path(&one, "m.room.message"),
            &same_device.token,
            json!({ "body": "a" }),
        )
        .await;
    assert_eq!(
        shared.assert_ok()["event_id"],
        first,
        "a second login of the device"
    );
    // (The second login of the device revoked the first one's token.)
    let timeline = messages(&server, &same_device, &one, "dir=b").await;
    assert_eq!(
        bodies(&timeline["chunk"])
            .iter()
            .filter(|b| *b == "a")
            .count(),
        2
    );

    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    let again = TestServer::start_in(dir, config).await;
    let after = again
        .put(
            &path(&one, "m.room.message"),
            &same_device.token,
            json!({ "body": "b" }),
        )
        .await;
    assert_eq!(
        after.assert_ok()["event_id"],
        first,
        "persisted across a restart"
    );
}

#[tokio::test]
async fn st02_concurrent_retries_of_one_request_make_one_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let path = format!("/rooms/{}/send/m.room.message/race", enc(&room));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, token) = (
            server.client.clone(),
            server.url(&path),
            alice.token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = client
                .put(url)
                .bearer_auth(token)
                .json(&json!({ "body": "once" }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()["event_id"].clone()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let timeline = messages(&server, &alice, &room, "dir=b").await;
    assert_eq!(bodies(&timeline["chunk"]), ["once"]);
}

#[tokio::test]
async fn st04_st20_sending_needs_membership_and_a_json_object() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .send_event(&bob, &room, "m.room.message", json!({ "body": "x" }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .send_event(&bob, "!nope:localhost", "m.room.message", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    let path = format!("/rooms/{}/send/m.room.message/{}", enc(&room), txn());
    server
        .call_raw(reqwest::Method::PUT, &path, Some(&alice.token), "[1]")
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .call_raw(reqwest::Method::PUT, &path, Some(&alice.token), "{")
        .await
        .assert_error(400, "M_NOT_JSON");
    let nul = format!("/rooms/{}/send/m.room.message/a%00b", enc(&room));
    server
        .call_raw(reqwest::Method::PUT, &nul, Some(&alice.token), "{}")
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let nul_type = format!("/rooms/{}/state/a%00b/", enc(&room));
    server
        .call_raw(reqwest::Method::PUT, &nul_type, Some(&alice.token), "{}")
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let nul_key = format!("/rooms/{}/state/com.example/a%00b", enc(&room));
    server
        .call_raw(reqwest::Method::PUT, &nul_key, Some(&alice.token), "{}")
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn st05_st06_st09_the_state_api() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for path in [
        format!("/rooms/{}/state/m.room.topic", enc(&room)),
        format!("/rooms/{}/state/m.room.topic/", enc(&room)),
    ] {
        server
            .put(&path, &alice.token, json!({ "topic": path }))
            .await
            .assert_ok();
        assert_eq!(
            server.get(&path, &alice.token).await.assert_ok(),
            &json!({ "topic": path })
        );
    }
    let first = server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "N" }))
        .await
        .assert_ok()["event_id"]
        .clone();
    let second = server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "N" }))
        .await;
    assert_eq!(second.assert_ok()["event_id"], first, "ST-06");
    let event = server
        .get(
            &format!("/rooms/{}/state/m.room.name/?format=event", enc(&room)),
            &alice.token,
        )
        .await;
    let event = event.assert_ok();
    assert_eq!(event["event_id"], first);
    assert_eq!(event["content"], json!({ "name": "N" }));
    server
        .get(
            &format!("/rooms/{}/state/m.room.avatar/", enc(&room)),
            &alice.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .call(
            reqwest::Method::POST,
            &format!("/rooms/{}/state/m.room.name/", enc(&room)),
            Some(&alice.token),
            Some(json!({})),
        )
        .await
        .assert_error(405, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn st08_canonical_aliases_must_point_to_the_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "room_alias_name": "mine" }))
        .await;
    server
        .create_room(&alice, json!({ "room_alias_name": "other" }))
        .await;
    for (content, errcode) in [
        (json!({ "alias": "not-an-alias" }), "M_INVALID_PARAM"),
        (json!({ "alias": "#missing:localhost" }), "M_BAD_ALIAS"),
        (json!({ "alias": "#other:localhost" }), "M_BAD_ALIAS"),
        (
            json!({ "alias": "#mine:localhost", "alt_aliases": ["#other:localhost"] }),
            "M_BAD_ALIAS",
        ),
    ] {
        server
            .put_state(&alice, &room, "m.room.canonical_alias", "", content)
            .await
            .assert_error(400, errcode);
    }
    server
        .put_state(
            &alice,
            &room,
            "m.room.canonical_alias",
            "",
            json!({ "alias": "#mine:localhost", "alt_aliases": [] }),
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn st07_state_needs_the_types_level() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "shared").await;
    server.join(&bob, &room).await;
    server
        .put_state(&bob, &room, "com.example.state", "", json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .send_event(&bob, &room, "com.example.message", json!({}))
        .await
        .assert_ok();
}

#[tokio::test]
async fn st10_st11_st13_st15_readers_who_left_see_the_room_as_they_left_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "Before" }))
        .await;
    server.join(&bob, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "After" }))
        .await
        .assert_ok();
    server.join(&carol, &room).await;
    let name = server
        .get(
            &format!("/rooms/{}/state/m.room.name/", enc(&room)),
            &bob.token,
        )
        .await;
    assert_eq!(name.assert_ok(), &json!({ "name": "Before" }));
    let state = server
        .get(&format!("/rooms/{}/state", enc(&room)), &bob.token)
        .await;
    let state = state.assert_ok();
    assert!(state.is_array());
    assert!(
        !state
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state_key"] == json!(carol.user_id)),
        "later members are not shown"
    );
    let members = server
        .get(&format!("/rooms/{}/members", enc(&room)), &bob.token)
        .await;
    let chunk = &members.assert_ok()["chunk"];
    assert_eq!(chunk.as_array().unwrap().len(), 2, "{chunk}");
    server
        .get(&format!("/rooms/{}/joined_members", enc(&room)), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let joined = server
        .get(
            &format!("/rooms/{}/joined_members", enc(&room)),
            &alice.token,
        )
        .await;
    let joined = &joined.assert_ok()["joined"];
    assert_eq!(joined.as_object().unwrap().len(), 2);
    // ST-15: both keys, null when unset (the display name is the profile's, MB-03).
    assert_eq!(
        joined[&carol.user_id],
        json!({ "display_name": "carol", "avatar_url": null })
    );
    // Never a member of a shared room: 403.
    let dave = server.register("dave").await;
    server
        .get(&format!("/rooms/{}/state", enc(&room)), &dave.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&format!("/rooms/{}/members", enc(&room)), &dave.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn st12_events_unknown_or_hidden_are_404() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "joined").await;
    let hidden = server.send_text(&alice, &room, "before bob").await;
    server.join(&bob, &room).await;
    let seen = server.send_text(&alice, &room, "after bob").await;
    let path = |id: &str| format!("/rooms/{}/event/{}", enc(&room), enc(id));
    server
        .get(&path(&hidden), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server.get(&path(&seen), &bob.token).await.assert_ok();
    server
        .get(&path("$nothing"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let carol = server.register("carol").await;
    server
        .get(&path(&seen), &carol.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn st14_members_at_a_point_and_filtered() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = public_room(&server, &alice, "shared").await;
    server.join(&bob, &room).await;
    let point = server.sync(&alice, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server.join(&carol, &room).await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let members = |query: String| {
        let server = &server;
        let alice = alice.clone();
        let room = room.clone();
        async move {
            let resp = server
                .get(
                    &format!("/rooms/{}/members?{query}", enc(&room)),
                    &alice.token,
                )
                .await;
            let mut users: Vec<String> = resp.assert_ok()["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["state_key"].as_str().unwrap().to_owned())
                .collect();
            users.sort();
            users
        }
    };
    assert_eq!(
        members(format!("at={}", enc(&point))).await,
        [alice.user_id.clone(), bob.user_id.clone()]
    );
    assert_eq!(
        members("not_membership=leave".into()).await,
        [alice.user_id.clone(), carol.user_id.clone()]
    );
    assert_eq!(
        members("membership=leave".into()).await,
        [bob.user_id.as_str()]
    );
    assert_eq!(
        members(format!("not_membership=leave&at={}", enc(&point))).await,
        [alice.user_id.clone(), bob.user_id.clone()]
    );
    server
        .get(
            &format!("/rooms/{}/members?at=garbage", enc(&room)),
            &alice.token,
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn st16_history_visibility_decides_what_a_later_joiner_reads() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for (visibility, sees_before) in [
        ("shared", true),
        ("joined", false),
        ("invited", false),
        ("world_readable", true),
    ] {
        let bob = server.register(&format!("bob_{visibility}")).await;
        let room = public_room(&server, &alice, visibility).await;
        server.send_text(&alice, &room, "before").await;
        server.join(&bob, &room).await;
        server.send_text(&alice, &room, "after").await;
        let page = messages(&server, &bob, &room, "dir=b&limit=50").await;
        let seen = bodies(&page["chunk"]);
        assert_eq!(
            seen.contains(&"before".to_owned()),
            sees_before,
            "{visibility}: {seen:?}"
        );
        assert!(seen.contains(&"after".to_owned()));
    }
    // world_readable: readable without ever joining; shared: not.
    let outsider = server.register("outsider").await;
    let open = public_room(&server, &alice, "world_readable").await;
    server.send_text(&alice, &open, "for all").await;
    let page = messages(&server, &outsider, &open, "dir=b").await;
    assert_eq!(bodies(&page["chunk"]), ["for all"]);
    let closed = public_room(&server, &alice, "shared").await;
    server
        .get(&messages_path(&closed, "dir=b"), &outsider.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // invited: visible from the invite on.
    let guest = server.register("guest").await;
    let invited = server
        .create_room(&alice, json!({ "initial_state": [{
            "type": "m.room.history_visibility", "content": { "history_visibility": "invited" } }] }))
        .await;
    server.send_text(&alice, &invited, "too early").await;
    server.invite(&alice, &invited, &guest).await;
    server.send_text(&alice, &invited, "while invited").await;
    server.join(&guest, &invited).await;
    let page = messages(&server, &guest, &invited, "dir=b&limit=50").await;
    assert_eq!(bodies(&page["chunk"]), ["while invited"]);
}

#[tokio::test]
async fn st17_st18_users_see_their_own_leave_and_nothing_after() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "joined").await;
    server.join(&bob, &room).await;
    server.send_text(&alice, &room, "while there").await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server.send_text(&alice, &room, "after leaving").await;
    let page = messages(&server, &bob, &room, "dir=b&limit=50").await;
    let chunk = &page["chunk"];
    assert_eq!(bodies(chunk), ["while there"]);
    let first = &chunk.as_array().unwrap()[0];
    assert_eq!(
        first["state_key"],
        json!(bob.user_id),
        "newest is the own leave"
    );
    assert_eq!(first["content"]["membership"], "leave");
    assert_eq!(first["unsigned"]["membership"], "leave", "EV-15");
    let forward = messages(
        &server,
        &bob,
        &room,
        &format!("dir=f&from={}", enc(page["start"].as_str().unwrap())),
    )
    .await;
    assert_eq!(forward["chunk"], json!([]), "TL-11");
}

#[tokio::test]
async fn tl01_tl02_tl06_paging_backwards_through_the_whole_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for i in 0..25 {
        server.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &from {
            None => "dir=b&limit=7".to_owned(),
            Some(f) => format!("dir=b&limit=7&from={}", enc(f)),
        };
        let page = messages(&server, &alice, &room, &query).await;
        if let Some(f) = &from {
            assert_eq!(page["start"], json!(f));
        }
        for event in page["chunk"].as_array().unwrap() {
            assert_eq!(event["room_id"], json!(room));
            seen.push(event["event_id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match page.get("end") {
            Some(end) => from = Some(end.as_str().unwrap().to_owned()),
            None => break,
        }
        assert!(pages < 20);
    }
    let forward = messages(&server, &alice, &room, "dir=f&limit=1000").await;
    let mut expected = ids_of(&forward["chunk"]);
    expected.reverse();
    assert_eq!(seen, expected, "every event once, newest first");
    assert!(forward.get("end").is_none());
    let first = &forward["chunk"][0];
    assert_eq!(first["type"], "m.room.create");
}

#[tokio::test]
async fn tl03_tl04_tl07_sync_tokens_work_with_messages() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server.send_text(&alice, &room, "one").await;
    let filter = json!({ "room": { "timeline": { "limit": 1 } } }).to_string();
    let sync = server.sync(&alice, &[("filter", &filter)]).await;
    let prev = sync["rooms"]["join"][&room]["timeline"]["prev_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = sync["next_batch"].as_str().unwrap().to_owned();
    assert_eq!(
        bodies(&sync["rooms"]["join"][&room]["timeline"]["events"]),
        ["one"]
    );
    // TL-02: the prev_batch gives exactly the event before the timeline.
    let before = messages(
        &server,
        &alice,
        &room,
        &format!("dir=b&limit=1&from={}", enc(&prev)),
    )
    .await;
    assert_eq!(types_of(&before["chunk"]), ["m.room.guest_access"]);
    server.send_text(&alice, &room, "two").await;
    server.send_text(&alice, &room, "three").await;
    // TL-04: next_batch works forwards.
    let after = messages(
        &server,
        &alice,
        &room,
        &format!("dir=f&from={}", enc(&next)),
    )
    .await;
    assert_eq!(bodies(&after["chunk"]), ["two", "three"]);
    // TL-03: an incremental sync's prev_batch does not repeat its own events.
    let incremental = server.sync(&alice, &[("since", &next)]).await;
    let timeline = &incremental["rooms"]["join"][&room]["timeline"];
    assert_eq!(bodies(&timeline["events"]), ["two", "three"]);
    assert_eq!(timeline["limited"], false);
    let back = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=b&limit=1&from={}",
            enc(timeline["prev_batch"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(bodies(&back["chunk"]), ["one"]);
    // TL-07: from/to closes a gap exactly.
    let gap = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=f&from={}&to={}",
            enc(&prev),
            enc(timeline["prev_batch"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(bodies(&gap["chunk"]), ["one"]);
}

#[tokio::test]
async fn tl08_tl09_bad_parameters_and_filters() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "shared").await;
    server.join(&bob, &room).await;
    server.send_text(&alice, &room, "from alice").await;
    server.send_text(&bob, &room, "from bob").await;
    server
        .send_event(&bob, &room, "com.example.other", json!({ "x": 1 }))
        .await
        .assert_ok();
    for (query, errcode) in [
        ("dir=x", "M_INVALID_PARAM"),
        ("dir=b&limit=ten", "M_INVALID_PARAM"),
        ("dir=b&from=nonsense", "M_INVALID_PARAM"),
        ("dir=b&filter=notjson", "M_NOT_JSON"),
        (
            "dir=b&filter=%7B%22lazy_load_members%22%3A%22true%22%7D",
            "M_BAD_JSON",
        ),
    ] {
        server
            .get(&messages_path(&room, query), &alice.token)
            .await
            .assert_error(400, errcode);
    }
    let filter = |f: Value| enc(&f.to_string());
    let only_bob = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=b&filter={}",
            filter(json!({ "senders": [bob.user_id], "types": ["m.room.message"] }))
        ),
    )
    .await;
    assert_eq!(bodies(&only_bob["chunk"]), ["from bob"]);
    assert_eq!(only_bob["chunk"].as_array().unwrap().len(), 1);
    let not_messages = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=b&limit=1&filter={}",
            filter(json!({ "not_types": ["m.room.*"] }))
        ),
    )
    .await;
    assert_eq!(types_of(&not_messages["chunk"]), ["com.example.other"]);
    let lazy = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=b&limit=1&filter={}",
            filter(json!({ "lazy_load_members": true }))
        ),
    )
    .await;
    let state = lazy["state"].as_array().unwrap();
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0]["state_key"], json!(bob.user_id));
    // The default limit is 10.
    for i in 0..12 {
        server.send_text(&alice, &room, &format!("n{i}")).await;
    }
    let page = messages(&server, &alice, &room, "dir=b").await;
    assert_eq!(page["chunk"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn tl10_outsiders_and_unknown_rooms_get_403() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .get(&messages_path(&room, "dir=b"), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&messages_path("!unknown:localhost", "dir=b"), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn tl15_tl16_tl17_context_around_an_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "joined").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(server.send_text(&alice, &room, &format!("c{i}")).await);
    }
    let path = |id: &str, query: &str| format!("/rooms/{}/context/{}?{query}", enc(&room), enc(id));
    let around = server.get(&path(&ids[3], "limit=4"), &alice.token).await;
    let around = around.assert_ok();
    assert_eq!(around["event"]["event_id"], json!(ids[3]));
    assert_eq!(
        bodies(&around["events_before"]),
        ["c2", "c1"],
        "newest first"
    );
    assert_eq!(bodies(&around["events_after"]), ["c4", "c5"]);
    assert!(
        around["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create")
    );
    // The tokens continue where the context ends.
    let older = messages(
        &server,
        &alice,
        &room,
        &format!(
            "dir=b&limit=1&from={}",
            enc(around["start"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(bodies(&older["chunk"]), ["c0"]);
    let zero = server.get(&path(&ids[0], "limit=0"), &alice.token).await;
    let zero = zero.assert_ok();
    assert_eq!(zero["event"]["event_id"], json!(ids[0]));
    assert_eq!(zero["events_before"], json!([]));
    let lazy = server
        .get(
            &path(
                &ids[0],
                &format!(
                    "limit=0&filter={}",
                    enc(&json!({ "lazy_load_members": true }).to_string())
                ),
            ),
            &alice.token,
        )
        .await;
    let state = lazy.assert_ok()["state"].as_array().unwrap().clone();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0]["state_key"], json!(alice.user_id));
    // Not visible: 403 (TL-16); unknown: 404.
    server.join(&bob, &room).await;
    server
        .get(&path(&ids[0], ""), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&path("$unknown", ""), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn nul_bytes_in_room_paths_are_400_on_every_backend() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let r = enc(&room);
    for (method, path) in [
        (reqwest::Method::GET, format!("/rooms/{r}/event/%24a%00b")),
        (reqwest::Method::GET, format!("/rooms/{r}/context/%24a%00b")),
        (
            reqwest::Method::PUT,
            format!("/rooms/{r}/redact/%24a%00b/t1"),
        ),
        (
            reqwest::Method::GET,
            "/rooms/%21a%00b%3Alocalhost/state".to_owned(),
        ),
        (
            reqwest::Method::POST,
            "/join/%23a%00b%3Alocalhost".to_owned(),
        ),
        (
            reqwest::Method::GET,
            format!("/rooms/{r}/state/m.room.member/%40a%00b%3Alocalhost"),
        ),
    ] {
        let resp = server
            .call(method.clone(), &path, Some(&alice.token), Some(json!({})))
            .await;
        assert_eq!(resp.status, 400, "{method} {path}: {}", resp.body);
    }
    let invite = server
        .room_post(
            &alice,
            &room,
            "invite",
            json!({ "user_id": "@a\u{0}b:localhost" }),
        )
        .await;
    invite.assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn st10_st18_a_later_ban_or_knock_does_not_reopen_the_room_to_who_left() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "Before", "initial_state": [{
            "type": "m.room.history_visibility", "content": { "history_visibility": "joined" } }] }))
        .await;
    server.join(&bob, &room).await;
    let seen = server.send_text(&alice, &room, "while bob is here").await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server
        .put_state(&alice, &room, "m.room.name", "", json!({ "name": "After" }))
        .await
        .assert_ok();
    let carol = server.register("carol").await;
    server.join(&carol, &room).await;
    // A redaction after the leave is not Bob's to know of.
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&seen), txn()),
            &alice.token,
            json!({ "reason": "later" }),
        )
        .await
        .assert_ok();
    server
        .room_post(&alice, &room, "ban", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    let name = server
        .get(
            &format!("/rooms/{}/state/m.room.name/", enc(&room)),
            &bob.token,
        )
        .await;
    assert_eq!(name.assert_ok(), &json!({ "name": "Before" }));
    let members = server
        .get(&format!("/rooms/{}/members", enc(&room)), &bob.token)
        .await;
    let users: Vec<&str> = members.assert_ok()["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(!users.contains(&carol.user_id.as_str()), "{users:?}");
    let event = server
        .get(
            &format!("/rooms/{}/event/{}", enc(&room), enc(&seen)),
            &bob.token,
        )
        .await;
    let event = event.assert_ok();
    assert_eq!(event["content"]["body"], "while bob is here", "{event}");
    assert!(event["unsigned"].get("redacted_because").is_none());
}

#[tokio::test]
async fn st14_members_at_a_point_the_user_could_not_see_is_403() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = public_room(&server, &alice, "joined").await;
    let early = server.sync(&alice, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server.join(&bob, &room).await;
    server
        .get(
            &format!("/rooms/{}/members?at={}", enc(&room), enc(&early)),
            &bob.token,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    let now = server.sync(&bob, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .get(
            &format!("/rooms/{}/members?at={}", enc(&room), enc(&now)),
            &bob.token,
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn tl06_a_filter_matching_nothing_answers_without_scanning_the_whole_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for _ in 0..300 {
        server
            .send_event(&alice, &room, "com.example.filler", json!({}))
            .await
            .assert_ok();
    }
    let filter = enc(&json!({ "types": ["x.none"] }).to_string());
    let page = server
        .get(
            &messages_path(&room, &format!("dir=b&limit=1&filter={filter}")),
            &alice.token,
        )
        .await;
    let page = page.assert_ok();
    assert_eq!(page["chunk"], json!([]));
    let end = page["end"]
        .as_str()
        .expect("an end to go on from")
        .to_owned();
    // Going on from it reaches the start of the room.
    let mut from = end;
    for _ in 0..20 {
        let next = server
            .get(
                &messages_path(
                    &room,
                    &format!("dir=b&limit=1&filter={filter}&from={}", enc(&from)),
                ),
                &alice.token,
            )
            .await;
        match next.assert_ok().get("end") {
            Some(e) => from = e.as_str().unwrap().to_owned(),
            None => return,
        }
    }
    panic!("paging never reached the start of the room");
}
