//! Finding events by time (`room_event_by_timestamp.yaml`), reporting content
//! (`report_content.yaml`) with the admin API's event reports, and mutual rooms
//! (`mutual_rooms.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

async fn ts_of(server: &TestServer, user: &User, room: &str, event: &str) -> i64 {
    server
        .get(
            &format!("/rooms/{}/event/{}", enc(room), enc(event)),
            &user.token,
        )
        .await
        .assert_ok()["origin_server_ts"]
        .as_i64()
        .unwrap()
}

fn by_time(room: &str, query: &str) -> String {
    format!(
        "/_matrix/client/v1/rooms/{}/timestamp_to_event?{query}",
        enc(room)
    )
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_event_either_way() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let mut sent = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        let id = server.send_text(&alice, &room, &format!("m{i}")).await;
        sent.push((id.clone(), ts_of(&server, &alice, &room, &id).await));
    }
    let (middle, middle_ts) = sent[1].clone();
    // Exactly at an event's time, both ways find it.
    for dir in ["f", "b"] {
        let found = server
            .get(
                &by_time(&room, &format!("ts={middle_ts}&dir={dir}")),
                &bob.token,
            )
            .await;
        assert_eq!(
            found.assert_ok(),
            &json!({ "event_id": middle, "origin_server_ts": middle_ts })
        );
    }
    // Just after it: forward finds the next, backward this one.
    let after = middle_ts + 1;
    let forward = server
        .get(&by_time(&room, &format!("ts={after}&dir=f")), &bob.token)
        .await;
    assert_eq!(forward.assert_ok()["event_id"], json!(sent[2].0));
    let backward = server
        .get(&by_time(&room, &format!("ts={after}&dir=b")), &bob.token)
        .await;
    assert_eq!(backward.assert_ok()["event_id"], json!(middle));
    // Nothing after the last event; before the room, nothing either.
    let last_ts = sent[2].1;
    server
        .get(
            &by_time(&room, &format!("ts={}&dir=f", last_ts + 60_000)),
            &bob.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(&by_time(&room, "ts=0&dir=b"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Bad requests.
    server
        .get(&by_time(&room, "dir=f"), &bob.token)
        .await
        .assert_error(400, "M_MISSING_PARAM");
    server
        .get(&by_time(&room, "ts=now&dir=f"), &bob.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(
            &by_time(&room, &format!("ts={middle_ts}&dir=x")),
            &bob.token,
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // Someone not in the room learns nothing.
    let carol = server.register("carol").await;
    let private = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    server
        .get(
            &by_time(&private, &format!("ts={middle_ts}&dir=f")),
            &carol.token,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn events_are_reported_by_members_and_kept_for_the_operator() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Reported room" }))
        .await;
    let bad = server.send_text(&alice, &room, "something bad").await;
    let path = format!("/rooms/{}/report/{}", enc(&room), enc(&bad));
    server
        .post(&path, &bob.token, json!({ "reason": "this makes me sad" }))
        .await
        .assert_ok();
    // No reason is fine for an event.
    server.post(&path, &bob.token, json!({})).await.assert_ok();
    server
        .post(&path, &bob.token, json!({ "reason": 5 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .post(&path, &bob.token, json!({ "reason": "x".repeat(5000) }))
        .await
        .assert_error(400, "M_TOO_LARGE");
    // Not joined, unknown event, event of another room: all 404.
    let carol = server.register("carol").await;
    server
        .post(&path, &carol.token, json!({ "reason": "nosy" }))
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .post(
            &format!("/rooms/{}/report/{}", enc(&room), enc("$nothing")),
            &bob.token,
            json!({ "reason": "?" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    let other = server.create_room(&bob, json!({})).await;
    server
        .post(
            &format!("/rooms/{}/report/{}", enc(&other), enc(&bad)),
            &bob.token,
            json!({ "reason": "?" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    // A redacted event is 404 too, as the spec allows.
    let gone = server.send_text(&alice, &room, "soon gone").await;
    server
        .put(
            &format!("/rooms/{}/redact/{}/r1", enc(&room), enc(&gone)),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    server
        .post(
            &format!("/rooms/{}/report/{}", enc(&room), enc(&gone)),
            &bob.token,
            json!({ "reason": "?" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");

    // The operator's view.
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    server
        .get("/_synapse/admin/v1/event_reports", &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let list = server
        .get("/_synapse/admin/v1/event_reports", &admin.token)
        .await;
    let list = list.assert_ok().clone();
    assert_eq!(list["total"], json!(2));
    let newest = &list["event_reports"][0];
    assert_eq!(newest["event_id"], json!(bad));
    assert_eq!(newest["room_id"], json!(room));
    assert_eq!(newest["user_id"], json!(bob.user_id));
    assert_eq!(newest["sender"], json!(alice.user_id));
    assert_eq!(newest["name"], json!("Reported room"));
    assert_eq!(newest["reason"], Value::Null);
    assert_eq!(
        list["event_reports"][1]["reason"],
        json!("this makes me sad")
    );
    assert!(list.get("next_token").is_none());
    let page = server
        .get(
            "/_synapse/admin/v1/event_reports?limit=1&dir=f",
            &admin.token,
        )
        .await;
    let page = page.assert_ok();
    assert_eq!(
        page["event_reports"][0]["reason"],
        json!("this makes me sad")
    );
    assert_eq!(page["next_token"], json!(1));
    let id = page["event_reports"][0]["id"].as_i64().unwrap();
    let one = server
        .get(
            &format!("/_synapse/admin/v1/event_reports/{id}"),
            &admin.token,
        )
        .await;
    let one = one.assert_ok();
    assert_eq!(one["event_json"]["content"]["body"], json!("something bad"));
    assert_eq!(one["event_json"]["event_id"], Value::Null);
    server
        .call(
            Method::DELETE,
            &format!("/_synapse/admin/v1/event_reports/{id}"),
            Some(&admin.token),
            None,
        )
        .await
        .assert_ok();
    server
        .get(
            &format!("/_synapse/admin/v1/event_reports/{id}"),
            &admin.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get("/_synapse/admin/v1/event_reports/abc", &admin.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let filtered = server
        .get(
            &format!(
                "/_synapse/admin/v1/event_reports?user_id={}",
                enc(&carol.user_id)
            ),
            &admin.token,
        )
        .await;
    assert_eq!(filtered.assert_ok()["total"], json!(0));
}

#[tokio::test]
async fn rooms_and_users_are_reported_with_a_reason() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let room_path = format!("/rooms/{}/report", enc(&room));
    server
        .post(&room_path, &bob.token, json!({ "reason": "" }))
        .await
        .assert_ok();
    server
        .post(&room_path, &bob.token, json!({}))
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .post(
            "/rooms/!unknown:localhost/report",
            &bob.token,
            json!({ "reason": "x" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    let user_path = format!("/users/{}/report", enc(&alice.user_id));
    server
        .post(&user_path, &bob.token, json!({ "reason": "spam" }))
        .await
        .assert_ok();
    server
        .post(
            "/users/@nobody:localhost/report",
            &bob.token,
            json!({ "reason": "x" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Room and user reports are not event reports.
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    let list = server
        .get("/_synapse/admin/v1/event_reports", &admin.token)
        .await;
    assert_eq!(list.assert_ok()["total"], json!(0));
    let (rooms, _) = server
        .services()
        .store
        .reports(myelin_store::ReportsQuery {
            kind: myelin_store::ReportKind::User,
            offset: 0,
            limit: 10,
            oldest_first: false,
            reporter: None,
            room_id: None,
        })
        .await
        .unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(
        rooms[0].target_user_id.as_deref(),
        Some(alice.user_id.as_str())
    );
    assert_eq!(rooms[0].reason.as_deref(), Some("spam"));
}

#[tokio::test]
async fn mutual_rooms_lists_the_rooms_both_users_are_joined_to() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut shared = Vec::new();
    for _ in 0..3 {
        let room = server
            .create_room(&alice, json!({ "preset": "public_chat" }))
            .await;
        server.join(&bob, &room).await;
        shared.push(room);
    }
    // Alice alone, and a room Bob left.
    server.create_room(&alice, json!({})).await;
    let left = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &left).await;
    server
        .room_post(&bob, &left, "leave", json!({}))
        .await
        .assert_ok();
    shared.sort();
    let path = format!(
        "/_matrix/client/v1/mutual_rooms?user_id={}",
        enc(&bob.user_id)
    );
    let mutual = server.get(&path, &alice.token).await;
    assert_eq!(mutual.assert_ok(), &json!({ "joined": shared, "count": 3 }));
    for msc in [
        "/_matrix/client/v1/user/mutual_rooms",
        "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
    ] {
        let answer = server
            .get(
                &format!("{msc}?user_id={}", enc(&bob.user_id)),
                &alice.token,
            )
            .await;
        assert_eq!(answer.assert_ok()["count"], json!(3), "{msc}");
    }
    // A user who does not exist shares nothing.
    let nobody = server
        .get(
            "/_matrix/client/v1/mutual_rooms?user_id=@nobody:localhost",
            &alice.token,
        )
        .await;
    assert_eq!(nobody.assert_ok(), &json!({ "joined": [], "count": 0 }));
    for bad in [
        "",
        "?user_id=nobody",
        &format!("?user_id={}", enc(&alice.user_id)),
    ] {
        server
            .get(
                &format!("/_matrix/client/v1/mutual_rooms{bad}"),
                &alice.token,
            )
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
    server
        .get(&format!("{path}&from=garbage"), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn events_stored_before_the_time_column_are_found_by_time_after_the_migration() {
    let server = TestServer::start().await;
    let (alice, _bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    // Content with a timestamp of its own must not be taken for the event's.
    let id = server
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "x", "origin_server_ts": 5, "z": { "origin_server_ts": 7 } }),
        )
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ts = ts_of(&server, &alice, &room, &id).await;
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    let version = if config.database.url.starts_with("sqlite://") {
        20
    } else {
        21
    };
    common::run_sql(
        &config.database.url,
        &format!(
            "DROP INDEX events_room_ts; ALTER TABLE events DROP COLUMN origin_ts;
             DROP TABLE reports; DELETE FROM schema_migrations WHERE version = {version};"
        ),
    )
    .await;
    let again = TestServer::start_in(dir, config).await;
    let found = again
        .get(&by_time(&room, &format!("ts={ts}&dir=b")), &alice.token)
        .await;
    assert_eq!(
        found.assert_ok(),
        &json!({ "event_id": id, "origin_server_ts": ts })
    );
    let before = again
        .get(
            &by_time(&room, &format!("ts={}&dir=f", ts - 1)),
            &alice.token,
        )
        .await;
    assert_eq!(before.assert_ok()["event_id"], json!(id));
}

#[tokio::test]
async fn mutual_rooms_pages_on_from_the_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut shared = Vec::new();
    for _ in 0..3 {
        let room = server
            .create_room(&alice, json!({ "preset": "public_chat" }))
            .await;
        server.join(&bob, &room).await;
        shared.push(room);
    }
    shared.sort();
    let path = format!(
        "/_matrix/client/v1/mutual_rooms?user_id={}&from={}",
        enc(&bob.user_id),
        enc(&format!("m{}", shared[0]))
    );
    let rest = server.get(&path, &alice.token).await;
    assert_eq!(
        rest.assert_ok(),
        &json!({ "joined": [shared[1], shared[2]], "count": 3 })
    );
}

#[tokio::test]
async fn reports_and_heavy_room_reads_are_rate_limited_per_user() {
    let tight = myelin_core::config::RateLimit {
        per_second: 0.001,
        burst: 2,
    };
    let server = TestServer::with(|config, _| {
        config.rate_limits.reports_per_user = tight;
        config.rate_limits.room_lookups_per_user = tight;
    })
    .await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let event = server.send_text(&alice, &room, "x").await;
    let report = format!("/rooms/{}/report/{}", enc(&room), enc(&event));
    for _ in 0..2 {
        server
            .post(&report, &bob.token, json!({}))
            .await
            .assert_ok();
    }
    let limited = server.post(&report, &bob.token, json!({})).await;
    limited.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(limited.body["retry_after_ms"].as_u64().unwrap() > 0);
    // Room and user reports draw on the same allowance.
    server
        .post(
            &format!("/rooms/{}/report", enc(&room)),
            &bob.token,
            json!({ "reason": "x" }),
        )
        .await
        .assert_error(429, "M_LIMIT_EXCEEDED");
    server
        .post(
            &format!("/users/{}/report", enc(&alice.user_id)),
            &bob.token,
            json!({ "reason": "x" }),
        )
        .await
        .assert_error(429, "M_LIMIT_EXCEEDED");
    // Each user has an allowance of their own.
    server
        .post(&report, &alice.token, json!({}))
        .await
        .assert_ok();
    // Search, hierarchy, threads, timestamp_to_event, mutual rooms and aliases share one.
    let search = json!({ "search_categories": { "room_events": { "search_term": "x" } } });
    server
        .post("/search", &bob.token, search.clone())
        .await
        .assert_ok();
    server
        .get(&format!("/rooms/{}/aliases", enc(&room)), &bob.token)
        .await
        .assert_ok();
    for path in [
        format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&room)),
        format!("/_matrix/client/v1/rooms/{}/threads", enc(&room)),
        by_time(&room, "ts=0&dir=f"),
        format!(
            "/_matrix/client/v1/mutual_rooms?user_id={}",
            enc(&alice.user_id)
        ),
        format!("/rooms/{}/aliases", enc(&room)),
    ] {
        server
            .get(&path, &bob.token)
            .await
            .assert_error(429, "M_LIMIT_EXCEEDED");
    }
    server
        .post("/search", &bob.token, search)
        .await
        .assert_error(429, "M_LIMIT_EXCEEDED");
}
