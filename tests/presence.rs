//! Presence (`presence.yaml`, issue 12): setting and reading it, `m.presence` in `/sync` for
//! room-mates only, `set_presence`, the idle and offline timeouts, and switching it off.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestServer, User, enc, next_batch};
use serde_json::{Value, json};

fn path(user: &User) -> String {
    format!("/presence/{}/status", enc(&user.user_id))
}

async fn set(server: &TestServer, user: &User, body: Value) {
    server.put(&path(user), &user.token, body).await.assert_ok();
}

/// The `m.presence` contents `sync` carries for `user`.
fn presence_of(sync: &Value, user: &User) -> Vec<Value> {
    sync["presence"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["sender"] == user.user_id.as_str())
                .map(|e| {
                    assert_eq!(e["type"], "m.presence");
                    e["content"].clone()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Syncs `user` from `since` until `alice`'s presence says `state`, for at most 10 s.
async fn wait_for_state(server: &TestServer, user: &User, since: &str, alice: &User, state: &str) {
    let mut since = since.to_owned();
    for _ in 0..20 {
        let sync = server
            .sync(
                user,
                &[
                    ("since", &since),
                    ("timeout", "500"),
                    ("set_presence", "offline"),
                ],
            )
            .await;
        if presence_of(&sync, alice)
            .iter()
            .any(|c| c["presence"] == state)
        {
            return;
        }
        since = next_batch(&sync);
    }
    panic!("{} never saw {} {state}", user.user_id, alice.user_id);
}

#[tokio::test]
async fn presence_is_set_and_read_by_the_user_and_room_mates_only() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    set(
        &server,
        &alice,
        json!({ "presence": "online", "status_msg": "Lunch" }),
    )
    .await;
    for reader in [&alice, &bob] {
        let got = server.get(&path(&alice), &reader.token).await;
        let body = got.assert_ok();
        assert_eq!(body["presence"], "online");
        assert_eq!(body["status_msg"], "Lunch");
        assert_eq!(body["currently_active"], true);
        assert!(body["last_active_ago"].as_i64().unwrap() < 10_000, "{body}");
    }
    server
        .get(&path(&alice), &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get("/presence/%40nobody%3Alocalhost/status", &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Never set: offline.
    let never = server.get(&path(&carol), &carol.token).await;
    assert_eq!(never.assert_ok(), &json!({ "presence": "offline" }));

    server
        .put(&path(&alice), &bob.token, json!({ "presence": "online" }))
        .await
        .assert_error(403, "M_FORBIDDEN");
    let alice_path = path(&alice);
    let put = |body: Value| server.put(&alice_path, &alice.token, body);
    put(json!({})).await.assert_error(400, "M_MISSING_PARAM");
    put(json!({ "presence": "asleep" }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put(json!({ "presence": 1 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    put(json!({ "presence": "online", "status_msg": 5 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    put(json!({ "presence": "online", "status_msg": "x".repeat(1025) }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // A PUT without a message clears it.
    set(&server, &alice, json!({ "presence": "unavailable" })).await;
    let got = server.get(&path(&alice), &bob.token).await;
    assert_eq!(got.assert_ok()["presence"], "unavailable");
    assert!(got.body.get("status_msg").is_none(), "{}", got.body);
}

#[tokio::test]
async fn a_change_wakes_room_mates_syncs_and_no_one_else() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let offline = [("set_presence", "offline")];
    // Bob comes online first, so his waiting sync is woken by Alice only.
    let bob_since = next_batch(&server.sync(&bob, &[]).await);
    let carol_since = next_batch(&server.sync(&carol, &offline).await);
    let waiting = server.spawn_sync(&bob, &bob_since, 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    set(
        &server,
        &alice,
        json!({ "presence": "unavailable", "status_msg": "Away" }),
    )
    .await;
    let woken = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("bob's sync must wake")
        .unwrap();
    let seen = presence_of(&woken, &alice);
    assert_eq!(seen.len(), 1, "{woken}");
    assert_eq!(seen[0]["presence"], "unavailable");
    assert_eq!(seen[0]["status_msg"], "Away");
    assert_eq!(seen[0]["currently_active"], false);

    let carol_sync = server
        .sync(
            &carol,
            &[
                ("since", &carol_since),
                ("timeout", "0"),
                ("set_presence", "offline"),
            ],
        )
        .await;
    assert!(presence_of(&carol_sync, &alice).is_empty(), "{carol_sync}");
    // The next sync from bob's token has nothing more.
    let again = server
        .sync(
            &bob,
            &[
                ("since", &next_batch(&woken)),
                ("timeout", "0"),
                ("set_presence", "offline"),
            ],
        )
        .await;
    assert!(presence_of(&again, &alice).is_empty(), "{again}");
    // A filter may leave presence out.
    let filtered = server
        .sync(
            &bob,
            &[
                ("filter", r#"{"presence":{"not_types":["*"]}}"#),
                ("set_presence", "offline"),
            ],
        )
        .await;
    assert!(filtered.get("presence").is_none(), "{filtered}");
}

#[tokio::test]
async fn syncing_brings_a_user_online_unless_set_presence_says_otherwise() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    server.sync(&alice, &[("set_presence", "offline")]).await;
    let got = server.get(&path(&alice), &bob.token).await;
    assert_eq!(got.assert_ok()["presence"], "offline");
    let initial = server.sync(&alice, &[]).await;
    assert_eq!(presence_of(&initial, &alice)[0]["presence"], "online");
    let bob_sync = server.sync(&bob, &[("set_presence", "offline")]).await;
    assert_eq!(presence_of(&bob_sync, &alice)[0]["presence"], "online");
    server
        .sync(&alice, &[("set_presence", "unavailable")])
        .await;
    let got = server.get(&path(&alice), &bob.token).await;
    assert_eq!(got.assert_ok()["presence"], "unavailable");
    server
        .get("/sync?set_presence=away", &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn users_who_stop_syncing_go_offline_and_idle_users_unavailable() {
    let server = TestServer::with(|config, _| {
        config.presence.offline_after_secs = 2;
        config.presence.idle_after_secs = 1;
    })
    .await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let since = next_batch(&server.sync(&bob, &[("set_presence", "offline")]).await);
    // Alice keeps a long-poll open: she is connected, but does nothing.
    let alice_since = next_batch(&server.sync(&alice, &[]).await);
    let polling = server.spawn_sync(&alice, &alice_since, 20_000);
    wait_for_state(&server, &bob, &since, &alice, "unavailable").await;
    // A message is a pro-active event: online again.
    server.send_text(&alice, &room, "back").await;
    wait_for_state(&server, &bob, &since, &alice, "online").await;
    polling.abort();
    // No more syncs: offline.
    wait_for_state(&server, &bob, &since, &alice, "offline").await;
}

#[tokio::test]
async fn presence_can_be_switched_off() {
    let server = TestServer::with(|config, _| config.presence.enabled = false).await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    set(
        &server,
        &alice,
        json!({ "presence": "online", "status_msg": "hi" }),
    )
    .await;
    let got = server.get(&path(&alice), &bob.token).await;
    assert_eq!(got.assert_ok(), &json!({ "presence": "offline" }));
    let sync = server.sync(&bob, &[]).await;
    assert!(sync.get("presence").is_none(), "{sync}");
}
