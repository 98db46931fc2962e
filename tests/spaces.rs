//! Spaces: the room hierarchy (behaviours SP-01..07 of `behaviours-rooms.md`;
//! `space_hierarchy.yaml`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, txn};
use serde_json::{Value, json};

async fn space(server: &TestServer, user: &User, name: &str) -> String {
    server
        .create_room(
            user,
            json!({ "preset": "public_chat", "name": name, "creation_content": { "type": "m.space" } }),
        )
        .await
}

async fn room(server: &TestServer, user: &User, name: &str, preset: &str) -> String {
    server
        .create_room(user, json!({ "preset": preset, "name": name }))
        .await
}

async fn link(server: &TestServer, user: &User, parent: &str, child: &str, extra: Value) -> String {
    let mut content = json!({ "via": ["localhost"] });
    content
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    server
        .put_state(user, parent, "m.space.child", child, content)
        .await
        .assert_ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn hierarchy(room: &str, query: &str) -> String {
    format!("/_matrix/client/v1/rooms/{}/hierarchy{query}", enc(room))
}

fn room_ids(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Space S with children A (a space holding B, C) and D; R is not a space and links to E.
struct Tree {
    s: String,
    a: String,
    b: String,
    c: String,
    d: String,
    r: String,
    e: String,
}

async fn tree(server: &TestServer, alice: &User) -> Tree {
    let s = space(server, alice, "S").await;
    let a = space(server, alice, "A").await;
    let b = room(server, alice, "B", "public_chat").await;
    let c = room(server, alice, "C", "public_chat").await;
    let d = room(server, alice, "D", "public_chat").await;
    let r = room(server, alice, "R", "public_chat").await;
    let e = room(server, alice, "E", "public_chat").await;
    link(server, alice, &s, &a, json!({ "order": "1" })).await;
    link(
        server,
        alice,
        &s,
        &d,
        json!({ "order": "2", "suggested": true }),
    )
    .await;
    link(server, alice, &s, &r, json!({ "order": "3" })).await;
    link(server, alice, &a, &b, json!({ "suggested": true })).await;
    link(server, alice, &a, &c, json!({})).await;
    // R is no space: its children are not followed (SP-02).
    link(server, alice, &r, &e, json!({})).await;
    Tree {
        s,
        a,
        b,
        c,
        d,
        r,
        e,
    }
}

#[tokio::test]
async fn sp01_sp02_the_whole_tree_depth_first_with_children_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let t = tree(&server, &alice).await;
    let page = server.get(&hierarchy(&t.s, ""), &alice.token).await;
    let page = page.assert_ok();
    assert_eq!(
        room_ids(page),
        vec![
            t.s.clone(),
            t.a.clone(),
            t.b.clone(),
            t.c.clone(),
            t.d.clone(),
            t.r.clone()
        ]
    );
    assert!(!room_ids(page).contains(&t.e));
    assert!(page.get("next_batch").is_none());
    let root = &page["rooms"][0];
    assert_eq!(root["name"], json!("S"));
    assert_eq!(root["room_type"], json!("m.space"));
    assert_eq!(root["num_joined_members"], json!(1));
    assert_eq!(root["join_rule"], json!("public"));
    assert_eq!(root["world_readable"], json!(false));
    let children = root["children_state"].as_array().unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(children[0]["type"], json!("m.space.child"));
    assert_eq!(children[0]["state_key"], json!(t.a));
    assert_eq!(children[0]["content"]["via"], json!(["localhost"]));
    assert!(children[0]["origin_server_ts"].is_i64());
    // A room that is no space shows no children.
    let r = page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["room_id"] == json!(t.r))
        .unwrap();
    assert_eq!(r["children_state"], json!([]));
}

#[tokio::test]
async fn sp03_max_depth_suggested_only_and_pages() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let t = tree(&server, &alice).await;
    let shallow = server
        .get(&hierarchy(&t.s, "?max_depth=1"), &alice.token)
        .await;
    assert_eq!(
        room_ids(shallow.assert_ok()),
        vec![t.s.clone(), t.a.clone(), t.d.clone(), t.r.clone()]
    );
    let root_only = server
        .get(&hierarchy(&t.s, "?max_depth=0"), &alice.token)
        .await;
    assert_eq!(room_ids(root_only.assert_ok()), vec![t.s.clone()]);
    let suggested = server
        .get(&hierarchy(&t.s, "?suggested_only=true"), &alice.token)
        .await;
    assert_eq!(
        room_ids(suggested.assert_ok()),
        vec![t.s.clone(), t.d.clone()]
    );
    // Pages of four, then the rest.
    let first = server.get(&hierarchy(&t.s, "?limit=4"), &alice.token).await;
    let first = first.assert_ok().clone();
    assert_eq!(
        room_ids(&first),
        vec![t.s.clone(), t.a.clone(), t.b.clone(), t.c.clone()]
    );
    let next = first["next_batch"].as_str().unwrap();
    let second = server
        .get(
            &hierarchy(&t.s, &format!("?limit=4&from={}", enc(next))),
            &alice.token,
        )
        .await;
    let second = second.assert_ok();
    assert_eq!(room_ids(second), vec![t.d.clone(), t.r.clone()]);
    assert!(second.get("next_batch").is_none());
    // The settings cannot change mid-way; tokens must be ours.
    for bad in [
        format!("?limit=4&max_depth=1&from={}", enc(next)),
        format!("?limit=4&suggested_only=true&from={}", enc(next)),
        "?from=nonsense".to_owned(),
        "?limit=0".to_owned(),
        "?suggested_only=maybe".to_owned(),
    ] {
        server
            .get(&hierarchy(&t.s, &bad), &alice.token)
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
}

#[tokio::test]
async fn sp04_rooms_the_user_may_not_see_are_left_out_with_their_subtree() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let s = space(&server, &alice, "S").await;
    let hidden = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "creation_content": { "type": "m.space" } }),
        )
        .await;
    let under = room(&server, &alice, "under hidden", "public_chat").await;
    let open = room(&server, &alice, "open", "public_chat").await;
    let invited = room(&server, &alice, "invited", "private_chat").await;
    link(&server, &alice, &s, &hidden, json!({})).await;
    link(&server, &alice, &hidden, &under, json!({})).await;
    link(&server, &alice, &s, &open, json!({})).await;
    link(&server, &alice, &s, &invited, json!({})).await;
    // A link to a room this server does not have is skipped.
    link(&server, &alice, &s, "!elsewhere:example.org", json!({})).await;
    server.invite(&alice, &invited, &bob).await;
    let page = server.get(&hierarchy(&s, ""), &bob.token).await;
    let mut ids = room_ids(page.assert_ok());
    ids.sort();
    let mut expected = vec![s.clone(), open.clone(), invited.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    // Alice sees all of it.
    let page = server.get(&hierarchy(&s, ""), &alice.token).await;
    assert_eq!(room_ids(page.assert_ok()).len(), 5);
    // A root Bob may not see is 403.
    server
        .get(&hierarchy(&hidden, ""), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&hierarchy("!unknown:localhost", ""), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // A room Bob is banned from is left out; then the root itself: 403, public as it is.
    server
        .room_post(&alice, &open, "ban", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    let page = server.get(&hierarchy(&s, ""), &bob.token).await;
    let mut ids = room_ids(page.assert_ok());
    ids.sort();
    let mut expected = vec![s.clone(), invited.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    server
        .room_post(&alice, &s, "ban", json!({ "user_id": bob.user_id }))
        .await
        .assert_ok();
    server
        .get(&hierarchy(&s, ""), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn sp05_children_order_by_valid_order_then_time_then_id() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let s = space(&server, &alice, "S").await;
    let first = room(&server, &alice, "no order, older", "public_chat").await;
    let second = room(&server, &alice, "no order, newer", "public_chat").await;
    let ordered_b = room(&server, &alice, "order b", "public_chat").await;
    let ordered_a = room(&server, &alice, "order a", "public_chat").await;
    let bad_order = room(&server, &alice, "bad order", "public_chat").await;
    link(&server, &alice, &s, &first, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    link(&server, &alice, &s, &second, json!({})).await;
    link(&server, &alice, &s, &ordered_b, json!({ "order": "b" })).await;
    link(&server, &alice, &s, &ordered_a, json!({ "order": "a" })).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Not printable ASCII: as if there were no order.
    link(&server, &alice, &s, &bad_order, json!({ "order": "é" })).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Over 50 characters: as if there were none too.
    let long_order = room(&server, &alice, "long order", "public_chat").await;
    link(
        &server,
        &alice,
        &s,
        &long_order,
        json!({ "order": "a".repeat(51) }),
    )
    .await;
    let page = server.get(&hierarchy(&s, ""), &alice.token).await;
    assert_eq!(
        room_ids(page.assert_ok()),
        vec![
            s, ordered_a, ordered_b, first, second, bad_order, long_order
        ]
    );
}

#[tokio::test]
async fn sp02_sp04_empty_via_is_no_link_and_restricted_knock_and_world_readable_rooms_show() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let s = space(&server, &alice, "S").await;
    server.join(&bob, &s).await;
    let no_via = room(&server, &alice, "no via", "public_chat").await;
    server
        .put_state(&alice, &s, "m.space.child", &no_via, json!({ "via": [] }))
        .await
        .assert_ok();
    let restricted = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "initial_state": [{
                "type": "m.room.join_rules", "state_key": "",
                "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": s }] }
            }] }),
        )
        .await;
    let knock = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "initial_state": [{
                "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" }
            }] }),
        )
        .await;
    let readable = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "initial_state": [{
                "type": "m.room.history_visibility", "state_key": "",
                "content": { "history_visibility": "world_readable" }
            }] }),
        )
        .await;
    // Restricted to a room Bob is not in: hidden.
    let other = server.create_room(&alice, json!({})).await;
    let closed = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "initial_state": [{
                "type": "m.room.join_rules", "state_key": "",
                "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": other }] }
            }] }),
        )
        .await;
    for child in [&restricted, &knock, &readable, &closed] {
        link(&server, &alice, &s, child, json!({})).await;
    }
    let page = server.get(&hierarchy(&s, ""), &bob.token).await;
    let mut ids = room_ids(page.assert_ok());
    ids.sort();
    let mut expected = vec![s.clone(), restricted, knock, readable];
    expected.sort();
    assert_eq!(ids, expected);
    // The link without via is not shown among the space's children either.
    let root = &page.assert_ok()["rooms"][0];
    assert_eq!(root["room_id"], json!(s));
    let linked: Vec<&str> = root["children_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state_key"].as_str().unwrap())
        .collect();
    assert!(!linked.contains(&no_via.as_str()), "{linked:?}");
}

#[tokio::test]
async fn sp06_sp07_a_redacted_link_is_gone_and_loops_end() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let s = space(&server, &alice, "S").await;
    let a = space(&server, &alice, "A").await;
    let b = room(&server, &alice, "B", "public_chat").await;
    link(&server, &alice, &s, &a, json!({})).await;
    link(&server, &alice, &a, &s, json!({})).await;
    let to_b = link(&server, &alice, &a, &b, json!({})).await;
    let page = server.get(&hierarchy(&s, ""), &alice.token).await;
    assert_eq!(
        room_ids(page.assert_ok()),
        vec![s.clone(), a.clone(), b.clone()]
    );
    server
        .put(
            &format!("/rooms/{}/redact/{}/{}", enc(&a), enc(&to_b), txn()),
            &alice.token,
            json!({}),
        )
        .await
        .assert_ok();
    let page = server.get(&hierarchy(&s, ""), &alice.token).await;
    assert_eq!(room_ids(page.assert_ok()), vec![s, a]);
}
