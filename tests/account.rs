//! Account management (issue 12): password change (`password_management.yaml`), deactivation
//! (`account_deactivation.yaml`), third-party identifiers (`administrative_contact.yaml`) and
//! lookups (`third_party_lookup.yaml`). Behaviours AU-17, AU-18, PG-09, DD-01.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, Resp, TestServer, User, appservice_file, enc, next_batch};
use reqwest::Method;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a much better passphrase";

/// `POST path` by `user`: the first round must be a fresh password challenge; the second
/// sends the password. The second response.
async fn with_password(server: &TestServer, user: &User, path: &str, body: Value) -> Resp {
    let first = server.post(path, &user.token, body.clone()).await;
    assert_eq!(first.status, 401, "{}", first.body);
    assert_eq!(
        first.body["flows"],
        json!([{ "stages": ["m.login.password"] }])
    );
    assert!(first.body.get("errcode").is_none(), "{}", first.body);
    let mut body = body;
    body["auth"] = TestServer::password_auth(user, &first.body["session"]);
    server.post(path, &user.token, body).await
}

async fn login_with(server: &TestServer, user: &User, password: &str) -> Resp {
    server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user.localpart },
                "password": password,
            })),
        )
        .await
}

async fn add_pusher(server: &TestServer, user: &User, key: &str) {
    server
        .post(
            "/pushers/set",
            &user.token,
            json!({
                "kind": "http",
                "app_id": "org.example.app",
                "pushkey": key,
                "app_display_name": "App",
                "device_display_name": "Phone",
                "lang": "en",
                "data": { "url": "https://push.example.org/_matrix/push/v1/notify" },
            }),
        )
        .await
        .assert_ok();
}

fn pushkeys(resp: &Resp) -> Vec<String> {
    let mut keys: Vec<String> = resp.body["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn au17_pg09_password_change_signs_out_the_other_devices_at_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    add_pusher(&server, &alice, "mine").await;
    add_pusher(&server, &other, "theirs").await;

    // The other device long-polls while the password changes.
    let since = next_batch(&server.sync(&other, &[]).await);
    let url = server.url(&format!("/sync?since={}&timeout=20000", enc(&since)));
    let waiting = tokio::spawn(TestServer::finish(
        server.client.get(url).bearer_auth(&other.token),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the sync should be waiting");

    let done = with_password(
        &server,
        &alice,
        "/account/password",
        json!({ "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(done.assert_ok(), &json!({}));

    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the other device's long-poll must be answered at once")
        .unwrap();
    answered.assert_error(401, "M_UNKNOWN_TOKEN");
    server
        .get("/account/whoami", &other.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    // The caller's own session keeps working, with its pusher; the other's pusher is gone.
    let devices = server.get("/devices", &alice.token).await;
    let listed: Vec<&str> = devices.assert_ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![alice.device_id.as_str()]);
    assert_eq!(
        pushkeys(&server.get("/pushers", &alice.token).await),
        vec!["mine"]
    );

    login_with(&server, &alice, PASSWORD)
        .await
        .assert_error(403, "M_FORBIDDEN");
    login_with(&server, &alice, NEW_PASSWORD).await.assert_ok();
}

#[tokio::test]
async fn au17_logout_devices_false_keeps_the_other_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = server.login(&alice, None).await;
    add_pusher(&server, &other, "theirs").await;
    with_password(
        &server,
        &alice,
        "/account/password",
        json!({ "new_password": NEW_PASSWORD, "logout_devices": false }),
    )
    .await
    .assert_ok();
    server
        .get("/account/whoami", &other.token)
        .await
        .assert_ok();
    assert_eq!(
        pushkeys(&server.get("/pushers", &other.token).await),
        vec!["theirs"]
    );
    login_with(&server, &alice, NEW_PASSWORD).await.assert_ok();
}

#[tokio::test]
async fn password_change_checks_its_body_before_uia_and_the_password_in_uia() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let post = |body: Value| server.post("/account/password", &alice.token, body);
    post(json!({})).await.assert_error(400, "M_MISSING_PARAM");
    post(json!({ "new_password": 5 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    post(json!({ "new_password": "" }))
        .await
        .assert_error(400, "M_WEAK_PASSWORD");
    post(json!({ "new_password": "x".repeat(513) }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    post(json!({ "new_password": NEW_PASSWORD, "logout_devices": "yes" }))
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .call(
            Method::POST,
            "/account/password",
            None,
            Some(json!({ "new_password": NEW_PASSWORD })),
        )
        .await
        .assert_error(401, "M_MISSING_TOKEN");

    // UIA-04: a wrong current password is a 401 that names the failure; nothing changes.
    let first = post(json!({ "new_password": NEW_PASSWORD })).await;
    let mut auth = TestServer::password_auth(&alice, &first.body["session"]);
    auth["password"] = json!("wrong");
    let wrong = post(json!({ "new_password": NEW_PASSWORD, "auth": auth })).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.errcode(), "M_FORBIDDEN");
    assert!(wrong.body["session"].is_string());
    login_with(&server, &alice, PASSWORD).await.assert_ok();

    let caps = server.get("/capabilities", &alice.token).await;
    assert_eq!(
        caps.assert_ok()["capabilities"]["m.change_password"]["enabled"],
        true
    );
}

#[tokio::test]
async fn au18_deactivation_signs_out_leaves_rooms_and_reserves_the_id() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let invited = server.create_room(&bob, json!({})).await;
    server.invite(&bob, &invited, &alice).await;
    let since = next_batch(&server.sync(&bob, &[]).await);
    let second = server.login(&alice, None).await;
    add_pusher(&server, &second, "theirs").await;
    server
        .put(
            &format!(
                "/user/{}/account_data/org.example.settings",
                enc(&alice.user_id)
            ),
            &alice.token,
            json!({ "secret": true }),
        )
        .await
        .assert_ok();

    let done = with_password(&server, &alice, "/account/deactivate", json!({})).await;
    assert_eq!(
        done.assert_ok(),
        &json!({ "id_server_unbind_result": "success" })
    );

    for user in [&alice, &second] {
        server
            .get("/account/whoami", &user.token)
            .await
            .assert_error(401, "M_UNKNOWN_TOKEN");
    }
    login_with(&server, &alice, PASSWORD)
        .await
        .assert_error(403, "M_USER_DEACTIVATED");
    let again = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({ "username": "alice", "password": PASSWORD })),
        )
        .await;
    again.assert_error(400, "M_USER_IN_USE");
    server
        .call(
            Method::GET,
            "/register/available?username=alice",
            None,
            None,
        )
        .await
        .assert_error(400, "M_USER_IN_USE");
    assert!(
        server
            .services()
            .store
            .list_devices(&alice.user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Bob sees Alice leave the shared room and the invited one, and her profile is gone.
    let sync = server.sync(&bob, &[("since", &since)]).await;
    for room_id in [&room, &invited] {
        let events = &sync["rooms"]["join"][room_id.as_str()]["timeline"]["events"];
        let left = events.as_array().unwrap().iter().any(|e| {
            e["type"] == "m.room.member"
                && e["state_key"] == alice.user_id.as_str()
                && e["content"]["membership"] == "leave"
        });
        assert!(left, "no leave of alice in {room_id}: {events}");
    }
    let profile = server
        .get(&format!("/profile/{}", enc(&alice.user_id)), &bob.token)
        .await;
    assert_eq!(profile.assert_ok(), &json!({}));
    let stored = server
        .services()
        .store
        .get_account_data(&alice.user_id, None, "org.example.settings")
        .await
        .unwrap();
    assert_eq!(stored, None, "account data must be deleted");
}

#[tokio::test]
async fn erasure_redacts_the_users_events_for_later_joiners_only() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let secret = server.send_text(&alice, &room, "my secret").await;
    let done = with_password(
        &server,
        &alice,
        "/account/deactivate",
        json!({ "erase": true }),
    )
    .await;
    done.assert_ok();
    server.join(&carol, &room).await;

    let event_path = format!("/rooms/{}/event/{}", enc(&room), enc(&secret));
    // Bob was in the room before: he still sees it as it was.
    let seen = server.get(&event_path, &bob.token).await;
    assert_eq!(seen.assert_ok()["content"]["body"], "my secret");
    // Carol joined after the erasure: a redacted copy, everywhere it is served.
    let served = server.get(&event_path, &carol.token).await;
    assert_eq!(served.assert_ok()["content"], json!({}), "{}", served.body);
    assert!(served.body["unsigned"].get("redacted_because").is_none());
    let messages = server
        .get(
            &format!("/rooms/{}/messages?dir=b&limit=50", enc(&room)),
            &carol.token,
        )
        .await;
    let in_messages = messages.assert_ok()["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == secret.as_str())
        .cloned()
        .expect("the message is still listed");
    assert_eq!(in_messages["content"], json!({}));
    let filter = r#"{"room":{"timeline":{"limit":50}},"event_format":"federation"}"#;
    let sync = server.sync(&carol, &[("filter", filter)]).await;
    let pdu = sync["rooms"]["join"][room.as_str()]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.message" && e["sender"] == alice.user_id.as_str())
        .cloned()
        .expect("the message is in carol's timeline");
    assert_eq!(pdu["content"], json!({}), "{pdu}");
    let bob_sync = server
        .sync(&bob, &[("filter", r#"{"room":{"timeline":{"limit":50}}}"#)])
        .await;
    let bobs = bob_sync["rooms"]["join"][room.as_str()]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == secret.as_str())
        .cloned()
        .expect("the message is in bob's timeline");
    assert_eq!(bobs["content"]["body"], "my secret");
    // The erased words are no longer searchable, by anyone; others' words still are.
    let bobs_secret = server.send_text(&bob, &room, "a secret of bob").await;
    for reader in [&bob, &carol] {
        let results = server
            .post(
                "/search",
                &reader.token,
                json!({ "search_categories": { "room_events": { "search_term": "secret" } } }),
            )
            .await;
        let results = &results.assert_ok()["search_categories"]["room_events"];
        assert_eq!(results["count"], json!(1), "{results}");
        assert_eq!(
            results["results"][0]["result"]["event_id"],
            json!(bobs_secret)
        );
    }
}

#[tokio::test]
async fn a_redacted_event_is_redacted_in_the_federation_format_too() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let id = server.send_text(&alice, &room, "oops").await;
    server
        .put(
            &format!(
                "/rooms/{}/redact/{}/{}",
                enc(&room),
                enc(&id),
                common::txn()
            ),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    let filter = r#"{"room":{"timeline":{"limit":50}},"event_format":"federation"}"#;
    let sync = server.sync(&bob, &[("filter", filter)]).await;
    let pdu = sync["rooms"]["join"][room.as_str()]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.message")
        .cloned()
        .expect("the message is in the timeline");
    assert_eq!(pdu["content"], json!({}), "{pdu}");
}

#[tokio::test]
async fn deactivation_racing_logins_leaves_no_device_behind() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_account.burst = 1000;
        config.rate_limits.login_failures_per_address.burst = 1000;
    })
    .await;
    let alice = server.register("alice").await;
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let request = server.client.post(server.url("/login")).json(&json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": PASSWORD,
            }));
            tokio::spawn(TestServer::finish(request))
        })
        .collect();
    with_password(&server, &alice, "/account/deactivate", json!({}))
        .await
        .assert_ok();
    for login in logins {
        let resp = login.await.unwrap();
        if resp.status.is_success() {
            // A login that won the race lost its device with the account.
            let token = resp.body["access_token"].as_str().unwrap();
            server
                .get("/account/whoami", token)
                .await
                .assert_error(401, "M_UNKNOWN_TOKEN");
        } else {
            resp.assert_error(403, "M_USER_DEACTIVATED");
        }
    }
    assert!(
        server
            .services()
            .store
            .list_devices(&alice.user_id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deactivation_refuses_a_bad_body_and_a_wrong_password_keeping_the_account() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    server
        .post(
            "/account/deactivate",
            &alice.token,
            json!({ "erase": "no" }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .call(Method::POST, "/account/deactivate", None, Some(json!({})))
        .await
        .assert_error(401, "M_MISSING_TOKEN");
    let first = server
        .post("/account/deactivate", &alice.token, json!({}))
        .await;
    let mut auth = TestServer::password_auth(&alice, &first.body["session"]);
    auth["password"] = json!("wrong");
    let wrong = server
        .post("/account/deactivate", &alice.token, json!({ "auth": auth }))
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.errcode(), "M_FORBIDDEN");
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_ok();
}

#[tokio::test]
async fn appservice_deactivates_its_user_without_uia_and_may_not_act_for_it_after() {
    const AS_TOKEN: &str = "as_token_bridge_0123456789";
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(
            dir,
            "bridge",
            AS_TOKEN,
            "rate_limited: false\n",
        )];
    })
    .await;
    server
        .post(
            "/register",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "username": "bridge_x",
                "inhibit_login": true,
            }),
        )
        .await
        .assert_ok();
    let as_ghost = |path: &str| format!("{path}?user_id={}", enc("@bridge_x:localhost"));
    server
        .post(
            &as_ghost("/account/password"),
            AS_TOKEN,
            json!({ "new_password": "x" }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    let done = server
        .post(&as_ghost("/account/deactivate"), AS_TOKEN, json!({}))
        .await;
    assert_eq!(
        done.assert_ok(),
        &json!({ "id_server_unbind_result": "success" })
    );
    server
        .get(&as_ghost("/account/whoami"), AS_TOKEN)
        .await
        .assert_error(403, "M_USER_DEACTIVATED");
    let login = server
        .post(
            "/login",
            AS_TOKEN,
            json!({
                "type": "m.login.application_service",
                "identifier": { "type": "m.id.user", "user": "bridge_x" },
            }),
        )
        .await;
    login.assert_error(403, "M_USER_DEACTIVATED");
}

#[tokio::test]
async fn threepids_are_an_empty_list_that_cannot_change() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let listed = server.get("/account/3pid", &alice.token).await;
    assert_eq!(listed.assert_ok(), &json!({ "threepids": [] }));
    for path in [
        "/account/3pid",
        "/account/3pid/add",
        "/account/3pid/bind",
        "/account/3pid/delete",
        "/account/3pid/unbind",
    ] {
        server
            .post(
                path,
                &alice.token,
                json!({ "medium": "email", "address": "a@example.org" }),
            )
            .await
            .assert_error(403, "M_FORBIDDEN");
    }
    let validation =
        json!({ "client_secret": "s3cret", "email": "a@example.org", "send_attempt": 1 });
    for path in [
        "/account/3pid/email/requestToken",
        "/account/3pid/msisdn/requestToken",
        "/register/email/requestToken",
        "/register/msisdn/requestToken",
    ] {
        server
            .call(Method::POST, path, None, Some(validation.clone()))
            .await
            .assert_error(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED");
    }
    for path in [
        "/account/password/email/requestToken",
        "/account/password/msisdn/requestToken",
    ] {
        server
            .call(Method::POST, path, None, Some(validation.clone()))
            .await
            .assert_error(400, "M_THREEPID_NOT_FOUND");
    }
    server
        .call(Method::GET, "/account/3pid", None, None)
        .await
        .assert_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn thirdparty_knows_no_protocol() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let protocols = server.get("/thirdparty/protocols", &alice.token).await;
    assert_eq!(protocols.assert_ok(), &json!({}));
    for path in [
        "/thirdparty/protocol/irc",
        "/thirdparty/location/irc?server=x",
        "/thirdparty/user/irc",
        "/thirdparty/location?alias=%23a%3Ab",
        "/thirdparty/user?userid=%40a%3Ab",
    ] {
        server
            .get(path, &alice.token)
            .await
            .assert_error(404, "M_NOT_FOUND");
    }
}
