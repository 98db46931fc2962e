//! Several Myelin processes on one PostgreSQL database, and moving a deployment from SQLite
//! to PostgreSQL. These need PostgreSQL, so they are ignored (reported as such) by a plain
//! `cargo test`; run them with an admin URL, as `.ci/run` does:
//! `TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/postgres cargo test --test multi_instance -- --include-ignored`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, fresh_postgres_database};
use serde_json::{Value, json};
use sqlx::Connection;

const NEEDS_POSTGRES: &str = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored";

/// The admin URL; a test that needs PostgreSQL and runs without it fails rather than passing
/// without having tested anything.
fn admin_url() -> Option<String> {
    Some(std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| panic!("{NEEDS_POSTGRES}")))
}

/// Two servers on one fresh database.
async fn pair(admin: &str) -> (TestServer, TestServer, String) {
    let url = fresh_postgres_database(admin).await;
    let a = TestServer::with(|c, _| c.database.url = url.clone()).await;
    let b = TestServer::with(|c, _| c.database.url = url.clone()).await;
    (a, b, url)
}

fn next_batch(resp: &common::Resp) -> String {
    resp.body["next_batch"].as_str().unwrap().to_owned()
}

fn events(body: &Value) -> Vec<(String, Value)> {
    body["account_data"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| (e["type"].as_str().unwrap().to_owned(), e["content"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_write_on_one_instance_wakes_a_long_poll_on_the_other() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let on_a = a.register("alice").await;
    let on_b = b.login(&on_a, None).await;
    let since = next_batch(&b.get("/sync", &on_b.token).await);
    let waiting = {
        let url = b.url(&format!("/sync?since={since}&timeout=10000"));
        let client = b.client.clone();
        let token = on_b.token.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = TestServer::finish(client.get(url).bearer_auth(token)).await;
            (resp, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = Instant::now();
    a.put(
        "/user/@alice:localhost/account_data/m.direct",
        &on_a.token,
        json!({"x": 1}),
    )
    .await
    .assert_ok();
    let (resp, _) = waiting.await.unwrap();
    let woke_after = written.elapsed();
    assert_eq!(
        events(resp.assert_ok()),
        vec![("m.direct".to_owned(), json!({"x": 1}))]
    );
    assert!(
        woke_after < Duration::from_secs(2),
        "woke {woke_after:?} after the write"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn logout_on_one_instance_refuses_the_token_on_the_other_at_once() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let alice = a.register("alice").await;
    b.get("/account/whoami", &alice.token).await.assert_ok();
    a.post("/logout", &alice.token, json!({})).await.assert_ok();
    b.get("/account/whoami", &alice.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn concurrent_writes_on_both_instances_are_never_lost_or_repeated() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let on_a = a.register("alice").await;
    let on_b = b.login(&on_a, None).await;
    let reader = b.login(&on_a, None).await;
    let since = next_batch(&b.get("/sync", &reader.token).await);

    const WRITES: usize = 60;
    let mut writers = Vec::new();
    for (server, user, tag) in [(&a, &on_a, "a"), (&b, &on_b, "b")] {
        let client = server.client.clone();
        let token = user.token.clone();
        let base = server.url("/user/@alice:localhost/account_data");
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES {
                // A few types are rewritten, so "latest content" matters.
                let data_type = format!("t.{tag}.{}", i % 20);
                let url = format!("{base}/{data_type}");
                let resp =
                    TestServer::finish(client.put(url).bearer_auth(&token).json(&json!({"n": i})))
                        .await;
                assert_eq!(resp.status, 200, "{}", resp.body);
            }
        }));
    }
    // Read on both instances, alternating, while the writes happen.
    let mut since = since;
    let mut seen: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let mut turn = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let server = if turn % 2 == 0 { &a } else { &b };
        turn += 1;
        let resp = server
            .get(&format!("/sync?since={since}&timeout=200"), &reader.token)
            .await;
        let body = resp.assert_ok().clone();
        for (data_type, content) in events(&body) {
            let history = seen.entry(data_type.clone()).or_default();
            assert!(
                !history.contains(&content),
                "{data_type} = {content} delivered twice"
            );
            if let (Some(last), Some(n)) = (history.last(), content["n"].as_u64()) {
                assert!(
                    last["n"].as_u64().unwrap() < n,
                    "{data_type} went backwards"
                );
            }
            history.push(content);
        }
        since = next_batch(&resp);
        if writers.iter().all(|w| w.is_finished()) && events(&body).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "took too long");
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Every type's final content arrived.
    for tag in ["a", "b"] {
        for k in 0..20 {
            let final_n = (0..WRITES).filter(|i| i % 20 == k).max().unwrap();
            let data_type = format!("t.{tag}.{k}");
            let last = seen.get(&data_type).and_then(|h| h.last()).cloned();
            assert_eq!(last, Some(json!({"n": final_n})), "{data_type}");
        }
    }
    let after = b
        .get(&format!("/sync?since={since}&timeout=0"), &reader.token)
        .await;
    assert!(events(after.assert_ok()).is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn sy09_a_lower_position_committing_late_holds_the_watermark_back() {
    let Some(admin) = admin_url() else { return };
    let (a, _b, url) = pair(&admin).await;
    let alice = a.register("alice").await;
    let since = next_batch(&a.get("/sync", &alice.token).await);
    // Another process takes the next position and is slow to commit: it holds the position's
    // advisory lock (stream tag 1 in the top 16 bits) on a connection of its own.
    let mut slow_writer = sqlx::PgConnection::connect(&url).await.unwrap();
    let slow: i64 = sqlx::query_scalar(
        "WITH p AS (UPDATE stream_positions SET pos = pos + 1 WHERE stream = 'account_data' RETURNING pos)
         SELECT pos FROM p, LATERAL (SELECT pg_advisory_lock((1::BIGINT << 48) | pos)) l",
    )
    .fetch_one(&mut slow_writer)
    .await
    .unwrap();
    // A write with a higher position commits first.
    a.put(
        "/user/@alice:localhost/account_data/later",
        &alice.token,
        json!({"v": 1}),
    )
    .await
    .assert_ok();
    let held = a
        .get(&format!("/sync?since={since}&timeout=0"), &alice.token)
        .await;
    assert!(events(held.assert_ok()).is_empty(), "{}", held.body);
    assert_eq!(
        next_batch(&held),
        since,
        "next_batch must not pass the write in flight"
    );
    // The slow writer finishes; a waiting sync is woken and gets the change.
    let waiting = {
        let url = a.url(&format!("/sync?since={since}&timeout=10000"));
        let client = a.client.clone();
        let token = alice.token.clone();
        tokio::spawn(async move { TestServer::finish(client.get(url).bearer_auth(token)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("SELECT pg_advisory_unlock((1::BIGINT << 48) | $1), pg_notify('myelin', 'tick')")
        .bind(slow)
        .execute(&mut slow_writer)
        .await
        .unwrap();
    let started = Instant::now();
    let resp = waiting.await.unwrap();
    assert_eq!(
        events(resp.assert_ok()),
        vec![("later".to_owned(), json!({"v": 1}))]
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn db_copy_moves_a_populated_sqlite_deployment_to_postgres() {
    let Some(admin) = admin_url() else { return };
    // A populated SQLite deployment.
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("myelin.db").display());
    let mut config = common::test_config(dir.path());
    config.database.url = sqlite_url.clone();
    let server = TestServer::start_in(tempfile::tempdir().unwrap(), config).await;
    let alice = server
        .register_with("alice", json!({"initial_device_display_name": "phone"}))
        .await;
    let laptop = server.login(&alice, Some("LAPTOP")).await;
    let bob = server.register("bob").await;
    server
        .put(
            "/user/@alice:localhost/account_data/m.direct",
            &alice.token,
            json!({"a": 1}),
        )
        .await
        .assert_ok();
    server
        .put(
            "/user/@alice:localhost/rooms/!r:localhost/account_data/m.tag",
            &alice.token,
            json!({"tags": {}}),
        )
        .await
        .assert_ok();
    server
        .put(
            "/user/@bob:localhost/account_data/x.y",
            &bob.token,
            json!({"b": [1, 2]}),
        )
        .await
        .assert_ok();
    let filter = server
        .post(
            "/user/@alice:localhost/filter",
            &alice.token,
            json!({"account_data": {"types": ["m.*"]}}),
        )
        .await;
    let filter_id = filter.assert_ok()["filter_id"].as_str().unwrap().to_owned();
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "Moved" }))
        .await;
    server.join(&bob, &room).await;
    let hello = server.send_text(&alice, &room, "before the move").await;
    // A thread reply and a report of it.
    let reply = server
        .send_event(
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "in a thread",
                    "m.relates_to": { "rel_type": "m.thread", "event_id": hello } }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!(
                "/rooms/{}/report/{}",
                common::enc(&room),
                common::enc(&reply)
            ),
            &alice.token,
            json!({ "reason": "moved" }),
        )
        .await
        .assert_ok();
    let hello_ts = server
        .get(
            &format!(
                "/rooms/{}/event/{}",
                common::enc(&room),
                common::enc(&hello)
            ),
            &alice.token,
        )
        .await
        .body["origin_server_ts"]
        .as_i64()
        .unwrap();
    let key_before = server
        .call(reqwest::Method::GET, "/_matrix/key/v2/server", None, None)
        .await
        .body["verify_keys"]
        .clone();
    // End-to-end encryption: keys, a queued to-device message and a key backup.
    let keys = json!({
        "device_keys": { "user_id": alice.user_id, "device_id": alice.device_id,
            "algorithms": ["a"], "keys": { "k": "v" }, "signatures": {} },
        "one_time_keys": { "signed_curve25519:OLD": "old" },
    });
    server
        .post("/keys/upload", &alice.token, keys)
        .await
        .assert_ok();
    server
        .put(
            "/sendToDevice/m.test/moved",
            &bob.token,
            json!({ "messages": { alice.user_id.clone(): { laptop.device_id.clone(): { "m": 1 } } } }),
        )
        .await
        .assert_ok();
    let backup = json!({ "algorithm": "m.megolm_backup.v1", "auth_data": {} });
    server
        .post("/room_keys/version", &alice.token, backup)
        .await
        .assert_ok();
    let session = json!({ "first_message_index": 0, "forwarded_count": 0, "is_verified": true, "session_data": {} });
    server
        .put(
            "/room_keys/keys/!r:localhost/S?version=1",
            &alice.token,
            session.clone(),
        )
        .await
        .assert_ok();
    // Administration: alice is a server admin, with a registration token of hers.
    myelin_core::admin::set_admin_flag(server.services(), &alice.user_id, true)
        .await
        .unwrap();
    server
        .post(
            "/_synapse/admin/v1/registration_tokens/new",
            &alice.token,
            json!({ "token": "moved-token", "uses_allowed": 3 }),
        )
        .await
        .assert_ok();
    // A dehydrated device (MSC3814).
    server
        .put(
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
            &alice.token,
            json!({
                "device_id": "DEHYDRATED",
                "device_data": { "algorithm": "a", "device_pickle": "p" },
                "device_keys": {
                    "user_id": alice.user_id, "device_id": "DEHYDRATED",
                    "algorithms": ["m.megolm.v1.aes-sha2"],
                    "keys": { "ed25519:DEHYDRATED": "k" }, "signatures": {},
                },
            }),
        )
        .await
        .assert_ok();
    // A room blocked before it ever existed here.
    server
        .put(
            "/_synapse/admin/v1/rooms/!blocked:localhost/block",
            &alice.token,
            json!({ "block": true }),
        )
        .await
        .assert_ok();
    let since = next_batch(&server.get("/sync", &alice.token).await);
    let devices_before = server.get("/devices", &alice.token).await.body;
    server.stop().await;

    let pg_url = fresh_postgres_database(&admin).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_myelin"))
        .args(["db", "copy", "--from", &sqlite_url, "--to", &pg_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("2 users"), "{summary}");
    // Progress, table by table, on standard error.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("  users: 2\n"), "{progress}");
    assert!(
        progress.contains("  registration tokens: 1\n"),
        "{progress}"
    );
    assert!(progress.contains(" rows/s)"), "{progress}");
    // A second copy into the now populated target is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_myelin"))
        .args(["db", "copy", "--from", &sqlite_url, "--to", &pg_url])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let moved = TestServer::with(|c, _| c.database.url = pg_url.clone()).await;
    // Existing sessions keep working; passwords too.
    for token in [&alice.token, &laptop.token, &bob.token] {
        moved.get("/account/whoami", token).await.assert_ok();
    }
    moved.login(&alice, None).await;
    // The device list before the copy, plus the login just made.
    let devices_after = moved.get("/devices", &alice.token).await.body;
    // (last_seen moves on with the requests above, so compare identity and name.)
    let key = |d: &Value| (d["device_id"].clone(), d["display_name"].clone());
    let after: Vec<_> = devices_after["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    for device in devices_before["devices"].as_array().unwrap() {
        assert!(after.contains(&key(device)), "{device} lost");
    }
    assert_eq!(
        after.len(),
        devices_before["devices"].as_array().unwrap().len() + 1
    );
    // Still an admin, and the token is still there.
    let token = moved
        .get(
            "/_synapse/admin/v1/registration_tokens/moved-token",
            &alice.token,
        )
        .await;
    assert_eq!(token.assert_ok()["uses_allowed"], 3);
    let dehydrated = moved
        .get(
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
            &alice.token,
        )
        .await;
    assert_eq!(dehydrated.assert_ok()["device_id"], json!("DEHYDRATED"));
    let block = moved
        .get(
            "/_synapse/admin/v1/rooms/!blocked:localhost/block",
            &alice.token,
        )
        .await;
    assert_eq!(
        block.assert_ok(),
        &json!({ "block": true, "user_id": alice.user_id })
    );
    // Relations, event times and reports moved too.
    let thread = moved
        .get(
            &format!(
                "/_matrix/client/v1/rooms/{}/relations/{}/m.thread",
                common::enc(&room),
                common::enc(&hello)
            ),
            &alice.token,
        )
        .await;
    assert_eq!(thread.assert_ok()["chunk"][0]["event_id"], json!(reply));
    let near = moved
        .get(
            &format!(
                "/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={hello_ts}&dir=b",
                common::enc(&room)
            ),
            &alice.token,
        )
        .await;
    assert_eq!(near.assert_ok()["event_id"], json!(hello));
    let reports = moved
        .get("/_synapse/admin/v1/event_reports", &alice.token)
        .await;
    assert_eq!(
        reports.assert_ok()["event_reports"][0]["reason"],
        json!("moved")
    );
    // New reports get IDs after the copied ones.
    moved
        .post(
            &format!(
                "/rooms/{}/report/{}",
                common::enc(&room),
                common::enc(&hello)
            ),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    let reports = moved
        .get("/_synapse/admin/v1/event_reports", &alice.token)
        .await;
    assert_eq!(reports.assert_ok()["total"], json!(2));
    let searched = moved
        .post(
            "/search",
            &alice.token,
            json!({ "search_categories": { "room_events": { "search_term": "thread" } } }),
        )
        .await;
    assert_eq!(
        searched.assert_ok()["search_categories"]["room_events"]["results"][0]["result"]["event_id"],
        json!(reply)
    );
    let direct = moved
        .get("/user/@alice:localhost/account_data/m.direct", &alice.token)
        .await;
    assert_eq!(direct.assert_ok(), &json!({"a": 1}));
    let tag = moved
        .get(
            "/user/@alice:localhost/rooms/!r:localhost/account_data/m.tag",
            &alice.token,
        )
        .await;
    assert_eq!(tag.assert_ok(), &json!({"tags": {}}));
    let xy = moved
        .get("/user/@bob:localhost/account_data/x.y", &bob.token)
        .await;
    assert_eq!(xy.assert_ok(), &json!({"b": [1, 2]}));
    let filter = moved
        .get(
            &format!("/user/@alice:localhost/filter/{filter_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(filter.assert_ok()["account_data"]["types"], json!(["m.*"]));
    // Sync tokens from before the move stay valid: nothing new, then a new write arrives.
    let quiet = moved
        .get(&format!("/sync?since={since}&timeout=0"), &alice.token)
        .await;
    assert!(events(quiet.assert_ok()).is_empty(), "{}", quiet.body);
    moved
        .put(
            "/user/@alice:localhost/account_data/after.move",
            &alice.token,
            json!({"ok": true}),
        )
        .await
        .assert_ok();
    let fresh = moved
        .get(&format!("/sync?since={since}&timeout=0"), &alice.token)
        .await;
    assert_eq!(
        events(fresh.assert_ok()),
        vec![("after.move".to_owned(), json!({"ok": true}))]
    );
    // Keys, their upload order, queued messages and backups moved too.
    let query = json!({ "device_keys": { alice.user_id.clone(): [] } });
    let got = moved.post("/keys/query", &bob.token, query).await;
    assert_eq!(
        got.assert_ok()["device_keys"][&alice.user_id][&alice.device_id]["keys"],
        json!({ "k": "v" })
    );
    let newer = json!({ "one_time_keys": { "signed_curve25519:AAA": "new" } });
    moved
        .post("/keys/upload", &alice.token, newer)
        .await
        .assert_ok();
    let claim = json!({ "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): "signed_curve25519" } } });
    let got = moved.post("/keys/claim", &bob.token, claim).await;
    assert_eq!(
        got.assert_ok()["one_time_keys"][&alice.user_id][&alice.device_id],
        json!({ "signed_curve25519:OLD": "old" })
    );
    let inbox = moved.get("/sync", &laptop.token).await;
    assert_eq!(
        inbox.assert_ok()["to_device"]["events"][0]["content"],
        json!({ "m": 1 })
    );
    let backed_up = moved
        .get("/room_keys/keys/!r:localhost/S?version=1", &alice.token)
        .await;
    assert_eq!(backed_up.assert_ok(), &session);
    // Rooms moved with their events and the key that signed them.
    let key_after = moved
        .call(reqwest::Method::GET, "/_matrix/key/v2/server", None, None)
        .await
        .body["verify_keys"]
        .clone();
    assert_eq!(key_after, key_before);
    let event = moved
        .get(
            &format!(
                "/rooms/{}/event/{}",
                common::enc(&room),
                common::enc(&hello)
            ),
            &bob.token,
        )
        .await;
    assert_eq!(event.assert_ok()["content"]["body"], "before the move");
    moved.send_text(&bob, &room, "after the move").await;
    let synced = moved
        .get(&format!("/sync?since={since}&timeout=0"), &alice.token)
        .await;
    let timeline = &synced.assert_ok()["rooms"]["join"][&room]["timeline"]["events"];
    assert_eq!(common::types_of(timeline), ["m.room.message"], "{timeline}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_message_on_one_instance_wakes_room_members_on_the_other() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = a
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    b.join(&bob, &room).await;
    let since = next_batch(&b.get("/sync", &bob.token).await);
    let waiting = {
        let url = b.url(&format!("/sync?since={since}&timeout=10000"));
        let (client, token) = (b.client.clone(), bob.token.clone());
        tokio::spawn(async move { TestServer::finish(client.get(url).bearer_auth(token)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    a.send_text(&alice, &room, "across").await;
    let resp = waiting.await.unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "woke after {:?}",
        sent.elapsed()
    );
    let timeline = &resp.assert_ok()["rooms"]["join"][&room]["timeline"]["events"];
    assert_eq!(timeline[0]["content"]["body"], "across", "{timeline}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn senders_on_both_instances_keep_one_room_a_single_line() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = a
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    b.join(&bob, &room).await;
    let mut since = next_batch(&b.get("/sync", &bob.token).await);
    const EACH: usize = 30;
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut writers = Vec::new();
    for (server, user) in [(a.clone(), alice.clone()), (b.clone(), bob.clone())] {
        let room = room.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                server
                    .send_text(&user, &room, &format!("{}:{i}", user.localpart))
                    .await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Every event exactly once, through syncs on either instance.
    let mut seen = Vec::new();
    loop {
        let resp = b
            .get(&format!("/sync?since={since}&timeout=0&filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A100%7D%7D%7D"), &bob.token)
            .await;
        let body = resp.assert_ok();
        if next_batch(&resp) == since {
            break;
        }
        since = next_batch(&resp);
        if let Some(room) = body["rooms"]["join"].get(&room) {
            for event in room["timeline"]["events"].as_array().unwrap() {
                if event["type"] == "m.room.message" {
                    seen.push(event["content"]["body"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    assert_eq!(seen.len(), 2 * EACH, "{seen:?}");
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    // One line: a single forward extremity, each event after the one before.
    let snapshot = a
        .services()
        .store
        .room_snapshot(&room)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.extremities.len(), 1, "the DAG forked");
    let page = a
        .get(
            &format!("/rooms/{}/messages?dir=f&limit=1000", common::enc(&room)),
            &alice.token,
        )
        .await;
    let chunk = page.assert_ok()["chunk"].as_array().unwrap().clone();
    let mut previous: Option<String> = None;
    for event in &chunk {
        let id = event["event_id"].as_str().unwrap();
        let stored = a.services().store.event(id).await.unwrap().unwrap();
        let pdu: Value = serde_json::from_str(&stored.json).unwrap();
        if let Some(p) = &previous {
            assert_eq!(pdu["prev_events"], json!([p]), "{id} does not follow {p}");
        }
        previous = Some(id.to_owned());
    }
}

/// `myelin serve` as a separate process on `url`, so it can be killed like a crashed instance.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_instance(dir: &std::path::Path, url: &str) -> Process {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_myelin"))
        .current_dir(dir)
        .env("MYELIN_LISTEN", "127.0.0.1:0")
        .env("MYELIN_DATABASE__URL", url)
        .env("MYELIN_REGISTRATION__ENABLED", "true")
        .env("MYELIN_PASSWORD__MEMORY_KIB", "256")
        .env("MYELIN_PASSWORD__ITERATIONS", "1")
        .env(
            "MYELIN_RATE_LIMITS__REGISTRATION_PER_ADDRESS__BURST",
            "1000",
        )
        .env(
            "MYELIN_RATE_LIMITS__REGISTRATION_PER_ADDRESS__PER_SECOND",
            "1000",
        )
        .env("RUST_LOG", "info")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split(',').next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    Process {
        child,
        base: format!("http://{addr}/_matrix/client/v3"),
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn sy09_an_instance_killed_mid_write_does_not_stall_the_others() {
    let admin = admin_url().unwrap();
    let url = fresh_postgres_database(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = spawn_instance(dir.path(), &url);
    let b = TestServer::with(|c, _| c.database.url = url.clone()).await;
    let alice = b.register("alice").await;
    let since = next_batch(&b.get("/sync", &alice.token).await);

    // Eight writers hammer instance A.
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for i in 0..8 {
        let resp = client
            .post(format!("{}/register", a.base))
            .json(&json!({"username": format!("w{i}"), "password": "pw"}))
            .send()
            .await
            .unwrap();
        let session = resp.json::<Value>().await.unwrap()["session"].clone();
        let body: Value = client
            .post(format!("{}/register", a.base))
            .json(&json!({"auth": {"type": "m.login.dummy", "session": session}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["access_token"]
            .as_str()
            .expect("registered")
            .to_owned();
        let path = format!("{}/user/@w{i}:localhost/account_data/busy", a.base);
        let client = client.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..100_000 {
                let sent = client
                    .put(&path)
                    .bearer_auth(&token)
                    .json(&json!({"n": n}))
                    .send()
                    .await;
                if sent.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    for writer in writers {
        let _ = writer.await;
    }

    // B's next write reaches B's waiting sync within a second.
    let waiting = {
        let url = b.url(&format!("/sync?since={since}&timeout=10000"));
        let client = b.client.clone();
        let token = alice.token.clone();
        tokio::spawn(async move { TestServer::finish(client.get(url).bearer_auth(token)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = Instant::now();
    b.put(
        "/user/@alice:localhost/account_data/after",
        &alice.token,
        json!({"v": 1}),
    )
    .await
    .assert_ok();
    let resp = waiting.await.unwrap();
    let waited = written.elapsed();
    assert_eq!(
        events(resp.assert_ok()),
        vec![("after".to_owned(), json!({"v": 1}))]
    );
    assert!(
        waited < Duration::from_secs(1),
        "delivered after {waited:?}"
    );
    assert_ne!(next_batch(&resp), since);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn concurrent_filter_uploads_all_get_an_id() {
    // Racing uploads for one user used to compute the same next ID, retry five times, and
    // answer 500.
    let admin = admin_url().unwrap();
    let (a, b, _) = pair(&admin).await;
    let alice = a.register("alice").await;
    let path = "/user/@alice:localhost/filter";
    let mut uploads = Vec::new();
    for i in 0..48 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (url, client, token) = (server.url(path), server.client.clone(), alice.token.clone());
        uploads.push(tokio::spawn(async move {
            let request = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"account_data": {"types": [format!("t{i}")]}}));
            TestServer::finish(request).await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for upload in uploads {
        let resp = upload.await.unwrap();
        ids.insert(resp.assert_ok()["filter_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 48, "{ids:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn eviction_and_deletion_of_one_users_devices_do_not_deadlock() {
    // Eviction used to lock devices oldest first and deletion in ID order: run both at once.
    let admin = admin_url().unwrap();
    let url = fresh_postgres_database(&admin).await;
    let with_cap = |c: &mut myelin_core::config::Config, _: &std::path::Path| {
        c.database.url = url.clone();
        c.devices.max_per_user = Some(12);
        c.devices.on_limit = myelin_core::config::DeviceCapPolicy::EvictOldest;
    };
    let a = TestServer::with(with_cap).await;
    let b = TestServer::with(with_cap).await;
    let alice = a.register("alice").await;
    for _round in 0..3 {
        let mut devices = Vec::new();
        for _ in 0..11 {
            devices.push(a.login(&alice, None).await);
        }
        let ids: Vec<String> = devices.iter().map(|d| d.device_id.clone()).collect();
        let mut tasks = Vec::new();
        for server in [&a, &b] {
            for _ in 0..4 {
                let (url, client) = (server.url("/login"), server.client.clone());
                tasks.push(tokio::spawn(async move {
                    let body = json!({
                        "type": "m.login.password",
                        "identifier": {"type": "m.id.user", "user": "alice"},
                        "password": common::PASSWORD,
                    });
                    TestServer::finish(client.post(url).json(&body)).await
                }));
            }
        }
        let deleter = devices.last().unwrap().clone();
        let first = b
            .post("/delete_devices", &deleter.token, json!({"devices": ids}))
            .await;
        assert_eq!(first.status, 401, "{}", first.body);
        let auth = TestServer::password_auth(&alice, &first.body["session"]);
        let (url, client) = (b.url("/delete_devices"), b.client.clone());
        let token = deleter.token.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"devices": ids, "auth": auth});
            TestServer::finish(client.post(url).bearer_auth(token).json(&body)).await
        }));
        for task in tasks {
            let resp = task.await.unwrap();
            resp.assert_ok();
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_lost_notification_connection_wakes_every_waiting_sync() {
    // Notifications sent while the listening connection is down are lost, so after it comes
    // back every waiting sync must look again: the store reports `Wakeup::All`.
    use myelin_store::{
        SyncStore, Wakeup,
        postgres::{PgOptions, PostgresStore},
    };
    let admin = admin_url().unwrap();
    let url = fresh_postgres_database(&admin).await;
    let store = PostgresStore::connect(&PgOptions {
        url: url.clone(),
        pool_size: 4,
        statement_timeout_ms: 10_000,
        tls: "disable".into(),
    })
    .await
    .unwrap();
    let mut wakeups = store.take_wakeups().unwrap();
    let mut control = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut control)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one listening connection");
    let woken = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match wakeups.recv().await {
                Some(Wakeup::All) => return true,
                Some(Wakeup::User(_) | Wakeup::Room(_) | Wakeup::RoomMates(_)) => continue,
                None => return false,
            }
        }
    })
    .await;
    assert_eq!(woken, Ok(true), "no wake-up after the listener reconnected");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set TEST_POSTGRES_URL and pass --include-ignored"]
async fn an_instance_whose_room_head_is_stale_answers_from_the_database() {
    let Some(admin) = admin_url() else { return };
    let (a, b, _) = pair(&admin).await;
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = a.register("carol").await;
    let room = a
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    // B loads the room's head; then Carol joins through A.
    b.join(&bob, &room).await;
    a.join(&carol, &room).await;
    b.send_text(&carol, &room, "through B").await;
    // Kicked through A, Carol joins again through B: a new event, not B's stale answer.
    let member = format!(
        "/rooms/{}/state/m.room.member/{}?format=event",
        common::enc(&room),
        common::enc(&carol.user_id)
    );
    let joined = a.get(&member, &alice.token).await.assert_ok()["event_id"].clone();
    a.room_post(&alice, &room, "kick", json!({ "user_id": carol.user_id }))
        .await
        .assert_ok();
    b.join(&carol, &room).await;
    let rejoined = a.get(&member, &alice.token).await;
    let rejoined = rejoined.assert_ok();
    assert_eq!(rejoined["content"]["membership"], "join");
    assert_ne!(rejoined["event_id"], joined);
}
