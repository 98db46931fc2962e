//! Profiles (issue 12, `profile.yaml`; MB-03 of `behaviours-rooms.md`) and
//! `GET /voip/turnServer` (`voip.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, types_of};
use reqwest::Method;
use serde_json::{Value, json};

async fn set(server: &TestServer, user: &User, key: &str, body: Value) -> common::Resp {
    server
        .put(
            &format!("/profile/{}/{key}", user.user_id),
            &user.token,
            body,
        )
        .await
}

async fn profile(server: &TestServer, user_id: &str) -> common::Resp {
    server
        .call(Method::GET, &format!("/profile/{user_id}"), None, None)
        .await
}

#[tokio::test]
async fn a_new_user_has_their_localpart_as_display_name_readable_without_a_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    assert_eq!(
        profile(&server, &alice.user_id).await.assert_ok(),
        &json!({ "displayname": "alice" })
    );
    profile(&server, "@nobody:localhost")
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .call(
            Method::GET,
            &format!("/profile/{}/avatar_url", alice.user_id),
            None,
            None,
        )
        .await
        .assert_error(404, "M_NOT_FOUND");
    let caps = server.get("/capabilities", &alice.token).await;
    let caps = &caps.assert_ok()["capabilities"];
    assert_eq!(caps["m.set_displayname"], json!({ "enabled": true }));
    assert_eq!(caps["m.set_avatar_url"], json!({ "enabled": true }));
}

#[tokio::test]
async fn fields_are_set_read_and_deleted_by_their_owner_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    set(
        &server,
        &alice,
        "displayname",
        json!({ "displayname": "Alice W" }),
    )
    .await
    .assert_ok();
    set(
        &server,
        &alice,
        "avatar_url",
        json!({ "avatar_url": "mxc://localhost/abc_1-2" }),
    )
    .await
    .assert_ok();
    set(
        &server,
        &alice,
        "com.example.pets",
        json!({ "com.example.pets": ["cat", 2] }),
    )
    .await
    .assert_ok();
    assert_eq!(
        profile(&server, &alice.user_id).await.assert_ok(),
        &json!({
            "displayname": "Alice W",
            "avatar_url": "mxc://localhost/abc_1-2",
            "com.example.pets": ["cat", 2],
        })
    );
    let field = server
        .call(
            Method::GET,
            &format!("/profile/{}/displayname", alice.user_id),
            None,
            None,
        )
        .await;
    assert_eq!(field.assert_ok(), &json!({ "displayname": "Alice W" }));
    server
        .call(
            Method::DELETE,
            &format!("/profile/{}/com.example.pets", alice.user_id),
            Some(&alice.token),
            None,
        )
        .await
        .assert_ok();
    assert!(
        profile(&server, &alice.user_id)
            .await
            .body
            .get("com.example.pets")
            .is_none()
    );
    // Someone else's profile: 403.
    server
        .put(
            &format!("/profile/{}/displayname", alice.user_id),
            &bob.token,
            json!({ "displayname": "Mallory" }),
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .call(
            Method::DELETE,
            &format!("/profile/{}/displayname", alice.user_id),
            Some(&bob.token),
            None,
        )
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn bad_fields_get_the_errors_profile_yaml_lists() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    set(&server, &alice, "Not.Valid", json!({ "Not.Valid": 1 }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    set(&server, &alice, "nodots", json!({ "nodots": 1 }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let long = format!("com.{}", "a".repeat(260));
    set(&server, &alice, &long, json!({ long.clone(): 1 }))
        .await
        .assert_error(400, "M_KEY_TOO_LARGE");
    set(&server, &alice, "displayname", json!({ "other": "x" }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    set(&server, &alice, "displayname", json!({ "displayname": 7 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    set(
        &server,
        &alice,
        "avatar_url",
        json!({ "avatar_url": "https://example.com/a.png" }),
    )
    .await
    .assert_error(400, "M_BAD_JSON");
    let big = "x".repeat(40 * 1024);
    set(
        &server,
        &alice,
        "com.example.one",
        json!({ "com.example.one": big }),
    )
    .await
    .assert_ok();
    set(
        &server,
        &alice,
        "com.example.two",
        json!({ "com.example.two": big }),
    )
    .await
    .assert_error(400, "M_PROFILE_TOO_LARGE");
    // Replacing a field counts its new size only.
    set(
        &server,
        &alice,
        "com.example.one",
        json!({ "com.example.one": big }),
    )
    .await
    .assert_ok();
}

fn member_content(sync: &Value, room: &str, user: &str) -> Value {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == user)
        .map(|e| e["content"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn mb03_joins_carry_the_profile_and_a_change_reaches_every_joined_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    set(
        &server,
        &bob,
        "avatar_url",
        json!({ "avatar_url": "mxc://localhost/bob" }),
    )
    .await
    .assert_ok();
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let other = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    // A join that names its own display name keeps it.
    server
        .post(
            &format!("/join/{}", common::enc(&other)),
            &bob.token,
            json!({ "displayname": "B." }),
        )
        .await
        .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(
        member_content(&sync, &room, &alice.user_id),
        json!({ "membership": "join", "displayname": "alice" })
    );
    assert_eq!(
        member_content(&sync, &room, &bob.user_id),
        json!({ "membership": "join", "displayname": "bob", "avatar_url": "mxc://localhost/bob" })
    );
    assert_eq!(
        member_content(&sync, &other, &bob.user_id)["displayname"],
        "B."
    );
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    set(
        &server,
        &bob,
        "displayname",
        json!({ "displayname": "Bobby" }),
    )
    .await
    .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    for r in [&room, &other] {
        let events = &sync["rooms"]["join"][r.as_str()]["timeline"]["events"];
        assert_eq!(types_of(events), vec!["m.room.member"], "{sync}");
        assert_eq!(
            member_content(&sync, r, &bob.user_id),
            json!({ "membership": "join", "displayname": "Bobby", "avatar_url": "mxc://localhost/bob" })
        );
    }
    let members = server
        .get(
            &format!("/rooms/{}/joined_members", common::enc(&room)),
            &alice.token,
        )
        .await;
    assert_eq!(
        members.assert_ok()["joined"][&bob.user_id]["display_name"],
        "Bobby"
    );
    // Setting the same name again sends nothing.
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    set(
        &server,
        &bob,
        "displayname",
        json!({ "displayname": "Bobby" }),
    )
    .await
    .assert_ok();
    let quiet = server
        .sync(&alice, &[("since", &since), ("timeout", "0")])
        .await;
    assert!(quiet.get("rooms").is_none(), "{quiet}");
}

#[tokio::test]
async fn voip_turn_server_answers_from_the_configuration() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let none = server.get("/voip/turnServer", &alice.token).await;
    assert_eq!(none.assert_ok(), &json!({}));
    let server = TestServer::with(|c, _| {
        c.voip.turn_uris = vec!["turn:turn.example.com:3478?transport=udp".into()];
        c.voip.turn_shared_secret = Some("north".into());
        c.voip.turn_user_lifetime_secs = 600;
    })
    .await;
    let alice = server.register("alice").await;
    let got = server.get("/voip/turnServer", &alice.token).await;
    let got = got.assert_ok();
    assert_eq!(
        got["uris"],
        json!(["turn:turn.example.com:3478?transport=udp"])
    );
    assert_eq!(got["ttl"], 600);
    let username = got["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice.user_id);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(
        got["password"].as_str().unwrap().len(),
        28,
        "base64 of 20 bytes"
    );
    server
        .call(Method::GET, "/voip/turnServer", None, None)
        .await
        .assert_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn require_shared_room_limits_who_reads_a_profile() {
    let server = TestServer::with(|config, _| {
        config.profile.require_shared_room = true;
    })
    .await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let carol = server.register("carol").await;
    let path = format!("/profile/{}", alice.user_id);
    let field = format!("/profile/{}/displayname", alice.user_id);
    let read = server.get(&path, &bob.token).await;
    assert_eq!(read.assert_ok()["displayname"], "alice");
    server.get(&field, &bob.token).await.assert_ok();
    server.get(&path, &alice.token).await.assert_ok();
    server
        .get(&path, &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&field, &carol.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    profile(&server, &alice.user_id)
        .await
        .assert_error(401, "M_MISSING_TOKEN");
    // A token that is sent must be valid, whatever the setting.
    server
        .get(&path, "not-a-token")
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
}
