//! Receipts, read markers, typing and tags (issue 11; behaviours RC-*, RM-*, TY-*, TG-* of
//! `behaviours-push-receipts.md`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

async fn typing(server: &TestServer, user: &User, room: &str, body: Value) -> common::Resp {
    server
        .put(
            &format!("/rooms/{}/typing/{}", enc(room), enc(&user.user_id)),
            &user.token,
            body,
        )
        .await
}

fn ephemeral(sync: &Value, room: &str, kind: &str) -> Option<Value> {
    sync["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == kind)
        .cloned()
}

#[tokio::test]
async fn rc01_rc04_rc06_rc08_receipts_reach_members_once_and_never_go_back() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let first = server.send_text(&alice, &room, "one").await;
    let second = server.send_text(&alice, &room, "two").await;
    let since = common::next_batch(&server.sync(&alice, &[]).await);
    server
        .receipt(&bob, &room, "m.read", &second, json!({}))
        .await
        .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    let event = ephemeral(&sync, &room, "m.receipt").unwrap();
    // RC-04: no room_id; the server sets ts.
    assert!(event.get("room_id").is_none());
    let ts = &event["content"][&second]["m.read"][&bob.user_id]["ts"];
    assert!(ts.as_i64().unwrap() > 1_700_000_000_000, "{event}");
    // RC-08: an older event is ignored with 200, and nothing new is sent.
    let since = common::next_batch(&sync);
    server
        .receipt(&bob, &room, "m.read", &first, json!({}))
        .await
        .assert_ok();
    let quiet = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert!(ephemeral(&quiet, &room, "m.receipt").is_none(), "{quiet}");
    // RC-06: an initial sync has the current receipts.
    let initial = server.sync(&alice, &[]).await;
    let event = ephemeral(&initial, &room, "m.receipt").unwrap();
    assert!(event["content"][&second]["m.read"][&bob.user_id].is_object());
    assert!(event["content"].get(&first).is_none());
}

#[tokio::test]
async fn rc02_rc11_bad_receipts_are_refused() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let event = server.send_text(&alice, &room, "one").await;
    server
        .receipt(&bob, &room, "m.unknown", &event, json!({}))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .receipt(&bob, &room, "m.read", &event, json!({ "thread_id": "" }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .receipt(
            &bob,
            &room,
            "m.fully_read",
            &event,
            json!({ "thread_id": "main" }),
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .receipt(&bob, &room, "m.read", "$nosuchevent", json!({}))
        .await
        .assert_error(404, "M_NOT_FOUND");
    let stranger = server.register("stranger").await;
    server
        .receipt(&stranger, &room, "m.read", &event, json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn rc11_rc12_a_threaded_receipt_names_the_thread_of_its_event() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let root = server.send_text(&alice, &room, "root").await;
    let relate = |rel: Value| {
        let (server, alice, room) = (&server, &alice, room.clone());
        async move {
            server
                .send_event(
                    alice,
                    &room,
                    rel["type"].as_str().unwrap(),
                    rel["content"].clone(),
                )
                .await
                .assert_ok()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let reply = relate(json!({ "type": "m.room.message", "content": {
        "msgtype": "m.text", "body": "in the thread",
        "m.relates_to": { "rel_type": "m.thread", "event_id": root } } }))
    .await;
    let on_reply = relate(json!({ "type": "m.reaction", "content": {
        "m.relates_to": { "rel_type": "m.annotation", "event_id": reply, "key": "👍" } } }))
    .await;
    let on_root = relate(json!({ "type": "m.reaction", "content": {
        "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "👍" } } }))
    .await;
    let plain = server.send_text(&alice, &room, "elsewhere").await;
    let receipt = |event: String, thread: String| {
        let (server, bob, room) = (&server, &bob, room.clone());
        async move {
            server
                .receipt(bob, &room, "m.read", &event, json!({ "thread_id": thread }))
                .await
        }
    };
    let main = "main".to_owned();
    for (event, thread) in [
        (root.clone(), main.clone()),
        (root.clone(), root.clone()),
        (reply.clone(), root.clone()),
        (on_reply.clone(), root.clone()),
        (on_root.clone(), main.clone()),
        (on_root.clone(), root.clone()),
        (plain.clone(), main.clone()),
    ] {
        receipt(event.clone(), thread.clone()).await.assert_ok();
    }
    for (event, thread) in [
        (reply.clone(), main.clone()),
        (on_reply.clone(), main.clone()),
        (plain.clone(), root.clone()),
        (root.clone(), plain.clone()),
        // A message with no replies is no thread's root.
        (plain.clone(), plain.clone()),
    ] {
        receipt(event, thread)
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
}

#[tokio::test]
async fn rc10_rc13_rc14_private_and_threaded_receipts() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let event = server.send_text(&alice, &room, "one").await;
    server
        .receipt(&bob, &room, "m.read.private", &event, json!({}))
        .await
        .assert_ok();
    // RC-10: only the owner sees a private receipt.
    let mine = server.sync(&bob, &[]).await;
    assert!(
        ephemeral(&mine, &room, "m.receipt").unwrap()["content"][&event]["m.read.private"]
            [&bob.user_id]
            .is_object()
    );
    let theirs = server.sync(&alice, &[]).await;
    assert!(ephemeral(&theirs, &room, "m.receipt").is_none(), "{theirs}");
    // RC-13, RC-14: threaded receipts carry thread_id; an unthreaded one on the same event
    // wins.
    server
        .receipt(
            &bob,
            &room,
            "m.read",
            &event,
            json!({ "thread_id": "main" }),
        )
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    let data =
        &ephemeral(&sync, &room, "m.receipt").unwrap()["content"][&event]["m.read"][&bob.user_id];
    assert_eq!(data["thread_id"], "main");
    server
        .receipt(&bob, &room, "m.read", &event, json!({}))
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    let data =
        &ephemeral(&sync, &room, "m.receipt").unwrap()["content"][&event]["m.read"][&bob.user_id];
    assert!(data.get("thread_id").is_none(), "{data}");
}

#[tokio::test]
async fn rm01_rm02_rm05_read_markers_set_fully_read_and_receipts_and_never_go_back() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let first = server.send_text(&alice, &room, "one").await;
    let second = server.send_text(&alice, &room, "two").await;
    let path = format!("/rooms/{}/read_markers", enc(&room));
    server
        .post(
            &path,
            &bob.token,
            json!({ "m.fully_read": second, "m.read": second }),
        )
        .await
        .assert_ok();
    let marker = format!(
        "/user/{}/rooms/{}/account_data/m.fully_read",
        bob.user_id,
        enc(&room)
    );
    assert_eq!(
        server.get(&marker, &bob.token).await.assert_ok(),
        &json!({ "event_id": second })
    );
    server
        .post(&path, &bob.token, json!({ "m.fully_read": first }))
        .await
        .assert_ok();
    assert_eq!(
        server.get(&marker, &bob.token).await.assert_ok(),
        &json!({ "event_id": second })
    );
    // Only this API writes it (SC-01).
    server
        .put(&marker, &bob.token, json!({ "event_id": first }))
        .await
        .assert_error(405, "M_BAD_JSON");
    let sync = server.sync(&alice, &[]).await;
    assert!(
        ephemeral(&sync, &room, "m.receipt").unwrap()["content"][&second]["m.read"][&bob.user_id]
            .is_object()
    );
    server.post(&path, &bob.token, json!({})).await.assert_ok();
}

#[tokio::test]
async fn rc07_a_receipt_wakes_the_other_members_long_poll() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let event = server.send_text(&alice, &room, "one").await;
    let since = common::next_batch(&server.sync(&alice, &[]).await);
    let poll = server.spawn_sync(&alice, &since, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server
        .receipt(&bob, &room, "m.read", &event, json!({}))
        .await
        .assert_ok();
    let body = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(ephemeral(&body, &room, "m.receipt").is_some(), "{body}");
}

#[tokio::test]
async fn ty01_ty02_ty05_ty08_ty10_typing_starts_stops_expires_and_does_not_leak() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let since = common::next_batch(&server.sync(&alice, &[]).await);
    typing(
        &server,
        &bob,
        &room,
        json!({ "typing": true, "timeout": 30000 }),
    )
    .await
    .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    let event = ephemeral(&sync, &room, "m.typing").unwrap();
    assert_eq!(
        event,
        json!({ "type": "m.typing", "content": { "user_ids": [bob.user_id.clone()] } })
    );
    // TY-01: the typer sees themselves; TY-04: an initial sync shows current typers.
    assert!(ephemeral(&server.sync(&bob, &[]).await, &room, "m.typing").is_some());
    // TY-02: stopping sends the empty list.
    let since = common::next_batch(&sync);
    typing(&server, &bob, &room, json!({ "typing": false }))
        .await
        .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(
        ephemeral(&sync, &room, "m.typing").unwrap()["content"],
        json!({ "user_ids": [] })
    );
    // TY-05: a short timeout runs out on its own and wakes the poll.
    let since = common::next_batch(&sync);
    typing(
        &server,
        &bob,
        &room,
        json!({ "typing": true, "timeout": 500 }),
    )
    .await
    .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    let since = common::next_batch(&sync);
    let started = Instant::now();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "5000")])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "expiry did not wake the poll"
    );
    assert_eq!(
        ephemeral(&sync, &room, "m.typing").unwrap()["content"],
        json!({ "user_ids": [] })
    );
    // A message sent ends typing.
    let since = common::next_batch(&sync);
    typing(&server, &bob, &room, json!({ "typing": true }))
        .await
        .assert_ok();
    server.send_text(&bob, &room, "done typing").await;
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(
        ephemeral(&sync, &room, "m.typing").unwrap()["content"],
        json!({ "user_ids": [] })
    );
    // TY-08: not for someone else, not outside the room; and nothing leaks to outsiders.
    server
        .put(
            &format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id)),
            &bob.token,
            json!({ "typing": true }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    let stranger = server.register("stranger").await;
    typing(&server, &stranger, &room, json!({ "typing": true }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    typing(&server, &bob, &room, json!({}))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    // TY-10: leaving ends typing.
    typing(&server, &bob, &room, json!({ "typing": true }))
        .await
        .assert_ok();
    let since = common::next_batch(&server.sync(&alice, &[]).await);
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(
        ephemeral(&sync, &room, "m.typing").unwrap()["content"],
        json!({ "user_ids": [] })
    );
}

#[tokio::test]
async fn tg11_tg12_tg15_tags_are_the_m_tag_account_data() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server.create_room(&alice, json!({})).await;
    let base = format!("/user/{}/rooms/{}/tags", alice.user_id, enc(&room));
    let since = common::next_batch(&server.sync(&alice, &[]).await);
    server
        .put(
            &format!("{base}/m.favourite"),
            &alice.token,
            json!({ "order": 0.25 }),
        )
        .await
        .assert_ok();
    server
        .put(
            &format!("{base}/{}", enc("u.Work Stuff")),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    let tags = server.get(&base, &alice.token).await;
    assert_eq!(
        tags.assert_ok(),
        &json!({ "tags": { "m.favourite": { "order": 0.25 }, "u.Work Stuff": {} } })
    );
    // TG-15: the whole m.tag event through /sync.
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    let events = &sync["rooms"]["join"][&room]["account_data"]["events"];
    let tag = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "m.tag")
        .unwrap();
    assert_eq!(
        tag["content"]["tags"]["m.favourite"],
        json!({ "order": 0.25 })
    );
    server
        .call(
            Method::DELETE,
            &format!("{base}/m.favourite"),
            Some(&alice.token),
            None,
        )
        .await
        .assert_ok();
    let tags = server.get(&base, &alice.token).await;
    assert_eq!(tags.assert_ok(), &json!({ "tags": { "u.Work Stuff": {} } }));
    // TG-11, TG-12.
    server
        .get(&base, &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let long = "t".repeat(256);
    server
        .put(&format!("{base}/{long}"), &alice.token, json!({}))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .put(
            &format!("{base}/u.x"),
            &alice.token,
            json!({ "order": "first" }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
}
