//! The user directory (`users.yaml`, issue 12): who may be found, by what, in what order.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

async fn search(server: &TestServer, user: &User, body: Value) -> Value {
    server
        .post("/user_directory/search", &user.token, body)
        .await
        .assert_ok()
        .clone()
}

fn found(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn set_name(server: &TestServer, user: &User, name: &str) {
    server
        .put(
            &format!("/profile/{}/displayname", enc(&user.user_id)),
            &user.token,
            json!({ "displayname": name }),
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn finds_room_mates_and_public_room_members_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let abob = server.register("abob").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let private = server.create_room(&alice, json!({})).await;
    for mate in [&bob, &abob] {
        server.invite(&alice, &private, mate).await;
        server.join(mate, &private).await;
    }
    server
        .create_room(&carol, json!({ "preset": "public_chat" }))
        .await;
    // Dave's only room is private and his own.
    server.create_room(&dave, json!({})).await;
    set_name(&server, &bob, "Robert Builder").await;

    // A prefix match ranks above a match inside the name.
    let bobs = search(&server, &alice, json!({ "search_term": "bob" })).await;
    assert_eq!(
        found(&bobs),
        vec![bob.user_id.clone(), abob.user_id.clone()]
    );
    assert_eq!(bobs["limited"], false);
    assert_eq!(bobs["results"][0]["display_name"], "Robert Builder");

    // By display name, case-insensitively.
    let builder = search(&server, &alice, json!({ "search_term": "BUILDER" })).await;
    assert_eq!(found(&builder), vec![bob.user_id.clone()]);
    // A member of a public room is found by anyone.
    let carols = search(&server, &dave, json!({ "search_term": "car" })).await;
    assert_eq!(found(&carols), vec![carol.user_id.clone()]);
    // Dave shares no room with Alice and is in no public room.
    let daves = search(&server, &alice, json!({ "search_term": "dave" })).await;
    assert_eq!(found(&daves), Vec::<String>::new());
    // The server name is not part of what is matched, and LIKE wildcards are literal.
    for term in ["localhost", "%", "_"] {
        let none = search(&server, &alice, json!({ "search_term": term })).await;
        assert_eq!(found(&none), Vec::<String>::new(), "{term}");
    }
    let cut = search(&server, &alice, json!({ "search_term": "b", "limit": 1 })).await;
    assert_eq!(found(&cut), vec![bob.user_id.clone()]);
    assert_eq!(cut["limited"], true);
}

#[tokio::test]
async fn search_all_users_finds_everyone_but_the_deactivated() {
    let server = TestServer::with(|config, _| {
        config.user_directory.search_all_users = true;
    })
    .await;
    let alice = server.register("alice").await;
    let dave = server.register("dave").await;
    let result = search(&server, &alice, json!({ "search_term": "dave" })).await;
    assert_eq!(found(&result), vec![dave.user_id.clone()]);
    assert_eq!(result["results"][0]["display_name"], "dave");

    let first = server
        .post("/account/deactivate", &dave.token, json!({}))
        .await;
    let auth = TestServer::password_auth(&dave, &first.body["session"]);
    server
        .post("/account/deactivate", &dave.token, json!({ "auth": auth }))
        .await
        .assert_ok();
    let result = search(&server, &alice, json!({ "search_term": "dave" })).await;
    assert_eq!(found(&result), Vec::<String>::new());
}

#[tokio::test]
async fn bad_searches_are_matrix_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let post = |body: Value| server.post("/user_directory/search", &alice.token, body);
    post(json!({})).await.assert_error(400, "M_MISSING_PARAM");
    post(json!({ "search_term": 3 }))
        .await
        .assert_error(400, "M_BAD_JSON");
    post(json!({ "search_term": "a", "limit": "ten" }))
        .await
        .assert_error(400, "M_BAD_JSON");
    post(json!({ "search_term": "a", "limit": -1 }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    post(json!({ "search_term": "a".repeat(257) }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .call(
            Method::POST,
            "/user_directory/search",
            None,
            Some(json!({ "search_term": "a" })),
        )
        .await
        .assert_error(401, "M_MISSING_TOKEN");
}
