//! Pushers and delivery to push gateways (issue 11; behaviours PG-* of
//! `behaviours-push-receipts.md`), against a small gateway each test runs on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use common::{TestServer, User};
use serde_json::{Value, json};

/// What the gateway answers: 200, 500, or 200 rejecting every push key.
const OK: u32 = 0;
const FAIL: u32 = 1;
const REJECT: u32 = 2;

#[derive(Clone, Default)]
struct Gateway {
    received: Arc<Mutex<Vec<Value>>>,
    mode: Arc<AtomicU32>,
    url: String,
}

impl Gateway {
    async fn start() -> Self {
        let mut gateway = Gateway::default();
        let app = Router::new()
            .route("/_matrix/push/v1/notify", post(notify))
            .with_state(gateway.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        gateway.url = format!(
            "http://{}/_matrix/push/v1/notify",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        gateway
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` notifications arrived (they may be more); all of them.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn notify(
    State(gateway): State<Gateway>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    match gateway.mode.load(Ordering::SeqCst) {
        FAIL => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({}))),
        mode => {
            gateway.received.lock().unwrap().push(body.clone());
            let rejected: Vec<Value> = if mode == REJECT {
                body["notification"]["devices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["pushkey"].clone())
                    .collect()
            } else {
                Vec::new()
            };
            (StatusCode::OK, Json(json!({ "rejected": rejected })))
        }
    }
}

async fn server() -> TestServer {
    TestServer::with(|config, _| config.push.allow_private_gateways = true).await
}

fn pusher(url: &str, pushkey: &str, extra: Value) -> Value {
    let mut body = json!({
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": { "url": url, "custom": "kept" },
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}

async fn set(server: &TestServer, user: &User, body: Value) -> common::Resp {
    server.post("/pushers/set", &user.token, body).await
}

#[tokio::test]
async fn pg01_pg02_pg03_pg05_pg06_pushers_are_set_listed_replaced_and_deleted() {
    let server = server().await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let url = "https://push.example.org/_matrix/push/v1/notify";
    set(
        &server,
        &bob,
        pusher(url, "key1", json!({ "profile_tag": "tag" })),
    )
    .await
    .assert_ok();
    let list = server.get("/pushers", &bob.token).await;
    let pushers = list.assert_ok()["pushers"].clone();
    assert_eq!(pushers.as_array().unwrap().len(), 1, "{pushers}");
    let p = &pushers[0];
    assert_eq!(p["pushkey"], "key1");
    assert_eq!(p["kind"], "http");
    assert_eq!(p["app_display_name"], "Example");
    assert_eq!(p["profile_tag"], "tag");
    assert_eq!(p["data"], json!({ "url": url, "custom": "kept" }));
    // Nobody else's.
    let carols = server.get("/pushers", &carol.token).await;
    assert_eq!(carols.assert_ok()["pushers"], json!([]));

    // PG-05: the same app and key again replaces it.
    set(&server, &bob, pusher(url, "key1", json!({ "lang": "fr" })))
        .await
        .assert_ok();
    let list = server.get("/pushers", &bob.token).await;
    let pushers = list.assert_ok()["pushers"].clone();
    assert_eq!(pushers.as_array().unwrap().len(), 1);
    assert_eq!(pushers[0]["lang"], "fr");
    // Carol taking the same key without append removes Bob's; with append both stay.
    set(&server, &carol, pusher(url, "key1", json!({})))
        .await
        .assert_ok();
    let list = server.get("/pushers", &bob.token).await;
    assert_eq!(list.assert_ok()["pushers"], json!([]));
    set(
        &server,
        &bob,
        pusher(url, "key1", json!({ "append": true })),
    )
    .await
    .assert_ok();
    let carols = server.get("/pushers", &carol.token).await;
    assert_eq!(carols.assert_ok()["pushers"].as_array().unwrap().len(), 1);

    // PG-06: kind null deletes with only the three fields, and a missing one is fine.
    let delete = json!({ "kind": null, "app_id": "org.example.app", "pushkey": "key1" });
    set(&server, &bob, delete.clone()).await.assert_ok();
    set(&server, &bob, delete).await.assert_ok();
    let list = server.get("/pushers", &bob.token).await;
    assert_eq!(list.assert_ok()["pushers"], json!([]));

    // PG-02, PG-03, PG-08: the errors.
    let mut missing = pusher(url, "k", json!({}));
    missing.as_object_mut().unwrap().remove("lang");
    set(&server, &bob, missing)
        .await
        .assert_error(400, "M_MISSING_PARAM");
    set(&server, &bob, json!({ "app_id": "a", "pushkey": "k" }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    set(
        &server,
        &bob,
        pusher("https://push.example.org/elsewhere", "k", json!({})),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    set(
        &server,
        &bob,
        pusher("ftp://x/_matrix/push/v1/notify", "k", json!({})),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    set(&server, &bob, pusher(url, &"k".repeat(513), json!({})))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    set(
        &server,
        &bob,
        pusher(url, "k", json!({ "kind": "carrier-pigeon" })),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn pg10_pg11_pg12_pg13_pg15_pg17_a_message_is_pushed_once_with_its_details() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    let before = server.send_text(&alice, &room, "before the pusher").await;
    set(&server, &bob, pusher(&gateway.url, "bobkey", json!({})))
        .await
        .assert_ok();
    let event = server.send_text(&alice, &room, "hello bob").await;
    // Bob's own message notifies nobody.
    server.send_text(&bob, &room, "hi").await;
    let got = gateway.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = gateway.received();
    assert_eq!(got_all.len(), 1, "{got_all:?}");
    let n = &got[0]["notification"];
    // PG-10: nothing from before the pusher.
    assert_ne!(n["event_id"], json!(before));
    assert_eq!(n["event_id"], json!(event));
    assert_eq!(n["id"], json!(event));
    assert_eq!(n["room_id"], json!(room));
    assert_eq!(n["type"], "m.room.message");
    assert_eq!(n["sender"], json!(alice.user_id));
    assert_eq!(n["sender_display_name"], "alice");
    assert_eq!(n["room_name"], "Lounge");
    assert_eq!(n["content"]["body"], "hello bob");
    assert_eq!(n["counts"]["unread"], 1);
    let device = &n["devices"][0];
    assert_eq!(device["app_id"], "org.example.app");
    assert_eq!(device["pushkey"], "bobkey");
    assert!(device["pushkey_ts"].as_i64().unwrap() > 1_700_000_000);
    // PG-13: the data without its URL.
    assert_eq!(device["data"], json!({ "custom": "kept" }));
    // PG-17: a one-to-one room's message rings.
    assert_eq!(device["tweaks"]["sound"], "default");
    assert_eq!(n["prio"], "high");
}

#[tokio::test]
async fn pg16_event_id_only_sends_only_the_ids() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    let mut body = pusher(&gateway.url, "k", json!({}));
    body["data"]["format"] = json!("event_id_only");
    set(&server, &bob, body).await.assert_ok();
    let event = server.send_text(&alice, &room, "secret").await;
    let got = gateway.wait_for(1, Duration::from_secs(5)).await;
    let n = &got[0]["notification"];
    assert_eq!(n["event_id"], json!(event));
    assert_eq!(n["room_id"], json!(room));
    assert!(
        n.get("content").is_none() && n.get("sender").is_none(),
        "{n}"
    );
    assert_eq!(
        n["devices"][0]["data"],
        json!({ "custom": "kept", "format": "event_id_only" })
    );
}

#[tokio::test]
async fn pg19_a_receipt_that_changes_the_badge_sends_the_counts_alone() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    let event = server.send_text(&alice, &room, "read me").await;
    gateway.wait_for(1, Duration::from_secs(5)).await;
    server
        .receipt(&bob, &room, "m.read", &event, json!({}))
        .await
        .assert_ok();
    let got = gateway.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let n = &got[1]["notification"];
    assert!(n.get("event_id").is_none(), "{n}");
    assert_eq!(n["counts"]["unread"], 0);
}

#[tokio::test]
async fn pg20_a_rejected_push_key_removes_the_pusher() {
    let server = server().await;
    let gateway = Gateway::start().await;
    gateway.mode.store(REJECT, Ordering::SeqCst);
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    server.send_text(&alice, &room, "one").await;
    gateway.wait_for(1, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = server.get("/pushers", &bob.token).await;
        if list.assert_ok()["pushers"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "the rejected pusher stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.send_text(&alice, &room, "two").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.received().len(), 1);
}

#[tokio::test]
async fn pg21_a_failing_gateway_is_retried_in_order_without_losing_anything() {
    let server = server().await;
    let gateway = Gateway::start().await;
    gateway.mode.store(FAIL, Ordering::SeqCst);
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    let first = server.send_text(&alice, &room, "one").await;
    let second = server.send_text(&alice, &room, "two").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.mode.store(OK, Ordering::SeqCst);
    let got = gateway.wait_for(2, Duration::from_secs(8)).await;
    let ids: Vec<&Value> = got.iter().map(|n| &n["notification"]["event_id"]).collect();
    assert_eq!(ids, vec![&json!(first), &json!(second)]);
}

#[tokio::test]
async fn pg09_deleting_the_device_deletes_its_pushers() {
    let server = server().await;
    let bob = server.register("bob").await;
    let phone = server.login(&bob, Some("PHONE")).await;
    let url = "https://push.example.org/_matrix/push/v1/notify";
    set(&server, &phone, pusher(url, "phone", json!({})))
        .await
        .assert_ok();
    set(&server, &bob, pusher(url, "desk", json!({})))
        .await
        .assert_ok();
    server
        .post("/logout", &phone.token, json!({}))
        .await
        .assert_ok();
    let list = server.get("/pushers", &bob.token).await;
    let keys: Vec<Value> = list.assert_ok()["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].clone())
        .collect();
    assert_eq!(keys, vec![json!("desk")]);
}

#[tokio::test]
async fn pg04_gateways_on_internal_addresses_are_refused_by_default() {
    let server = TestServer::start().await;
    let gateway = Gateway::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    server.send_text(&alice, &room, "to loopback").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gateway.received(), Vec::<Value>::new());
}

#[tokio::test]
async fn undelivered_notifications_survive_a_restart() {
    let server = server().await;
    let gateway = Gateway::start().await;
    gateway.mode.store(FAIL, Ordering::SeqCst);
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    let event = server
        .send_text(&alice, &room, "while the gateway is down")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    config.push.allow_private_gateways = true;
    let dir = server.stop().await;
    gateway.mode.store(OK, Ordering::SeqCst);
    let _again = TestServer::start_in(dir, config).await;
    let got = gateway.wait_for(1, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["notification"]["event_id"], json!(event));
}

#[tokio::test]
async fn pg18_the_badge_counts_rooms_with_notifications_and_pending_invites() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Lounge" }))
        .await;
    set(&server, &bob, pusher(&gateway.url, "k", json!({})))
        .await
        .assert_ok();
    let carol = server.register("carol").await;
    let other = server.create_room(&carol, json!({})).await;
    // The invite notifies (`.m.rule.invite_for_me`) and is on the badge.
    server.invite(&carol, &other, &bob).await;
    let got = gateway.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0]["notification"]["counts"]["unread"], 1, "{got:?}");
    server.send_text(&alice, &room, "hello").await;
    let got = gateway.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1]["notification"]["counts"]["unread"], 2, "{got:?}");
}
