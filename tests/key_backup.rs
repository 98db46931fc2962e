//! Server-side key backups (issue 10; behaviours KB-* of `behaviours-e2ee.md`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User};
use serde_json::{Value, json};

async fn create(server: &TestServer, user: &User) -> String {
    let body = json!({ "algorithm": "m.megolm_backup.v1", "auth_data": "anopaquestring" });
    server
        .post("/room_keys/version", &user.token, body)
        .await
        .assert_ok()["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn key(first: i64, forwarded: i64, verified: bool, data: &str) -> Value {
    json!({
        "first_message_index": first,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": { "d": data },
    })
}

async fn put_session(server: &TestServer, user: &User, version: &str, k: Value) -> common::Resp {
    server
        .put(
            &format!("/room_keys/keys/!room:localhost/sess1?version={version}"),
            &user.token,
            k,
        )
        .await
}

#[tokio::test]
async fn kb01_kb03_kb04_kb05_versions_are_numbers_and_the_latest_is_the_largest() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // KB-03: no backup is exactly 404 M_NOT_FOUND.
    server
        .get("/room_keys/version", &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let mut last = String::new();
    for _ in 0..11 {
        last = create(&server, &alice).await;
    }
    assert_eq!(last, "11");
    // KB-04: "11" is later than "9", though not as text.
    let latest = server.get("/room_keys/version", &alice.token).await;
    assert_eq!(
        latest.assert_ok(),
        &json!({
            "algorithm": "m.megolm_backup.v1", "auth_data": "anopaquestring",
            "count": 0, "etag": "0", "version": "11",
        })
    );
    server
        .get("/room_keys/version/3", &alice.token)
        .await
        .assert_ok();
    for bad in ["99", "abc"] {
        server
            .get(&format!("/room_keys/version/{bad}"), &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
    // Backups are per user.
    let bob = server.register("bob").await;
    server
        .get("/room_keys/version", &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .post("/room_keys/version", &bob.token, json!({ "auth_data": {} }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn kb06_kb07_kb08_update_and_delete_versions() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v1 = create(&server, &alice).await;
    let v2 = create(&server, &alice).await;
    let update = json!({ "algorithm": "m.megolm_backup.v1", "auth_data": { "signed": true }, "version": v2 });
    server
        .put(&format!("/room_keys/version/{v2}"), &alice.token, update)
        .await
        .assert_ok();
    let got = server
        .get(&format!("/room_keys/version/{v2}"), &alice.token)
        .await;
    assert_eq!(got.assert_ok()["auth_data"], json!({ "signed": true }));
    let wrong_algorithm = json!({ "algorithm": "other", "auth_data": {} });
    server
        .put(
            &format!("/room_keys/version/{v2}"),
            &alice.token,
            wrong_algorithm,
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let wrong_version =
        json!({ "algorithm": "m.megolm_backup.v1", "auth_data": {}, "version": v1 });
    server
        .put(
            &format!("/room_keys/version/{v2}"),
            &alice.token,
            wrong_version,
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put_session(&server, &alice, &v2, key(0, 0, false, "x"))
        .await
        .assert_ok();
    // KB-07: deleting the current version makes the previous one current; twice is fine;
    // a version that never existed is 404.
    server
        .call(
            reqwest::Method::DELETE,
            &format!("/room_keys/version/{v2}"),
            Some(&alice.token),
            None,
        )
        .await
        .assert_ok();
    server
        .call(
            reqwest::Method::DELETE,
            &format!("/room_keys/version/{v2}"),
            Some(&alice.token),
            None,
        )
        .await
        .assert_ok();
    server
        .call(
            reqwest::Method::DELETE,
            "/room_keys/version/77",
            Some(&alice.token),
            None,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    let latest = server.get("/room_keys/version", &alice.token).await;
    assert_eq!(latest.assert_ok()["version"], json!(v1));
    // KB-01, KB-08: numbers are never reused, and a new backup starts empty.
    let v3 = create(&server, &alice).await;
    assert_eq!(v3, "3");
    let got = server
        .get(&format!("/room_keys/keys?version={v3}"), &alice.token)
        .await;
    assert_eq!(got.assert_ok(), &json!({ "rooms": {} }));
}

#[tokio::test]
async fn kb09_kb10_kb12_writes_go_to_the_current_version_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let old = create(&server, &alice).await;
    let current = create(&server, &alice).await;
    let resp = put_session(&server, &alice, &old, key(0, 0, false, "x")).await;
    resp.assert_error(403, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(resp.body["current_version"], json!(current));
    put_session(&server, &alice, "42", key(0, 0, false, "x"))
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .put(
            "/room_keys/keys/!room:localhost/sess1",
            &alice.token,
            key(0, 0, false, "x"),
        )
        .await
        .assert_error(400, "M_MISSING_PARAM");
    // KB-10: all three shapes.
    let resp = put_session(&server, &alice, &current, key(0, 0, false, "s")).await;
    assert_eq!(resp.assert_ok(), &json!({ "etag": "1", "count": 1 }));
    let room = json!({ "sessions": { "sess2": key(0, 0, false, "r") } });
    let resp = server
        .put(
            &format!("/room_keys/keys/!room:localhost?version={current}"),
            &alice.token,
            room,
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({ "etag": "2", "count": 2 }));
    let all = json!({ "rooms": { "!other:localhost": { "sessions": { "sess3": key(0, 0, false, "a") } } } });
    let resp = server
        .put(
            &format!("/room_keys/keys?version={current}"),
            &alice.token,
            all,
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({ "etag": "3", "count": 3 }));
    let got = server
        .get(&format!("/room_keys/keys?version={current}"), &alice.token)
        .await;
    assert_eq!(
        got.assert_ok()["rooms"]["!room:localhost"]["sessions"]["sess2"],
        key(0, 0, false, "r")
    );
    let version = server.get("/room_keys/version", &alice.token).await;
    assert_eq!(version.assert_ok()["count"], 3);
    assert_eq!(version.assert_ok()["etag"], "3");
    // KB-15: is_verified must be a boolean.
    let mut bad = key(0, 0, false, "x");
    bad["is_verified"] = json!("yes");
    put_session(&server, &alice, &current, bad)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn kb11_kb12_a_worse_key_never_replaces_a_better_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v = create(&server, &alice).await;
    put_session(&server, &alice, &v, key(5, 1, false, "first"))
        .await
        .assert_ok();
    // Worse: a higher index, more forwards; the etag does not move (KB-12).
    for worse in [key(6, 0, false, "w1"), key(5, 2, false, "w2")] {
        let resp = put_session(&server, &alice, &v, worse).await;
        assert_eq!(resp.assert_ok()["etag"], "1");
    }
    let stored = server
        .get(
            &format!("/room_keys/keys/!room:localhost/sess1?version={v}"),
            &alice.token,
        )
        .await;
    assert_eq!(stored.assert_ok(), &key(5, 1, false, "first"));
    // Better: a lower index; then verified beats everything.
    put_session(&server, &alice, &v, key(4, 3, false, "lower"))
        .await
        .assert_ok();
    put_session(&server, &alice, &v, key(9, 9, true, "verified"))
        .await
        .assert_ok();
    let resp = put_session(&server, &alice, &v, key(0, 0, false, "unverified")).await;
    assert_eq!(resp.assert_ok()["etag"], "3");
    let stored = server
        .get(
            &format!("/room_keys/keys/!room:localhost/sess1?version={v}"),
            &alice.token,
        )
        .await;
    assert_eq!(stored.assert_ok(), &key(9, 9, true, "verified"));
}

#[tokio::test]
async fn kb13_kb14_reads_and_deletes_in_each_shape() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v = create(&server, &alice).await;
    put_session(&server, &alice, &v, key(0, 0, false, "s"))
        .await
        .assert_ok();
    server
        .get(
            &format!("/room_keys/keys/!room:localhost/nosuch?version={v}"),
            &alice.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    let empty = server
        .get(
            &format!("/room_keys/keys/!empty:localhost?version={v}"),
            &alice.token,
        )
        .await;
    assert_eq!(empty.assert_ok(), &json!({ "sessions": {} }));
    server
        .get("/room_keys/keys?version=9", &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let deleted = server
        .call(
            reqwest::Method::DELETE,
            &format!("/room_keys/keys/!room:localhost/sess1?version={v}"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(deleted.assert_ok(), &json!({ "etag": "2", "count": 0 }));
    let all = server
        .get(&format!("/room_keys/keys?version={v}"), &alice.token)
        .await;
    assert_eq!(all.assert_ok(), &json!({ "rooms": {} }));
    // Reading an older version is allowed; only writes need the current one.
    let newer = create(&server, &alice).await;
    assert_ne!(newer, v);
    server
        .get(&format!("/room_keys/keys?version={v}"), &alice.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn kb13_kb14_every_shape_answers_unknown_and_old_versions_and_deletes_rooms_and_all() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let old = create(&server, &alice).await;
    let v = create(&server, &alice).await;
    let sessions = json!({ "sessions": { "sess1": key(0, 0, false, "s") } });
    let rooms = json!({ "rooms": { "!room:localhost": sessions } });
    let shapes = [
        (
            "/room_keys/keys/!room:localhost/sess1",
            key(0, 0, false, "s"),
        ),
        ("/room_keys/keys/!room:localhost", sessions.clone()),
        ("/room_keys/keys", rooms.clone()),
    ];
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let server = &server;
        let token = alice.token.clone();
        async move { server.call(method, &path, Some(&token), body).await }
    };
    for (path, body) in &shapes {
        // An older version takes no writes; one that never existed is 404 for all.
        let wrong = call(
            reqwest::Method::PUT,
            format!("{path}?version={old}"),
            Some(body.clone()),
        )
        .await;
        wrong.assert_error(403, "M_WRONG_ROOM_KEYS_VERSION");
        assert_eq!(wrong.body["current_version"], json!(v));
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::GET,
            reqwest::Method::DELETE,
        ] {
            let body = (method == reqwest::Method::PUT).then(|| body.clone());
            call(method.clone(), format!("{path}?version=99"), body)
                .await
                .assert_error(404, "M_NOT_FOUND");
        }
    }
    // A version that does not exist cannot be updated.
    server
        .put(
            "/room_keys/version/99",
            &alice.token,
            json!({ "algorithm": "m.megolm_backup.v1", "auth_data": "x", "version": "99" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Deleting a room's keys, then all keys.
    call(
        reqwest::Method::PUT,
        format!("/room_keys/keys?version={v}"),
        Some(json!({ "rooms": {
            "!room:localhost": sessions,
            "!other:localhost": { "sessions": { "sess2": key(0, 0, false, "t") } },
        } })),
    )
    .await
    .assert_ok();
    let room_gone = call(
        reqwest::Method::DELETE,
        format!("/room_keys/keys/!room:localhost?version={v}"),
        None,
    )
    .await;
    assert_eq!(room_gone.assert_ok()["count"], json!(1));
    let left = call(
        reqwest::Method::GET,
        format!("/room_keys/keys?version={v}"),
        None,
    )
    .await;
    let left = left.assert_ok()["rooms"].as_object().unwrap().clone();
    assert_eq!(left.keys().collect::<Vec<_>>(), vec!["!other:localhost"]);
    let all_gone = call(
        reqwest::Method::DELETE,
        format!("/room_keys/keys?version={v}"),
        None,
    )
    .await;
    assert_eq!(all_gone.assert_ok()["count"], json!(0));
    let none = call(
        reqwest::Method::GET,
        format!("/room_keys/keys?version={v}"),
        None,
    )
    .await;
    assert_eq!(none.assert_ok(), &json!({ "rooms": {} }));
}

#[tokio::test]
async fn key_backup_requests_are_rate_limited_per_user() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.key_backup_per_user = myelin_core::config::RateLimit {
            per_second: 0.001,
            burst: 3,
        };
    })
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let v = create(&server, &alice).await;
    for _ in 0..2 {
        server
            .get(&format!("/room_keys/version/{v}"), &alice.token)
            .await
            .assert_ok();
    }
    let limited = put_session(&server, &alice, &v, key(0, 0, false, "s")).await;
    limited.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(limited.body["retry_after_ms"].as_u64().unwrap() > 0);
    server
        .get("/room_keys/version", &alice.token)
        .await
        .assert_error(429, "M_LIMIT_EXCEEDED");
    // Bob has an allowance of his own.
    create(&server, &bob).await;
}
