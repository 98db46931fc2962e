//! Device management (device-management issue; behaviours DV-*, UIA-06/07/12/16, AS-*, AU-02/03,
//! AU-10/11/16, LS-*, MSC-01): listing, renaming and deleting devices, the UIA that guards
//! deletion, appservice-managed devices (MSC4190), the device cap and the reaper.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{PASSWORD, Resp, TestServer, User, appservice_file};
use myelin_core::config::{DeviceCapPolicy, RateLimit};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const AS_TOKEN: &str = "as_token_bridge_0123456789";
const GHOST: &str = "@bridge_x:localhost";

// --- helpers ---------------------------------------------------------------------------

/// The device IDs of a `GET /devices` answer, sorted.
fn device_ids(resp: &Resp) -> Vec<String> {
    let mut ids: Vec<String> = resp.assert_ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

/// Asserts a UIA 401 offering exactly the password stage, and returns its session.
#[track_caller]
fn password_challenge(resp: &Resp) -> Value {
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "body: {}", resp.body);
    assert_eq!(
        resp.body["flows"],
        json!([{ "stages": ["m.login.password"] }]),
        "body: {}",
        resp.body
    );
    assert_eq!(resp.body["params"], json!({}), "params must be an object");
    let session = &resp.body["session"];
    assert!(
        session.as_str().is_some_and(|s| !s.is_empty()),
        "session missing: {}",
        resp.body
    );
    session.clone()
}

/// Asserts a first-round UIA 401 (no failed stage yet) and returns its session.
#[track_caller]
fn fresh_challenge(resp: &Resp) -> Value {
    let session = password_challenge(resp);
    assert!(
        resp.body.get("errcode").is_none(),
        "no stage failed yet: {}",
        resp.body
    );
    session
}

fn devices_path(device_id: &str) -> String {
    format!("/devices/{device_id}")
}

fn as_path(path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}user_id={GHOST}")
}

/// `DELETE /devices/{id}` by `caller`: the 401 round, then the password round.
async fn delete_with_password(server: &TestServer, caller: &User, device_id: &str) -> Resp {
    let path = devices_path(device_id);
    let first = server
        .call(Method::DELETE, &path, Some(&caller.token), None)
        .await;
    let session = fresh_challenge(&first);
    server
        .call(
            Method::DELETE,
            &path,
            Some(&caller.token),
            Some(json!({ "auth": TestServer::password_auth(caller, &session) })),
        )
        .await
}

/// `POST /delete_devices` by `caller`: the 401 round, then the password round.
async fn delete_many_with_password(server: &TestServer, caller: &User, devices: Value) -> Resp {
    let first = server
        .post(
            "/delete_devices",
            &caller.token,
            json!({ "devices": devices }),
        )
        .await;
    let session = fresh_challenge(&first);
    server
        .post(
            "/delete_devices",
            &caller.token,
            json!({ "devices": devices, "auth": TestServer::password_auth(caller, &session) }),
        )
        .await
}

#[track_caller]
fn assert_unknown_token(resp: &Resp) {
    resp.assert_error(401, "M_UNKNOWN_TOKEN");
    assert_eq!(resp.body["soft_logout"], false, "body: {}", resp.body);
}

async fn bridge_server() -> TestServer {
    TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(
            dir,
            "bridge",
            AS_TOKEN,
            "io.element.msc4190: true\nrate_limited: false\n",
        )];
    })
    .await
}

async fn register_ghost(server: &TestServer, localpart: &str) -> Resp {
    server
        .post(
            "/register",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "username": localpart,
                "inhibit_login": true,
                "auth": { "type": "m.login.application_service" },
            }),
        )
        .await
}

fn account_data_path(user: &User, data_type: &str) -> String {
    format!("/user/{}/account_data/{data_type}", user.user_id)
}

// --- DV: listing, reading, renaming -------------------------------------------------------

#[tokio::test]
async fn dv01_list_devices_reports_every_key_with_null_for_unknown() {
    let server = TestServer::start().await;
    let alice = server
        .register_with("alice", json!({ "initial_device_display_name": "phone" }))
        .await;
    let laptop = server.login(&alice, None).await;
    // A device that never made a request and has no name.
    server
        .services()
        .store
        .upsert_device(&alice.user_id, "BARE", None, true, myelin_core::now_ms())
        .await
        .unwrap();

    let resp = server.get("/devices", &alice.token).await;
    assert_eq!(
        device_ids(&resp),
        sorted(&[&alice.device_id, &laptop.device_id, "BARE"])
    );
    for device in resp.body["devices"].as_array().unwrap() {
        let keys: Vec<&str> = device
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            sorted(&keys),
            sorted(&["device_id", "display_name", "last_seen_ip", "last_seen_ts"]),
            "{device}"
        );
    }
    let by_id = |id: &str| {
        resp.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(&alice.device_id)["display_name"], "phone");
    assert_eq!(by_id(&laptop.device_id)["display_name"], Value::Null);
    assert_eq!(
        by_id("BARE"),
        json!({"device_id": "BARE", "display_name": null, "last_seen_ip": null, "last_seen_ts": null})
    );
    // Another user sees only their own devices.
    let bob = server.register("bob").await;
    assert_eq!(
        device_ids(&server.get("/devices", &bob.token).await),
        vec![bob.device_id.clone()]
    );
}

#[tokio::test]
async fn dv03_get_device_reports_initial_display_name() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": PASSWORD,
                "initial_device_display_name": "my laptop",
            })),
        )
        .await;
    let device_id = resp.assert_ok()["device_id"].as_str().unwrap().to_owned();
    let got = server.get(&devices_path(&device_id), &alice.token).await;
    let body = got.assert_ok();
    assert_eq!(body["device_id"], device_id.as_str());
    assert_eq!(body["display_name"], "my laptop");
    assert_eq!(body["last_seen_ip"], "127.0.0.1");
    assert!(body["last_seen_ts"].is_i64(), "{body}");
}

#[tokio::test]
async fn dv04_unknown_or_foreign_device_is_404() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let unknown = server.get("/devices/NOSUCHDEVICE", &alice.token).await;
    unknown.assert_error(404, "M_NOT_FOUND");
    let foreign = server
        .get(&devices_path(&bob.device_id), &alice.token)
        .await;
    foreign.assert_error(404, "M_NOT_FOUND");
    assert_eq!(
        unknown.body, foreign.body,
        "another user's device must be indistinguishable from an unknown one"
    );
    // Bob's device is untouched and still his.
    server
        .get(&devices_path(&bob.device_id), &bob.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn dv05_rename_device_returns_empty_object_and_get_reflects_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = devices_path(&alice.device_id);
    let resp = server
        .put(&path, &alice.token, json!({ "display_name": "renamed" }))
        .await;
    assert_eq!(resp.assert_ok(), &json!({}));
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["display_name"],
        "renamed"
    );
    let listed = server.get("/devices", &alice.token).await;
    assert_eq!(listed.assert_ok()["devices"][0]["display_name"], "renamed");
}

#[tokio::test]
async fn dv07_put_without_display_name_leaves_name_unchanged() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = devices_path(&alice.device_id);
    server
        .put(&path, &alice.token, json!({ "display_name": "kept" }))
        .await
        .assert_ok();
    for body in [json!({}), json!({ "display_name": null })] {
        let resp = server.put(&path, &alice.token, body.clone()).await;
        assert_eq!(resp.assert_ok(), &json!({}), "{body}");
        assert_eq!(
            server.get(&path, &alice.token).await.assert_ok()["display_name"],
            "kept",
            "after {body}"
        );
    }
}

#[tokio::test]
async fn dv06_put_unknown_device_by_normal_user_is_404_and_creates_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let resp = server
        .put(
            "/devices/NEWDEV",
            &alice.token,
            json!({ "display_name": "x" }),
        )
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    server
        .get("/devices/NEWDEV", &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Another user's device cannot be renamed either.
    server
        .put(
            &devices_path(&bob.device_id),
            &alice.token,
            json!({ "display_name": "mine now" }),
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    assert_eq!(
        server
            .get(&devices_path(&bob.device_id), &bob.token)
            .await
            .assert_ok()["display_name"],
        Value::Null
    );
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
}

#[tokio::test]
async fn dv08_display_name_over_100_chars_is_too_large() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = devices_path(&alice.device_id);
    server
        .put(
            &path,
            &alice.token,
            json!({ "display_name": "x".repeat(100) }),
        )
        .await
        .assert_ok();
    let resp = server
        .put(
            &path,
            &alice.token,
            json!({ "display_name": "y".repeat(101) }),
        )
        .await;
    resp.assert_error(400, "M_TOO_LARGE");
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["display_name"],
        "x".repeat(100)
    );
    // Characters, not bytes: 100 multi-byte characters are fine.
    server
        .put(
            &path,
            &alice.token,
            json!({ "display_name": "é".repeat(100) }),
        )
        .await
        .assert_ok();
    // The same cap applies to a login's initial_device_display_name.
    let login = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": PASSWORD,
                "initial_device_display_name": "z".repeat(101),
            })),
        )
        .await;
    login.assert_error(400, "M_TOO_LARGE");
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await).len(),
        1
    );
}

#[tokio::test]
async fn dv05_put_rejects_non_object_body_and_non_string_name() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = devices_path(&alice.device_id);
    server
        .put(&path, &alice.token, json!({ "display_name": "kept" }))
        .await
        .assert_ok();
    for raw in ["[1]", "\"name\"", "42"] {
        server
            .call_raw(Method::PUT, &path, Some(&alice.token), raw)
            .await
            .assert_error(400, "M_BAD_JSON");
    }
    for name in [json!(5), json!(["a"]), json!({ "a": 1 }), json!(true)] {
        server
            .put(&path, &alice.token, json!({ "display_name": name }))
            .await
            .assert_error(400, "M_BAD_JSON");
    }
    assert_eq!(
        server.get(&path, &alice.token).await.assert_ok()["display_name"],
        "kept"
    );
}

// --- DV: deletion and its UIA ------------------------------------------------------------

#[tokio::test]
async fn dv11_delete_device_needs_password_uia_then_revokes_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    let path = devices_path(&other.device_id);

    // UIA-02: no body at all.
    let no_body = server
        .call(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    let session = fresh_challenge(&no_body);
    // UIA-03: an empty object.
    let empty = server
        .call(Method::DELETE, &path, Some(&alice.token), Some(json!({})))
        .await;
    fresh_challenge(&empty);
    // UIA-04: a wrong password is a 401 with M_FORBIDDEN and the challenge again.
    let mut wrong = TestServer::password_auth(&alice, &session);
    wrong["password"] = json!("not the password");
    let resp = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": wrong })),
        )
        .await;
    assert_eq!(password_challenge(&resp), session);
    assert_eq!(resp.body["errcode"], "M_FORBIDDEN", "body: {}", resp.body);
    assert!(resp.body["error"].is_string(), "body: {}", resp.body);
    server.get(&path, &alice.token).await.assert_ok();
    server
        .get("/account/whoami", &other.token)
        .await
        .assert_ok();

    // UIA-05: the right password deletes it.
    let resp = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, &session) })),
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({}));
    server
        .get(&path, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
    assert_unknown_token(&server.get("/account/whoami", &other.token).await);
    assert_unknown_token(&server.get("/sync", &other.token).await);
    // The caller's own device is unaffected.
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn dv12_delete_unknown_or_deleted_device_after_uia_is_ok() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    let resp = delete_with_password(&server, &alice, "NOSUCHDEVICE").await;
    assert_eq!(resp.assert_ok(), &json!({}));
    let resp = delete_with_password(&server, &alice, &other.device_id).await;
    assert_eq!(resp.assert_ok(), &json!({}));
    // Deleted before: still a success, and it still needs UIA.
    let resp = delete_with_password(&server, &alice, &other.device_id).await;
    assert_eq!(resp.assert_ok(), &json!({}));
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
}

#[tokio::test]
async fn dv13_delete_devices_with_uia_removes_only_the_callers_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let third = server.login(&alice, None).await;
    let bob = server.register("bob").await;
    let resp = delete_many_with_password(
        &server,
        &alice,
        json!([second.device_id, third.device_id, bob.device_id, "NOPE"]),
    )
    .await;
    assert_eq!(resp.assert_ok(), &json!({}));
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
    for gone in [&second, &third] {
        assert_unknown_token(&server.get("/account/whoami", &gone.token).await);
    }
    // Bob's device ID was in the list: it is ignored, and Bob keeps his device.
    server.get("/account/whoami", &bob.token).await.assert_ok();
    assert_eq!(
        device_ids(&server.get("/devices", &bob.token).await),
        vec![bob.device_id.clone()]
    );
}

#[tokio::test]
async fn dv13_delete_devices_checks_body_before_uia() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    server
        .post("/delete_devices", &alice.token, json!({}))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    server
        .call(Method::POST, "/delete_devices", Some(&alice.token), None)
        .await
        .assert_error(400, "M_MISSING_PARAM");
    // Missing `devices` is refused even with valid credentials.
    let with_auth = server
        .post(
            "/delete_devices",
            &alice.token,
            json!({ "auth": TestServer::password_auth(&alice, &Value::Null) }),
        )
        .await;
    with_auth.assert_error(400, "M_MISSING_PARAM");
    for devices in [json!("ABC"), json!({ "a": 1 }), json!([1, 2]), json!(null)] {
        server
            .post(
                "/delete_devices",
                &alice.token,
                json!({ "devices": devices }),
            )
            .await
            .assert_error(400, "M_BAD_JSON");
    }
    server
        .call_raw(Method::POST, "/delete_devices", Some(&alice.token), "[1]")
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn uia06_password_of_other_user_is_forbidden_and_keeps_device() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    let bob = server.register("bob").await;
    let path = devices_path(&other.device_id);
    let first = server
        .call(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    let session = fresh_challenge(&first);
    let resp = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&bob, &session) })),
        )
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    server.get(&path, &alice.token).await.assert_ok();
    server
        .get("/account/whoami", &other.token)
        .await
        .assert_ok();
    // The owner's own credentials then delete it.
    let resp = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, &session) })),
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({}));
    server
        .get(&path, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn uia07_session_is_bound_to_its_operation() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let a = server.login(&alice, None).await;
    let b = server.login(&alice, None).await;
    let path_b = devices_path(&b.device_id);

    // A session started for deleting A, presented with valid credentials for deleting B.
    let first = server
        .call(
            Method::DELETE,
            &devices_path(&a.device_id),
            Some(&alice.token),
            None,
        )
        .await;
    let session_a = fresh_challenge(&first);
    let resp = server
        .call(
            Method::DELETE,
            &path_b,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, &session_a) })),
        )
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    server.get(&path_b, &alice.token).await.assert_ok();

    // A session completed for /delete_devices cannot delete another device either.
    let c = server.login(&alice, None).await;
    let first = server
        .post(
            "/delete_devices",
            &alice.token,
            json!({ "devices": [c.device_id] }),
        )
        .await;
    let session_c = fresh_challenge(&first);
    server
        .post(
            "/delete_devices",
            &alice.token,
            json!({
                "devices": [c.device_id],
                "auth": TestServer::password_auth(&alice, &session_c),
            }),
        )
        .await
        .assert_ok();
    for attempt in [
        server
            .call(
                Method::DELETE,
                &path_b,
                Some(&alice.token),
                Some(json!({ "auth": { "session": session_c } })),
            )
            .await,
        server
            .post(
                "/delete_devices",
                &alice.token,
                json!({ "devices": [b.device_id], "auth": { "session": session_c } }),
            )
            .await,
    ] {
        attempt.assert_error(403, "M_FORBIDDEN");
    }
    server.get(&path_b, &alice.token).await.assert_ok();
}

#[tokio::test]
async fn uia07_session_completed_for_one_device_is_refused_for_another() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let a = server.login(&alice, None).await;
    let b = server.login(&alice, None).await;
    let path_b = devices_path(&b.device_id);
    let first = server
        .call(
            Method::DELETE,
            &devices_path(&a.device_id),
            Some(&alice.token),
            None,
        )
        .await;
    let session_a = fresh_challenge(&first);
    let resp = server
        .call(
            Method::DELETE,
            &devices_path(&a.device_id),
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, &session_a) })),
        )
        .await;
    assert_eq!(resp.assert_ok(), &json!({}));
    // Presented alone, or with the password again, for deleting B.
    for auth in [
        json!({ "session": session_a }),
        TestServer::password_auth(&alice, &session_a),
    ] {
        let reuse = server
            .call(
                Method::DELETE,
                &path_b,
                Some(&alice.token),
                Some(json!({ "auth": auth })),
            )
            .await;
        reuse.assert_error(403, "M_FORBIDDEN");
    }
    server.get(&path_b, &alice.token).await.assert_ok();
    server.get("/account/whoami", &b.token).await.assert_ok();
}

#[tokio::test]
async fn uia12_user_without_password_is_not_offered_password_stage() {
    // A second appservice without MSC4190 may still log its users in, which gives the
    // password-less user a token of its own.
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(
            dir,
            "legacy",
            "as_token_legacy_0123456789",
            "rate_limited: false\n",
        )];
    })
    .await;
    let as_token = "as_token_legacy_0123456789";
    let registered = server
        .post(
            "/register",
            as_token,
            json!({
                "type": "m.login.application_service",
                "username": "legacy_g",
                "auth": { "type": "m.login.application_service" },
            }),
        )
        .await;
    let body = registered.assert_ok().clone();
    let ghost = User {
        user_id: body["user_id"].as_str().unwrap().to_owned(),
        localpart: "legacy_g".into(),
        token: body["access_token"].as_str().unwrap().to_owned(),
        device_id: body["device_id"].as_str().unwrap().to_owned(),
    };
    let login = server
        .post(
            "/login",
            as_token,
            json!({
                "type": "m.login.application_service",
                "identifier": { "type": "m.id.user", "user": "legacy_g" },
            }),
        )
        .await;
    let second = login.assert_ok()["device_id"].as_str().unwrap().to_owned();
    let path = devices_path(&second);

    let first = server
        .call(Method::DELETE, &path, Some(&ghost.token), None)
        .await;
    assert_eq!(
        first.status,
        StatusCode::UNAUTHORIZED,
        "body: {}",
        first.body
    );
    let flows = first.body["flows"].as_array().unwrap();
    assert!(
        flows.iter().all(|f| !f["stages"]
            .as_array()
            .unwrap()
            .contains(&json!("m.login.password"))),
        "a user without a password must not be offered m.login.password: {}",
        first.body
    );
    assert!(first.body["params"].is_object(), "body: {}", first.body);
    let session = first.body["session"].clone();
    assert!(session.is_string(), "body: {}", first.body);

    // A password attempt never passes, whatever the password.
    for password in [PASSWORD, "", "anything"] {
        let mut auth = TestServer::password_auth(&ghost, &session);
        auth["password"] = json!(password);
        let resp = server
            .call(
                Method::DELETE,
                &path,
                Some(&ghost.token),
                Some(json!({ "auth": auth })),
            )
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "body: {}", resp.body);
        assert!(resp.body["errcode"].is_string(), "body: {}", resp.body);
    }
    server.get(&path, &ghost.token).await.assert_ok();
    // Nor can it log in with a password.
    server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "legacy_g" },
                "password": "",
            })),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn msc01_deleting_device_removes_its_local_notification_settings() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let doomed = server.login(&alice, None).await;
    let logs_out = server.login(&alice, None).await;
    let settings = |device: &User| {
        account_data_path(
            &alice,
            &format!(
                "org.matrix.msc3890.local_notification_settings.{}",
                device.device_id
            ),
        )
    };
    for device in [&alice, &doomed, &logs_out] {
        server
            .put(
                &settings(device),
                &alice.token,
                json!({ "is_silenced": true }),
            )
            .await
            .assert_ok();
    }
    delete_with_password(&server, &alice, &doomed.device_id)
        .await
        .assert_ok();
    server
        .get(&settings(&doomed), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Logging out is a deletion too.
    server
        .post("/logout", &logs_out.token, json!({}))
        .await
        .assert_ok();
    server
        .get(&settings(&logs_out), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Another device's settings remain.
    assert_eq!(
        server
            .get(&settings(&alice), &alice.token)
            .await
            .assert_ok(),
        &json!({ "is_silenced": true })
    );
}

// --- AU / LS: login with a device ID, last_seen -------------------------------------------

#[tokio::test]
async fn au02_au03_login_with_existing_device_id_reuses_it_and_revokes_old_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let login = |name: &'static str| {
        json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "alice" },
            "password": PASSWORD,
            "device_id": "FIXEDDEV",
            "initial_device_display_name": name,
        })
    };
    let first = server
        .call(Method::POST, "/login", None, Some(login("first")))
        .await;
    assert_eq!(first.assert_ok()["device_id"], "FIXEDDEV");
    let first_token = first.body["access_token"].as_str().unwrap().to_owned();
    let second = server
        .call(Method::POST, "/login", None, Some(login("second")))
        .await;
    assert_eq!(second.assert_ok()["device_id"], "FIXEDDEV");
    let second_token = second.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first_token, second_token);

    assert_unknown_token(&server.get("/account/whoami", &first_token).await);
    assert_eq!(
        server
            .get("/account/whoami", &second_token)
            .await
            .assert_ok()["device_id"],
        "FIXEDDEV"
    );
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        sorted(&[&alice.device_id, "FIXEDDEV"])
    );
    // The existing device keeps its name: initial_device_display_name is for new devices.
    assert_eq!(
        server
            .get("/devices/FIXEDDEV", &alice.token)
            .await
            .assert_ok()["display_name"],
        "first"
    );
}

#[tokio::test]
async fn ls01_request_with_token_updates_last_seen() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // A device whose last use is long ago, with no address recorded.
    let token = "ls01_token_0123456789abcdef";
    let login = myelin_store::NewLogin {
        device_id: "OLDDEV".into(),
        display_name: None,
        token_hash: myelin_core::ids::token_hash(token),
        ip: None,
        now_ms: 1_000,
        expires_ts: None,
        refresh: None,
    };
    let mut tx = server.services().store.begin(&alice.user_id).await.unwrap();
    tx.create_device(&login).await.unwrap();
    tx.add_token(&login).await.unwrap();
    tx.commit().await.unwrap();
    let before = server.get("/devices/OLDDEV", &alice.token).await;
    assert_eq!(before.assert_ok()["last_seen_ts"], 1_000);
    assert_eq!(before.body["last_seen_ip"], Value::Null);

    let start = myelin_core::now_ms();
    server.get("/account/whoami", token).await.assert_ok();
    let check = |resp: &Resp| {
        let body = resp.assert_ok();
        assert_eq!(body["last_seen_ip"], "127.0.0.1", "{body}");
        let ts = body["last_seen_ts"].as_i64().unwrap();
        assert!(
            ts >= start && ts <= myelin_core::now_ms(),
            "last_seen_ts {ts} not recent: {body}"
        );
    };
    check(&server.get("/devices/OLDDEV", &alice.token).await);
    let listed = server.get("/devices", &alice.token).await;
    let entry = listed.assert_ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "OLDDEV")
        .unwrap()
        .clone();
    check(&Resp {
        status: StatusCode::OK,
        body: entry,
        headers: Default::default(),
    });
    // Written to storage by the batch flush, it stays.
    myelin_core::devices::flush_last_seen(server.services()).await;
    let stored = server
        .services()
        .store
        .get_device(&alice.user_id, "OLDDEV")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_seen_ip.as_deref(), Some("127.0.0.1"));
    assert!(stored.last_seen_ts.unwrap() >= start);
    check(&server.get("/devices/OLDDEV", &alice.token).await);
}

#[tokio::test]
async fn dv11_deleting_device_wakes_its_waiting_sync_with_unknown_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let doomed = server.login(&alice, None).await;
    let initial = server.get("/sync", &doomed.token).await;
    let since = initial.assert_ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let request = server
        .client
        .get(server.url(&format!("/sync?since={since}&timeout=10000")))
        .bearer_auth(&doomed.token);
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let resp = TestServer::finish(request).await;
        (resp, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the sync should be waiting");

    delete_with_password(&server, &alice, &doomed.device_id)
        .await
        .assert_ok();
    let (resp, elapsed) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting sync must return once its device is deleted")
        .unwrap();
    assert_unknown_token(&resp);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}, the long-poll timeout was 10 s"
    );
}

#[tokio::test]
async fn dv15_delete_devices_removes_ten_thousand_devices_in_one_call() {
    const COUNT: usize = 10_000;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let ids: Vec<String> = (0..COUNT).map(|i| format!("BULK{i:05}")).collect();
    let store = server.services().store.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(COUNT / 8) {
        let (store, user_id, chunk) = (store.clone(), alice.user_id.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for id in chunk {
                let created = store
                    .upsert_device(&user_id, &id, None, true, myelin_core::now_ms())
                    .await
                    .unwrap();
                assert_eq!(created, myelin_store::DeviceUpsert::Created);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await).len(),
        COUNT + 1
    );

    // Bob keeps being answered while Alice's devices go.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let client = server.client.clone();
        let url = server.url("/devices");
        let token = bob.token.clone();
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let resp = TestServer::finish(client.get(&url).bearer_auth(&token)).await;
                assert_eq!(resp.status, StatusCode::OK, "body: {}", resp.body);
                assert_eq!(resp.body["devices"].as_array().unwrap().len(), 1);
                slowest = slowest.max(started.elapsed());
                answered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answered, slowest)
        })
    };

    let started = Instant::now();
    let resp = delete_many_with_password(&server, &alice, json!(ids)).await;
    let took = started.elapsed();
    assert_eq!(resp.assert_ok(), &json!({}));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, slowest) = watcher.await.unwrap();
    assert!(answered >= 1, "bob's requests were never answered");
    assert!(
        slowest < Duration::from_secs(2),
        "bob waited {slowest:?} while 10 000 devices were deleted (deletion took {took:?})"
    );
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
    assert_eq!(
        device_ids(&server.get("/devices", &bob.token).await),
        vec![bob.device_id.clone()]
    );
}

// --- Appservices (MSC4190) ------------------------------------------------------------------

#[tokio::test]
async fn au09_appservice_registers_ghost_with_inhibit_login() {
    let server = bridge_server().await;
    let resp = register_ghost(&server, "bridge_x").await;
    assert_eq!(
        resp.assert_ok(),
        &json!({ "user_id": GHOST, "home_server": "localhost" })
    );
    // AS-02: the ghost has no device yet.
    let devices = server.get(&as_path("/devices"), AS_TOKEN).await;
    assert_eq!(devices.assert_ok(), &json!({ "devices": [] }));
    // Registering again is a conflict.
    register_ghost(&server, "bridge_x")
        .await
        .assert_error(400, "M_USER_IN_USE");
    // The appservice spec's own form: `type` at the top level, no `auth`.
    let top_level = server
        .post(
            "/register",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "username": "bridge_w",
                "inhibit_login": true,
            }),
        )
        .await;
    assert_eq!(
        top_level.assert_ok(),
        &json!({ "user_id": "@bridge_w:localhost", "home_server": "localhost" })
    );
}

#[tokio::test]
async fn au10_appservice_register_without_inhibit_login_is_refused_and_creates_nothing() {
    let server = bridge_server().await;
    let resp = server
        .post(
            "/register",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "username": "bridge_z",
                "auth": { "type": "m.login.application_service" },
            }),
        )
        .await;
    resp.assert_error(400, "M_APPSERVICE_LOGIN_UNSUPPORTED");
    // The user was not created: the ghost cannot be asserted, and a retry succeeds.
    server
        .get("/account/whoami?user_id=@bridge_z:localhost", AS_TOKEN)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let retry = register_ghost(&server, "bridge_z").await;
    assert_eq!(retry.assert_ok()["user_id"], "@bridge_z:localhost");
    assert!(retry.body.get("access_token").is_none(), "{}", retry.body);
    assert!(retry.body.get("device_id").is_none(), "{}", retry.body);
}

#[tokio::test]
async fn as_namespace_is_exclusive_both_ways() {
    let server = bridge_server().await;
    register_ghost(&server, "notbridge")
        .await
        .assert_error(400, "M_EXCLUSIVE");
    // A normal user may not take a name in the appservice's exclusive namespace.
    let resp = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({
                "username": "bridge_y",
                "password": PASSWORD,
                "auth": { "type": "m.login.dummy" },
            })),
        )
        .await;
    resp.assert_error(400, "M_EXCLUSIVE");
    let first = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({ "username": "bridge_y", "password": PASSWORD })),
        )
        .await;
    first.assert_error(400, "M_EXCLUSIVE");
}

#[tokio::test]
async fn as01_as02_appservice_put_creates_device_then_updates_it() {
    let server = bridge_server().await;
    register_ghost(&server, "bridge_x").await.assert_ok();
    let path = as_path("/devices/NEWDEV");
    let created = server
        .put(&path, AS_TOKEN, json!({ "display_name": "bridge device" }))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "body: {}",
        created.body
    );
    assert_eq!(created.body, json!({}));
    let updated = server
        .put(&path, AS_TOKEN, json!({ "display_name": "renamed" }))
        .await;
    assert_eq!(updated.assert_ok(), &json!({}));
    let again = server.put(&path, AS_TOKEN, json!({})).await;
    assert_eq!(again.assert_ok(), &json!({}));
    let devices = server.get(&as_path("/devices"), AS_TOKEN).await;
    assert_eq!(
        devices.assert_ok(),
        &json!({ "devices": [{
            "device_id": "NEWDEV",
            "display_name": "renamed",
            "last_seen_ip": null,
            "last_seen_ts": null,
        }] })
    );
    // The 100-character cap applies to appservices as well, on create and update.
    for device in ["NEWDEV", "OTHERDEV"] {
        server
            .put(
                &as_path(&devices_path(device)),
                AS_TOKEN,
                json!({ "display_name": "x".repeat(101) }),
            )
            .await
            .assert_error(400, "M_TOO_LARGE");
    }
    server
        .get(&as_path("/devices/OTHERDEV"), AS_TOKEN)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn as07_au16_appservice_identity_assertion() {
    let server = bridge_server().await;
    let alice = server.register("alice").await;
    register_ghost(&server, "bridge_x").await.assert_ok();
    let created = server
        .put(&as_path("/devices/NEWDEV"), AS_TOKEN, json!({}))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "body: {}",
        created.body
    );

    let me = server
        .get(&as_path("/account/whoami?device_id=NEWDEV"), AS_TOKEN)
        .await;
    assert_eq!(
        me.assert_ok(),
        &json!({ "user_id": GHOST, "device_id": "NEWDEV", "is_guest": false })
    );
    let plain = server.get(&as_path("/account/whoami"), AS_TOKEN).await;
    assert_eq!(
        plain.assert_ok(),
        &json!({ "user_id": GHOST, "is_guest": false })
    );
    server
        .get(&as_path("/account/whoami?device_id=NOTMINE"), AS_TOKEN)
        .await
        .assert_error(400, "M_UNKNOWN_DEVICE");
    // Alice's device belongs to another user.
    server
        .get(
            &as_path(&format!("/account/whoami?device_id={}", alice.device_id)),
            AS_TOKEN,
        )
        .await
        .assert_error(400, "M_UNKNOWN_DEVICE");
    // Users outside the namespace cannot be asserted, for reading or for creating devices.
    server
        .get("/account/whoami?user_id=@alice:localhost", AS_TOKEN)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .put(
            "/devices/ASDEVX?user_id=@alice:localhost",
            AS_TOKEN,
            json!({}),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
    // In the namespace but never registered.
    server
        .get("/account/whoami?user_id=@bridge_ghost:localhost", AS_TOKEN)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn as04_as05_uia16_appservice_deletes_devices_without_uia() {
    let server = bridge_server().await;
    register_ghost(&server, "bridge_x").await.assert_ok();
    for device in ["DEV1", "DEV2", "DEV3"] {
        let resp = server
            .put(&as_path(&devices_path(device)), AS_TOKEN, json!({}))
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "body: {}", resp.body);
    }
    let deleted = server
        .call(
            Method::DELETE,
            &as_path("/devices/DEV1"),
            Some(AS_TOKEN),
            None,
        )
        .await;
    assert_eq!(deleted.assert_ok(), &json!({}));
    server
        .get(&as_path("/devices/DEV1"), AS_TOKEN)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Already gone: still a success.
    let again = server
        .call(
            Method::DELETE,
            &as_path("/devices/DEV1"),
            Some(AS_TOKEN),
            None,
        )
        .await;
    assert_eq!(again.assert_ok(), &json!({}));
    let many = server
        .post(
            &as_path("/delete_devices"),
            AS_TOKEN,
            json!({ "devices": ["DEV2", "DEV3", "NOPE"] }),
        )
        .await;
    assert_eq!(many.assert_ok(), &json!({}));
    assert_eq!(
        server.get(&as_path("/devices"), AS_TOKEN).await.assert_ok(),
        &json!({ "devices": [] })
    );
}

#[tokio::test]
async fn au11_appservice_login_is_unsupported_with_msc4190() {
    let server = bridge_server().await;
    register_ghost(&server, "bridge_x").await.assert_ok();
    let resp = server
        .post(
            "/login",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "identifier": { "type": "m.id.user", "user": "bridge_x" },
            }),
        )
        .await;
    resp.assert_error(400, "M_APPSERVICE_LOGIN_UNSUPPORTED");
    assert_eq!(
        server.get(&as_path("/devices"), AS_TOKEN).await.assert_ok(),
        &json!({ "devices": [] })
    );
}

#[tokio::test]
async fn as03_appservice_device_creation_is_rate_limited() {
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(
            dir,
            "bridge",
            AS_TOKEN,
            "io.element.msc4190: true\n",
        )];
        config.rate_limits.appservice_device_creation = RateLimit {
            per_second: 0.001,
            burst: 2,
        };
    })
    .await;
    register_ghost(&server, "bridge_x").await.assert_ok();
    for device in ["DEV1", "DEV2"] {
        let resp = server
            .put(&as_path(&devices_path(device)), AS_TOKEN, json!({}))
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "body: {}", resp.body);
    }
    let third = server
        .put(&as_path("/devices/DEV3"), AS_TOKEN, json!({}))
        .await;
    third.assert_error(429, "M_LIMIT_EXCEEDED");
    let retry = third.body["retry_after_ms"].as_u64();
    assert!(
        retry.is_some_and(|ms| ms > 0),
        "retry_after_ms must be a positive integer: {}",
        third.body
    );
    server
        .get(&as_path("/devices/DEV3"), AS_TOKEN)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Renaming an existing device is not a creation.
    server
        .put(
            &as_path("/devices/DEV1"),
            AS_TOKEN,
            json!({ "display_name": "renamed" }),
        )
        .await
        .assert_ok();
}

// --- Device cap and reaper ------------------------------------------------------------------

#[tokio::test]
async fn device_cap_refuse_forbids_login_beyond_the_cap() {
    let server = TestServer::with(|config, _| {
        config.devices.max_per_user = Some(2);
        config.devices.on_limit = DeviceCapPolicy::Refuse;
    })
    .await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let third = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": PASSWORD,
            })),
        )
        .await;
    third.assert_error(403, "M_FORBIDDEN");
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        sorted(&[&alice.device_id, &second.device_id])
    );
    // Logging in again on an existing device is not a new device.
    let again = server.login(&alice, Some(&second.device_id)).await;
    assert_eq!(again.device_id, second.device_id);
    server
        .get("/account/whoami", &again.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn device_cap_evict_oldest_removes_the_least_recently_used_device() {
    let server = TestServer::with(|config, _| {
        config.devices.max_per_user = Some(2);
        config.devices.on_limit = DeviceCapPolicy::EvictOldest;
    })
    .await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    // The first device was created first but used last: the second is the oldest-used.
    tokio::time::sleep(Duration::from_millis(20)).await;
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_ok();
    let third = server.login(&alice, None).await;
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        sorted(&[&alice.device_id, &third.device_id])
    );
    assert_unknown_token(&server.get("/account/whoami", &second.token).await);
    server
        .get("/account/whoami", &third.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn ls05_reaper_deletes_devices_unused_longer_than_configured() {
    let server = TestServer::with(|config, _| {
        config.devices.reap_unused_after_secs = Some(1);
    })
    .await;
    let alice = server.register("alice").await;
    let stale = server.login(&alice, None).await;
    let bob = server.register("bob").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Alice's first device and Bob's are used again; Alice's second is not.
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_ok();
    server.get("/account/whoami", &bob.token).await.assert_ok();
    let reaped = myelin_core::devices::reap_stale(server.services())
        .await
        .unwrap();
    assert_eq!(reaped, 1);
    assert_unknown_token(&server.get("/account/whoami", &stale.token).await);
    assert_eq!(
        device_ids(&server.get("/devices", &alice.token).await),
        vec![alice.device_id.clone()]
    );
    assert_eq!(
        device_ids(&server.get("/devices", &bob.token).await),
        vec![bob.device_id.clone()]
    );
}

#[tokio::test]
async fn ls03_forwarded_for_counts_only_from_trusted_proxies() {
    let whoami_from = |server: &TestServer, user: &User, forwarded: &'static str| {
        server
            .client
            .get(server.url("/account/whoami"))
            .bearer_auth(&user.token)
            .header("X-Forwarded-For", forwarded)
            .send()
    };
    let last_seen_ip = |resp: Resp, device_id: &str| {
        resp.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == device_id)
            .map(|d| d["last_seen_ip"].clone())
            .unwrap()
    };
    // Not a trusted proxy: the header is ignored.
    // (The listing itself is made by another device, whose own request must not count.)
    let direct = TestServer::start().await;
    let alice = direct.register("alice").await;
    let observer = direct.login(&alice, None).await;
    whoami_from(&direct, &alice, "203.0.113.7").await.unwrap();
    let devices = direct.get("/devices", &observer.token).await;
    assert_eq!(last_seen_ip(devices, &alice.device_id), "127.0.0.1");
    // Behind a trusted proxy: the rightmost untrusted hop is the client.
    let proxied = TestServer::with(|config, _| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
    })
    .await;
    let bob = proxied.register("bob").await;
    let observer = proxied.login(&bob, None).await;
    whoami_from(&proxied, &bob, "198.51.100.1, 203.0.113.9, 10.0.0.2")
        .await
        .unwrap();
    let devices = proxied.get("/devices", &observer.token).await;
    assert_eq!(last_seen_ip(devices, &bob.device_id), "203.0.113.9");
}

#[tokio::test]
async fn uia_sessions_expire() {
    let server = TestServer::with(|config, _| config.uia.session_ttl_secs = 1).await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let challenge = server
        .call(
            Method::DELETE,
            &devices_path(&second.device_id),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = server
        .call(
            Method::DELETE,
            &devices_path(&second.device_id),
            Some(&alice.token),
            Some(json!({"auth": TestServer::password_auth(&alice, &challenge.body["session"])})),
        )
        .await;
    late.assert_error(400, "M_INVALID_PARAM");
    server
        .get("/account/whoami", &second.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn dv14_logout_cancelled_by_the_client_still_revokes_the_token() {
    // The client sends `POST /logout` and hangs up at once. Whatever point the server had
    // reached, the outcome must be whole: either the device is gone and its token refused
    // everywhere (the token cache included), or nothing happened.
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut deleted = 0;
    for _ in 0..20 {
        let device = server.login(&alice, None).await;
        // Cached by its first use.
        server
            .get("/account/whoami", &device.token)
            .await
            .assert_ok();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "POST /_matrix/client/v3/logout HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{}}",
            device.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listed = device_ids(&server.get("/devices", &alice.token).await);
        let whoami = server.get("/account/whoami", &device.token).await;
        if listed.contains(&device.device_id) {
            whoami.assert_ok();
        } else {
            deleted += 1;
            assert_unknown_token(&whoami);
        }
    }
    assert!(
        deleted > 0,
        "no logout got through; the test proves nothing"
    );
}

#[tokio::test]
async fn uia_sessions_per_user_are_capped_by_dropping_the_oldest() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let path = devices_path(&second.device_id);
    let mut sessions = Vec::new();
    for _ in 0..=myelin_core::uia::MAX_SESSIONS_PER_USER {
        let resp = server
            .call(Method::DELETE, &path, Some(&alice.token), None)
            .await;
        sessions.push(fresh_challenge(&resp));
    }
    // Another user's sessions are counted apart.
    let bob = server.register("bob").await;
    let bobs = server
        .post("/delete_devices", &bob.token, json!({"devices": []}))
        .await;
    fresh_challenge(&bobs);
    let with_session = |session: &Value| {
        server.call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, session) })),
        )
    };
    // One session too many: the oldest is gone, and the device stays.
    let oldest = with_session(&sessions[0]).await;
    oldest.assert_error(400, "M_INVALID_PARAM");
    assert_eq!(oldest.body["error"], "Unknown or expired UIA session");
    server
        .get("/account/whoami", &second.token)
        .await
        .assert_ok();
    // The others still work.
    assert_eq!(with_session(&sessions[1]).await.assert_ok(), &json!({}));
    assert_unknown_token(&server.get("/account/whoami", &second.token).await);
}

#[tokio::test]
async fn uia_operation_fingerprint_is_stored_as_a_fixed_size_hash() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let mut devices: Vec<String> = (0..1000).map(|i| format!("D{i:0>199}")).collect();
    devices.push(second.device_id.clone());
    let first = server
        .post(
            "/delete_devices",
            &alice.token,
            json!({ "devices": devices }),
        )
        .await;
    let session = fresh_challenge(&first);
    let stored = server
        .services()
        .store
        .get_uia_session(session.as_str().unwrap(), myelin_core::now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.operation.len(), 64, "SHA-256 in hex");
    assert!(stored.operation.bytes().all(|b| b.is_ascii_hexdigit()));
    // The hash still binds the session to exactly this list (in any order).
    devices.reverse();
    let other = server
        .post(
            "/delete_devices",
            &alice.token,
            json!({ "devices": [second.device_id], "auth": TestServer::password_auth(&alice, &session) }),
        )
        .await;
    other.assert_error(403, "M_FORBIDDEN");
    let same = server
        .post(
            "/delete_devices",
            &alice.token,
            json!({ "devices": devices, "auth": TestServer::password_auth(&alice, &session) }),
        )
        .await;
    assert_eq!(same.assert_ok(), &json!({}));
    assert_unknown_token(&server.get("/account/whoami", &second.token).await);
}

#[tokio::test]
async fn uia_password_stage_refuses_over_long_identifiers() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let second = server.login(&alice, None).await;
    let path = devices_path(&second.device_id);
    let first = server
        .call(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    let session = fresh_challenge(&first);
    let auth = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "a".repeat(256) },
        "password": PASSWORD,
        "session": session,
    });
    let resp = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": auth })),
        )
        .await;
    resp.assert_error(400, "M_TOO_LARGE");
    server
        .get("/account/whoami", &second.token)
        .await
        .assert_ok();
}
