//! Changing push rules (issue 11, `pushrules.yaml`; behaviours PR-06..PR-28 of
//! `behaviours-push-receipts.md`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

const BASE: &str = "/pushrules/global";

async fn put(server: &TestServer, user: &User, path: &str, body: Value) -> common::Resp {
    server
        .put(&format!("{BASE}/{path}"), &user.token, body)
        .await
}

async fn rules(server: &TestServer, user: &User) -> Value {
    server.get("/pushrules/", &user.token).await.assert_ok()["global"].clone()
}

fn ids(ruleset: &Value, kind: &str) -> Vec<String> {
    ruleset[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

fn room_rule(actions: Value) -> Value {
    json!({ "actions": actions })
}

#[tokio::test]
async fn pr07_pr13_pr14_pr15_new_rules_go_first_or_where_asked_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let content = |actions: Value| json!({ "pattern": "cake", "actions": actions });
    for id in ["a", "b"] {
        put(
            &server,
            &alice,
            &format!("content/{id}"),
            content(json!(["notify"])),
        )
        .await
        .assert_ok();
    }
    // PR-14: a new rule goes first among the user's rules of its kind.
    assert_eq!(ids(&rules(&server, &alice).await, "content"), ["b", "a"]);
    // PR-15: before/after place it next to the named rule.
    server
        .put(
            &format!("{BASE}/content/c?after=b"),
            &alice.token,
            content(json!([])),
        )
        .await
        .assert_ok();
    assert_eq!(
        ids(&rules(&server, &alice).await, "content"),
        ["b", "c", "a"]
    );
    // PR-13: the same rule twice is one rule.
    put(&server, &alice, "content/c", content(json!([])))
        .await
        .assert_ok();
    assert_eq!(
        ids(&rules(&server, &alice).await, "content"),
        ["b", "c", "a"]
    );
    // Override rules go after the master rule, before the other defaults.
    let conditions = json!({ "conditions": [{ "kind": "event_match", "key": "type", "pattern": "m.x" }], "actions": [] });
    put(&server, &alice, "override/mine", conditions)
        .await
        .assert_ok();
    let overrides = ids(&rules(&server, &alice).await, "override");
    assert_eq!(overrides[..2], [".m.rule.master", "mine"]);
    // PR-04, PR-06, PR-07: one rule, enabled, not default.
    let rule = server.get(&format!("{BASE}/content/a"), &alice.token).await;
    let rule = rule.assert_ok();
    assert_eq!(
        (rule["enabled"].clone(), rule["default"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(rule["pattern"], "cake");
    // Rules of one kind and another may share an ID (PR-21).
    let room = "!abc:localhost";
    put(
        &server,
        &alice,
        &format!("room/{}", enc(room)),
        room_rule(json!(["notify"])),
    )
    .await
    .assert_ok();
    let override_same = json!({ "conditions": [], "actions": [] });
    put(
        &server,
        &alice,
        &format!("override/{}", enc(room)),
        override_same,
    )
    .await
    .assert_ok();
    let now = rules(&server, &alice).await;
    assert_eq!(ids(&now, "room"), [room]);
    assert!(ids(&now, "override").contains(&room.to_owned()));
}

#[tokio::test]
async fn pr06_pr08_pr09_pr10_pr11_pr16_pr17_pr18_bad_rules_get_the_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    server
        .get(&format!("{BASE}/content/nope"), &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    put(
        &server,
        &alice,
        "content/.m.mine",
        json!({ "pattern": "x", "actions": [] }),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    server
        .put(
            "/pushrules/device/content/x",
            &alice.token,
            json!({ "pattern": "x", "actions": [] }),
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put(
        &server,
        &alice,
        "not_a_template/x",
        json!({ "actions": [] }),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    put(&server, &alice, "override/x", json!({ "actions": [] }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    put(&server, &alice, "content/x", json!({ "actions": [] }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    put(&server, &alice, "content/x", json!({ "pattern": "x" }))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    put(
        &server,
        &alice,
        "content/x",
        json!({ "pattern": "x", "actions": ["not_an_action"] }),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    server
        .put(
            &format!("{BASE}/content/x?before=missing"),
            &alice.token,
            json!({ "pattern": "x", "actions": [] }),
        )
        .await
        .assert_error(400, "M_UNKNOWN");
    server
        .put(
            &format!("{BASE}/content/x?before=.m.rule.master"),
            &alice.token,
            json!({ "pattern": "x", "actions": [] }),
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
    put(&server, &alice, "room/not-a-room-id", room_rule(json!([])))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // PR-16: the historical actions are kept and read back as sent.
    put(
        &server,
        &alice,
        "content/old",
        json!({ "pattern": "x", "actions": ["dont_notify", "coalesce"] }),
    )
    .await
    .assert_ok();
    let got = server
        .get(&format!("{BASE}/content/old/actions"), &alice.token)
        .await;
    assert_eq!(
        got.assert_ok(),
        &json!({ "actions": ["dont_notify", "coalesce"] })
    );
    server
        .get(&format!("{BASE}/content/old/not_an_attr"), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn pr20_pr22_pr23_pr24_pr25_enable_actions_delete() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(
        &server,
        &alice,
        "content/a",
        json!({ "pattern": "x", "actions": ["notify"] }),
    )
    .await
    .assert_ok();
    put(
        &server,
        &alice,
        "content/a/enabled",
        json!({ "enabled": false }),
    )
    .await
    .assert_ok();
    assert_eq!(
        server
            .get(&format!("{BASE}/content/a/enabled"), &alice.token)
            .await
            .assert_ok(),
        &json!({ "enabled": false })
    );
    // PR-20: updating a rule keeps its enabled state.
    put(
        &server,
        &alice,
        "content/a",
        json!({ "pattern": "y", "actions": [] }),
    )
    .await
    .assert_ok();
    let rule = server.get(&format!("{BASE}/content/a"), &alice.token).await;
    assert_eq!(
        (rule.body["enabled"].clone(), rule.body["pattern"].clone()),
        (json!(false), json!("y"))
    );
    // PR-24, PR-25: default rules too; unknown defaults are 404.
    put(
        &server,
        &alice,
        "override/.m.rule.master/enabled",
        json!({ "enabled": true }),
    )
    .await
    .assert_ok();
    put(
        &server,
        &alice,
        "underride/.m.rule.message/actions",
        json!({ "actions": ["dont_notify"] }),
    )
    .await
    .assert_ok();
    let now = rules(&server, &alice).await;
    assert_eq!(now["override"][0]["enabled"], true);
    let message = now["underride"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == ".m.rule.message")
        .unwrap();
    assert_eq!(message["actions"], json!(["dont_notify"]));
    assert_eq!(message["default"], true);
    put(
        &server,
        &alice,
        "override/.not.a.default.rule/enabled",
        json!({ "enabled": true }),
    )
    .await
    .assert_error(404, "M_NOT_FOUND");
    put(
        &server,
        &alice,
        "content/a/enabled",
        json!({ "enabled": "yes" }),
    )
    .await
    .assert_error(400, "M_INVALID_PARAM");
    // PR-22: delete; again is 404; defaults cannot be deleted.
    let delete = |path: &str| {
        let path = format!("{BASE}/{path}");
        let token = alice.token.clone();
        let server = &server;
        async move { server.call(Method::DELETE, &path, Some(&token), None).await }
    };
    delete("content/a").await.assert_ok();
    delete("content/a").await.assert_error(404, "M_NOT_FOUND");
    delete("override/.m.rule.master")
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn pr28_a_change_reaches_sync_as_push_rules_account_data() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let since = server.sync(&alice, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    put(
        &server,
        &alice,
        "content/a",
        json!({ "pattern": "x", "actions": ["notify"] }),
    )
    .await
    .assert_ok();
    let sync = server
        .sync(&alice, &[("since", &since), ("timeout", "5000")])
        .await;
    let event = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .cloned()
        .unwrap();
    assert_eq!(ids(&event["content"]["global"], "content"), ["a"]);
    // Read back through account data, still not writable there.
    let stored = server
        .get(
            &format!("/user/{}/account_data/m.push_rules", alice.user_id),
            &alice.token,
        )
        .await;
    assert_eq!(ids(&stored.assert_ok()["global"], "content"), ["a"]);
    // Two changes at once both stay (PR-35).
    let (one, two) = tokio::join!(
        put(
            &server,
            &alice,
            "content/one",
            json!({ "pattern": "1", "actions": [] })
        ),
        put(
            &server,
            &alice,
            "content/two",
            json!({ "pattern": "2", "actions": [] })
        ),
    );
    one.assert_ok();
    two.assert_ok();
    let mut now = ids(&rules(&server, &alice).await, "content");
    now.sort();
    assert_eq!(now, ["a", "one", "two"]);
}
