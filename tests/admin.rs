//! The admin API under `/_synapse/admin` (issue 14), in the shapes admin tools read
//! (`operator-anchors.md` §1): users, devices, sessions, account data, flags; and the spec's
//! `/admin/whois` (`admin.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, Resp, TestServer, User, enc, next_batch};
use reqwest::Method;
use serde_json::{Value, json};

const A: &str = "/_synapse/admin";

/// A server with `admin` (a server admin) and `bob` (not).
async fn setup() -> (TestServer, User, User) {
    let server = TestServer::start().await;
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    let bob = server.register("bob").await;
    (server, admin, bob)
}

fn user_path(user_id: &str, rest: &str) -> String {
    format!("{A}/v2/users/{}{rest}", enc(user_id))
}

async fn delete(server: &TestServer, path: &str, token: &str) -> Resp {
    server.call(Method::DELETE, path, Some(token), None).await
}

async fn login(server: &TestServer, localpart: &str, password: &str) -> Resp {
    server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": localpart },
                "password": password,
            })),
        )
        .await
}

#[tokio::test]
async fn server_version_needs_no_token() {
    let (server, _, _) = setup().await;
    let resp = server
        .call(Method::GET, &format!("{A}/v1/server_version"), None, None)
        .await;
    let version = resp.assert_ok()["server_version"].as_str().unwrap();
    assert!(version.starts_with("Myelin "), "{version}");
    // CORS, for the browser UIs on another origin.
    assert_eq!(resp.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn only_server_admins_are_answered() {
    let (server, admin, bob) = setup().await;
    let paths = [
        format!("{A}/v2/users"),
        format!("{A}/v3/users"),
        user_path(&admin.user_id, ""),
        user_path(&admin.user_id, "/devices"),
        format!("{A}/v1/registration_tokens"),
        format!("{A}/v1/users/{}/accountdata", enc(&admin.user_id)),
        format!("{A}/v1/whois/{}", enc(&admin.user_id)),
    ];
    for path in &paths {
        let resp = server.get(path, &bob.token).await;
        resp.assert_error(403, "M_FORBIDDEN");
        assert_eq!(resp.body["error"], "You are not a server admin");
        server
            .call(Method::GET, path, None, None)
            .await
            .assert_error(401, "M_MISSING_TOKEN");
    }
    let resp = server
        .put(&user_path("@carol:localhost", ""), &bob.token, json!({}))
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    // Nothing was created.
    server
        .get(&user_path("@carol:localhost", ""), &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Everything answers the admin.
    for path in &paths {
        server.get(path, &admin.token).await.assert_ok();
    }
}

#[tokio::test]
async fn remote_and_malformed_users_are_refused() {
    let (server, admin, _) = setup().await;
    let resp = server
        .get(&user_path("@alice:elsewhere.example", ""), &admin.token)
        .await;
    resp.assert_error(400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "Can only look up local users");
    server
        .get(
            &user_path("@alice:elsewhere.example", "/devices"),
            &admin.token,
        )
        .await
        .assert_error(400, "M_UNKNOWN");
    server
        .get(&user_path("not-a-user-id", ""), &admin.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let resp = server
        .get(&user_path("@nobody:localhost", "/devices"), &admin.token)
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "Unknown user");
}

#[tokio::test]
async fn the_user_list_pages_filters_and_sorts() {
    let (server, admin, bob) = setup().await;
    for name in ["carol", "dave", "erin"] {
        server.register(name).await;
    }
    server
        .put(
            &format!("/profile/{}/displayname", enc(&bob.user_id)),
            &bob.token,
            json!({ "displayname": "Robert Zed" }),
        )
        .await
        .assert_ok();
    let list = server
        .get(&format!("{A}/v2/users?from=0&limit=2"), &admin.token)
        .await;
    let list = list.assert_ok();
    assert_eq!(list["total"], 5);
    assert_eq!(list["next_token"], "2");
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["@admin:localhost", "@bob:localhost"]);
    let first = &list["users"][0];
    assert_eq!(first["admin"], true);
    assert_eq!(first["deactivated"], false);
    assert_eq!(first["is_guest"], false);
    assert_eq!(first["displayname"], "admin");
    // The list gives milliseconds.
    assert!(first["creation_ts"].as_i64().unwrap() > 1_600_000_000_000);
    let last = server
        .get(&format!("{A}/v2/users?from=4&limit=2"), &admin.token)
        .await;
    let last = last.assert_ok();
    assert_eq!(last["users"].as_array().unwrap().len(), 1);
    assert!(last.get("next_token").is_none(), "{last}");
    // `name` matches the localpart or the display name, in any case.
    let found = server
        .get(&format!("{A}/v2/users?name=zed"), &admin.token)
        .await;
    assert_eq!(found.assert_ok()["users"][0]["name"], "@bob:localhost");
    let found = server
        .get(&format!("{A}/v2/users?admins=true"), &admin.token)
        .await;
    assert_eq!(found.assert_ok()["total"], 1);
    let backwards = server
        .get(
            &format!("{A}/v2/users?order_by=name&dir=b&limit=1"),
            &admin.token,
        )
        .await;
    assert_eq!(backwards.assert_ok()["users"][0]["name"], "@erin:localhost");
    for bad in [
        "from=-1",
        "limit=x",
        "order_by=password",
        "dir=up",
        "admins=maybe",
    ] {
        server
            .get(&format!("{A}/v2/users?{bad}"), &admin.token)
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
}

#[tokio::test]
async fn deactivated_users_are_listed_as_each_version_says() {
    let (server, admin, bob) = setup().await;
    server
        .post(
            &format!("{A}/v1/deactivate/{}", enc(&bob.user_id)),
            &admin.token,
            json!({}),
        )
        .await
        .assert_ok();
    let total = |v: &Value| v["total"].as_u64().unwrap();
    let v2 = server.get(&format!("{A}/v2/users"), &admin.token).await;
    assert_eq!(total(v2.assert_ok()), 1);
    let v2 = server
        .get(&format!("{A}/v2/users?deactivated=true"), &admin.token)
        .await;
    assert_eq!(total(v2.assert_ok()), 2);
    let v3 = server.get(&format!("{A}/v3/users"), &admin.token).await;
    assert_eq!(total(v3.assert_ok()), 2);
    let v3 = server
        .get(&format!("{A}/v3/users?deactivated=true"), &admin.token)
        .await;
    let v3 = v3.assert_ok();
    assert_eq!(total(v3), 1);
    assert_eq!(v3["users"][0]["deactivated"], true);
}

#[tokio::test]
async fn put_creates_a_user_that_can_log_in() {
    let (server, admin, _) = setup().await;
    let resp = server
        .put(
            &user_path("@carol:localhost", ""),
            &admin.token,
            json!({ "password": "carols secret", "displayname": "Carol", "admin": false }),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.body["name"], "@carol:localhost");
    assert_eq!(resp.body["displayname"], "Carol");
    assert_eq!(resp.body["threepids"], json!([]));
    // Seconds here, as the reference server answers.
    let created = resp.body["creation_ts"].as_i64().unwrap();
    assert!(
        (1_600_000_000..10_000_000_000).contains(&created),
        "{created}"
    );
    login(&server, "carol", "carols secret").await.assert_ok();
    // The same call again modifies: 200.
    let again = server
        .put(
            &user_path("@carol:localhost", ""),
            &admin.token,
            json!({ "displayname": "" }),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["displayname"], Value::Null);
    // Invalid localparts and bodies.
    server
        .put(&user_path("@Bad:localhost", ""), &admin.token, json!({}))
        .await
        .assert_error(400, "M_INVALID_USERNAME");
    server
        .put(&user_path("alice", ""), &admin.token, json!({}))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .put(
            &user_path("@dave:localhost", ""),
            &admin.token,
            json!({ "admin": "yes" }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .put(
            &user_path("@dave:localhost", ""),
            &admin.token,
            json!({ "deactivated": true, "locked": true }),
        )
        .await
        .assert_error(400, "M_UNKNOWN");
}

#[tokio::test]
async fn an_admin_cannot_demote_themself() {
    let (server, admin, bob) = setup().await;
    let resp = server
        .put(
            &user_path(&admin.user_id, ""),
            &admin.token,
            json!({ "admin": false }),
        )
        .await;
    resp.assert_error(400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "You may not demote yourself.");
    let path = format!("{A}/v1/users/{}/admin", enc(&admin.user_id));
    server
        .put(&path, &admin.token, json!({ "admin": false }))
        .await
        .assert_error(400, "M_UNKNOWN");
    // Promoting bob lets him in.
    let bob_path = format!("{A}/v1/users/{}/admin", enc(&bob.user_id));
    let before = server.get(&bob_path, &admin.token).await;
    assert_eq!(before.assert_ok()["admin"], false);
    server
        .put(&bob_path, &admin.token, json!({ "admin": true }))
        .await
        .assert_ok();
    assert_eq!(
        server.get(&bob_path, &bob.token).await.assert_ok()["admin"],
        true
    );
}

#[tokio::test]
async fn a_password_change_signs_out_unless_asked_not_to() {
    let (server, admin, bob) = setup().await;
    let second = server.login(&bob, Some("SECOND")).await;
    server
        .post(
            &format!("{A}/v1/reset_password/{}", enc(&bob.user_id)),
            &admin.token,
            json!({ "new_password": "new secret one", "logout_devices": false }),
        )
        .await
        .assert_ok();
    server
        .get("/account/whoami", &second.token)
        .await
        .assert_ok();
    login(&server, "bob", PASSWORD)
        .await
        .assert_error(403, "M_FORBIDDEN");
    login(&server, "bob", "new secret one").await.assert_ok();
    // Through PUT, with the default logout_devices: every device goes.
    server
        .put(
            &user_path(&bob.user_id, ""),
            &admin.token,
            json!({ "password": "new secret two" }),
        )
        .await
        .assert_ok();
    for token in [&bob.token, &second.token] {
        server
            .get("/account/whoami", token)
            .await
            .assert_error(401, "M_UNKNOWN_TOKEN");
    }
    let devices = server
        .get(&user_path(&bob.user_id, "/devices"), &admin.token)
        .await;
    assert_eq!(devices.assert_ok()["total"], 0);
    server
        .post(
            &format!("{A}/v1/reset_password/{}", enc(&bob.user_id)),
            &admin.token,
            json!({}),
        )
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn a_locked_account_is_refused_until_unlocked() {
    let (server, admin, bob) = setup().await;
    let since = next_batch(&server.sync(&bob, &[]).await);
    let waiting = server.spawn_sync(&bob, &since, 20_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = server
        .put(
            &user_path(&bob.user_id, ""),
            &admin.token,
            json!({ "locked": true }),
        )
        .await;
    assert_eq!(resp.assert_ok()["locked"], true);
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the long-poll was not answered")
        .unwrap();
    assert_eq!(answered["errcode"], "M_USER_LOCKED", "{answered}");
    let resp = server.get("/account/whoami", &bob.token).await;
    resp.assert_error(401, "M_USER_LOCKED");
    assert_eq!(resp.body["soft_logout"], true);
    login(&server, "bob", PASSWORD)
        .await
        .assert_error(401, "M_USER_LOCKED");
    // A wrong password learns nothing about the lock.
    login(&server, "bob", "wrong")
        .await
        .assert_error(403, "M_FORBIDDEN");
    // Locked accounts are left out of the list unless asked for.
    let list = server.get(&format!("{A}/v2/users"), &admin.token).await;
    assert_eq!(list.assert_ok()["total"], 1);
    let list = server
        .get(&format!("{A}/v2/users?locked=true"), &admin.token)
        .await;
    assert_eq!(list.assert_ok()["total"], 2);
    server
        .put(
            &user_path(&bob.user_id, ""),
            &admin.token,
            json!({ "locked": false }),
        )
        .await
        .assert_ok();
    server.get("/account/whoami", &bob.token).await.assert_ok();
}

#[tokio::test]
async fn deactivation_and_reactivation() {
    let (server, admin, bob) = setup().await;
    let (_, room) = {
        let room = server.create_room(&bob, json!({})).await;
        (bob.clone(), room)
    };
    let resp = server
        .post(
            &format!("{A}/v1/deactivate/{}", enc(&bob.user_id)),
            &admin.token,
            json!({ "erase": true }),
        )
        .await;
    assert_eq!(resp.assert_ok()["id_server_unbind_result"], "success");
    server
        .get("/account/whoami", &bob.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    let details = server.get(&user_path(&bob.user_id, ""), &admin.token).await;
    let details = details.assert_ok();
    assert_eq!(details["deactivated"], true);
    assert_eq!(details["erased"], true);
    let rooms = server
        .get(
            &format!("{A}/v1/users/{}/joined_rooms", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    assert_eq!(rooms.assert_ok()["joined_rooms"], json!([]), "left {room}");
    // Twice is fine.
    server
        .post(
            &format!("{A}/v1/deactivate/{}", enc(&bob.user_id)),
            &admin.token,
            json!({}),
        )
        .await
        .assert_ok();
    // Reactivation needs a password.
    let path = user_path(&bob.user_id, "");
    server
        .put(&path, &admin.token, json!({ "deactivated": false }))
        .await
        .assert_error(400, "M_UNKNOWN");
    let back = server
        .put(
            &path,
            &admin.token,
            json!({ "deactivated": false, "password": "welcome back" }),
        )
        .await;
    let back = back.assert_ok();
    assert_eq!(back["deactivated"], false);
    assert_eq!(back["erased"], false);
    assert_eq!(back["displayname"], "bob");
    login(&server, "bob", "welcome back").await.assert_ok();
}

#[tokio::test]
async fn devices_are_listed_renamed_and_deleted_without_uia() {
    let (server, admin, bob) = setup().await;
    let phone = server.login(&bob, Some("PHONE")).await;
    // Seen with an address and an agent.
    server
        .client
        .get(server.url("/account/whoami"))
        .bearer_auth(&phone.token)
        .header("user-agent", "Phone/1.0")
        .send()
        .await
        .unwrap();
    let list = server
        .get(&user_path(&bob.user_id, "/devices"), &admin.token)
        .await;
    let list = list.assert_ok();
    assert_eq!(list["total"], 2);
    let entry = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "PHONE")
        .unwrap();
    assert_eq!(entry["user_id"], bob.user_id);
    assert_eq!(entry["last_seen_ip"], "127.0.0.1");
    assert_eq!(entry["last_seen_user_agent"], "Phone/1.0");
    assert!(entry["last_seen_ts"].is_i64());
    let device = user_path(&bob.user_id, "/devices/PHONE");
    server
        .put(
            &device,
            &admin.token,
            json!({ "display_name": "Bob's phone" }),
        )
        .await
        .assert_ok();
    let one = server.get(&device, &admin.token).await;
    assert_eq!(one.assert_ok()["display_name"], "Bob's phone");
    server
        .get(&user_path(&bob.user_id, "/devices/NOPE"), &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    // Deleted while its owner long-polls: the long-poll is answered 401 at once.
    let since = next_batch(&server.sync(&phone, &[]).await);
    let waiting = server.spawn_sync(&phone, &since, 20_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    delete(&server, &device, &admin.token).await.assert_ok();
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the long-poll was not answered")
        .unwrap();
    assert_eq!(answered["errcode"], "M_UNKNOWN_TOKEN", "{answered}");
    server
        .get("/account/whoami", &phone.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    // Create, then bulk delete.
    let created = server
        .post(
            &user_path(&bob.user_id, "/devices"),
            &admin.token,
            json!({ "device_id": "SPARE" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    server
        .post(
            &user_path(&bob.user_id, "/devices"),
            &admin.token,
            json!({}),
        )
        .await
        .assert_error(400, "M_MISSING_PARAM");
    server
        .post(
            &user_path(&bob.user_id, "/delete_devices"),
            &admin.token,
            json!({ "devices": ["SPARE", &bob.device_id] }),
        )
        .await
        .assert_ok();
    let list = server
        .get(&user_path(&bob.user_id, "/devices"), &admin.token)
        .await;
    assert_eq!(list.assert_ok()["total"], 0);
    server
        .post(
            &user_path(&bob.user_id, "/delete_devices"),
            &admin.token,
            json!({}),
        )
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn whois_shows_sessions_to_admins_and_to_the_user() {
    let (server, admin, bob) = setup().await;
    server
        .client
        .get(server.url("/account/whoami"))
        .bearer_auth(&bob.token)
        .header("user-agent", "Element/1.11")
        .send()
        .await
        .unwrap();
    for (path, token) in [
        (format!("{A}/v1/whois/{}", enc(&bob.user_id)), &admin.token),
        (format!("/admin/whois/{}", enc(&bob.user_id)), &bob.token),
    ] {
        let resp = server.get(&path, token).await;
        let body = resp.assert_ok();
        assert_eq!(body["user_id"], bob.user_id);
        let connections = &body["devices"][""]["sessions"][0]["connections"];
        assert_eq!(connections[0]["ip"], "127.0.0.1", "{body}");
        assert_eq!(connections[0]["user_agent"], "Element/1.11");
        assert!(connections[0]["last_seen"].is_i64());
    }
    server
        .get(&format!("/admin/whois/{}", enc(&admin.user_id)), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn account_data_pushers_and_rooms_of_a_user() {
    let (server, admin, bob) = setup().await;
    let room = server.create_room(&bob, json!({})).await;
    server
        .put(
            &format!(
                "/user/{}/account_data/org.example.settings",
                enc(&bob.user_id)
            ),
            &bob.token,
            json!({ "theme": "dark" }),
        )
        .await
        .assert_ok();
    server
        .put(
            &format!(
                "/user/{}/rooms/{}/account_data/org.example.room",
                enc(&bob.user_id),
                enc(&room)
            ),
            &bob.token,
            json!({ "pinned": true }),
        )
        .await
        .assert_ok();
    let data = server
        .get(
            &format!("{A}/v1/users/{}/accountdata", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    let data = data.assert_ok();
    assert_eq!(
        data["account_data"]["global"]["org.example.settings"],
        json!({ "theme": "dark" })
    );
    assert_eq!(
        data["account_data"]["rooms"][&room]["org.example.room"],
        json!({ "pinned": true })
    );
    let rooms = server
        .get(
            &format!("{A}/v1/users/{}/joined_rooms", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    assert_eq!(
        rooms.assert_ok(),
        &json!({ "joined_rooms": [room], "total": 1 })
    );
    // Ketesa's memberships tab.
    let left = server.create_room(&bob, json!({})).await;
    server
        .room_post(&bob, &left, "leave", json!({}))
        .await
        .assert_ok();
    let memberships = server
        .get(
            &format!("{A}/v1/users/{}/memberships", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    assert_eq!(
        memberships.assert_ok(),
        &json!({ "memberships": { room.clone(): "join", left.clone(): "leave" }, "total": 2 })
    );
    let pushers = server
        .get(
            &format!("{A}/v1/users/{}/pushers", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    assert_eq!(pushers.assert_ok(), &json!({ "pushers": [], "total": 0 }));
    let media = server
        .get(
            &format!("{A}/v1/users/{}/media", enc(&bob.user_id)),
            &admin.token,
        )
        .await;
    assert_eq!(media.assert_ok(), &json!({ "media": [], "total": 0 }));
}

#[tokio::test]
async fn username_availability_and_suspension() {
    let (server, admin, bob) = setup().await;
    let free = server
        .get(
            &format!("{A}/v1/username_available?username=zoe"),
            &admin.token,
        )
        .await;
    assert_eq!(free.assert_ok()["available"], true);
    server
        .get(
            &format!("{A}/v1/username_available?username=bob"),
            &admin.token,
        )
        .await
        .assert_error(400, "M_USER_IN_USE");
    server
        .get(&format!("{A}/v1/username_available"), &admin.token)
        .await
        .assert_error(400, "M_MISSING_PARAM");
    let path = format!("{A}/v1/suspend/{}", enc(&bob.user_id));
    let resp = server
        .put(&path, &admin.token, json!({ "suspend": true }))
        .await;
    assert_eq!(
        resp.assert_ok()[format!("user_{}_suspended", bob.user_id)],
        true
    );
    let details = server.get(&user_path(&bob.user_id, ""), &admin.token).await;
    assert_eq!(details.assert_ok()["suspended"], true);
    server
        .put(&path, &admin.token, json!({}))
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn a_suspended_account_reads_but_does_not_act() {
    let (server, admin, bob) = setup().await;
    let room = server
        .create_room(&admin, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let own = server.send_text(&bob, &room, "before").await;
    let theirs = server.send_text(&admin, &room, "the admin's").await;
    let path = format!("{A}/v1/suspend/{}", enc(&bob.user_id));
    server
        .put(&path, &admin.token, json!({ "suspend": true }))
        .await
        .assert_ok();
    server
        .send_event(
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "x" }),
        )
        .await
        .assert_error(403, "M_USER_SUSPENDED");
    server
        .put(
            &format!("/profile/{}/displayname", enc(&bob.user_id)),
            &bob.token,
            json!({ "displayname": "Spam" }),
        )
        .await
        .assert_error(403, "M_USER_SUSPENDED");
    server
        .post("/createRoom", &bob.token, json!({}))
        .await
        .assert_error(403, "M_USER_SUSPENDED");
    let redact = |event: &str| {
        format!(
            "/rooms/{}/redact/{}/{}",
            enc(&room),
            enc(event),
            common::txn()
        )
    };
    server
        .put(&redact(&theirs), &bob.token, json!({}))
        .await
        .assert_error(403, "M_USER_SUSPENDED");
    // Reading, redacting its own events and leaving still work.
    server.sync(&bob, &[]).await;
    server
        .put(&redact(&own), &bob.token, json!({}))
        .await
        .assert_ok();
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server
        .room_post(&bob, &room, "join", json!({}))
        .await
        .assert_error(403, "M_USER_SUSPENDED");
    server
        .put(&path, &admin.token, json!({ "suspend": false }))
        .await
        .assert_ok();
    server.join(&bob, &room).await;
    server.send_text(&bob, &room, "after").await;
}

#[tokio::test]
async fn rooms_are_listed_and_shown_to_admins_whatever_their_membership() {
    let (server, admin, bob) = setup().await;
    let carol = server.register("carol").await;
    let public = server
        .create_room(
            &bob,
            json!({ "preset": "public_chat", "name": "Bob's lounge", "topic": "chat" }),
        )
        .await;
    server.join(&carol, &public).await;
    let private = server
        .create_room(&carol, json!({ "name": "Carol's den" }))
        .await;
    let list = server.get(&format!("{A}/v1/rooms"), &admin.token).await;
    let list = list.assert_ok();
    assert_eq!(list["total_rooms"], 2, "{list}");
    assert_eq!(list["offset"], 0);
    // By name by default.
    let names: Vec<&str> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob's lounge", "Carol's den"]);
    let lounge = &list["rooms"][0];
    assert_eq!(lounge["room_id"], public);
    assert_eq!(lounge["joined_members"], 2);
    assert_eq!(lounge["joined_local_members"], 2);
    assert_eq!(lounge["creator"], bob.user_id);
    assert_eq!(lounge["join_rules"], "public");
    assert_eq!(lounge["history_visibility"], "shared");
    assert!(lounge["state_events"].as_u64().unwrap() >= 6, "{lounge}");
    let by_members = server
        .get(
            &format!("{A}/v1/rooms?order_by=joined_members&dir=b&limit=1"),
            &admin.token,
        )
        .await;
    let by_members = by_members.assert_ok();
    assert_eq!(by_members["rooms"][0]["room_id"], public);
    assert_eq!(by_members["next_batch"], 1);
    let found = server
        .get(&format!("{A}/v1/rooms?search_term=DEN"), &admin.token)
        .await;
    assert_eq!(found.assert_ok()["rooms"][0]["room_id"], private);
    server
        .get(&format!("{A}/v1/rooms?order_by=colour"), &admin.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");

    // The admin is in neither room, and still sees them.
    let details = server
        .get(&format!("{A}/v1/rooms/{}", enc(&private)), &admin.token)
        .await;
    let details = details.assert_ok();
    assert_eq!(details["name"], "Carol's den");
    assert_eq!(details["topic"], Value::Null);
    assert_eq!(details["tombstoned"], false);
    let members = server
        .get(
            &format!("{A}/v1/rooms/{}/members", enc(&public)),
            &admin.token,
        )
        .await;
    let mut listed: Vec<String> = members.assert_ok()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, [bob.user_id.clone(), carol.user_id.clone()]);
    assert_eq!(members.body["total"], 2);
    let state = server
        .get(
            &format!("{A}/v1/rooms/{}/state", enc(&public)),
            &admin.token,
        )
        .await;
    let state = state.assert_ok()["state"].as_array().unwrap().clone();
    let topic = state.iter().find(|e| e["type"] == "m.room.topic").unwrap();
    assert_eq!(topic["content"]["topic"], "chat");
    assert_eq!(topic["room_id"], public);
    // Unknown and malformed rooms; non-admins.
    server
        .get(
            &format!("{A}/v1/rooms/{}", enc("!nope:localhost")),
            &admin.token,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(&format!("{A}/v1/rooms/{}", enc("not-a-room")), &admin.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(&format!("{A}/v1/rooms"), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn an_admin_can_act_as_a_user_through_a_device_of_its_own() {
    let (server, admin, bob) = setup().await;
    let path = format!("{A}/v1/users/{}/login", enc(&bob.user_id));
    let resp = server.post(&path, &admin.token, json!({})).await;
    let token = resp.assert_ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let whoami = server.get("/account/whoami", &token).await;
    assert_eq!(whoami.assert_ok()["user_id"], bob.user_id);
    // Bob sees who signed in.
    let devices = server.get("/devices", &bob.token).await;
    let named = devices.assert_ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == whoami.body["device_id"])
        .unwrap()["display_name"]
        .clone();
    assert_eq!(named, format!("Signed in by {} (admin)", admin.user_id));
    // Deleting that device revokes the token.
    let device = whoami.body["device_id"].as_str().unwrap();
    delete(
        &server,
        &user_path(&bob.user_id, &format!("/devices/{device}")),
        &admin.token,
    )
    .await
    .assert_ok();
    server
        .get("/account/whoami", &token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    // A token with an end is soft-logged-out after it.
    let soon = myelin_core::now_ms() + 300;
    let resp = server
        .post(&path, &admin.token, json!({ "valid_until_ms": soon }))
        .await;
    let brief = resp.assert_ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.get("/account/whoami", &brief).await.assert_ok();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = server.get("/account/whoami", &brief).await;
    expired.assert_error(401, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.body["soft_logout"], true);
    // Not as oneself; not for a non-admin.
    server
        .post(
            &format!("{A}/v1/users/{}/login", enc(&admin.user_id)),
            &admin.token,
            json!({}),
        )
        .await
        .assert_error(400, "M_UNKNOWN");
    server
        .post(&path, &bob.token, json!({}))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

async fn upload(server: &TestServer, user: &User, bytes: &[u8], name: &str) -> String {
    let resp = server
        .client
        .post(format!(
            "{}/_matrix/media/v3/upload?filename={}",
            server.base,
            enc(name)
        ))
        .bearer_auth(&user.token)
        .header("Content-Type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let uri = resp.json::<Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    uri.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_users_media_is_listed_and_deleted() {
    let (server, admin, bob) = setup().await;
    let first = upload(&server, &bob, b"first file", "one.txt").await;
    let second = upload(&server, &bob, b"the second file", "two.txt").await;
    let path = format!("{A}/v1/users/{}/media", enc(&bob.user_id));
    let list = server.get(&path, &admin.token).await;
    let list = list.assert_ok();
    assert_eq!(list["total"], 2);
    assert_eq!(list["media"][0]["media_id"], first);
    assert_eq!(list["media"][0]["media_length"], 10);
    assert_eq!(list["media"][0]["upload_name"], "one.txt");
    assert_eq!(list["media"][0]["media_type"], "text/plain");
    let newest = server
        .get(&format!("{path}?dir=b&limit=1"), &admin.token)
        .await;
    let newest = newest.assert_ok();
    assert_eq!(newest["media"][0]["media_id"], second);
    assert_eq!(newest["next_token"], 1);
    let download = |id: &str| format!("/_matrix/client/v1/media/download/localhost/{id}");
    server.get(&download(&first), &bob.token).await;
    // One item: gone from storage and from downloads.
    let one = format!("{A}/v1/media/localhost/{first}");
    let resp = delete(&server, &one, &admin.token).await;
    assert_eq!(
        resp.assert_ok(),
        &json!({ "deleted_media": [first], "total": 1 })
    );
    let gone = server
        .client
        .get(server.url(&download(&first)))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    delete(&server, &one, &admin.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    delete(
        &server,
        &format!("{A}/v1/media/elsewhere.example/{first}"),
        &admin.token,
    )
    .await
    .assert_error(400, "M_UNKNOWN");
    // All of a user's.
    let resp = delete(&server, &path, &admin.token).await;
    assert_eq!(
        resp.assert_ok(),
        &json!({ "deleted_media": [second], "total": 1 })
    );
    let list = server.get(&path, &admin.token).await;
    assert_eq!(list.assert_ok(), &json!({ "media": [], "total": 0 }));
    delete(&server, &path, &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn the_media_a_room_refers_to_is_listed() {
    let (server, admin, bob) = setup().await;
    let room = server.create_room(&bob, json!({})).await;
    let id = upload(&server, &bob, b"picture bytes", "pic.png").await;
    let local = format!("mxc://localhost/{id}");
    server
        .send_event(
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.image", "body": "pic.png", "url": local,
                    "info": { "thumbnail_url": "mxc://elsewhere.example/thumb" } }),
        )
        .await
        .assert_ok();
    // Redacted events no longer count.
    let gone = server
        .send_event(
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.file", "body": "f", "url": "mxc://localhost/redactedmedia" }),
        )
        .await;
    let gone = gone.assert_ok()["event_id"].as_str().unwrap().to_owned();
    server
        .put(
            &format!(
                "/rooms/{}/redact/{}/{}",
                enc(&room),
                enc(&gone),
                common::txn()
            ),
            &bob.token,
            json!({}),
        )
        .await
        .assert_ok();
    let media = server
        .get(&format!("{A}/v1/room/{}/media", enc(&room)), &admin.token)
        .await;
    assert_eq!(
        media.assert_ok(),
        &json!({ "local": [local], "remote": ["mxc://elsewhere.example/thumb"], "total": 2 })
    );
    server
        .get(&format!("{A}/v1/room/{}/media", enc(&room)), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}
