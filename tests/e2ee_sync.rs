//! Device lists, key counts and to-device messages in `/sync` (issue 10; behaviours DL-*,
//! TD-*, DD-04 of `behaviours-e2ee.md`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, User, txn};
use serde_json::{Value, json};

async fn next_batch(server: &TestServer, user: &User) -> String {
    server.sync(user, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An incremental sync that returns at once, and the `device_lists` it carries.
async fn lists_since(server: &TestServer, user: &User, since: &str) -> (Value, String) {
    let body = server
        .sync(user, &[("since", since), ("timeout", "0")])
        .await;
    let next = body["next_batch"].as_str().unwrap().to_owned();
    (body["device_lists"].clone(), next)
}

fn changed(lists: &Value) -> Vec<String> {
    let mut users: Vec<String> = lists["changed"]
        .as_array()
        .map(|a| a.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    users.sort();
    users
}

fn left(lists: &Value) -> Vec<String> {
    lists["left"]
        .as_array()
        .map(|a| a.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

async fn shared_room(server: &TestServer, a: &User, b: &User) -> String {
    let room = server
        .create_room(a, json!({ "preset": "public_chat" }))
        .await;
    server.join(b, &room).await;
    room
}

fn device_keys(user: &User, curve: &str) -> Value {
    json!({
        "user_id": user.user_id, "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": { format!("curve25519:{}", user.device_id): curve },
        "signatures": {},
    })
}

async fn send_to_device(server: &TestServer, from: &User, messages: Value) -> common::Resp {
    server
        .put(
            &format!("/sendToDevice/m.test/{}", txn()),
            &from.token,
            json!({ "messages": messages }),
        )
        .await
}

#[tokio::test]
async fn dl01_dl02_dd04_device_changes_reach_room_mates_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    shared_room(&server, &alice, &bob).await;
    let since = next_batch(&server, &bob).await;
    // DL-02: a new login, without keys.
    let phone = server.login(&alice, None).await;
    let (lists, since) = lists_since(&server, &bob, &since).await;
    assert_eq!(changed(&lists), vec![alice.user_id.clone()]);
    // Exactly once: nothing more on the next sync.
    let (lists, since) = lists_since(&server, &bob, &since).await;
    assert_eq!(lists, Value::Null);
    // DL-01: a key upload; KU-09: the same keys again notify nobody.
    let keys = json!({ "device_keys": device_keys(&phone, "c1") });
    server
        .post("/keys/upload", &phone.token, keys.clone())
        .await
        .assert_ok();
    let (lists, since) = lists_since(&server, &bob, &since).await;
    assert_eq!(changed(&lists), vec![alice.user_id.clone()]);
    server
        .post("/keys/upload", &phone.token, keys)
        .await
        .assert_ok();
    let (lists, since) = lists_since(&server, &bob, &since).await;
    assert_eq!(lists, Value::Null);
    // DD-05: a rename; DD-04: a deletion.
    server
        .put(
            &format!("/devices/{}", phone.device_id),
            &phone.token,
            json!({ "display_name": "P" }),
        )
        .await
        .assert_ok();
    let (lists, since) = lists_since(&server, &bob, &since).await;
    assert_eq!(changed(&lists), vec![alice.user_id.clone()]);
    server
        .post("/logout", &phone.token, json!({}))
        .await
        .assert_ok();
    let (lists, _) = lists_since(&server, &bob, &since).await;
    assert_eq!(changed(&lists), vec![alice.user_id.clone()]);
    // DL-11: an initial sync has no device lists.
    assert!(server.sync(&bob, &[]).await.get("device_lists").is_none());
}

#[tokio::test]
async fn dl03_own_changes_arrive_in_no_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let since = next_batch(&server, &alice).await;
    server.login(&alice, None).await;
    let (lists, _) = lists_since(&server, &alice, &since).await;
    assert_eq!(changed(&lists), vec![alice.user_id.clone()]);
}

#[tokio::test]
async fn dl06_dl07_dl08_sharing_a_room_starts_and_ends_tracking() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    let stranger = server.register("stranger").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let since = next_batch(&server, &alice).await;
    // DL-06: a join starts the sharing, even with no key change; a stranger's is not seen.
    server.join(&carol, &room).await;
    server.login(&stranger, None).await;
    let (lists, since) = lists_since(&server, &alice, &since).await;
    assert_eq!(changed(&lists), vec![carol.user_id.clone()]);
    let carol_since = next_batch(&server, &carol).await;
    // DL-07: the last shared room gone: left, and later changes are not reported.
    server
        .room_post(&carol, &room, "leave", json!({}))
        .await
        .assert_ok();
    let (lists, since) = lists_since(&server, &alice, &since).await;
    assert_eq!(left(&lists), vec![carol.user_id.clone()]);
    assert!(changed(&lists).is_empty(), "{lists}");
    let (lists, _) = lists_since(&server, &carol, &carol_since).await;
    assert_eq!(left(&lists), vec![alice.user_id.clone()]);
    let carol2 = server.login(&carol, None).await;
    let (lists, since) = lists_since(&server, &alice, &since).await;
    assert_eq!(lists, Value::Null);
    // DL-08: back in a shared room: changed again, and the query shows the new keys.
    server
        .post(
            "/keys/upload",
            &carol2.token,
            json!({ "device_keys": device_keys(&carol2, "new") }),
        )
        .await
        .assert_ok();
    server.join(&carol, &room).await;
    let (lists, since) = lists_since(&server, &alice, &since).await;
    assert_eq!(changed(&lists), vec![carol.user_id.clone()]);
    let got = server
        .post(
            "/keys/query",
            &alice.token,
            json!({ "device_keys": { carol.user_id.clone(): [] } }),
        )
        .await;
    assert!(got.assert_ok()["device_keys"][&carol.user_id][&carol2.device_id].is_object());
    // DL-13, DL-14: /keys/changes over the same window.
    let body = server
        .get(
            &format!("/keys/changes?from={since}&to={since}"),
            &alice.token,
        )
        .await;
    assert_eq!(body.assert_ok(), &json!({ "changed": [], "left": [] }));
    server
        .get(&format!("/keys/changes?to={since}"), &alice.token)
        .await
        .assert_error(400, "M_MISSING_PARAM");
    server
        .get("/keys/changes?from=garbage&to=garbage", &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn dl13_keys_changes_reports_what_sync_reported() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    shared_room(&server, &alice, &bob).await;
    let from = next_batch(&server, &alice).await;
    server.login(&bob, None).await;
    let to = next_batch(&server, &alice).await;
    let body = server
        .get(&format!("/keys/changes?from={from}&to={to}"), &alice.token)
        .await;
    assert_eq!(
        body.assert_ok(),
        &json!({ "changed": [bob.user_id.clone()], "left": [] })
    );
}

#[tokio::test]
async fn dl12_a_room_mates_new_device_wakes_a_long_poll() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    shared_room(&server, &alice, &bob).await;
    let since = next_batch(&server, &bob).await;
    let started = Instant::now();
    let poll = server.spawn_sync(&bob, &since, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.login(&alice, None).await;
    let body = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "the poll slept");
    assert_eq!(changed(&body["device_lists"]), vec![alice.user_id.clone()]);
}

#[tokio::test]
async fn dl15_dl16_every_response_carries_the_key_counts() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let initial = server.sync(&alice, &[]).await;
    assert_eq!(
        initial["device_one_time_keys_count"],
        json!({ "signed_curve25519": 0 })
    );
    assert_eq!(initial["device_unused_fallback_key_types"], json!([]));
    let since = initial["next_batch"].as_str().unwrap();
    // A long-poll that times out with nothing new still has them (DL-15).
    let quiet = server
        .sync(&alice, &[("since", since), ("timeout", "50")])
        .await;
    assert_eq!(
        quiet["device_one_time_keys_count"],
        json!({ "signed_curve25519": 0 })
    );
    assert_eq!(quiet["device_unused_fallback_key_types"], json!([]));
    server
        .post(
            "/keys/upload",
            &alice.token,
            json!({ "one_time_keys": { "signed_curve25519:A": "k" } }),
        )
        .await
        .assert_ok();
    let after = server
        .sync(&alice, &[("since", since), ("timeout", "0")])
        .await;
    assert_eq!(
        after["device_one_time_keys_count"],
        json!({ "signed_curve25519": 1 })
    );
}

#[tokio::test]
async fn td01_td02_td05_messages_stay_until_acknowledged() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = next_batch(&server, &bob).await;
    let content = json!({ "body": "hi", "n": 1 });
    send_to_device(
        &server,
        &alice,
        json!({ bob.user_id.clone(): { bob.device_id.clone(): content.clone() } }),
    )
    .await
    .assert_ok();
    let first = server
        .sync(&bob, &[("since", &since), ("timeout", "0")])
        .await;
    // TD-02: exactly sender, type and content.
    let expected = json!([{ "sender": alice.user_id, "type": "m.test", "content": content }]);
    assert_eq!(first["to_device"]["events"], expected);
    // TD-05: the same `since` again (a lost response) delivers them again.
    let again = server
        .sync(&bob, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(again["to_device"]["events"], expected);
    // TD-04: an initial sync has them too, until acknowledged.
    assert_eq!(
        server.sync(&bob, &[]).await["to_device"]["events"],
        expected
    );
    let next = first["next_batch"].as_str().unwrap();
    let later = server
        .sync(&bob, &[("since", next), ("timeout", "0")])
        .await;
    assert!(later.get("to_device").is_none(), "{later}");
    // Acknowledged messages are deleted: not even an initial sync has them now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.sync(&bob, &[]).await.get("to_device").is_none());
    // TD-01: `messages` is required.
    server
        .put(
            &format!("/sendToDevice/m.test/{}", txn()),
            &alice.token,
            json!({}),
        )
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn td08_td09_td10_td11_txn_ids_wildcards_and_unknown_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bob2 = server.login(&bob, None).await;
    let since = next_batch(&server, &bob).await;
    let since2 = next_batch(&server, &bob2).await;
    // TD-10: `*` reaches every device once, also beside an explicit ID; TD-11: an unknown
    // device and a remote user are dropped silently.
    let body = json!({ "messages": {
        bob.user_id.clone(): { "*": { "n": 1 }, bob.device_id.clone(): { "n": 1 } },
        "@carol:elsewhere.example": { "X": { "n": 1 } },
        alice.user_id.clone(): { "NOSUCHDEVICE": { "n": 1 } },
    }});
    let path = format!("/sendToDevice/m.test/{}", txn());
    server
        .put(&path, &alice.token, body.clone())
        .await
        .assert_ok();
    // TD-08: the same transaction again is answered but not delivered twice.
    server
        .put(&path, &alice.token, body.clone())
        .await
        .assert_ok();
    // TD-09: the scope includes the event type.
    let other = path.replace("m.test", "m.other");
    server.put(&other, &alice.token, body).await.assert_ok();
    for (user, since) in [(&bob, &since), (&bob2, &since2)] {
        let got = server
            .sync(user, &[("since", since), ("timeout", "0")])
            .await;
        let types: Vec<&str> = got["to_device"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["m.test", "m.other"], "{got}");
    }
    assert!(server.sync(&alice, &[]).await.get("to_device").is_none());
}

#[tokio::test]
async fn td07_at_most_a_hundred_per_response_and_the_rest_follows() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut since = next_batch(&server, &bob).await;
    for n in 0..150 {
        send_to_device(
            &server,
            &alice,
            json!({ bob.user_id.clone(): { bob.device_id.clone(): { "n": n } } }),
        )
        .await
        .assert_ok();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let got = server
            .sync(&bob, &[("since", &since), ("timeout", "0")])
            .await;
        let events = got["to_device"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(events.len() <= 100);
        seen.extend(events.iter().map(|e| e["content"]["n"].as_i64().unwrap()));
        since = got["next_batch"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, (0..150).collect::<Vec<_>>(), "in order, each once");
}

#[tokio::test]
async fn td13_a_message_wakes_the_long_poll_and_dd03_deletion_drops_the_queue() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = next_batch(&server, &bob).await;
    let poll = server.spawn_sync(&bob, &since, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    send_to_device(
        &server,
        &alice,
        json!({ bob.user_id.clone(): { "*": { "wake": true } } }),
    )
    .await
    .assert_ok();
    let body = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        body["to_device"]["events"][0]["content"],
        json!({ "wake": true })
    );
    // DD-03, DD-06: a deleted device's queue goes with it; the ID reused starts empty.
    send_to_device(
        &server,
        &alice,
        json!({ bob.user_id.clone(): { bob.device_id.clone(): { "x": 1 } } }),
    )
    .await
    .assert_ok();
    server
        .post("/logout", &bob.token, json!({}))
        .await
        .assert_ok();
    let again = server.login(&bob, Some(&bob.device_id)).await;
    assert!(server.sync(&again, &[]).await.get("to_device").is_none());
}

#[tokio::test]
async fn td15_td16_a_message_over_64k_is_413_and_a_bad_one_refuses_the_whole_send() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = next_batch(&server, &bob).await;
    let big = json!({ "blob": "x".repeat(70_000) });
    send_to_device(
        &server,
        &alice,
        json!({ bob.user_id.clone(): { bob.device_id.clone(): big } }),
    )
    .await
    .assert_error(413, "M_TOO_LARGE");
    // TD-16: one malformed message refuses the send; nothing reaches the good recipient,
    // and the transaction ID is still free for the corrected request.
    let path = format!("/sendToDevice/m.test/{}", txn());
    server
        .put(
            &path,
            &alice.token,
            json!({ "messages": {
                bob.user_id.clone(): { bob.device_id.clone(): { "ok": true } },
                alice.user_id.clone(): { alice.device_id.clone(): "not an object" },
            } }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
    let sync = server
        .sync(&bob, &[("since", since.as_str()), ("timeout", "0")])
        .await;
    assert!(
        sync.get("to_device")
            .is_none_or(|t| t["events"] == json!([])),
        "{sync}"
    );
    server
        .put(
            &path,
            &alice.token,
            json!({ "messages": { bob.user_id.clone(): { bob.device_id.clone(): { "ok": true } } } }),
        )
        .await
        .assert_ok();
    let sync = server
        .sync(&bob, &[("since", since.as_str()), ("timeout", "0")])
        .await;
    assert_eq!(
        sync["to_device"]["events"][0]["content"],
        json!({ "ok": true })
    );
    // TD-15: a request of 250 messages (what matrix-rust-sdk sends when sharing a room key)
    // fits.
    let mut many = serde_json::Map::new();
    for i in 0..250 {
        many.insert(
            format!("DEVICE{i}"),
            json!({ "ciphertext": "c".repeat(1000) }),
        );
    }
    send_to_device(&server, &alice, json!({ bob.user_id.clone(): many }))
        .await
        .assert_ok();
}

#[tokio::test]
async fn td14_to_device_messages_come_whatever_the_filter() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = next_batch(&server, &bob).await;
    send_to_device(
        &server,
        &alice,
        json!({ bob.user_id.clone(): { bob.device_id.clone(): { "n": 1 } } }),
    )
    .await
    .assert_ok();
    // A filter that leaves out rooms, presence and account data leaves to-device alone.
    let filter = json!({
        "room": { "rooms": [] }, "presence": { "types": [] }, "account_data": { "types": [] },
    })
    .to_string();
    let sync = server
        .sync(
            &bob,
            &[
                ("since", since.as_str()),
                ("timeout", "0"),
                ("filter", filter.as_str()),
            ],
        )
        .await;
    assert_eq!(
        sync["to_device"]["events"][0]["content"],
        json!({ "n": 1 }),
        "{sync}"
    );
}
