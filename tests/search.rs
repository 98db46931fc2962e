//! Server-side search (`search.yaml`): words found in rooms the searcher may see and not in
//! others, in rank or recent order, paged, with context, state and groups; the same on
//! SQLite (FTS5) and PostgreSQL (tsvector).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, txn};
use serde_json::{Value, json};

async fn search(server: &TestServer, user: &User, room_events: Value) -> Value {
    server
        .post(
            "/search",
            &user.token,
            json!({ "search_categories": { "room_events": room_events } }),
        )
        .await
        .assert_ok()["search_categories"]["room_events"]
        .clone()
}

fn found(room_events: &Value) -> Vec<String> {
    room_events["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_word_is_found_where_the_searcher_may_see_it_and_not_elsewhere() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let hit = server
        .send_text(&alice, &room, "The Martians have landed")
        .await;
    server.send_text(&alice, &room, "nothing to see").await;
    // A room Bob is not in.
    let secret = server.create_room(&alice, json!({})).await;
    let hidden = server
        .send_text(&alice, &secret, "martians in secret")
        .await;
    let results = search(&server, &bob, json!({ "search_term": "martians" })).await;
    assert_eq!(found(&results), vec![hit.clone()]);
    assert_eq!(results["count"], json!(1));
    assert_eq!(results["highlights"], json!(["martians"]));
    let first = &results["results"][0];
    assert!(first["rank"].as_f64().unwrap() > 0.0, "{first}");
    assert_eq!(
        first["result"]["content"]["body"],
        json!("The Martians have landed")
    );
    assert_eq!(first["result"]["room_id"], json!(room));
    // Alice sees both; prefixes and case do not matter; every word must match.
    let mut both = found(&search(&server, &alice, json!({ "search_term": "MARTIAN" })).await);
    both.sort();
    let mut expected = vec![hit.clone(), hidden];
    expected.sort();
    assert_eq!(both, expected);
    assert_eq!(
        found(&search(&server, &alice, json!({ "search_term": "martians landed" })).await),
        vec![hit.clone()]
    );
    assert!(
        found(&search(&server, &alice, json!({ "search_term": "venusians" })).await).is_empty()
    );
    // Punctuation is not syntax.
    assert!(
        found(&search(&server, &alice, json!({ "search_term": "\"* & | ! :" })).await).is_empty()
    );
    // A room filter narrows it.
    let only = search(
        &server,
        &alice,
        json!({ "search_term": "martians", "filter": { "rooms": [room] } }),
    )
    .await;
    assert_eq!(found(&only), vec![hit.clone()]);
    // Redacted, it is gone.
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&hit), txn()),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    assert!(found(&search(&server, &bob, json!({ "search_term": "martians" })).await).is_empty());
}

#[tokio::test]
async fn nothing_after_the_searcher_left_is_found() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let before = server.send_text(&alice, &room, "wombat before").await;
    server
        .room_post(&bob, &room, "leave", json!({}))
        .await
        .assert_ok();
    server.send_text(&alice, &room, "wombat after").await;
    let results = search(&server, &bob, json!({ "search_term": "wombat" })).await;
    assert_eq!(found(&results), vec![before]);
}

#[tokio::test]
async fn names_and_topics_are_searched_by_key_and_order_and_pages_work() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(
            &alice,
            json!({ "name": "Otter club", "topic": "All about otters" }),
        )
        .await;
    let mut messages = Vec::new();
    for i in 0..5 {
        messages.push(
            server
                .send_text(&alice, &room, &format!("otter number {i}"))
                .await,
        );
    }
    let names = search(
        &server,
        &alice,
        json!({ "search_term": "otter", "keys": ["content.name"] }),
    )
    .await;
    assert_eq!(found(&names).len(), 1);
    assert_eq!(names["results"][0]["result"]["type"], json!("m.room.name"));
    let topics = search(
        &server,
        &alice,
        json!({ "search_term": "otters", "keys": ["content.topic"] }),
    )
    .await;
    assert_eq!(
        topics["results"][0]["result"]["type"],
        json!("m.room.topic")
    );
    // Recent first, two at a time, through next_batch.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(t) => format!("/search?next_batch={}", enc(t)),
            None => "/search".to_owned(),
        };
        let body = json!({ "search_categories": { "room_events": {
            "search_term": "otter", "keys": ["content.body"], "order_by": "recent",
            "filter": { "limit": 2 } } } });
        let page = server.post(&path, &alice.token, body).await;
        let page = page.assert_ok()["search_categories"]["room_events"].clone();
        assert_eq!(page["count"], json!(5));
        seen.extend(found(&page));
        match page["next_batch"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    let mut newest_first = messages.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // Bad requests.
    for bad in [
        json!({ "search_categories": { "room_events": {} } }),
        json!({ "search_categories": { "room_events": { "search_term": "x", "keys": ["content.other"] } } }),
        json!({ "search_categories": { "room_events": { "search_term": "x", "order_by": "size" } } }),
        json!({}),
    ] {
        server
            .post("/search", &alice.token, bad)
            .await
            .assert_error(400, "M_BAD_JSON");
    }
    server
        .post(
            "/search?next_batch=zzz",
            &alice.token,
            json!({ "search_categories": { "room_events": { "search_term": "x" } } }),
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn results_come_with_context_profiles_state_and_groups() {
    let server = TestServer::start().await;
    let (alice, bob, room) = server
        .alice_and_bob(json!({ "preset": "public_chat", "name": "Ctx" }))
        .await;
    let one = server.send_text(&bob, &room, "one").await;
    let hit = server.send_text(&alice, &room, "the needle").await;
    let three = server.send_text(&bob, &room, "three").await;
    let results = search(
        &server,
        &bob,
        json!({
            "search_term": "needle",
            "event_context": { "before_limit": 1, "after_limit": 1, "include_profile": true },
            "include_state": true,
            "groupings": { "group_by": [{ "key": "room_id" }, { "key": "sender" }] },
        }),
    )
    .await;
    let first = &results["results"][0];
    assert_eq!(first["result"]["event_id"], json!(hit));
    let context = &first["context"];
    assert_eq!(context["events_before"][0]["event_id"], json!(one));
    assert_eq!(context["events_after"][0]["event_id"], json!(three));
    assert!(context["start"].is_string() && context["end"].is_string());
    assert_eq!(
        context["profile_info"][&alice.user_id]["displayname"],
        json!("alice")
    );
    let state = results["state"][&room].as_array().unwrap();
    assert!(state.iter().any(|e| e["type"] == json!("m.room.name")));
    assert_eq!(results["groups"]["room_id"][&room]["results"], json!([hit]));
    assert_eq!(
        results["groups"]["sender"][&alice.user_id]["results"],
        json!([hit])
    );
    let _: &Value = &results["groups"]["room_id"][&room]["order"];
}

/// One page of a search ordered by time, limit 2, grouped by room.
async fn grouped_page(server: &TestServer, user: &User, next_batch: Option<&str>) -> Value {
    let path = match next_batch {
        Some(token) => format!("/search?next_batch={}", enc(token)),
        None => "/search".to_owned(),
    };
    server
        .post(
            &path,
            &user.token,
            json!({ "search_categories": { "room_events": {
                "search_term": "apple", "order_by": "recent",
                "filter": { "limit": 2 },
                "groupings": { "group_by": [{ "key": "room_id" }] },
            } } }),
        )
        .await
        .assert_ok()["search_categories"]["room_events"]
        .clone()
}

#[tokio::test]
async fn room_groups_page_on_within_their_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let a = server.create_room(&alice, json!({})).await;
    let b = server.create_room(&alice, json!({})).await;
    let a1 = server.send_text(&alice, &a, "apple 1").await;
    let b1 = server.send_text(&alice, &b, "apple 2").await;
    let a2 = server.send_text(&alice, &a, "apple 3").await;
    let b2 = server.send_text(&alice, &b, "apple 4").await;
    let a3 = server.send_text(&alice, &a, "apple 5").await;
    // Newest first: a3, b2 | a2, b1 | a1.
    let first = grouped_page(&server, &alice, None).await;
    assert_eq!(found(&first), vec![a3.clone(), b2.clone()]);
    let group_a = &first["groups"]["room_id"][&a];
    assert_eq!(group_a["results"], json!([a3]));
    let in_a = grouped_page(&server, &alice, group_a["next_batch"].as_str()).await;
    assert_eq!(found(&in_a), vec![a2.clone(), a1.clone()]);
    assert!(in_a.get("next_batch").is_none(), "{in_a}");
    let group_b = &first["groups"]["room_id"][&b];
    let in_b = grouped_page(&server, &alice, group_b["next_batch"].as_str()).await;
    assert_eq!(found(&in_b), vec![b1.clone()]);
    // The second page of all rooms: B has nothing left after it, A has a1.
    let second = grouped_page(&server, &alice, first["next_batch"].as_str()).await;
    assert_eq!(found(&second), vec![a2, b1]);
    assert!(second["groups"]["room_id"][&b].get("next_batch").is_none());
    let rest_of_a = second["groups"]["room_id"][&a]["next_batch"].as_str();
    let last = grouped_page(&server, &alice, rest_of_a).await;
    assert_eq!(found(&last), vec![a1]);
    // A group token of a room that is not the searcher's finds nothing; a bad one is 400.
    let nowhere = grouped_page(&server, &alice, Some("g0!elsewhere:localhost")).await;
    assert!(found(&nowhere).is_empty());
    for bad in [
        "g0",
        "gx!a:localhost",
        "g1!",
        "s10001",
        "s99999999999999999999",
    ] {
        server
            .post(
                &format!("/search?next_batch={}", enc(bad)),
                &alice.token,
                json!({ "search_categories": { "room_events": { "search_term": "apple" } } }),
            )
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
}

#[tokio::test]
async fn events_stored_before_the_search_index_are_found_after_the_migration() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "name": "Heron hall" }))
        .await;
    let old = server.send_text(&alice, &room, "a heron flew by").await;
    let redacted = server.send_text(&alice, &room, "heron secret").await;
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&redacted), txn()),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    let mut config = common::test_config(server.dir.path());
    config.database.url = server.services().config.database.url.clone();
    let dir = server.stop().await;
    let version = if config.database.url.starts_with("sqlite://") {
        21
    } else {
        22
    };
    common::run_sql(
        &config.database.url,
        &format!(
            "DROP TABLE event_search; DELETE FROM schema_migrations WHERE version = {version};"
        ),
    )
    .await;
    let again = TestServer::start_in(dir, config).await;
    let results = search(
        &again,
        &alice,
        json!({ "search_term": "heron", "keys": ["content.body"] }),
    )
    .await;
    assert_eq!(found(&results), vec![old]);
    let names = search(
        &again,
        &alice,
        json!({ "search_term": "heron", "keys": ["content.name"] }),
    )
    .await;
    assert_eq!(found(&names).len(), 1);
}

#[tokio::test]
async fn text_with_a_nul_is_indexed_without_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let id = server.send_text(&alice, &room, "badger\u{0}sett").await;
    let results = search(&server, &alice, json!({ "search_term": "sett" })).await;
    assert_eq!(found(&results), vec![id]);
}
