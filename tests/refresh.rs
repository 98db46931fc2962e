//! Refresh tokens (`refresh.yaml`, issue 12) and soft logout.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, Resp, TestServer, User};
use reqwest::Method;
use serde_json::{Value, json};

async fn login(server: &TestServer, user: &User, extra: Value) -> Resp {
    let mut body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user.localpart },
        "password": PASSWORD,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    server.call(Method::POST, "/login", None, Some(body)).await
}

async fn refresh(server: &TestServer, token: &str) -> Resp {
    server
        .call(
            Method::POST,
            "/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await
}

/// `(access_token, refresh_token)` of a successful login or refresh.
fn pair(resp: &Resp) -> (String, String) {
    let body = resp.assert_ok();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[track_caller]
fn assert_soft_logout(resp: &Resp) {
    resp.assert_error(401, "M_UNKNOWN_TOKEN");
    assert_eq!(resp.body["soft_logout"], true, "{}", resp.body);
}

async fn whoami(server: &TestServer, token: &str) -> Resp {
    server.get("/account/whoami", token).await
}

#[tokio::test]
async fn login_and_registration_give_a_refresh_token_only_when_asked() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let plain = login(&server, &alice, json!({})).await;
    assert!(plain.assert_ok().get("refresh_token").is_none());
    assert!(plain.body.get("expires_in_ms").is_none());

    let refreshable = login(&server, &alice, json!({ "refresh_token": true })).await;
    let body = refreshable.assert_ok();
    assert_eq!(body["expires_in_ms"], 300_000);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("mylr_"));
    login(&server, &alice, json!({ "refresh_token": "yes" }))
        .await
        .assert_error(400, "M_BAD_JSON");

    // Registration remembers the flag through its UIA rounds.
    let first = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({ "username": "bob", "password": PASSWORD, "refresh_token": true })),
        )
        .await;
    let done = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({ "auth": { "type": "m.login.dummy", "session": first.body["session"] } })),
        )
        .await;
    let (access, refresh_token) = pair(&done);
    whoami(&server, &access).await.assert_ok();
    refresh(&server, &refresh_token).await.assert_ok();
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_and_a_lost_answer_can_be_retried() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let first = login(&server, &alice, json!({ "refresh_token": true })).await;
    let device_id = first.body["device_id"].as_str().unwrap().to_owned();
    let (a1, r1) = pair(&first);

    let (a2, r2) = pair(&refresh(&server, &r1).await);
    assert_ne!((&a1, &r1), (&a2, &r2));
    // The old access token stops at once.
    whoami(&server, &a1)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");

    // The answer was lost: the client refreshes with r1 again. The pair it never saw goes.
    let (a3, r3) = pair(&refresh(&server, &r1).await);
    whoami(&server, &a2)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    assert_soft_logout(&refresh(&server, &r2).await);

    // The first use of the new access token retires r1.
    let me = whoami(&server, &a3).await;
    assert_eq!(me.assert_ok()["device_id"], device_id.as_str());
    assert_soft_logout(&refresh(&server, &r1).await);
    // r3 works, once.
    let (a4, _r4) = pair(&refresh(&server, &r3).await);
    whoami(&server, &a4).await.assert_ok();
    let devices = server.get("/devices", &a4).await;
    assert_eq!(devices.assert_ok()["devices"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn using_the_new_refresh_token_also_retires_the_old_one() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (_a1, r1) = pair(&login(&server, &alice, json!({ "refresh_token": true })).await);
    let (_a2, r2) = pair(&refresh(&server, &r1).await);
    let (a3, _r3) = pair(&refresh(&server, &r2).await);
    assert_soft_logout(&refresh(&server, &r1).await);
    whoami(&server, &a3).await.assert_ok();
}

#[tokio::test]
async fn an_expired_access_token_is_a_soft_logout_and_refresh_recovers() {
    let server = TestServer::with(|config, _| {
        config.tokens.refreshable_access_token_lifetime_secs = 1;
    })
    .await;
    let alice = server.register("alice").await;
    let resp = login(&server, &alice, json!({ "refresh_token": true })).await;
    assert_eq!(resp.assert_ok()["expires_in_ms"], 1000);
    let (access, refresh_token) = pair(&resp);
    whoami(&server, &access).await.assert_ok();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_soft_logout(&whoami(&server, &access).await);
    let (fresh, _) = pair(&refresh(&server, &refresh_token).await);
    whoami(&server, &fresh).await.assert_ok();
    // Tokens without a refresh token never expire.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    whoami(&server, &alice.token).await.assert_ok();
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let server = TestServer::with(|config, _| {
        config.tokens.refresh_token_lifetime_secs = Some(1);
    })
    .await;
    let alice = server.register("alice").await;
    let (_, refresh_token) = pair(&login(&server, &alice, json!({ "refresh_token": true })).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_soft_logout(&refresh(&server, &refresh_token).await);
}

#[tokio::test]
async fn deleting_the_device_ends_its_refresh_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (access, refresh_token) =
        pair(&login(&server, &alice, json!({ "refresh_token": true })).await);
    server.post("/logout", &access, json!({})).await.assert_ok();
    assert_soft_logout(&refresh(&server, &refresh_token).await);
}

#[tokio::test]
async fn bad_refresh_requests_are_matrix_errors() {
    let server = TestServer::start().await;
    let post = |body: Value| server.call(Method::POST, "/refresh", None, Some(body));
    post(json!({})).await.assert_error(400, "M_MISSING_PARAM");
    post(json!({ "refresh_token": 1 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    assert_soft_logout(&post(json!({ "refresh_token": "mylr_nonsense" })).await);
}

#[tokio::test]
async fn a_token_that_expires_during_a_long_poll_is_a_soft_logout() {
    let server = TestServer::with(|config, _| {
        config.tokens.refreshable_access_token_lifetime_secs = 1;
    })
    .await;
    let alice = server.register("alice").await;
    let (access, _) = pair(&login(&server, &alice, json!({ "refresh_token": true })).await);
    let first = server.get("/sync", &access).await;
    let since = first.assert_ok()["next_batch"].as_str().unwrap().to_owned();
    let waiting = tokio::spawn(TestServer::finish(
        server
            .client
            .get(server.url(&format!("/sync?since={since}&timeout=10000")))
            .bearer_auth(&access),
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Another device's write wakes the long-poll, which finds its token expired.
    server
        .put(
            &format!("/user/{}/account_data/org.example.x", alice.user_id),
            &alice.token,
            json!({ "n": 1 }),
        )
        .await
        .assert_ok();
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the long-poll must be answered")
        .unwrap();
    assert_soft_logout(&answered);
}
