//! Push rules, read side (behaviours PR-*, SC-07 of shared/reference): what matrix-js-sdk
//! asks for before it starts syncing, and the `m.push_rules` account data.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, enc};
use reqwest::Method;
use serde_json::{Value, json};

fn rule_ids(ruleset: &Value, kind: &str) -> Vec<String> {
    ruleset[kind]
        .as_array()
        .unwrap_or_else(|| panic!("{kind} is not a list: {ruleset}"))
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The server-default ruleset of the current spec, for `user_id`.
#[track_caller]
fn assert_default_ruleset(ruleset: &Value, user_id: &str) {
    let overrides = rule_ids(ruleset, "override");
    assert_eq!(
        overrides[..4],
        [
            ".m.rule.master",
            ".m.rule.suppress_notices",
            ".m.rule.invite_for_me",
            ".m.rule.member_event"
        ],
        "{ruleset}"
    );
    assert!(overrides.contains(&".m.rule.is_user_mention".to_owned()));
    assert_eq!(
        rule_ids(ruleset, "underride"),
        [
            ".m.rule.call",
            ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one",
            ".m.rule.message",
            ".m.rule.encrypted"
        ]
    );
    for kind in ["content", "room", "sender"] {
        assert_eq!(ruleset[kind], json!([]), "{kind}: {ruleset}");
    }
    let master = &ruleset["override"][0];
    assert_eq!(master["default"], true);
    assert_eq!(master["enabled"], false);
    let mention = ruleset["override"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == ".m.rule.is_user_mention")
        .unwrap();
    assert_eq!(mention["conditions"][0]["value"], user_id, "{mention}");
}

#[tokio::test]
async fn pr01_get_pushrules_with_the_trailing_slash_returns_the_global_ruleset() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server.get("/pushrules/", &alice.token).await;
    let body = resp.assert_ok();
    assert_eq!(body.as_object().unwrap().len(), 1, "only `global`: {body}");
    assert_default_ruleset(&body["global"], &alice.user_id);
    // The legacy prefix serves it too.
    let legacy = server
        .get("/_matrix/client/r0/pushrules/", &alice.token)
        .await;
    assert_eq!(legacy.assert_ok(), body);
}

#[tokio::test]
async fn pr02_pushrules_needs_a_token_and_its_trailing_slash() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = server.call(Method::GET, "/pushrules/", None, None).await;
    resp.assert_error(401, "M_MISSING_TOKEN");
    let resp = server.get("/pushrules", &alice.token).await;
    resp.assert_error(404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn pr03_get_pushrules_global_returns_the_ruleset_itself() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let all = server.get("/pushrules/", &alice.token).await;
    let global = server.get("/pushrules/global/", &alice.token).await;
    assert_eq!(global.assert_ok(), &all.assert_ok()["global"]);
    assert_default_ruleset(&global.body, &alice.user_id);
}

#[tokio::test]
async fn sc07_pr29_every_initial_sync_carries_the_push_rules() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let body = server.get("/sync", &alice.token).await.assert_ok().clone();
    let events = body["account_data"]["events"].as_array().unwrap();
    let rules: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "m.push_rules")
        .collect();
    assert_eq!(rules.len(), 1, "{body}");
    assert_default_ruleset(&rules[0]["content"]["global"], &alice.user_id);
    // Incremental syncs carry them only when they change.
    let since = body["next_batch"].as_str().unwrap();
    let next = server
        .get(&format!("/sync?since={since}"), &alice.token)
        .await;
    assert!(
        next.assert_ok().get("account_data").is_none(),
        "{}",
        next.body
    );
    // A filter that leaves the type out leaves them out.
    let filter = json!({"account_data": {"not_types": ["m.push_rules"]}}).to_string();
    let filtered = server
        .get(&format!("/sync?filter={}", enc(&filter)), &alice.token)
        .await;
    assert!(
        filtered.assert_ok().get("account_data").is_none(),
        "{}",
        filtered.body
    );
}

#[tokio::test]
async fn sc07_push_rules_read_back_through_account_data_but_not_written() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = format!("/user/{}/account_data/m.push_rules", enc(&alice.user_id));
    let resp = server.get(&path, &alice.token).await;
    assert_default_ruleset(&resp.assert_ok()["global"], &alice.user_id);
    let resp = server.put(&path, &alice.token, json!({"global": {}})).await;
    resp.assert_error(405, "M_BAD_JSON");
    let bob = server.register("bob").await;
    server
        .get(&path, &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
}
