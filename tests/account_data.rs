//! Account data over REST: global and per room, the order of checks, limits, appservices,
//! server-controlled types and MSC3391 deletion (behaviours AD-*, SC-*, DEL-*).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Resp, TestServer, User, appservice_file, enc};
use reqwest::Method;
use serde_json::{Value, json};

const ROOM: &str = "!room:localhost";
const AS_TOKEN: &str = "as_token_bridge_0123456789";

fn global(user_id: &str, data_type: &str) -> String {
    format!("/user/{}/account_data/{}", enc(user_id), enc(data_type))
}

fn room(user_id: &str, room_id: &str, data_type: &str) -> String {
    format!(
        "/user/{}/rooms/{}/account_data/{}",
        enc(user_id),
        enc(room_id),
        enc(data_type)
    )
}

fn msc3391_global(user_id: &str, data_type: &str) -> String {
    format!(
        "/_matrix/client/unstable/org.matrix.msc3391/user/{}/account_data/{}",
        enc(user_id),
        enc(data_type)
    )
}

fn msc3391_room(user_id: &str, room_id: &str, data_type: &str) -> String {
    format!(
        "/_matrix/client/unstable/org.matrix.msc3391/user/{}/rooms/{}/account_data/{}",
        enc(user_id),
        enc(room_id),
        enc(data_type)
    )
}

async fn delete(server: &TestServer, path: &str, token: &str) -> Resp {
    server.call(Method::DELETE, path, Some(token), None).await
}

async fn put_raw(server: &TestServer, path: &str, token: &str, body: &str) -> Resp {
    server
        .call_raw(Method::PUT, path, Some(token), body.to_owned())
        .await
}

#[track_caller]
fn assert_empty_ok(resp: &Resp) {
    assert_eq!(resp.assert_ok(), &json!({}));
}

/// The global account-data events of a sync response, as `type -> content`, asserting that
/// no type appears twice.
fn sync_types(body: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(events) = body.get("account_data") {
        for event in events["events"].as_array().unwrap() {
            let data_type = event["type"].as_str().unwrap().to_owned();
            // Push rules come in every initial sync (tests/push_rules.rs checks them).
            if data_type == "m.push_rules" {
                continue;
            }
            let previous = out.insert(data_type.clone(), event["content"].clone());
            assert!(previous.is_none(), "{data_type} twice in one sync: {body}");
        }
    }
    out
}

async fn initial_sync(server: &TestServer, user: &User) -> Value {
    server.get("/sync", &user.token).await.assert_ok().clone()
}

async fn incremental_sync(server: &TestServer, user: &User, since: &str) -> Value {
    server
        .get(&format!("/sync?since={}", enc(since)), &user.token)
        .await
        .assert_ok()
        .clone()
}

fn next_batch(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn ad01_ad02_ad03_put_stores_get_returns_exact_content_and_put_replaces() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = global(&alice.user_id, "org.example.a");
    let first = json!({"n": 1, "nested": {"x": [1, 2, {"deep": null}]}, "s": "ü"});
    assert_empty_ok(&server.put(&path, &alice.token, first.clone()).await);
    // AD-02: the content itself, not wrapped in {type, content}.
    assert_eq!(server.get(&path, &alice.token).await.assert_ok(), &first);

    // AD-03: a second PUT replaces the whole content; nothing of the first survives.
    let second = json!({"m": 2});
    assert_empty_ok(&server.put(&path, &alice.token, second.clone()).await);
    assert_eq!(server.get(&path, &alice.token).await.assert_ok(), &second);
    // The legacy r0 prefix and the deprecated ?access_token= reach the same data.
    let r0 = format!("/_matrix/client/r0{path}");
    assert_eq!(server.get(&r0, &alice.token).await.assert_ok(), &second);
    let resp = server
        .call(
            Method::GET,
            &format!("{path}?access_token={}", enc(&alice.token)),
            None,
            None,
        )
        .await;
    assert_eq!(resp.assert_ok(), &second);

    // Another type is untouched by all this.
    server
        .get(&global(&alice.user_id, "org.example.b"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad04_room_account_data_is_stored_separately_per_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // Both room ID forms: `!opaque:server` and the room v12 form `!` + 43 base64url chars.
    let v12 = format!("!{}", "Ab-_".repeat(10) + "xyz");
    assert_eq!(v12.len(), 44);
    let rooms = [ROOM, "!other:example.org:8448", v12.as_str()];
    for (i, room_id) in rooms.iter().enumerate() {
        let resp = server
            .put(
                &room(&alice.user_id, room_id, "org.example.r"),
                &alice.token,
                json!({ "room": i }),
            )
            .await;
        assert_empty_ok(&resp);
    }
    for (i, room_id) in rooms.iter().enumerate() {
        let resp = server
            .get(
                &room(&alice.user_id, room_id, "org.example.r"),
                &alice.token,
            )
            .await;
        assert_eq!(resp.assert_ok(), &json!({ "room": i }), "{room_id}");
    }
    // Replacing in one room leaves the others alone.
    let resp = server
        .put(
            &room(&alice.user_id, ROOM, "org.example.r"),
            &alice.token,
            json!({"replaced": true}),
        )
        .await;
    assert_empty_ok(&resp);
    let resp = server
        .get(&room(&alice.user_id, ROOM, "org.example.r"), &alice.token)
        .await;
    assert_eq!(resp.assert_ok(), &json!({"replaced": true}));
    let resp = server
        .get(
            &room(&alice.user_id, "!other:example.org:8448", "org.example.r"),
            &alice.token,
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({"room": 1}));
    // A room that has never had this type.
    let resp = server
        .get(
            &room(&alice.user_id, "!third:localhost", "org.example.r"),
            &alice.token,
        )
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad05_global_and_room_data_of_the_same_type_are_independent() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let g = global(&alice.user_id, "org.example.same");
    let r = room(&alice.user_id, ROOM, "org.example.same");

    assert_empty_ok(
        &server
            .put(&g, &alice.token, json!({"where": "global"}))
            .await,
    );
    // No fallback from room to global.
    server
        .get(&r, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");

    assert_empty_ok(&server.put(&r, &alice.token, json!({"where": "room"})).await);
    assert_eq!(
        server.get(&g, &alice.token).await.assert_ok(),
        &json!({"where": "global"})
    );
    assert_eq!(
        server.get(&r, &alice.token).await.assert_ok(),
        &json!({"where": "room"})
    );

    // Deleting one leaves the other.
    assert_empty_ok(
        &delete(
            &server,
            &msc3391_global(&alice.user_id, "org.example.same"),
            &alice.token,
        )
        .await,
    );
    server
        .get(&g, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    assert_eq!(
        server.get(&r, &alice.token).await.assert_ok(),
        &json!({"where": "room"})
    );
    // And room data never shows up as global data in sync.
    let body = initial_sync(&server, &alice).await;
    assert!(
        !sync_types(&body).contains_key("org.example.same"),
        "room data leaked into global account data: {body}"
    );
}

#[tokio::test]
async fn ad06_never_set_is_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server
        .get(&global(&alice.user_id, "org.example.none"), &alice.token)
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    let resp = server
        .get(
            &room(&alice.user_id, ROOM, "org.example.none"),
            &alice.token,
        )
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    // Server-controlled types never written are not found either.
    let resp = server
        .get(&global(&alice.user_id, "m.fully_read"), &alice.token)
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad07_token_is_checked_before_anything_else() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let paths = [
        global(&alice.user_id, "org.example.a"),
        room(&alice.user_id, ROOM, "org.example.a"),
        // Another user, a bad room ID and a server-controlled type all lose to the token.
        room(&bob.user_id, "notaroom", "m.fully_read"),
    ];
    for path in &paths {
        for method in [Method::PUT, Method::GET] {
            let body = (method == Method::PUT).then(|| "[not json".to_owned());
            let mut request = server.client.request(method.clone(), server.url(path));
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let resp = TestServer::finish(request).await;
            resp.assert_error(401, "M_MISSING_TOKEN");

            let mut request = server
                .client
                .request(method.clone(), server.url(path))
                .bearer_auth("syt_not_a_real_token");
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let resp = TestServer::finish(request).await;
            resp.assert_error(401, "M_UNKNOWN_TOKEN");
        }
    }
    // Nothing was written by the unauthenticated PUTs.
    server
        .get(&global(&alice.user_id, "org.example.a"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad07_other_users_account_data_is_forbidden() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bobs_global = global(&bob.user_id, "org.example.a");
    let bobs_room = room(&bob.user_id, ROOM, "org.example.a");
    assert_empty_ok(
        &server
            .put(&bobs_global, &bob.token, json!({"bob": 1}))
            .await,
    );
    assert_empty_ok(&server.put(&bobs_room, &bob.token, json!({"bob": 2})).await);

    for path in [&bobs_global, &bobs_room] {
        let resp = server.put(path, &alice.token, json!({"alice": true})).await;
        resp.assert_error(403, "M_FORBIDDEN");
        server
            .get(path, &alice.token)
            .await
            .assert_error(403, "M_FORBIDDEN");
        // The owner check comes before the body check (Synapse #62).
        put_raw(&server, path, &alice.token, "[1]")
            .await
            .assert_error(403, "M_FORBIDDEN");
        put_raw(&server, path, &alice.token, "{not json")
            .await
            .assert_error(403, "M_FORBIDDEN");
        put_raw(&server, path, &alice.token, "{}")
            .await
            .assert_error(403, "M_FORBIDDEN");
        delete(
            &server,
            &path.replace(
                "/user/",
                "/_matrix/client/unstable/org.matrix.msc3391/user/",
            ),
            &alice.token,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    }
    // ...and before the room ID check (#94) and the server-controlled type check.
    for path in [
        room(&bob.user_id, "notaroom", "org.example.a"),
        global(&bob.user_id, "m.fully_read"),
        room(&bob.user_id, ROOM, "m.push_rules"),
        // A user on another server, and something that is not a user ID at all (#64, #65).
        global("@x:other.example", "org.example.a"),
        global("notauser", "org.example.a"),
    ] {
        let resp = server.put(&path, &alice.token, json!({"n": 1})).await;
        resp.assert_error(403, "M_FORBIDDEN");
        server
            .get(&path, &alice.token)
            .await
            .assert_error(403, "M_FORBIDDEN");
    }

    // Bob's data is exactly as he left it.
    assert_eq!(
        server.get(&bobs_global, &bob.token).await.assert_ok(),
        &json!({"bob": 1})
    );
    assert_eq!(
        server.get(&bobs_room, &bob.token).await.assert_ok(),
        &json!({"bob": 2})
    );
}

#[tokio::test]
async fn ad12_account_data_is_private_to_its_owner() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let resp = server
        .put(
            &global(&alice.user_id, "org.example.secret"),
            &alice.token,
            json!({"pin": 1234}),
        )
        .await;
    assert_empty_ok(&resp);
    // Bob's own namespace has no such type, and his sync never mentions alice's.
    server
        .get(&global(&bob.user_id, "org.example.secret"), &bob.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let body = initial_sync(&server, &bob).await;
    assert!(sync_types(&body).is_empty(), "bob sees: {body}");
    let alices = sync_types(&initial_sync(&server, &alice).await);
    assert_eq!(
        alices.get("org.example.secret"),
        Some(&json!({"pin": 1234}))
    );
}

#[tokio::test]
async fn ad08_appservice_reads_and_writes_account_data_of_its_users() {
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(dir, "bridge", AS_TOKEN, "")];
    })
    .await;
    let alice = server.register("alice").await;
    // The appservice registers its user, who also gets a token of their own.
    let resp = server
        .call(
            Method::POST,
            "/register",
            Some(AS_TOKEN),
            Some(json!({"type": "m.login.application_service", "username": "bridge_carol"})),
        )
        .await;
    let body = resp.assert_ok();
    let carol_id = "@bridge_carol:localhost";
    assert_eq!(body["user_id"], carol_id);
    let carol_token = body["access_token"].as_str().unwrap().to_owned();

    let as_user = format!("?user_id={}", enc(carol_id));
    let path = global(carol_id, "org.example.bridged");
    let resp = server
        .put(
            &format!("{path}{as_user}"),
            AS_TOKEN,
            json!({"written_by": "bridge"}),
        )
        .await;
    assert_empty_ok(&resp);
    let resp = server.get(&format!("{path}{as_user}"), AS_TOKEN).await;
    assert_eq!(resp.assert_ok(), &json!({"written_by": "bridge"}));
    // Without asserting the identity, the appservice acts as its sender: not carol.
    server
        .get(&path, AS_TOKEN)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // It is the user's own data: they read it, and it reaches their sync.
    assert_eq!(
        server.get(&path, &carol_token).await.assert_ok(),
        &json!({"written_by": "bridge"})
    );
    let carol = User {
        user_id: carol_id.to_owned(),
        localpart: "bridge_carol".to_owned(),
        token: carol_token.clone(),
        device_id: String::new(),
    };
    let synced = sync_types(&initial_sync(&server, &carol).await);
    assert_eq!(
        synced.get("org.example.bridged"),
        Some(&json!({"written_by": "bridge"}))
    );

    // Room data too.
    let room_path = room(carol_id, ROOM, "org.example.bridged");
    let resp = server
        .put(&format!("{room_path}{as_user}"), AS_TOKEN, json!({"r": 1}))
        .await;
    assert_empty_ok(&resp);
    assert_eq!(
        server.get(&room_path, &carol_token).await.assert_ok(),
        &json!({"r": 1})
    );

    // Outside its namespace the appservice is refused, and alice's data is untouched.
    let resp = server
        .put(
            &format!(
                "{}?user_id={}",
                global(&alice.user_id, "org.example.bridged"),
                enc(&alice.user_id)
            ),
            AS_TOKEN,
            json!({"hijack": true}),
        )
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    let resp = server
        .put(
            &format!("{}{as_user}", global(&alice.user_id, "org.example.bridged")),
            AS_TOKEN,
            json!({"hijack": true}),
        )
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    server
        .get(&global(&alice.user_id, "org.example.bridged"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad09_body_that_is_not_a_json_object_is_rejected() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for path in [
        global(&alice.user_id, "org.example.a"),
        room(&alice.user_id, ROOM, "org.example.a"),
    ] {
        for body in ["{not json", "", "{\"a\": NaN}", "{\"a\": 1", "\u{ff}"] {
            put_raw(&server, &path, &alice.token, body)
                .await
                .assert_error(400, "M_NOT_JSON");
        }
        for body in ["[1,2]", "\"str\"", "1", "null", "true", "[]"] {
            put_raw(&server, &path, &alice.token, body)
                .await
                .assert_error(400, "M_BAD_JSON");
        }
        // Nothing was stored by any of them.
        server
            .get(&path, &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
        // A raw object body with no JSON content type is fine.
        assert_empty_ok(&put_raw(&server, &path, &alice.token, r#"{"raw": [true]}"#).await);
        assert_eq!(
            server.get(&path, &alice.token).await.assert_ok(),
            &json!({"raw": [true]})
        );
    }
}

#[tokio::test]
async fn ad10_invalid_room_id_is_invalid_param() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let short = format!("!{}", "A".repeat(42));
    let long = format!("!{}", "A".repeat(44));
    let bad_rooms = [
        "notaroom",
        "!abc",
        "#a:localhost",
        "!:localhost",
        "@alice:localhost",
        short.as_str(),
        long.as_str(),
    ];
    for room_id in bad_rooms {
        let path = room(&alice.user_id, room_id, "org.example.r");
        let resp = server.put(&path, &alice.token, json!({"r": 1})).await;
        resp.assert_error(400, "M_INVALID_PARAM");
        server
            .get(&path, &alice.token)
            .await
            .assert_error(400, "M_INVALID_PARAM");
        delete(
            &server,
            &msc3391_room(&alice.user_id, room_id, "org.example.r"),
            &alice.token,
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
        // The room ID is checked before the body (#88) and the type (#90).
        put_raw(&server, &path, &alice.token, "[1]")
            .await
            .assert_error(400, "M_INVALID_PARAM");
        put_raw(&server, &path, &alice.token, "{not json")
            .await
            .assert_error(400, "M_INVALID_PARAM");
        let resp = server
            .put(
                &room(&alice.user_id, room_id, "m.fully_read"),
                &alice.token,
                json!({"event_id": "$x"}),
            )
            .await;
        resp.assert_error(400, "M_INVALID_PARAM");
    }
    // Syntax only: a well-formed ID of a room that does not exist is accepted (#81).
    let path = room(&alice.user_id, "!doesnotexist:localhost", "org.example.r");
    assert_empty_ok(&server.put(&path, &alice.token, json!({"r": 1})).await);
}

#[tokio::test]
async fn ad13_ad14_types_are_opaque_strings_that_round_trip() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let types = [
        "org.example.custom.config",
        "my.test.type",
        "org.example/slash",
        "org.example%2Fliteral",
        "a:b:c",
        "org.example/ü x",
        "日本語",
        "m.direct",
        "m.ignored_user_list",
        "with?query&and#hash",
    ];
    for (i, data_type) in types.iter().enumerate() {
        let resp = server
            .put(
                &global(&alice.user_id, data_type),
                &alice.token,
                json!({ "i": i }),
            )
            .await;
        assert_empty_ok(&resp);
    }
    for (i, data_type) in types.iter().enumerate() {
        let resp = server
            .get(&global(&alice.user_id, data_type), &alice.token)
            .await;
        assert_eq!(resp.assert_ok(), &json!({ "i": i }), "{data_type}");
    }
    // Sync names each type exactly as it was written, decoded.
    let synced = sync_types(&initial_sync(&server, &alice).await);
    let expected: std::collections::BTreeMap<String, Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_owned(), json!({ "i": i })))
        .collect();
    assert_eq!(synced, expected);
    // The slash is part of the type, not a path separator: the prefix alone is not a type.
    server
        .get(&global(&alice.user_id, "org.example"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad16_content_over_the_account_data_limit_is_too_large() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = global(&alice.user_id, "org.example.big");
    // Default limit: 64 KiB of content.
    let under = json!({ "big": "x".repeat(64 * 1024 - 20) });
    assert!(under.to_string().len() <= 64 * 1024);
    assert_empty_ok(&server.put(&path, &alice.token, under.clone()).await);
    let over = json!({ "big": "y".repeat(70 * 1024) });
    let resp = server.put(&path, &alice.token, over).await;
    resp.assert_error(413, "M_TOO_LARGE");
    // The refused write changed nothing.
    assert_eq!(server.get(&path, &alice.token).await.assert_ok(), &under);
    let resp = server
        .put(
            &room(&alice.user_id, ROOM, "org.example.big"),
            &alice.token,
            json!({ "big": "y".repeat(70 * 1024) }),
        )
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    server
        .get(&room(&alice.user_id, ROOM, "org.example.big"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad16_configured_limits_are_exact_and_cover_the_request_body() {
    let server = TestServer::with(|config, _| {
        config.limits.account_data_max_bytes = 100;
        config.limits.max_request_bytes = 4096;
    })
    .await;
    let alice = server.register("alice").await;
    let path = global(&alice.user_id, "org.example.edge");
    // `{"s":"…"}` is 8 bytes around the string.
    let exact = json!({ "s": "a".repeat(92) });
    assert_eq!(exact.to_string().len(), 100);
    assert_empty_ok(&server.put(&path, &alice.token, exact.clone()).await);
    let resp = server
        .put(&path, &alice.token, json!({ "s": "b".repeat(93) }))
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    assert_eq!(server.get(&path, &alice.token).await.assert_ok(), &exact);

    // A request body over max_request_bytes is refused whatever it holds.
    let huge = format!("{{\"s\":\"{}\"}}", "c".repeat(5000));
    put_raw(&server, &path, &alice.token, &huge)
        .await
        .assert_error(413, "M_TOO_LARGE");
    assert_eq!(server.get(&path, &alice.token).await.assert_ok(), &exact);
}

#[tokio::test]
async fn ad16_request_over_the_default_body_limit_is_too_large() {
    let server = TestServer::with(|config, _| {
        config.limits.account_data_max_bytes = 4 * 1024 * 1024;
    })
    .await;
    let alice = server.register("alice").await;
    let path = global(&alice.user_id, "org.example.huge");
    let huge = json!({ "s": "z".repeat(1024 * 1024 + 1) });
    let resp = server.put(&path, &alice.token, huge).await;
    resp.assert_error(413, "M_TOO_LARGE");
    server
        .get(&path, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn ad16_per_user_quota_refuses_writes_that_would_exceed_it() {
    let server = TestServer::with(|config, _| {
        config.limits.account_data_quota_bytes = Some(300);
    })
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let a = global(&alice.user_id, "org.example.a");
    let b = global(&alice.user_id, "org.example.b");
    let r = room(&alice.user_id, ROOM, "org.example.r");
    let content_a = json!({ "s": "a".repeat(150) });
    assert_empty_ok(&server.put(&a, &alice.token, content_a.clone()).await);
    // 150 + 150 more would pass 300: refused, and nothing stored.
    let resp = server
        .put(&b, &alice.token, json!({ "s": "b".repeat(150) }))
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    server
        .get(&b, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Room data counts against the same quota.
    let resp = server
        .put(&r, &alice.token, json!({ "s": "r".repeat(150) }))
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    server
        .get(&r, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // The refused writes reached no sync either.
    let synced = sync_types(&initial_sync(&server, &alice).await);
    assert_eq!(
        synced,
        [("org.example.a".to_owned(), content_a.clone())].into()
    );

    // Replacing a type counts only the new content, not old + new.
    let content_a2 = json!({ "s": "A".repeat(200) });
    assert_empty_ok(&server.put(&a, &alice.token, content_a2.clone()).await);
    assert_eq!(server.get(&a, &alice.token).await.assert_ok(), &content_a2);

    // Deleting frees the space.
    assert_empty_ok(
        &delete(
            &server,
            &msc3391_global(&alice.user_id, "org.example.a"),
            &alice.token,
        )
        .await,
    );
    let content_b = json!({ "s": "b".repeat(150) });
    assert_empty_ok(&server.put(&b, &alice.token, content_b.clone()).await);
    assert_eq!(server.get(&b, &alice.token).await.assert_ok(), &content_b);

    // The quota is per user: bob has his own.
    let resp = server
        .put(
            &global(&bob.user_id, "org.example.a"),
            &bob.token,
            json!({ "s": "x".repeat(250) }),
        )
        .await;
    assert_empty_ok(&resp);
}

#[tokio::test]
async fn ad16_quota_counts_bytes_not_characters() {
    let server = TestServer::with(|config, _| {
        config.limits.account_data_quota_bytes = Some(300);
    })
    .await;
    let alice = server.register("alice").await;
    // 100 two-byte characters: 208 bytes of content (+13 for the type), but 108 characters.
    let wide = json!({ "s": "ü".repeat(100) });
    assert_eq!(wide.to_string().len(), 208);
    let a = global(&alice.user_id, "org.example.a");
    assert_empty_ok(&server.put(&a, &alice.token, wide.clone()).await);
    // 68 + 13 more bytes: 302 in all, over the quota (but only 202 if characters were counted).
    let b = global(&alice.user_id, "org.example.b");
    let resp = server
        .put(&b, &alice.token, json!({ "s": "b".repeat(60) }))
        .await;
    resp.assert_error(413, "M_TOO_LARGE");
    server
        .get(&b, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Just under fits: 66 + 13 bytes, 300 in all.
    let fits = json!({ "s": "b".repeat(58) });
    assert_empty_ok(&server.put(&b, &alice.token, fits.clone()).await);
    assert_eq!(server.get(&b, &alice.token).await.assert_ok(), &fits);
    assert_eq!(server.get(&a, &alice.token).await.assert_ok(), &wide);
}

#[tokio::test]
async fn sc01_sc02_server_controlled_types_cannot_be_put() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for data_type in ["m.fully_read", "m.push_rules"] {
        for path in [
            global(&alice.user_id, data_type),
            room(&alice.user_id, ROOM, data_type),
        ] {
            let resp = server
                .put(&path, &alice.token, json!({"event_id": "$x"}))
                .await;
            resp.assert_error(405, "M_BAD_JSON");
            // The type is checked before the body (#67).
            for body in ["[1]", "{not json", "{}"] {
                put_raw(&server, &path, &alice.token, body)
                    .await
                    .assert_error(405, "M_BAD_JSON");
            }
        }
        // Nothing was stored.
        server
            .get(&room(&alice.user_id, ROOM, data_type), &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
    server
        .get(&global(&alice.user_id, "m.fully_read"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let synced = sync_types(&initial_sync(&server, &alice).await);
    assert!(!synced.contains_key("m.fully_read"), "{synced:?}");
    // Similar-looking types are ordinary.
    for data_type in ["m.fully_read.x", "m.push_rules2", "M.FULLY_READ"] {
        let path = global(&alice.user_id, data_type);
        assert_empty_ok(&server.put(&path, &alice.token, json!({"ok": 1})).await);
    }
}

#[tokio::test]
async fn sc05_msc3391_delete_of_server_controlled_types_is_405() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for data_type in ["m.fully_read", "m.push_rules"] {
        for path in [
            msc3391_global(&alice.user_id, data_type),
            msc3391_room(&alice.user_id, ROOM, data_type),
        ] {
            delete(&server, &path, &alice.token)
                .await
                .assert_error(405, "M_BAD_JSON");
        }
    }
}

#[tokio::test]
async fn del01_del03_del04_del05_delete_tombstones_once_and_hides_the_type() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let g = global(&alice.user_id, "org.example.gone");
    let kept = global(&alice.user_id, "org.example.kept");
    assert_empty_ok(&server.put(&g, &alice.token, json!({"here": true})).await);
    assert_empty_ok(&server.put(&kept, &alice.token, json!({"kept": true})).await);
    let before = next_batch(&initial_sync(&server, &alice).await);

    // DEL-01
    let resp = delete(
        &server,
        &msc3391_global(&alice.user_id, "org.example.gone"),
        &alice.token,
    )
    .await;
    assert_empty_ok(&resp);
    // DEL-04
    server
        .get(&g, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // DEL-05: initial sync leaves it out entirely.
    let initial = initial_sync(&server, &alice).await;
    assert_eq!(
        sync_types(&initial),
        [("org.example.kept".to_owned(), json!({"kept": true}))].into()
    );
    // DEL-03: the incremental sync from before the deletion delivers the tombstone, once.
    let incremental = incremental_sync(&server, &alice, &before).await;
    assert_eq!(
        sync_types(&incremental),
        [("org.example.gone".to_owned(), json!({}))].into()
    );
    let after = next_batch(&incremental);
    let again = incremental_sync(&server, &alice, &after).await;
    assert!(again.get("account_data").is_none(), "{again}");
    assert_eq!(next_batch(&again), after);

    // Deleting again is a quiet success: no second tombstone.
    let resp = delete(
        &server,
        &msc3391_global(&alice.user_id, "org.example.gone"),
        &alice.token,
    )
    .await;
    assert_empty_ok(&resp);
    let quiet = incremental_sync(&server, &alice, &after).await;
    assert!(quiet.get("account_data").is_none(), "{quiet}");

    // It can be written again afterwards.
    assert_empty_ok(&server.put(&g, &alice.token, json!({"back": 1})).await);
    assert_eq!(
        server.get(&g, &alice.token).await.assert_ok(),
        &json!({"back": 1})
    );
    let back = incremental_sync(&server, &alice, &after).await;
    assert_eq!(
        sync_types(&back),
        [("org.example.gone".to_owned(), json!({"back": 1}))].into()
    );
}

#[tokio::test]
async fn del01_delete_of_a_type_never_set_is_ok_and_silent() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let before = next_batch(&initial_sync(&server, &alice).await);
    for path in [
        msc3391_global(&alice.user_id, "org.example.never"),
        msc3391_room(&alice.user_id, ROOM, "org.example.never"),
    ] {
        assert_empty_ok(&delete(&server, &path, &alice.token).await);
    }
    let body = incremental_sync(&server, &alice, &before).await;
    assert!(body.get("account_data").is_none(), "{body}");
    assert_eq!(next_batch(&body), before);
    assert!(sync_types(&initial_sync(&server, &alice).await).is_empty());
}

#[tokio::test]
async fn del02_del06_put_of_empty_object_deletes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let g = global(&alice.user_id, "org.example.emptied");
    assert_empty_ok(&server.put(&g, &alice.token, json!({"x": 1})).await);
    let before = next_batch(&initial_sync(&server, &alice).await);
    assert_empty_ok(&server.put(&g, &alice.token, json!({})).await);
    // DEL-06: `{}` cannot be read back; it is a deletion.
    server
        .get(&g, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    assert!(sync_types(&initial_sync(&server, &alice).await).is_empty());
    let incremental = incremental_sync(&server, &alice, &before).await;
    assert_eq!(
        sync_types(&incremental),
        [("org.example.emptied".to_owned(), json!({}))].into()
    );
    // `{}` with whitespace is the same empty object.
    let fresh = global(&alice.user_id, "org.example.spaced");
    assert_empty_ok(&put_raw(&server, &fresh, &alice.token, " { } ").await);
    server
        .get(&fresh, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn del01_del02_room_account_data_deletion() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let r = room(&alice.user_id, ROOM, "org.example.r");
    let g = global(&alice.user_id, "org.example.r");
    assert_empty_ok(&server.put(&g, &alice.token, json!({"global": 1})).await);

    assert_empty_ok(&server.put(&r, &alice.token, json!({"r": 1})).await);
    let resp = delete(
        &server,
        &msc3391_room(&alice.user_id, ROOM, "org.example.r"),
        &alice.token,
    )
    .await;
    assert_empty_ok(&resp);
    server
        .get(&r, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");

    assert_empty_ok(&server.put(&r, &alice.token, json!({"r": 2})).await);
    assert_eq!(
        server.get(&r, &alice.token).await.assert_ok(),
        &json!({"r": 2})
    );
    assert_empty_ok(&server.put(&r, &alice.token, json!({})).await);
    server
        .get(&r, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");

    // The global entry of the same type was never touched.
    assert_eq!(
        server.get(&g, &alice.token).await.assert_ok(),
        &json!({"global": 1})
    );
}

/// Per-room account data is delivered only for joined rooms (SY-02, SY-04), and Myelin has no
/// rooms yet, so no user is joined to any room: room data is REST-only for now. This test pins
/// that it is stored and readable but never leaks into /sync (Synapse #97 behaves the same
/// for rooms the user is not in).
#[tokio::test]
async fn ad11_room_data_for_a_room_not_joined_is_stored_but_not_synced() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let before = next_batch(&initial_sync(&server, &alice).await);
    let r = room(&alice.user_id, ROOM, "org.example.r");
    assert_empty_ok(&server.put(&r, &alice.token, json!({"r": 1})).await);
    assert_eq!(
        server.get(&r, &alice.token).await.assert_ok(),
        &json!({"r": 1})
    );

    let initial = initial_sync(&server, &alice).await;
    assert!(initial.get("rooms").is_none(), "{initial}");
    assert!(sync_types(&initial).is_empty(), "{initial}");
    let incremental = incremental_sync(&server, &alice, &before).await;
    assert!(incremental.get("rooms").is_none(), "{incremental}");
    assert!(incremental.get("account_data").is_none(), "{incremental}");
    // Deleting it is not delivered either.
    let resp = delete(
        &server,
        &msc3391_room(&alice.user_id, ROOM, "org.example.r"),
        &alice.token,
    )
    .await;
    assert_empty_ok(&resp);
    let incremental = incremental_sync(&server, &alice, &before).await;
    assert!(incremental.get("rooms").is_none(), "{incremental}");
}

#[tokio::test]
async fn ad13_type_longer_than_255_bytes_is_refused_on_every_backend() {
    // A 3 000-byte type broke PostgreSQL's primary-key index (a 500) while SQLite stored it.
    // Event types are bounded at 255 bytes (the spec's limit for event types); both backends
    // answer the same 400, and nothing is stored.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // Random-looking, so that it does not compress below the index's row limit.
    let long: String = (0..3000u32)
        .map(|i| char::from(b'a' + ((i.wrapping_mul(2_654_435_761) >> 13) % 26) as u8))
        .collect();
    let exact: String = long[..255].to_owned();
    for path in [
        global(&alice.user_id, &long),
        room(&alice.user_id, ROOM, &long),
    ] {
        let resp = server.put(&path, &alice.token, json!({"a": 1})).await;
        resp.assert_error(400, "M_INVALID_PARAM");
        let resp = server.get(&path, &alice.token).await;
        resp.assert_error(400, "M_INVALID_PARAM");
        let resp = delete(
            &server,
            &msc3391_global(&alice.user_id, &long),
            &alice.token,
        )
        .await;
        resp.assert_error(400, "M_INVALID_PARAM");
    }
    // 255 bytes is allowed, and counted in bytes, not characters.
    let resp = server
        .put(
            &global(&alice.user_id, &exact),
            &alice.token,
            json!({"a": 1}),
        )
        .await;
    assert_empty_ok(&resp);
    let wide = "é".repeat(128); // 256 bytes, 128 characters
    let resp = server
        .put(
            &global(&alice.user_id, &wide),
            &alice.token,
            json!({"a": 1}),
        )
        .await;
    resp.assert_error(400, "M_INVALID_PARAM");
    let types = sync_types(&initial_sync(&server, &alice).await);
    assert_eq!(types.keys().collect::<Vec<_>>(), vec![&exact]);
}

#[tokio::test]
async fn ad13_nul_bytes_in_path_parameters_are_client_errors() {
    // PostgreSQL cannot store NUL in text: the input must be refused before it gets there, the
    // same way on both backends.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server
        .put(
            &global(&alice.user_id, "a\0b"),
            &alice.token,
            json!({"a": 1}),
        )
        .await;
    resp.assert_error(400, "M_INVALID_PARAM");
    let resp = server
        .get(&global(&alice.user_id, "a\0b"), &alice.token)
        .await;
    resp.assert_error(400, "M_INVALID_PARAM");
    let resp = server
        .get(&format!("/devices/{}", enc("D\0")), &alice.token)
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    let resp = server
        .put(
            &format!("/devices/{}", enc(&alice.device_id)),
            &alice.token,
            json!({"display_name": "a\u{0}b"}),
        )
        .await;
    resp.assert_error(400, "M_INVALID_PARAM");
    let resp = server
        .call(
            Method::DELETE,
            &format!("/devices/{}", enc("D\0")),
            Some(&alice.token),
            Some(json!({})),
        )
        .await;
    // UIA comes first; a device that cannot exist is then simply not there.
    assert_eq!(resp.status, 401, "{}", resp.body);
    let resp = server
        .post(
            "/login",
            "",
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a\u{0}"}, "password": "x"}),
        )
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    let resp = server
        .call(
            Method::POST,
            "/delete_devices",
            Some(&alice.token),
            Some(json!({"devices": ["x"], "auth": {"type": "m.login.password", "session": "s\u{0}"}})),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 400, "{}", resp.body);
    // Everything still works afterwards, and nothing was stored.
    assert_eq!(sync_types(&initial_sync(&server, &alice).await).len(), 0);
}
